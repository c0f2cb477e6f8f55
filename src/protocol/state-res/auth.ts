/**
 * What state resolution needs from the authorisation rules: which state keys an
 * event's authorisation depends on, the sender's power level as seen from an
 * event's auth events, and the authorisation check itself (delegated to
 * `../event-auth.ts`).
 */
import { stateKeyOf, type RoomEvent, type StateMap } from '../event.js';
import type { RoomVersion } from '../room-versions.js';
import { authorizeEvent } from '../event-auth.js';
import { authEventKeysFor } from '../auth-events.js';
import { levelOf, parsePowerLevels } from '../power-levels.js';

/** Decides whether `event` is allowed given the auth events keyed by `stateKeyOf`. */
export type Authorizer = (event: RoomEvent, authEvents: StateMap, version: RoomVersion) => boolean;

export const defaultAuthorizer: Authorizer = (event, authEvents, version) =>
  authorizeEvent(event, authEvents, version).allowed;

export const CREATE_KEY = stateKeyOf('m.room.create', '');
export const POWER_LEVELS_KEY = stateKeyOf('m.room.power_levels', '');
export const JOIN_RULES_KEY = stateKeyOf('m.room.join_rules', '');

/**
 * The `(type, state_key)` keys of state the authorisation rules consult for `event`
 * (the auth events selection), always including the create event: in v12 it is not
 * selected into `auth_events` but the rules still need it.
 */
export function authTypesForEvent(event: RoomEvent, version: RoomVersion): string[] {
  if (event.type === 'm.room.create') return [];
  const keys = authEventKeysFor(event, version).map(([t, k]) => stateKeyOf(t, k));
  if (!keys.includes(CREATE_KEY)) keys.unshift(CREATE_KEY);
  return keys;
}

/**
 * Power level of `event`'s sender according to the power-levels and create events
 * among its auth events, as used by the reverse topological power ordering: the
 * user's entry, else `users_default`; without a power-levels event the creator has
 * 100 (v1–v11); v12 creators have +Infinity.
 */
export function senderPowerLevel(
  version: RoomVersion,
  event: RoomEvent,
  powerLevels: RoomEvent | undefined,
  create: RoomEvent | undefined,
): number {
  return levelOf(parsePowerLevels(powerLevels, create, version), event.sender);
}
