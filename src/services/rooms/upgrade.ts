import type { Logger } from 'pino';
import { errors, MatrixError } from '../../errors.js';
import { stateKeyOf } from '../../protocol/event.js';
import { isValidUserId, serverNameOf } from '../../protocol/identifiers.js';
import type { JsonObject, JsonValue } from '../../protocol/json.js';
import { canSendEvent, roomCreators, userPowerLevel } from '../../protocol/power-levels.js';
import { getRoomVersion } from '../../protocol/room-versions.js';
import type { AliasStore } from '../../storage/stores/aliases.js';
import type { EventStore } from '../../storage/stores/events.js';
import type { RoomEvents } from './room-events.js';
import type { Profile } from './room-service.js';

/** State copied into the replacement room, in this order (client-server API "Room upgrades"). */
export const TRANSFERRED_STATE = [
  'm.room.join_rules',
  'm.room.history_visibility',
  'm.room.guest_access',
  'm.room.server_acl',
  'm.room.encryption',
  'm.room.name',
  'm.room.avatar',
  'm.room.topic',
] as const;

export interface RoomUpgraderDeps {
  serverName: string;
  events: EventStore;
  aliases: AliasStore;
  roomEvents: RoomEvents;
  profile: (userId: string) => Promise<Profile>;
  log: Logger;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Room upgrades: a replacement room with a `predecessor`, the transferable state, local aliases
 * and directory listing moved over, a tombstone in the old room and its power levels
 * restricted so that ordinary members can no longer talk or invite there.
 */
export class RoomUpgrader {
  constructor(private readonly deps: RoomUpgraderDeps) {}

