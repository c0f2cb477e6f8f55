/**
 * Rooms over federation: what this server answers to others (events, state, auth chains,
 * backfill, missing events, make/send join, leave and knock, invites) and what it asks of
 * others for its own users (joining, leaving, knocking on rooms held elsewhere; inviting users
 * of other servers).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { errors, MatrixError } from '../errors.js';
import { authEventKeysFor } from '../protocol/auth-events.js';
import { authorizeEvent } from '../protocol/event-auth.js';
import { federationForm } from '../protocol/event-hash.js';
import { generateLegacyEventId, withEventId } from '../protocol/event-id.js';
import { signEvent } from '../protocol/event-signing.js';
import { authEventIds, prevEventIds, stateKeyOf, type EventReference, type Pdu, type RoomEvent } from '../protocol/event.js';
import { isValidRoomAlias, isValidUserId, serverNameOf } from '../protocol/identifiers.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../protocol/json.js';
import { canInvite, userPowerLevel } from '../protocol/power-levels.js';
import { getRoomVersion, ROOM_VERSIONS, type RoomVersion } from '../protocol/room-versions.js';
import type { SigningKey } from '../protocol/signing.js';
import type { Database } from '../storage/db.js';
import type { AliasStore } from '../storage/stores/aliases.js';
import { timelineKeyOf, type EventStore, type StateIds, type StoredEvent } from '../storage/stores/events.js';
import type { FederationQueueStore } from '../storage/stores/federation-queue.js';
import type { Notifier } from '../streams/notifier.js';
import type { RoomEvents } from '../services/rooms/room-events.js';
import type { FederationClient } from './client.js';
import { knockStateOf } from './compat.js';
import { checkInviteRoomState, checkKnockRoomState, federationRoomState, STRIPPED_STATE_TYPES, stripEvent } from './stripped-state.js';
import { FederationBadResponseError, FederationHttpError } from './errors.js';
import type { FederationEventHandler } from './event-handler.js';
import { JsonObjectStream, JsonStreamError } from './json-stream.js';
import { JoinStateIngest, type JoinProgress } from './join-state.js';
import type { Keyring } from './keyring.js';
import { checkPdu, checkPduFormat, checkPduSignatures, PduError } from './pdu.js';
import type { FederationSender } from './sender.js';
import type { StreamResponse } from './transport.js';

const MAX_PREV_EVENTS = 10;
/** How long a room whose history could not be extended is not asked about again. */
const BACKFILL_RETRY_MS = 30_000;

export interface FederationRoomsDeps {
  serverName: string;
  signingKey: SigningKey;
  database: Database;
  events: EventStore;
  aliases: AliasStore;
  roomEvents: RoomEvents;
  notifier: Notifier;
  client: FederationClient;
  keyring: Keyring;
  handler: FederationEventHandler;
  sender: FederationSender;
  queue: FederationQueueStore;
  log: Logger;
  profile: (userId: string) => Promise<{ displayname?: string | null; avatar_url?: string | null }>;
}

/** Largest send_join answer read (streamed; only one event of it is held at a time). */
const MAX_JOIN_ANSWER_BYTES = 1024 * 1024 * 1024;

/**
 * Reads a send_join answer as it arrives: each element of `state` and `auth_chain` goes to
 * `onEvent` (awaited before more of the body is read); returns the other members.
 */
async function readJoinAnswer(server: string, res: StreamResponse, onEvent: (key: string, value: unknown) => Promise<void> | void): Promise<Record<string, unknown>> {
  const queue: Array<[string, unknown]> = [];
  const parser = new JsonObjectStream({ streamed: ['state', 'auth_chain'], onElement: (k, v) => queue.push([k, v]), maxValueBytes: 4 * 1024 * 1024 });
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      parser.write(chunk);
      if (parser.bytes > MAX_JOIN_ANSWER_BYTES) throw new FederationBadResponseError(server, `the send_join answer of ${server} is larger than ${MAX_JOIN_ANSWER_BYTES} bytes`, res.status);
      for (let i = 0; i < queue.length; i++) await onEvent(queue[i]![0], queue[i]![1]);
      queue.length = 0;
    }
    return parser.end();
  } catch (err) {
    res.abort();
    if (err instanceof JsonStreamError) throw new FederationBadResponseError(server, `the send_join answer of ${server} is not valid JSON: ${err.message}`, res.status);
    throw err;
  }
}

export class FederationRooms {
  /** Told the progress of each join's state as it is stored (metrics). */
  joinObserver: ((p: JoinProgress) => void) | undefined;

  constructor(private readonly deps: FederationRoomsDeps) {}

  private get events(): EventStore {
    return this.deps.events;
  }

  private isLocal(userId: string): boolean {
    return serverNameOf(userId) === this.deps.serverName;
  }

  // ---------------------------------------------------------------------------------------
  // Serving

  async versionOf(roomId: string): Promise<RoomVersion> {
    const room = await this.events.getRoom(roomId);
    const version = room && getRoomVersion(room.roomVersion);
    if (!version) throw errors.notFound(`Unknown room ${roomId}`);
    return version;
  }

  /** Whether this server takes part in the room (has forward extremities and a joined member). */
  async isResident(roomId: string): Promise<boolean> {
    if ((await this.events.getForwardExtremities(roomId)).length === 0) return false;
    return (await this.events.members(roomId, ['join'])).some((m) => this.isLocal(m));
  }

  /** Whether a membership change of a local user in this room must go through another server. */
  async needsRemote(roomId: string): Promise<boolean> {
    if (!(await this.events.getRoom(roomId))) return true;
    if (await this.isResident(roomId)) return false;
    if ((await this.events.getForwardExtremities(roomId)).length === 0) return true;
    return (await this.events.members(roomId)).some((m) => !this.isLocal(m));
  }

