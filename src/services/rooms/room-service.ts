import { randomBytes } from 'node:crypto';
import { errors, MatrixError } from '../../errors.js';
import { stateKeyOf, type RoomEvent } from '../../protocol/event.js';
import { isValidRoomAlias, isValidUserId, parseRoomAlias, serverNameOf } from '../../protocol/identifiers.js';
import type { JsonObject, JsonValue } from '../../protocol/json.js';
import { canBan, canInvite, canKick, userPowerLevel } from '../../protocol/power-levels.js';
import { DEFAULT_ROOM_VERSION, getRoomVersion, type RoomVersion } from '../../protocol/room-versions.js';
import type { EventStore, StoredEvent } from '../../storage/stores/events.js';
import type { AliasStore } from '../../storage/stores/aliases.js';
import type { RoomEvents } from './room-events.js';

export interface Profile {
  displayname?: string | null;
  avatar_url?: string | null;
}

export interface CreateRoomRequest {
  visibility?: 'public' | 'private';
  room_alias_name?: string;
  name?: string;
  topic?: string;
  invite?: string[];
  room_version?: string;
  creation_content?: JsonObject;
  initial_state?: Array<{ type: string; state_key?: string; content: JsonObject }>;
  preset?: 'private_chat' | 'public_chat' | 'trusted_private_chat';
  is_direct?: boolean;
  power_level_content_override?: JsonObject;
}

export interface RoomServiceDeps {
  serverName: string;
  events: EventStore;
  aliases: AliasStore;
  roomEvents: RoomEvents;
  profile: (userId: string) => Promise<Profile>;
  defaultRoomVersion?: string;
  /** Where failures that do not fail a request are logged (a remote invite of createRoom). */
  log?: { warn(obj: object, msg: string): void };
}

const PRESETS = {
  private_chat: { join_rule: 'invite', history_visibility: 'shared', guest_access: 'can_join' },
  trusted_private_chat: { join_rule: 'invite', history_visibility: 'shared', guest_access: 'can_join' },
  public_chat: { join_rule: 'public', history_visibility: 'shared', guest_access: 'forbidden' },
} as const;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Membership through other servers (federation), plugged in when federation is set up. */
export interface RemoteMembership {
  /** Resolves an alias of another server. */
  queryAlias(alias: string): Promise<{ roomId: string; servers: string[] }>;
  /** Whether a membership change of a local user must go through another server. */
  needsRemote(roomId: string): Promise<boolean>;
  join(userId: string, roomId: string, servers: string[], content: JsonObject): Promise<string>;
  leave(userId: string, roomId: string, servers: string[], reason?: string): Promise<void>;
  knock(userId: string, roomId: string, servers: string[], reason?: string): Promise<void>;
  /** Has the invitee's server countersign an invite (v2 invite). */
  invite(event: RoomEvent, version: RoomVersion): Promise<RoomEvent>;
}

/** Room use cases: create, membership changes, state, aliases. */
export class RoomService {
  /** Set when federation is available. */
  remote: RemoteMembership | undefined;

  constructor(private readonly deps: RoomServiceDeps) {}

  private get events(): EventStore {
    return this.deps.events;
  }

  private isLocalUser(userId: string): boolean {
    return serverNameOf(userId) === this.deps.serverName;
  }

  private async memberContent(userId: string, membership: string, extra: JsonObject = {}): Promise<JsonObject> {
    const content: JsonObject = { membership };
    if (membership === 'join' || membership === 'invite' || membership === 'knock') {
      if (this.isLocalUser(userId)) {
        const p = await this.deps.profile(userId);
        if (p.displayname) content['displayname'] = p.displayname;
        if (p.avatar_url) content['avatar_url'] = p.avatar_url;
      }
    }
    return { ...content, ...extra };
  }