  async upgrade(userId: string, oldRoomId: string, newVersionId: string, additionalCreators?: string[]): Promise<string> {
    const { events, roomEvents, aliases, serverName } = this.deps;
    const version = getRoomVersion(newVersionId);
    if (!version) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', 400, `Room version "${newVersionId}" is not supported`);
    const room = await events.getRoom(oldRoomId);
    if (!room) throw errors.notFound(`Unknown room ${oldRoomId}`);
    if ((await events.getMembership(oldRoomId, userId)) !== 'join') throw errors.forbidden(`You are not joined to ${oldRoomId}`);
    const oldVersion = await roomEvents.roomVersionOf(oldRoomId);
    const oldState = await events.getCurrentState(oldRoomId);
    if (oldState.has(stateKeyOf('m.room.tombstone', ''))) {
      const t = oldState.get(stateKeyOf('m.room.tombstone', ''))!;
      if (typeof t.content['replacement_room'] === 'string') throw errors.badJson('This room has already been upgraded');
    }
    if (!canSendEvent(oldState, userId, 'm.room.tombstone', true, oldVersion)) {
      throw errors.forbidden('You do not have permission to upgrade this room');
    }
    const extraCreators = version.privilegedCreators ? [...new Set(additionalCreators ?? [])].filter((u) => u !== userId) : [];
    for (const u of extraCreators) if (!isValidUserId(u)) throw errors.invalidParam(`Invalid user ID in additional_creators: ${u}`);

    const oldCreate = oldState.get(stateKeyOf('m.room.create', ''));
    const lastEventId = (await events.getForwardExtremities(oldRoomId)).at(-1);
    const predecessor: JsonObject = { room_id: oldRoomId };
    // Room version 12 and later may leave the event ID out; earlier versions need it.
    if (!version.roomIdIsCreateEventHash && lastEventId) predecessor['event_id'] = lastEventId;
    const createContent: JsonObject = { room_version: version.id, predecessor };
    if (typeof oldCreate?.content['type'] === 'string') createContent['type'] = oldCreate.content['type'];
    if (!version.implicitRoomCreator) createContent['creator'] = userId;
    if (extraCreators.length) createContent['additional_creators'] = extraCreators;
    // Federation flag: rooms that were local-only stay local-only.
    if (oldCreate?.content['m.federate'] === false) createContent['m.federate'] = false;

    const roomId = version.roomIdIsCreateEventHash ? undefined : `!${randomId()}:${serverName}`;
    const create = await roomEvents.createRoomEvent(version, userId, createContent, roomId);
    const newRoomId = create.roomId;
    const creators = new Set(roomCreators(create.event, version));

    // Power levels: the old room's, without creators in `users` when they are privileged, and
    // with the upgrading user able to send the copied state.
    const oldPl = oldState.get(stateKeyOf('m.room.power_levels', ''))?.content ?? {};
    const pl: JsonObject = JSON.parse(JSON.stringify(oldPl)) as JsonObject;
    const users: JsonObject = isObject(pl['users']) ? (pl['users'] as JsonObject) : {};
    pl['users'] = users;
    if (version.privilegedCreators) {
      for (const c of creators) delete users[c];
    } else {
      const own = userPowerLevel(oldState, userId, oldVersion);
      const needed = Math.max(100, ...numericLevels(pl));
      users[userId] = Number.isFinite(own) ? Math.max(own, needed) : needed;
    }

    await roomEvents.withRoomLock(newRoomId, async () => {
      const send = (type: string, content: JsonObject, stateKey = '') =>
        roomEvents.sendLocked({ roomId: newRoomId, type, sender: userId, content, stateKey });
      const member: JsonObject = { membership: 'join' };
      const p = await this.deps.profile(userId);
      if (p.displayname) member['displayname'] = p.displayname;
      if (p.avatar_url) member['avatar_url'] = p.avatar_url;
      await send('m.room.member', member, userId);
      await send('m.room.power_levels', pl);
      for (const type of TRANSFERRED_STATE) {
        const ev = oldState.get(stateKeyOf(type, ''));
        if (!ev) continue;
        let content = ev.content;
        // Restricted rooms that allowed members of the old room now allow members of the new one too.
        if (type === 'm.room.join_rules' && Array.isArray(content['allow'])) {
          const allow = content['allow'] as JsonValue[];
          const extra = allow.some((a) => isObject(a) && a['room_id'] === oldRoomId) ? [{ type: 'm.room_membership', room_id: newRoomId }] : [];
          content = { ...content, allow: [...allow, ...extra] };
        }
        await send(type, content);
      }
    });

    // Local aliases and the canonical alias move to the new room.
    for (const alias of await aliases.forRoom(oldRoomId)) {
      if (serverNameOf(alias) !== serverName) continue;
      const entry = await aliases.get(alias);
      await aliases.delete(alias);
      await aliases.create(alias, newRoomId, entry?.creator ?? userId);
    }
    const canonical = oldState.get(stateKeyOf('m.room.canonical_alias', ''));
    if (canonical && (typeof canonical.content['alias'] === 'string' || Array.isArray(canonical.content['alt_aliases']))) {
      await roomEvents.send({ roomId: newRoomId, type: 'm.room.canonical_alias', sender: userId, stateKey: '', content: canonical.content });
      await this.bestEffort('clear the old canonical alias', () =>
        roomEvents.send({ roomId: oldRoomId, type: 'm.room.canonical_alias', sender: userId, stateKey: '', content: {} }),
      );
    }
    if (room.isPublic) {
      await events.setRoomPublic(newRoomId, true);
      await events.setRoomPublic(oldRoomId, false);
    }

    await roomEvents.send({
      roomId: oldRoomId,
      type: 'm.room.tombstone',
      sender: userId,
      stateKey: '',
      content: { body: 'This room has been replaced', replacement_room: newRoomId },
    });

    // Ordinary members of the old room can no longer send or invite.
    const current = oldState.get(stateKeyOf('m.room.power_levels', ''))?.content ?? {};
    const usersDefault = typeof current['users_default'] === 'number' ? current['users_default'] : 0;
    const restricted = Math.max(50, usersDefault + 1);
    const restrictedPl: JsonObject = { ...current };
    let changed = false;
    for (const key of ['events_default', 'invite']) {
      const v = typeof current[key] === 'number' ? (current[key] as number) : 0;
      if (v < restricted) {
        restrictedPl[key] = restricted;
        changed = true;
      }
    }
    if (changed) {
      await this.bestEffort('restrict the old room', () =>
        roomEvents.send({ roomId: oldRoomId, type: 'm.room.power_levels', sender: userId, stateKey: '', content: restrictedPl }),
      );
    }
    return newRoomId;
  }

  private async bestEffort(what: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.deps.log.warn({ err }, `room upgrade: could not ${what}`);
    }
  }
}

/** Every numeric level in a power-levels content (so the upgrading user can send all copied state). */
function numericLevels(pl: JsonObject): number[] {
  const out: number[] = [];
  for (const k of ['state_default', 'events_default']) if (typeof pl[k] === 'number') out.push(pl[k] as number);
  if (isObject(pl['events'])) for (const v of Object.values(pl['events'] as JsonObject)) if (typeof v === 'number') out.push(v);
  return out;
}

function randomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'[b % 52]).join('');
}