  /** Refuses servers denied by the room's ACL (403 M_FORBIDDEN). */
  async requireAclAllows(roomId: string, server: string): Promise<void> {
    if (!(await this.deps.handler.serverAllowed(roomId, server))) throw errors.forbidden('Server is denied by the room ACL');
  }

  private static serverHasMember(state: Map<string, RoomEvent>, server: string, memberships: string[]): boolean {
    for (const ev of state.values()) {
      if (ev.type === 'm.room.member' && ev.state_key && serverNameOf(ev.state_key) === server && memberships.includes(String(ev.content['membership']))) {
        return true;
      }
    }
    return false;
  }

  /**
   * Whether `server` may see the room's events: it must be in the room now (a joined member, or
   * an invited/knocking one for the room's stripped data) and ACL-allowed.
   */
  async requireServerInRoom(roomId: string, server: string): Promise<void> {
    await this.versionOf(roomId);
    await this.requireAclAllows(roomId, server);
    const state = await this.events.getCurrentState(roomId);
    if (!FederationRooms.serverHasMember(state, server, ['join'])) throw errors.forbidden('Server is not in the room');
  }

  /** Whether `server` may see `ev` (history visibility at the event). */
  async serverMaySee(ev: StoredEvent, server: string): Promise<boolean> {
    if (ev.rejected) return false;
    const stateIds = ev.outlier ? await this.events.getCurrentStateIds(ev.roomId) : await this.stateBefore(ev);
    const state = await this.events.loadStateEvents(stateIds);
    const hv = state.get(stateKeyOf('m.room.history_visibility', ''))?.content['history_visibility'];
    if (hv === 'world_readable' || hv === 'shared' || hv === undefined) return true;
    const allowed = hv === 'invited' ? ['join', 'invite'] : ['join'];
    return FederationRooms.serverHasMember(state, server, allowed);
  }

  /** The state before an event (state after, with its own entry replaced by what it replaced). */
  async stateBefore(ev: StoredEvent): Promise<StateIds> {
    const after = new Map((await this.events.getStateIdsAfter(ev.event.event_id)) ?? new Map<string, string>());
    if (typeof ev.event.state_key === 'string' && !ev.rejected) {
      const key = stateKeyOf(ev.event.type, ev.event.state_key);
      if (after.get(key) === ev.event.event_id) {
        if (ev.prevStateEventId) after.set(key, ev.prevStateEventId);
        else after.delete(key);
      }
    }
    return after;
  }

  /** An event as sent over federation. */
  async pduOf(ev: StoredEvent): Promise<JsonObject> {
    return this.pduFormOf(ev.event, await this.versionOf(ev.roomId));
  }

  /** An event of a room of `version` as sent over federation. */
  pduFormOf(ev: RoomEvent, version: RoomVersion): JsonObject {
    const { unsigned: _u, ...pdu } = federationForm(ev, version);
    return pdu as JsonObject;
  }

  /** Every event in the auth chains of `ids` (not including `ids` themselves unless reached). */
  async authChain(ids: Iterable<string>): Promise<StoredEvent[]> {
    const seen = new Map<string, StoredEvent>();
    let frontier = [...new Set(ids)];
    const start = await this.events.getEvents(frontier);
    frontier = [...start.values()].flatMap((s) => authEventIds(s.event));
    while (frontier.length) {
      const next: string[] = [];
      const got = await this.events.getEvents(frontier.filter((id) => !seen.has(id)));
      for (const [id, s] of got) {
        if (seen.has(id)) continue;
        seen.set(id, s);
        next.push(...authEventIds(s.event));
      }
      frontier = next.filter((id) => !seen.has(id));
    }
    return [...seen.values()];
  }

  /** State at an event (before it), or current state; with the auth chain of that state. */
  async stateAt(roomId: string, eventId: string | undefined): Promise<{ state: StoredEvent[]; authChain: StoredEvent[] }> {
    let ids: StateIds;
    if (eventId) {
      const ev = await this.events.getEvent(eventId);
      if (!ev || ev.roomId !== roomId || ev.outlier) throw errors.notFound('Unknown event');
      ids = await this.stateBefore(ev);
    } else {
      ids = await this.events.getCurrentStateIds(roomId);
    }
    const state = [...(await this.events.getEvents(ids.values())).values()];
    const authChain = await this.authChain(state.map((s) => s.event.event_id));
    return { state, authChain };
  }