  async createRoom(creator: string, req: CreateRoomRequest): Promise<{ roomId: string }> {
    const versionId = req.room_version ?? this.deps.defaultRoomVersion ?? DEFAULT_ROOM_VERSION;
    const version = getRoomVersion(versionId);
    if (!version) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', 400, `Room version "${versionId}" is not supported`);
    const invites = [...new Set(req.invite ?? [])];
    for (const u of invites) if (!isValidUserId(u)) throw errors.invalidParam(`Invalid user ID in invite: ${u}`);
    const preset = req.preset ?? (req.visibility === 'public' ? 'public_chat' : 'private_chat');
    if (!(preset in PRESETS)) throw errors.badJson(`Unknown preset ${preset}`);
    let aliasToCreate: string | undefined;
    if (req.room_alias_name !== undefined) {
      aliasToCreate = `#${req.room_alias_name}:${this.deps.serverName}`;
      if (req.room_alias_name.includes(':') || !isValidRoomAlias(aliasToCreate)) {
        throw new MatrixError('M_INVALID_PARAM', 400, `Invalid room_alias_name: ${req.room_alias_name}`);
      }
      if (await this.deps.aliases.resolve(aliasToCreate)) throw new MatrixError('M_ROOM_IN_USE', 400, 'Room alias already taken');
    }
    if (req.initial_state) {
      for (const s of req.initial_state) {
        if (typeof s?.type !== 'string' || !isObject(s.content)) throw errors.badJson('initial_state entries need type and content');
      }
    }

    const createContent: JsonObject = { ...(req.creation_content ?? {}) };
    delete createContent['creator'];
    createContent['room_version'] = version.id;
    if (!version.implicitRoomCreator) createContent['creator'] = creator;
    if (version.privilegedCreators && preset === 'trusted_private_chat') {
      const extra = Array.isArray(createContent['additional_creators']) ? (createContent['additional_creators'] as JsonValue[]) : [];
      const all = [...new Set([...extra.map(String), ...invites])].filter((u) => u !== creator);
      if (all.length) createContent['additional_creators'] = all;
    }

    const roomId = version.roomIdIsCreateEventHash ? undefined : `!${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x')}:${this.deps.serverName}`;
    const create = await this.deps.roomEvents.createRoomEvent(version, creator, createContent, roomId);
    const rid = create.roomId;
    const re = this.deps.roomEvents;
    await re.withRoomLock(rid, async () => {
      const send = (type: string, content: JsonObject, stateKey = '') =>
        re.sendLocked({ roomId: rid, type, sender: creator, content, stateKey });
      await send('m.room.member', await this.memberContent(creator, 'join'), creator);

      const pl = this.defaultPowerLevels(version, creator, preset, invites, createContent);
      const override = req.power_level_content_override;
      await send('m.room.power_levels', override ? { ...pl, ...override } : pl);

      if (aliasToCreate) await send('m.room.canonical_alias', { alias: aliasToCreate });

      const initialKeys = new Set((req.initial_state ?? []).map((s) => stateKeyOf(s.type, s.state_key ?? '')));
      const p = PRESETS[preset];
      const presetEvents: Array<[string, JsonObject]> = [
        ['m.room.join_rules', { join_rule: p.join_rule }],
        ['m.room.history_visibility', { history_visibility: p.history_visibility }],
        ['m.room.guest_access', { guest_access: p.guest_access }],
      ];
      for (const [type, content] of presetEvents) if (!initialKeys.has(stateKeyOf(type, ''))) await send(type, content);
      for (const s of req.initial_state ?? []) await send(s.type, s.content, s.state_key ?? '');
      if (req.name !== undefined) await send('m.room.name', { name: req.name });
      if (req.topic !== undefined) {
        await send('m.room.topic', { topic: req.topic, 'm.topic': { 'm.text': [{ body: req.topic, mimetype: 'text/plain' }] } });
      }
      for (const invitee of invites) {
        // Users of other servers are invited once the room exists (their server must countersign).
        if (this.remote && !this.isLocalUser(invitee)) continue;
        const extra: JsonObject = req.is_direct ? { is_direct: true } : {};
        await send('m.room.member', await this.memberContent(invitee, 'invite', extra), invitee);
      }
    });
    // As other servers do, the room is returned even when an invitee's server refuses the invite
    // or cannot be reached: the room exists, and the creator can invite again.
    for (const invitee of invites) {
      if (!this.remote || this.isLocalUser(invitee)) continue;
      try {
        await this.setMembership(creator, rid, invitee, 'invite', undefined, req.is_direct ? { is_direct: true } : {});
      } catch (err) {
        this.deps.log?.warn({ roomId: rid, invitee, err: (err as Error).message }, 'could not invite a user of another server to a new room');
      }
    }
    if (aliasToCreate) await this.deps.aliases.create(aliasToCreate, rid, creator);
    if (req.visibility === 'public') await this.events.setRoomPublic(rid, true);
    return { roomId: rid };
  }

