/**
 * Auth events selection (server-server API, "Auth events selection"): which state entries an
 * event's `auth_events` should reference.
 */
import type { JsonObject } from './json.js';
import { isJsonObject } from './json.js';
import type { RoomVersion } from './room-versions.js';

export interface AuthEventSubject {
  type: string;
  sender: string;
  state_key?: string;
  content: JsonObject;
}

/**
 * The `(type, state_key)` pairs selected for an event's `auth_events`, without duplicates:
 * the create event (unless the version leaves it out), the power levels, the sender's
 * membership and, for membership events, the target's membership, the join rules
 * (join/invite/knock), the third-party-invite token named by an invite's `signed.token`, and
 * the authorising user's membership for a restricted join. The create event itself has none.
 */
export function authEventKeysFor(event: AuthEventSubject, version: RoomVersion): Array<[string, string]> {
  if (event.type === 'm.room.create' && event.state_key === '') return [];
  const keys: Array<[string, string]> = [];
  const seen = new Set<string>();
  const add = (type: string, stateKey: string): void => {
    const k = `${type}\u0000${stateKey}`;
    if (seen.has(k)) return;
    seen.add(k);
    keys.push([type, stateKey]);
  };
  if (version.createEventInAuthEvents) add('m.room.create', '');
  add('m.room.power_levels', '');
  add('m.room.member', event.sender);
  if (event.type === 'm.room.member' && typeof event.state_key === 'string') {
    add('m.room.member', event.state_key);
    const membership = event.content['membership'];
    if (membership === 'join' || membership === 'invite' || membership === 'knock') add('m.room.join_rules', '');
    if (membership === 'invite') {
      const tpi = event.content['third_party_invite'];
      const signed = isJsonObject(tpi) ? tpi['signed'] : undefined;
      const token = isJsonObject(signed) ? signed['token'] : undefined;
      if (typeof token === 'string') add('m.room.third_party_invite', token);
    }
    if (membership === 'join' && version.restrictedJoinRule) {
      const via = event.content['join_authorised_via_users_server'];
      if (typeof via === 'string') add('m.room.member', via);
    }
  }
  return keys;
}