  /** Events walked backwards over prev_events from `from`, newest first (backfill). */
  async backfill(roomId: string, from: string[], limit: number, server: string): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    const seen = new Set<string>();
    let frontier = from;
    while (frontier.length && out.length < limit) {
      const got = await this.events.getEvents(frontier.filter((id) => !seen.has(id)));
      const next: string[] = [];
      for (const s of [...got.values()].sort((a, b) => b.event.depth - a.event.depth)) {
        if (seen.has(s.event.event_id) || s.roomId !== roomId) continue;
        seen.add(s.event.event_id);
        if (out.length >= limit) break;
        if (await this.serverMaySee(s, server)) out.push(s);
        next.push(...prevEventIds(s.event));
      }
      frontier = next;
    }
    return out;
  }

  /** get_missing_events: events between `earliest` and `latest`, oldest first. */
  async missingEvents(roomId: string, earliest: string[], latest: string[], limit: number, minDepth: number, server: string): Promise<StoredEvent[]> {
    const stop = new Set(earliest);
    const seen = new Set<string>(latest);
    const out: StoredEvent[] = [];
    const startEvents = await this.events.getEvents(latest);
    let frontier = [...startEvents.values()].flatMap((s) => prevEventIds(s.event));
    while (frontier.length && out.length < limit) {
      const got = await this.events.getEvents(frontier.filter((id) => !seen.has(id) && !stop.has(id)));
      const next: string[] = [];
      for (const s of [...got.values()].sort((a, b) => b.event.depth - a.event.depth)) {
        if (seen.has(s.event.event_id)) continue;
        seen.add(s.event.event_id);
        if (s.roomId !== roomId || s.event.depth < minDepth || out.length >= limit) continue;
        if (await this.serverMaySee(s, server)) out.push(s);
        next.push(...prevEventIds(s.event));
      }
      frontier = next;
    }
    return out.sort((a, b) => a.event.depth - b.event.depth);
  }

  // ---------------------------------------------------------------------------------------
  // Resident side of make_join / send_join, make_leave / send_leave, make_knock / send_knock

  /** Builds an unsigned membership event template from the room's current state. */
  async makeMembershipTemplate(roomId: string, userId: string, membership: 'join' | 'leave' | 'knock', origin: string, supported?: string[]): Promise<{ event: JsonObject; room_version: string }> {
    const version = await this.versionOf(roomId);
    if (supported && !supported.includes(version.id)) {
      throw new MatrixError('M_INCOMPATIBLE_ROOM_VERSION', 400, `Room version ${version.id} is not supported by the joining server`, { room_version: version.id });
    }
    if (serverNameOf(userId) !== origin) throw errors.forbidden('The user does not belong to the requesting server');
    await this.requireAclAllows(roomId, origin);
    if (!(await this.isResident(roomId))) throw errors.notFound('This server is not in the room');
    if (membership === 'knock' && !version.knockJoinRule) {
      throw new MatrixError('M_INCOMPATIBLE_ROOM_VERSION', 400, 'This room version does not support knocking', { room_version: version.id });
    }
    const content: JsonObject = { membership };
    const stateIds = await this.events.getCurrentStateIds(roomId);
    const state = await this.events.loadStateEvents(stateIds);
    if (membership === 'join') {
      const rule = state.get(stateKeyOf('m.room.join_rules', ''))?.content['join_rule'];
      const current = state.get(stateKeyOf('m.room.member', userId))?.content['membership'];
      if ((rule === 'restricted' || rule === 'knock_restricted') && version.restrictedJoinRule && current !== 'invite' && current !== 'join') {
        content['join_authorised_via_users_server'] = await this.restrictedAuthoriser(roomId, userId, state, version);
      }
    }
    const pdu = await this.buildPdu(roomId, version, { type: 'm.room.member', sender: userId, state_key: userId, content }, stateIds);
    const { hashes: _h, signatures: _s, ...template } = pdu;
    const test = withEventId({ ...pdu, event_id: pdu.event_id ?? '$template:x' } as Pdu, version);
    const createEvent = state.get(stateKeyOf('m.room.create', ''));
    const verdict = authorizeEvent(test, state, version, { createEvent, verifySignature: () => true });
    if (!verdict.allowed) throw errors.forbidden(`The room does not allow this ${membership}: ${verdict.reason}`);
    return { event: { ...template, origin } as JsonObject, room_version: version.id };
  }

  /**
   * Checks that `userId` meets a condition of the room's restricted join rule, as this server
   * sees it: 400 M_UNABLE_TO_AUTHORISE_JOIN when this server is in none of the allowed rooms
   * (another server may know), 403 M_FORBIDDEN when it is in some and the user is joined to none.
   */
  private async requireRestrictedAllowed(userId: string, state: Map<string, RoomEvent>): Promise<void> {
    const jr = state.get(stateKeyOf('m.room.join_rules', ''));
    const allow = Array.isArray(jr?.content['allow']) ? (jr!.content['allow'] as JsonValue[]) : [];
    let known = false;
    for (const a of allow) {
      if (isJsonObject(a) && a['type'] === 'm.room_membership' && typeof a['room_id'] === 'string') {
        if (!(await this.isResident(a['room_id']))) continue;
        known = true;
        if ((await this.events.getMembership(a['room_id'], userId)) === 'join') return;
      }
    }
    if (!known) throw new MatrixError('M_UNABLE_TO_AUTHORISE_JOIN', 400, 'This server cannot confirm the user may join: it is in none of the allowed rooms');
    throw errors.forbidden('The user is not a member of any room that allows joining this room');
  }

  private async restrictedAuthoriser(roomId: string, userId: string, state: Map<string, RoomEvent>, version: RoomVersion): Promise<string> {
    await this.requireRestrictedAllowed(userId, state);
    const members = (await this.events.members(roomId)).filter((m) => this.isLocal(m) && canInvite(state, m, version));
    members.sort((a, b) => userPowerLevel(state, b, version) - userPowerLevel(state, a, version));
    if (!members.length) throw new MatrixError('M_UNABLE_TO_GRANT_JOIN', 400, 'No member of this server can authorise the join');
    return members[0]!;
  }

  /** A new event on top of the room's extremities with auth events from `stateIds` (unsigned, unhashed). */
  private async buildPdu(
    roomId: string,
    version: RoomVersion,
    ev: { type: string; sender: string; state_key?: string; content: JsonObject },
    stateIds: StateIds,
  ): Promise<Pdu> {
    const prevIds = (await this.events.getForwardExtremities(roomId)).slice(-MAX_PREV_EVENTS);
    const prevs = await this.events.getEvents(prevIds);
    const keys = authEventKeysFor(ev, version);
    const authIds = keys.map(([t, k]) => stateIds.get(stateKeyOf(t, k))).filter((id): id is string => !!id);
    const authStored = await this.events.getEvents(authIds);
    const ref = (id: string, s: StoredEvent | undefined): EventReference => (version.eventFormat === 1 ? [id, { sha256: s?.event.hashes.sha256 ?? '' }] : id);
    const pdu: Pdu = {
      room_id: roomId,
      type: ev.type,
      sender: ev.sender,
      content: ev.content,
      origin_server_ts: Date.now(),
      prev_events: prevIds.map((id) => ref(id, prevs.get(id))),
      auth_events: authIds.map((id) => ref(id, authStored.get(id))),
      depth: Math.max(0, ...[...prevs.values()].map((p) => p.event.depth)) + 1,
      hashes: { sha256: '' },
      signatures: {},
    };
    if (ev.state_key !== undefined) pdu.state_key = ev.state_key;
    return pdu;
  }

  /**
   * send_join / send_leave / send_knock: checks the event, adds our signature to restricted
   * joins we authorise, processes it like any received event (it must be accepted), and
   * forwards it to the other servers in the room.
   */
  async acceptMembership(origin: string, roomId: string, eventId: string, raw: unknown, membership: 'join' | 'leave' | 'knock'): Promise<{ event: RoomEvent; signedByUs: boolean; stateBefore: StateIds }> {
    const version = await this.versionOf(roomId);
    await this.requireAclAllows(roomId, origin);
    let pdu: Pdu;
    try {
      pdu = checkPduFormat(raw, version, roomId);
    } catch (err) {
      throw errors.badJson((err as Error).message);
    }
    if (pdu.type !== 'm.room.member' || pdu.content['membership'] !== membership) throw errors.badJson(`Not a ${membership} event`);
    if (pdu.state_key !== pdu.sender) throw errors.badJson('state_key must be the sender');
    if (serverNameOf(pdu.sender) !== origin) throw errors.forbidden('The sender does not belong to the requesting server');
    let signedByUs = false;
    const via = pdu.content['join_authorised_via_users_server'];
    if (membership === 'join' && typeof via === 'string' && version.restrictedJoinRule) {
      if (!this.isLocal(via)) throw errors.badJson('join_authorised_via_users_server is not a user of this server');
      // Our signature vouches that the user meets the join rule's conditions: check them again
      // (the auth rules only check the authorising user's power, not the other rooms).
      const state = await this.events.getCurrentState(roomId);
      const rule = state.get(stateKeyOf('m.room.join_rules', ''))?.content['join_rule'];
      const current = state.get(stateKeyOf('m.room.member', pdu.sender))?.content['membership'];
      if ((rule === 'restricted' || rule === 'knock_restricted') && current !== 'invite' && current !== 'join') {
        await this.requireRestrictedAllowed(pdu.sender, state);
      }
      pdu = signEvent(pdu, version, this.deps.serverName, this.deps.signingKey);
      signedByUs = true;
    }
    let checked;
    try {
      checked = await checkPdu(pdu, version, roomId, this.deps.keyring);
    } catch (err) {
      throw new MatrixError('M_INVALID_SIGNATURE', 403, (err as Error).message);
    }
    if (checked.redacted) throw errors.badJson('Content hash mismatch');
    const event = checked.event;
    if (event.event_id !== eventId) throw errors.badJson('The event ID does not match the path');
    const status = await this.deps.roomEvents.withRoomLock(roomId, async () => {
      const existing = await this.events.getEvent(event.event_id);
      if (existing && !existing.outlier) return 'known' as const;
      return this.deps.handler.processTimelineEvent(origin, roomId, version, event, true);
    });
    if (status === 'rejected' || status === 'soft_failed') throw errors.forbidden(`The ${membership} is not allowed in this room`);
    const stored = (await this.events.getEvent(event.event_id))!;
    const stateBefore = await this.stateBefore(stored);
    // Tell the other servers in the room (the sender of the event already has it).
    const dests = (await this.deps.sender.destinationsForRoom(roomId)).filter((d) => d !== origin);
    await this.deps.sender.sendEvent(event.event_id, dests);
    return { event: stored.event, signedByUs, stateBefore };
  }

  /** Receiving side of a v2 invite: checks, signs, and records invites to rooms we are not in. */
  async receiveInvite(origin: string, roomId: string, eventId: string, body: { event: unknown; room_version: string; invite_room_state?: unknown[] }, userExists: (u: string) => Promise<boolean>): Promise<JsonObject> {
    const version = getRoomVersion(body.room_version);
    if (!version) throw new MatrixError('M_INCOMPATIBLE_ROOM_VERSION', 400, `Room version ${body.room_version} is not supported`, { room_version: body.room_version });
    let pdu: Pdu;
    try {
      pdu = checkPduFormat(body.event, version, roomId);
    } catch (err) {
      throw errors.badJson((err as Error).message);
    }
    if (pdu.type !== 'm.room.member' || pdu.content['membership'] !== 'invite' || typeof pdu.state_key !== 'string') throw errors.badJson('Not an invite');
    if (!this.isLocal(pdu.state_key) || !(await userExists(pdu.state_key))) throw errors.notFound('Unknown user');
    if (serverNameOf(pdu.sender) !== origin) throw errors.forbidden('The sender does not belong to the requesting server');
    if (await this.events.getRoom(roomId)) await this.requireAclAllows(roomId, origin);
    const sigErr = await checkPduSignatures(pdu, version, this.deps.keyring);
    if (sigErr) throw errors.forbidden(`Bad signature: ${sigErr}`);
    const signed = signEvent(pdu, version, this.deps.serverName, this.deps.signingKey);
    const event = withEventId(signed, version);
    if (event.event_id !== eventId) throw errors.badJson('The event ID does not match the path');
    // Spec v1.16: the room state must hold the room's create event, as full signed PDUs.
    const stripped = await checkInviteRoomState(body.invite_room_state, version, roomId, this.deps.keyring, this.deps.log, origin);
    const resident = (await this.events.getRoom(roomId)) ? await this.isResident(roomId) : false;
    if (!resident) await this.recordOutOfRoomMembership(roomId, version, event, stripped);
    return federationForm(signed, version) as JsonObject;
  }

  /**
   * Records our user's membership in a room this server is not in (a remote invite, a knock or
   * the rejection of an invite): the event is an outlier and the only state we hold.
   */
  private async recordOutOfRoomMembership(roomId: string, version: RoomVersion, event: RoomEvent, stripped: JsonObject[]): Promise<void> {
    const userId = event.state_key!;
    await this.deps.roomEvents.withStreamLock(() =>
      this.deps.database.transaction(async (tx) => {
        if (!(await this.events.getRoom(roomId, tx.db))) {
          const create = stripped.find((s) => s['type'] === 'm.room.create');
          const creator = typeof create?.['sender'] === 'string' ? create['sender'] : event.sender;
          await this.events.insertRoom(tx, { roomId, roomVersion: version.id, creator, isPublic: false, createdTs: event.origin_server_ts });
        }
        let position: number;
        const existing = await this.events.getEvent(event.event_id, tx.db);
        if (existing) position = existing.streamOrdering;
        else {
          ({ streamOrdering: position } = await this.events.persist(tx, {
            event,
            roomId,
            stateGroupBefore: null,
            prevStateEventId: null,
            updateCurrentState: false,
            outlier: true,
          }));
        }
        const current = await this.events.getCurrentStateIds(roomId, tx.db);
        current.set(stateKeyOf('m.room.member', userId), event.event_id);
        await this.events.replaceCurrentState(tx, roomId, current);
        tx.onCommit(() =>
          this.deps.notifier.publish(
            { stream: 'events', position, roomId, eventId: event.event_id, type: event.type, stateKey: userId, sender: event.sender },
            [userId],
          ),
        );
      }),
    );
    if (stripped.length) await this.deps.queue.saveInvite(roomId, userId, event.event_id, version.id, stripped);
  }

  /** Stripped state shown with a remote invite (undefined when we hold the room's state). */
  async inviteState(roomId: string, userId: string): Promise<JsonObject[] | undefined> {
    if (await this.isResident(roomId)) return undefined;
    const inv = await this.deps.queue.getInvite(roomId, userId);
    // Stored in the stripped form; entries stored before that are stripped here.
    return inv?.stripped
      .filter(isJsonObject)
      .filter((s) => typeof s['type'] === 'string' && typeof s['sender'] === 'string' && isJsonObject(s['content']))
      .map((s) => stripEvent({ type: s['type'] as string, state_key: typeof s['state_key'] === 'string' ? s['state_key'] : '', sender: s['sender'] as string, content: s['content'] as JsonObject }));
  }

  // ---------------------------------------------------------------------------------------
  // Client side

  /** Resolves a room alias through its server's directory. */
  async queryAlias(alias: string): Promise<{ roomId: string; servers: string[] }> {
    const server = serverNameOf(alias);
    if (!server || !isValidRoomAlias(alias)) throw errors.invalidParam(`Invalid alias ${alias}`);
    try {
      const res = await this.deps.client.get<{ room_id?: unknown; servers?: unknown }>(server, '/_matrix/federation/v1/query/directory', { query: { room_alias: alias } });
      if (typeof res.room_id !== 'string') throw errors.notFound(`Room alias ${alias} not found`);
      const servers = Array.isArray(res.servers) ? res.servers.filter((s): s is string => typeof s === 'string') : [];
      return { roomId: res.room_id, servers: [...new Set([server, ...servers])] };
    } catch (err) {
      if (err instanceof FederationHttpError && err.status === 404) throw errors.notFound(`Room alias ${alias} not found`);
      if (err instanceof MatrixError) throw err;
      throw new MatrixError('M_NOT_FOUND', 404, `Could not resolve ${alias}: ${(err as Error).message}`);
    }
  }

  private candidates(roomId: string, servers: string[]): string[] {
    const out = [...servers];
    const s = serverNameOf(roomId);
    if (s) out.push(s);
    return [...new Set(out)].filter((x) => x !== this.deps.serverName);
  }

  private async signOwn(template: JsonObject, version: RoomVersion, content: JsonObject): Promise<RoomEvent> {
    const pdu = { ...template, content, origin_server_ts: Date.now(), signatures: {} } as unknown as Pdu;
    delete (pdu as Partial<Pdu>).hashes;
    delete pdu.unsigned;
    if (version.eventIdFormat === 'legacy') {
      pdu.event_id = generateLegacyEventId(randomBytes(12).toString('base64url').replace(/[-_]/g, 'x'), this.deps.serverName);
    } else {
      delete pdu.event_id;
    }
    const signed = signEvent(pdu as Pdu, version, this.deps.serverName, this.deps.signingKey);
    return withEventId(signed, version);
  }

  private async makeVia(
    servers: string[],
    path: (server: string) => string,
    query?: Record<string, string[]>,
  ): Promise<{ server: string; event: JsonObject; version: RoomVersion }> {
    let lastErr: unknown;
    for (const server of servers) {
      try {
        const res = await this.deps.client.get<{ event?: unknown; room_version?: unknown }>(server, path(server), { query });
        const version = getRoomVersion(typeof res.room_version === 'string' ? res.room_version : '1');
        if (!version) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', 400, `Room version ${String(res.room_version)} is not supported`);
        if (!isJsonObject(res.event)) throw new Error('no event template');
        return { server, event: res.event, version };
      } catch (err) {
        lastErr = err;
        this.deps.log.info({ server, err: (err as Error).message }, 'membership template request failed');
        if (err instanceof FederationHttpError && err.status === 403) break;
      }
    }
    if (lastErr instanceof FederationHttpError && lastErr.status === 403) throw errors.forbidden(lastErr.errorText ?? 'Not allowed');
    if (lastErr instanceof FederationHttpError && (lastErr.errcode === 'M_UNABLE_TO_AUTHORISE_JOIN' || lastErr.errcode === 'M_UNABLE_TO_GRANT_JOIN')) {
      throw new MatrixError(lastErr.errcode, 400, lastErr.errorText ?? 'No server could authorise the join');
    }
    if (lastErr instanceof FederationHttpError && lastErr.errcode === 'M_INCOMPATIBLE_ROOM_VERSION') {
      throw new MatrixError('M_INCOMPATIBLE_ROOM_VERSION', 400, lastErr.errorText ?? 'Incompatible room version');
    }
    if (lastErr instanceof MatrixError) throw lastErr;
    throw new MatrixError('M_NOT_FOUND', 404, `No server could help with this room: ${(lastErr as Error | undefined)?.message ?? 'no servers known'}`);
  }

  /** Joins a local user to a room held by other servers: make_join, sign, send_join, adopt the state. */
  async joinRemote(userId: string, roomId: string, servers: string[], extra: JsonObject): Promise<string> {
    // An invite (or a knock's room) names a server that is in the room: the inviter's.
    const own = (await this.events.getRoom(roomId)) ? await this.events.getCurrentStateEvent(roomId, 'm.room.member', userId) : undefined;
    const hinted = own && own.event.sender !== userId ? [serverNameOf(own.event.sender)!] : [];
    const candidates = this.candidates(roomId, [...servers, ...hinted]);
    const versions = [...ROOM_VERSIONS.keys()];
    const made = await this.makeVia(
      candidates,
      () => `/_matrix/federation/v1/make_join/${encodeURIComponent(roomId)}/${encodeURIComponent(userId)}`,
      { ver: versions },
    );
    const { version, server } = made;
    const tmplContent = isJsonObject(made.event['content']) ? made.event['content'] : {};
    const p = await this.deps.profile(userId);
    const content: JsonObject = { ...extra, membership: 'join' };
    if (p.displayname) content['displayname'] = p.displayname;
    if (p.avatar_url) content['avatar_url'] = p.avatar_url;
    if (typeof tmplContent['join_authorised_via_users_server'] === 'string') content['join_authorised_via_users_server'] = tmplContent['join_authorised_via_users_server'];
    const template = { ...made.event, sender: userId, state_key: userId, type: 'm.room.member', room_id: roomId };
    let event = await this.signOwn(template, version, content);
    const res = await this.deps.client
      .requestStream(
        server,
        'PUT',
        `/_matrix/federation/v2/send_join/${encodeURIComponent(roomId)}/${encodeURIComponent(event.event_id)}`,
        federationForm(event, version) as JsonObject,
        { timeoutMs: 120_000 },
      )
      .catch((err: unknown) => {
        if (err instanceof FederationHttpError && (err.errcode === 'M_UNABLE_TO_AUTHORISE_JOIN' || err.errcode === 'M_UNABLE_TO_GRANT_JOIN')) {
          throw new MatrixError(err.errcode, 400, err.errorText ?? 'The join could not be authorised');
        }
        if (err instanceof FederationHttpError && err.status < 500) throw new MatrixError('M_FORBIDDEN', 403, err.errorText ?? 'The join was refused');
        throw err;
      });
    const t0 = Date.now();
    if (await this.isResident(roomId)) {
      // Already in the room (another server had to authorise a restricted join): the join is
      // an ordinary event on top of the state we hold; the answer's state is not needed.
      const rest = await readJoinAnswer(server, res, () => undefined);
      const joined = await this.authorisedJoinEvent(rest['event'], event, version, roomId);
      const status = await this.deps.roomEvents.withRoomLock(roomId, async () =>
        (await this.events.getEvent(joined.event_id)) ? ('accepted' as const) : this.deps.handler.processTimelineEvent(server, roomId, version, joined, true),
      );
      if (status !== 'accepted') throw errors.forbidden(`The join was not accepted here: ${status}`);
    } else {
      // The answer's state and auth chain are checked and stored as they arrive, in chunks.
      await this.deps.roomEvents.withRoomLock(roomId, async () => {
        const ingest = new JoinStateIngest(
          { database: this.deps.database, events: this.events, roomEvents: this.deps.roomEvents, keyring: this.deps.keyring, log: this.deps.log, onProgress: this.joinObserver },
          roomId,
          version,
          server,
          async (createEv) => {
            if (await this.events.getRoom(roomId)) return;
            await this.deps.database.transaction((tx) =>
              this.events.insertRoom(tx, { roomId, roomVersion: version.id, creator: createEv.sender, isPublic: false, createdTs: createEv.origin_server_ts }),
            );
          },
        );
        const rest = await readJoinAnswer(server, res, (key, value) => ingest.add(value, key === 'state'));
        const state = await ingest.finish();
        event = await this.authorisedJoinEvent(rest['event'], event, version, roomId);
        if (!state.has(stateKeyOf('m.room.create', ''))) throw new MatrixError('M_BAD_JSON', 502, 'The resident server returned no create event');
        if (await this.events.getEvent(event.event_id)) return;
        await this.deps.handler.persistWithState(roomId, version, event, state);
        this.deps.log.info({ roomId, via: server, state: state.size, ms: Date.now() - t0 }, 'stored the state of a joined room');
      });
    }
    this.deps.log.info({ roomId, userId, via: server }, 'joined a room over federation');
    return roomId;
  }

  /** Restricted joins come back signed by the authorising server: that form replaces ours. */
  private async authorisedJoinEvent(raw: unknown, ours: RoomEvent, version: RoomVersion, roomId: string): Promise<RoomEvent> {
    if (raw === undefined) return ours;
    const signed = await checkPdu(raw, version, roomId, this.deps.keyring).catch(() => undefined);
    return signed && signed.event.event_id === ours.event_id && !signed.redacted ? signed.event : ours;
  }

  /** Leaves (or rejects an invite to) a room this server is not in: make_leave, send_leave. */
  async leaveRemote(userId: string, roomId: string, servers: string[], reason?: string): Promise<void> {
    const inviteId = (await this.events.getCurrentStateEvent(roomId, 'm.room.member', userId))?.event;
    const extra = inviteId ? [serverNameOf(inviteId.sender)!] : [];
    const made = await this.makeVia(this.candidates(roomId, [...servers, ...extra]), () => `/_matrix/federation/v1/make_leave/${encodeURIComponent(roomId)}/${encodeURIComponent(userId)}`);
    const content: JsonObject = { membership: 'leave' };
    if (reason !== undefined) content['reason'] = reason;
    const event = await this.signOwn({ ...made.event, sender: userId, state_key: userId, type: 'm.room.member', room_id: roomId }, made.version, content);
    await this.deps.client.put(made.server, `/_matrix/federation/v2/send_leave/${encodeURIComponent(roomId)}/${encodeURIComponent(event.event_id)}`, federationForm(event, made.version) as JsonObject);
    await this.recordOutOfRoomMembership(roomId, made.version, event, []);
  }

  /** Knocks on a room held by other servers: make_knock, send_knock. */
  async knockRemote(userId: string, roomId: string, servers: string[], reason?: string): Promise<void> {
    const versions = [...ROOM_VERSIONS.values()].filter((v) => v.knockJoinRule).map((v) => v.id);
    const made = await this.makeVia(this.candidates(roomId, servers), () => `/_matrix/federation/v1/make_knock/${encodeURIComponent(roomId)}/${encodeURIComponent(userId)}`, { ver: versions });
    const p = await this.deps.profile(userId);
    const content: JsonObject = { membership: 'knock' };
    if (p.displayname) content['displayname'] = p.displayname;
    if (reason !== undefined) content['reason'] = reason;
    const event = await this.signOwn({ ...made.event, sender: userId, state_key: userId, type: 'm.room.member', room_id: roomId }, made.version, content);
    const res = await this.deps.client.put(
      made.server,
      `/_matrix/federation/v1/send_knock/${encodeURIComponent(roomId)}/${encodeURIComponent(event.event_id)}`,
      federationForm(event, made.version) as JsonObject,
    );
    const stripped = await checkKnockRoomState(knockStateOf(res), made.version, roomId, this.deps.keyring, this.deps.log, made.server);
    await this.recordOutOfRoomMembership(roomId, made.version, event, stripped);
  }

  /** Sends a v2 invite to the invitee's server, which signs it; returns the event with both signatures. */
  async inviteRemote(event: RoomEvent, version: RoomVersion): Promise<RoomEvent> {
    const invitee = event.state_key!;
    const server = serverNameOf(invitee)!;
    const state = await this.events.getCurrentState(event.room_id!);
    // Spec v1.16: full PDUs, the create event among them.
    const sent: RoomEvent[] = [];
    for (const [, ev] of state) if (STRIPPED_STATE_TYPES.includes(ev.type)) sent.push(ev);
    const inviter = state.get(stateKeyOf('m.room.member', event.sender));
    if (inviter) sent.push(inviter);
    const stripped = federationRoomState(sent, version);
    let res: { event?: unknown };
    try {
      res = await this.deps.client.put(
        server,
        `/_matrix/federation/v2/invite/${encodeURIComponent(event.room_id!)}/${encodeURIComponent(event.event_id)}`,
        { event: federationForm(event, version) as JsonObject, room_version: version.id, invite_room_state: stripped },
      );
    } catch (err) {
      // The invitee blocks invites (spec v1.18): the inviter learns it as such.
      if (err instanceof FederationHttpError && err.errcode === 'M_INVITE_BLOCKED') throw new MatrixError('M_INVITE_BLOCKED', 403, `The invitee does not accept invites`);
      // Our request was found invalid (e.g. its room state): not the client's fault (spec: 5xx).
      if (err instanceof FederationHttpError && (err.errcode === 'M_MISSING_PARAM' || err.errcode === 'M_INVALID_PARAM')) {
        throw new MatrixError('M_UNKNOWN', 502, `The invitee's server refused the invite: ${err.errorText ?? err.errcode}`);
      }
      if (err instanceof FederationHttpError && err.status < 500) throw new MatrixError('M_FORBIDDEN', 403, `The invitee's server refused the invite: ${err.errorText ?? err.status}`);
      throw new MatrixError('M_UNKNOWN', 502, `Could not reach ${server}: ${(err as Error).message}`);
    }
    let checked;
    try {
      checked = await checkPdu(res.event, version, event.room_id!, this.deps.keyring);
    } catch (err) {
      throw new MatrixError('M_UNKNOWN', 502, `The invitee's server returned a bad event: ${(err as Error).message}`);
    }
    if (checked.event.event_id !== event.event_id || checked.redacted) throw new MatrixError('M_UNKNOWN', 502, "The invitee's server changed the event");
    const sig = await checkPduSignatures(checked.event, version, this.deps.keyring);
    if (sig) throw new MatrixError('M_UNKNOWN', 502, sig);
    // Signatures the invitee's server left out (the policy server's) are kept.
    const signatures: Record<string, Record<string, string>> = {};
    for (const [server, sigs] of Object.entries(event.signatures)) signatures[server] = { ...sigs };
    for (const [server, sigs] of Object.entries(checked.event.signatures)) signatures[server] = { ...signatures[server], ...sigs };
    return { ...checked.event, signatures };
  }

  /** Rooms whose history ran out (or could not be fetched), with when: not asked again for a while. */
  private readonly backfillDone = new Map<string, { oldest: string; at: number }>();

  /**
   * Fetches history older than the room's oldest timeline event from other servers in the room
   * (for /messages reaching the start of what this server holds). Bounded: up to three servers,
   * `limit` events, a 15 s timeout each. Returns how many events joined the timeline.
   */
  async backfillOlder(roomId: string, limit: number): Promise<number> {
    const oldest = await this.events.oldestTimelineEvent(roomId);
    if (!oldest || (oldest.event.type === 'm.room.create' && oldest.event.state_key === '')) return 0;
    const prevs = prevEventIds(oldest.event);
    if (prevs.length === 0) return 0;
    const stored = await this.events.getEvents(prevs);
    const from = prevs.filter((p) => !stored.get(p) || stored.get(p)!.outlier);
    if (from.length === 0) return 0;
    const done = this.backfillDone.get(roomId);
    if (done && done.oldest === oldest.event.event_id && Date.now() - done.at < BACKFILL_RETRY_MS) return 0;
    const n = await this.backfillFrom(roomId, from, limit);
    if (n === 0) this.backfillDone.set(roomId, { oldest: oldest.event.event_id, at: Date.now() });
    else this.backfillDone.delete(roomId);
    return n;
  }

  /** Gaps (by the event after them) that could not be filled, with when: not asked again for a while. */
  private readonly gapDone = new Map<string, number>();

  /**
   * Fills the gap before `childEventId` (prev events missed while this server was unreachable,
   * remembered as backward extremities) with /backfill from servers in the room: the events are
   * checked like any backfilled history and placed just before the child in /messages. A batch
   * that does not reach the events held before the gap leaves a gap before its oldest events,
   * filled in turn when a client pages back to them. Returns how many events joined the timeline.
   */
  async backfillGap(roomId: string, childEventId: string, limit: number): Promise<number> {
    const child = await this.events.getEvent(childEventId);
    if (!child || child.outlier || child.roomId !== roomId) return 0;
    const missing = (await this.events.backwardExtremitiesOf([childEventId])).get(childEventId) ?? [];
    const stored = await this.events.getEvents(missing);
    const held = missing.filter((id) => {
      const s = stored.get(id);
      return !!s && (!s.outlier || !!s.rejected);
    });
    if (held.length) await this.deps.database.transaction((tx) => this.events.removeBackwardExtremities(tx, held));
    const from = missing.filter((id) => !held.includes(id));
    if (!from.length) return 0;
    const done = this.gapDone.get(childEventId);
    if (done !== undefined && Date.now() - done < BACKFILL_RETRY_MS) return 0;
    const n = await this.backfillFrom(roomId, from, limit, { anchor: timelineKeyOf(child).major, from });
    if (n === 0) this.gapDone.set(childEventId, Date.now());
    else this.gapDone.delete(childEventId);
    if (this.gapDone.size > 10_000) this.gapDone.clear();
    return n;
  }

  /**
   * Asks servers in the room for the events before `fromEventIds` (/backfill) and stores them
   * (`gap`: into a gap of the timeline, before the event at stream position `anchor`).
   */
  async backfillFrom(roomId: string, fromEventIds: string[], limit: number, gap?: { anchor: number; from: string[] }): Promise<number> {
    const version = await this.versionOf(roomId);
    const servers = (await this.deps.sender.destinationsForRoom(roomId)).slice(0, 3);
    const creator = serverNameOf(roomId);
    if (creator && servers.includes(creator)) servers.sort((x, y) => (x === creator ? -1 : y === creator ? 1 : 0));
    for (const server of servers) {
      try {
        const res = await this.deps.client.get<{ pdus?: unknown[] }>(server, `/_matrix/federation/v1/backfill/${encodeURIComponent(roomId)}`, {
          query: { v: fromEventIds.slice(0, 20), limit: String(Math.max(1, Math.min(limit, 100))) },
          timeoutMs: 15_000,
        });
        const pdus = Array.isArray(res.pdus) ? res.pdus.slice(0, 100) : [];
        if (pdus.length === 0) continue;
        const n = await this.deps.handler.persistBackfill(server, roomId, version, pdus, gap);
        this.deps.log.info({ server, roomId, received: pdus.length, stored: n }, 'backfilled room history');
        if (n > 0) return n;
      } catch (err) {
        this.deps.log.info({ server, roomId, err: (err as Error).message }, 'backfill failed');
      }
    }
    return 0;
  }

  isValidUser(userId: string): boolean {
    return isValidUserId(userId, { historical: true });
  }

  /** Auth chain IDs of events (for state_ids). */
  async stateIdsAt(roomId: string, eventId: string): Promise<{ pdu_ids: string[]; auth_chain_ids: string[] }> {
    const { state, authChain } = await this.stateAt(roomId, eventId);
    return { pdu_ids: state.map((s) => s.event.event_id), auth_chain_ids: authChain.map((s) => s.event.event_id) };
  }
}

export { PduError };