  private defaultPowerLevels(
    version: RoomVersion,
    creator: string,
    preset: keyof typeof PRESETS,
    invites: string[],
    createContent: JsonObject,
  ): JsonObject {
    const users: JsonObject = {};
    const creators = new Set([creator, ...((createContent['additional_creators'] as string[] | undefined) ?? [])]);
    if (!version.privilegedCreators) users[creator] = 100;
    if (preset === 'trusted_private_chat') {
      for (const u of invites) if (!(version.privilegedCreators && creators.has(u))) users[u] = 100;
    }
    return {
      users,
      users_default: 0,
      events: {
        'm.room.name': 50,
        'm.room.power_levels': 100,
        'm.room.history_visibility': 100,
        'm.room.canonical_alias': 50,
        'm.room.avatar': 50,
        'm.room.tombstone': version.privilegedCreators ? 150 : 100,
        'm.room.server_acl': 100,
        'm.room.encryption': 100,
      },
      events_default: 0,
      state_default: 50,
      ban: 50,
      kick: 50,
      redact: 50,
      invite: preset === 'public_chat' ? 50 : 0,
      historical: 100,
      notifications: { room: 50 },
    };
  }

  /** Resolves a room ID or alias to a room ID known here. */
  async resolveRoom(roomIdOrAlias: string): Promise<string> {
    if (roomIdOrAlias.startsWith('#')) {
      try {
        parseRoomAlias(roomIdOrAlias);
      } catch (err) {
        throw errors.invalidParam((err as Error).message);
      }
      const rid = await this.deps.aliases.resolve(roomIdOrAlias);
      if (!rid) throw errors.notFound(`Room alias ${roomIdOrAlias} not found`);
      return rid;
    }
    if (!roomIdOrAlias.startsWith('!')) throw errors.invalidParam(`${roomIdOrAlias} is not a room ID or alias`);
    return roomIdOrAlias;
  }

  private async requireRoom(roomId: string): Promise<void> {
    if (!(await this.events.getRoom(roomId))) throw errors.notFound(`Unknown room ${roomId}`);
  }

  async join(userId: string, roomIdOrAlias: string, extra: JsonObject = {}, servers: string[] = []): Promise<string> {
    let roomId: string;
    const via = [...servers];
    if (this.remote && roomIdOrAlias.startsWith('#') && serverNameOf(roomIdOrAlias) !== this.deps.serverName && !(await this.deps.aliases.resolve(roomIdOrAlias))) {
      const found = await this.remote.queryAlias(roomIdOrAlias);
      roomId = found.roomId;
      via.push(...found.servers);
    } else {
      roomId = await this.resolveRoom(roomIdOrAlias);
    }
    if (this.remote && (await this.remote.needsRemote(roomId))) {
      if ((await this.events.getMembership(roomId, userId)) === 'ban') throw errors.forbidden('You are banned from this room');
      return this.remote.join(userId, roomId, via, extra);
    }
    await this.requireRoom(roomId);
    const current = await this.events.getMembership(roomId, userId);
    if (current === 'ban') throw errors.forbidden('You are banned from this room');
    const content = await this.memberContent(userId, 'join', extra);
    // Restricted rooms: a local member with invite power vouches for the join.
    if (current !== 'invite' && current !== 'join') {
      const jr = await this.events.getCurrentStateEvent(roomId, 'm.room.join_rules', '');
      const rule = jr?.event.content['join_rule'];
      if (rule === 'restricted' || rule === 'knock_restricted') {
        let authoriser: string | undefined;
        try {
          authoriser = await this.restrictedJoinAuthoriser(roomId, userId, jr!.event);
        } catch (err) {
          // No local member may vouch for the user: a resident server that can does it instead.
          if (!(this.remote && err instanceof MatrixError && err.errcode === 'M_UNABLE_TO_GRANT_JOIN')) throw err;
          const others = (await this.events.members(roomId)).map((m) => serverNameOf(m)!).filter((s) => s && s !== this.deps.serverName);
          return this.remote.join(userId, roomId, [...new Set([...via, ...others])], extra);
        }
        if (authoriser) content['join_authorised_via_users_server'] = authoriser;
      }
    }
    await this.deps.roomEvents.send({ roomId, type: 'm.room.member', sender: userId, stateKey: userId, content });
    return roomId;
  }

  private async restrictedJoinAuthoriser(roomId: string, userId: string, joinRules: RoomEvent): Promise<string | undefined> {
    const allow = Array.isArray(joinRules.content['allow']) ? (joinRules.content['allow'] as JsonValue[]) : [];
    let allowed = false;
    for (const a of allow) {
      if (isObject(a) && a['type'] === 'm.room_membership' && typeof a['room_id'] === 'string') {
        if ((await this.events.getMembership(a['room_id'], userId)) === 'join') {
          allowed = true;
          break;
        }
      }
    }
    if (!allowed) return undefined;
    const state = await this.events.getCurrentState(roomId);
    const version = await this.deps.roomEvents.roomVersionOf(roomId);
    const members = await this.events.members(roomId);
    const candidates = members.filter((m) => this.isLocalUser(m) && canInvite(state, m, version));
    candidates.sort((a, b) => userPowerLevel(state, b, version) - userPowerLevel(state, a, version));
    if (!candidates.length) throw new MatrixError('M_UNABLE_TO_GRANT_JOIN', 400, 'No member of this server can authorise the join');
    return candidates[0];
  }

  async setMembership(
    sender: string,
    roomId: string,
    target: string,
    membership: 'invite' | 'leave' | 'ban' | 'knock',
    reason?: string,
    extra: JsonObject = {},
  ): Promise<StoredEvent> {
    if (!isValidUserId(target, { historical: true })) throw errors.invalidParam(`Invalid user ID ${target}`);
    if (this.remote && sender === target && (membership === 'leave' || membership === 'knock') && (await this.remote.needsRemote(roomId))) {
      if (membership === 'leave' && (await this.events.getMembership(roomId, target)) === undefined) throw errors.forbidden('You are not in this room');
      const servers = typeof extra['via'] === 'object' && Array.isArray(extra['via']) ? (extra['via'] as string[]) : [];
      if (membership === 'leave') await this.remote.leave(sender, roomId, servers, reason);
      else await this.remote.knock(sender, roomId, servers, reason);
      const ev = await this.events.getCurrentStateEvent(roomId, 'm.room.member', target);
      if (!ev) throw errors.unknown('The membership change was not recorded');
      return ev;
    }
    await this.requireRoom(roomId);
    const current = await this.events.getMembership(roomId, target);
    if (membership === 'invite' && current === 'join') throw errors.forbidden(`${target} is already in the room`);
    if (membership === 'invite' && current === 'ban') throw errors.forbidden(`${target} is banned from the room`);
    if (membership === 'leave' && sender === target && current === undefined) throw errors.forbidden('You are not in this room');
    const { via: _via, ...rest } = extra;
    const content = await this.memberContent(target, membership, rest);
    if (reason !== undefined) content['reason'] = reason;
    const remote = this.remote;
    const beforePersist =
      membership === 'invite' && remote && !this.isLocalUser(target) ? (ev: RoomEvent, v: RoomVersion) => remote.invite(ev, v) : undefined;
    return this.deps.roomEvents.send({ roomId, type: 'm.room.member', sender, stateKey: target, content, beforePersist });
  }

  async kick(sender: string, roomId: string, target: string, reason?: string): Promise<void> {
    const current = await this.events.getMembership(roomId, target);
    if (current !== 'join' && current !== 'invite' && current !== 'knock') throw errors.forbidden(`${target} is not in the room`);
    const state = await this.events.getCurrentState(roomId);
    if (!canKick(state, sender, target)) throw errors.forbidden('You do not have permission to kick this user');
    await this.setMembership(sender, roomId, target, 'leave', reason);
  }

  async ban(sender: string, roomId: string, target: string, reason?: string): Promise<void> {
    await this.requireRoom(roomId);
    const state = await this.events.getCurrentState(roomId);
    if (!canBan(state, sender, target)) throw errors.forbidden('You do not have permission to ban this user');
    await this.setMembership(sender, roomId, target, 'ban', reason);
  }

  async unban(sender: string, roomId: string, target: string, reason?: string): Promise<void> {
    if ((await this.events.getMembership(roomId, target)) !== 'ban') throw errors.forbidden(`${target} is not banned`);
    await this.setMembership(sender, roomId, target, 'leave', reason);
  }

  async sendState(sender: string, roomId: string, type: string, stateKey: string, content: JsonObject, ts?: number): Promise<StoredEvent> {
    await this.requireRoom(roomId);
    if (type === 'm.room.member') throw errors.forbidden('Use the membership endpoints to change membership');
    if (type === 'm.room.canonical_alias') await this.checkCanonicalAlias(roomId, content);
    // Setting the same content again is a no-op that returns the existing event.
    const existing = await this.events.getCurrentStateEvent(roomId, type, stateKey);
    if (existing && existing.event.sender === sender && JSON.stringify(existing.event.content) === JSON.stringify(content)) return existing;
    return this.deps.roomEvents.send({ roomId, type, sender, stateKey, content, ts });
  }

  private async checkCanonicalAlias(roomId: string, content: JsonObject): Promise<void> {
    const aliases = [content['alias'], ...(Array.isArray(content['alt_aliases']) ? content['alt_aliases'] : [])].filter(
      (a) => a !== undefined && a !== null,
    );
    for (const a of aliases) {
      if (typeof a !== 'string' || !isValidRoomAlias(a)) throw new MatrixError('M_BAD_ALIAS', 400, `Invalid alias ${String(a)}`);
      if (serverNameOf(a) === this.deps.serverName && (await this.deps.aliases.resolve(a)) !== roomId) {
        throw new MatrixError('M_BAD_ALIAS', 400, `Alias ${a} does not point to this room`);
      }
    }
  }

  async sendMessage(
    sender: string,
    roomId: string,
    type: string,
    content: JsonObject,
    txn?: { deviceId: string; txnId: string },
    ts?: number,
  ): Promise<StoredEvent> {
    await this.requireRoom(roomId);
    // A retransmission is the same transaction ID on the same path: same room, same type.
    // A literal, not `{ ...txn, scope }`: adding a property to a spread copy is slow on Node 20.
    const scoped = txn && { deviceId: txn.deviceId, txnId: txn.txnId, scope: ['send', roomId, type] };
    if (scoped) {
      const seen = await this.events.getTxnEventId(sender, scoped.deviceId, scoped.txnId, scoped.scope);
      if (seen) {
        const stored = await this.events.getEvent(seen);
        if (stored) return stored;
      }
    }
    return this.deps.roomEvents.send({ roomId, type, sender, content, txn: scoped, ts });
  }

  async redact(sender: string, roomId: string, targetId: string, reason: string | undefined, txn?: { deviceId: string; txnId: string }): Promise<StoredEvent> {
    await this.requireRoom(roomId);
    const scoped = txn && { deviceId: txn.deviceId, txnId: txn.txnId, scope: ['redact', roomId, targetId] };
    if (scoped) {
      const seen = await this.events.getTxnEventId(sender, scoped.deviceId, scoped.txnId, scoped.scope);
      if (seen) {
        const stored = await this.events.getEvent(seen);
        if (stored) return stored;
      }
    }
    const version = await this.deps.roomEvents.roomVersionOf(roomId);
    const content: JsonObject = {};
    if (reason !== undefined) content['reason'] = reason;
    if (version.redactsInContent) content['redacts'] = targetId;
    return this.deps.roomEvents.send({ roomId, type: 'm.room.redaction', sender, content, redacts: targetId, txn: scoped });
  }

  /** The requester must currently be joined (or have been, for history) to read a room. */
  async requireJoined(userId: string, roomId: string): Promise<void> {
    await this.requireRoom(roomId);
    if ((await this.events.getMembership(roomId, userId)) !== 'join') {
      throw errors.forbidden(`You are not joined to ${roomId}`);
    }
  }
}
