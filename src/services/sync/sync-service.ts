import type { Logger } from 'pino';
import { memberStateKey, parseStateKey, type RoomEvent } from '../../protocol/event.js';
import type { JsonObject } from '../../protocol/json.js';
import type { EventStore, StateIds, StoredEvent } from '../../storage/stores/events.js';
import type { Notifier, StreamChange, WaitSignal } from '../../streams/notifier.js';
import { StreamActivity, WOKEN_STREAMS } from './activity.js';
import { BuildSlots } from './build-slots.js';
import { SentMembers } from './sent-members.js';
import { strippedState, type ClientEventFormatter, type ClientEvent } from '../rooms/client-events.js';
import type { HistoryVisibility } from '../rooms/visibility.js';
import { eventMatches, roomAllowed, type EventFilter, type Filter } from './filter.js';
import { formatPaginationToken, formatSyncToken, STREAMS, zeroPositions, type StreamName, type StreamPositions } from './token.js';

const DEFAULT_TIMELINE_LIMIT = 10;
const MAX_TIMELINE_LIMIT = 100;
/** State types shown to invitees and knockers. */
const STRIPPED_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.canonical_alias', 'm.room.avatar', 'm.room.name', 'm.room.encryption', 'm.room.topic'];

export interface JoinedRoomSync {
  timeline: { events: ClientEvent[]; limited: boolean; prev_batch: string };
  state: { events: ClientEvent[] };
  account_data: { events: JsonObject[] };
  ephemeral: { events: JsonObject[] };
  summary?: JsonObject;
  unread_notifications?: JsonObject;
  unread_thread_notifications?: Record<string, JsonObject>;
}

export interface SyncResponse {
  next_batch: string;
  rooms: {
    join: Record<string, JoinedRoomSync>;
    invite: Record<string, { invite_state: { events: JsonObject[] } }>;
    leave: Record<string, { timeline: JoinedRoomSync['timeline']; state: { events: ClientEvent[] }; account_data: { events: JsonObject[] } }>;
    knock: Record<string, { knock_state: { events: JsonObject[] } }>;
  };
  account_data: { events: JsonObject[] };
  presence: { events: JsonObject[] };
  to_device: { events: JsonObject[] };
  device_lists: { changed: string[]; left: string[] };
  device_one_time_keys_count: Record<string, number>;
  device_unused_fallback_key_types?: string[];
}

export interface SyncRequest {
  userId: string;
  deviceId: string;
  since?: StreamPositions;
  timeoutMs: number;
  fullState: boolean;
  filter: Filter;
  signal?: WaitSignal;
  /**
   * The response's `state` is replaced by `state_after` (computed from the whole response), so
   * the lazy-loaded members in `state` are not what the client gets: nothing is left out or
   * recorded as sent (see SentMembers).
   */
  stateAfter?: boolean;
}

/** What a sync extension sees: the request, the window and the response to add to. */
export interface SyncWindow {
  req: SyncRequest;
  since: StreamPositions | undefined;
  to: StreamPositions;
  /** Rooms the user is joined to at `to`. */
  joinedRoomIds: string[];
  /**
   * Whether the user's own memberships may have changed in the window (always true on an
   * initial sync). When false, the user's set of rooms is the same as at `since`.
   */
  membershipChanged: boolean;
  /** What moved on the streams since start-up (per room and per user), kept in memory. */
  activity: StreamActivity;
  response: SyncResponse;
  /** Gets (creating) the joined-room entry of a room to add ephemeral events or account data. */
  joinedRoom(roomId: string): JoinedRoomSync;
}

/** Whether a stream moved in the window: always on an initial sync. */
export function streamMoved(w: Pick<SyncWindow, 'since' | 'to'>, stream: StreamName): boolean {
  return !w.since || w.since[stream] < w.to[stream];
}

/**
 * A stream other than room events that contributes to /sync (account data, presence, to-device,
 * receipts, typing, device lists). `collect` returns true if it added anything.
 *
 * `currentPosition()` is asked once, when sync first runs; after that the stream's position is
 * followed from the notifier (every write is announced there after it commits), so an extension
 * can tell from `since` and `to` alone whether its stream moved (`streamMoved`).
 */
export interface SyncExtension {
  stream: StreamName;
  currentPosition(): number | Promise<number>;
  collect(w: SyncWindow): Promise<boolean>;
}

export interface SyncDeps {
  events: EventStore;
  formatter: ClientEventFormatter;
  notifier: Notifier;
  log: Logger;
  /** History visibility: timeline events the user may not see are left out. */
  visibility?: HistoryVisibility;
}

/**
 * The reason a request's signal is aborted with when the client goes away: one shared value,
 * since `abort()` without a reason builds a DOMException (with a stack) every time.
 */
export const WAIT_OVER: unknown = Object.freeze({ reason: 'wait over' });

/** The memberships sync reads (left and banned rooms go together). */
const MEMBERSHIPS = ['join', 'invite', 'leave', 'ban', 'knock'];
/** No state to send (shared: never written to). */
const NO_STATE_IDS: StateIds = new Map();
const NO_CHANGES: ReadonlyMap<string, { roomId: string; membership: string; eventId: string; streamOrdering: number }> = new Map();

/** Whether a timeline filter lets every event through (no conditions but a limit). */
function filterIsOpen(f: EventFilter | undefined): boolean {
  return !f || (!f.types && !f.not_types && !f.senders && !f.not_senders && !f.rooms && !f.not_rooms && f.contains_url === undefined);
}

/** Responses built at once (see BuildSlots). */
const BUILD_SLOTS = 4;

function emptyResponse(token: string): SyncResponse {
  return {
    next_batch: token,
    rooms: { join: {}, invite: {}, leave: {}, knock: {} },
    account_data: { events: [] },
    presence: { events: [] },
    to_device: { events: [] },
    device_lists: { changed: [], left: [] },
    device_one_time_keys_count: {},
  };
}

function newJoinedRoom(): JoinedRoomSync {
  return {
    timeline: { events: [], limited: false, prev_batch: '' },
    state: { events: [] },
    account_data: { events: [] },
    ephemeral: { events: [] },
  };
}

/** /sync: the user's view of every stream since a token, long-polling while nothing changed. */
export class SyncService {
  private readonly extensions: SyncExtension[] = [];
  private readonly slots = new BuildSlots(BUILD_SLOTS);
  /** Lazy-loaded member events sent per device, not sent again (unless the filter asks). */
  readonly sentMembers = new SentMembers();
  /** Whether a user blocks invites (invite permission): their pending invites are not served. */
  invitesBlocked: ((userId: string) => Promise<boolean>) | undefined;

  /**
   * The end of every stream, followed from the notifier (every committed change is announced
   * there) instead of asking the database on every /sync; read once at first use.
   */
  private positions: StreamPositions | undefined;
  private loading: Promise<StreamPositions> | undefined;
  /** Positions announced before the first read finished (merged into it). */
  private readonly early = zeroPositions();
  private activityTracker: StreamActivity | undefined;
  private readonly earlyChanges: Array<[StreamChange, readonly string[]]> = [];

  constructor(private readonly deps: SyncDeps) {
    deps.notifier.on('change', (c, woken) => {
      const p = this.positions ?? this.early;
      if (c.position > p[c.stream]) p[c.stream] = c.position;
      // Before the first /sync nothing is tracked (the tracker starts from the positions read
      // then, an upper bound for everything earlier); changes during that read are kept for it.
      if (this.activityTracker) this.activityTracker.observe(c, woken);
      else if (this.loading) this.earlyChanges.push([c, woken]);
    });
  }

  addExtension(ext: SyncExtension): void {
    this.extensions.push(ext);
  }

  private async load(): Promise<StreamPositions> {
    const p = zeroPositions();
    p.events = await this.deps.events.maxStreamOrdering();
    for (const ext of this.extensions) p[ext.stream] = Math.max(p[ext.stream], await ext.currentPosition());
    // Something announced while the queries ran may be newer than their answers.
    for (const s of STREAMS) p[s] = Math.max(p[s], this.early[s]);
    this.activityTracker = new StreamActivity(p);
    for (const [c, woken] of this.earlyChanges.splice(0)) this.activityTracker.observe(c, woken);
    this.positions = p;
    return p;
  }

  /** The current end of every stream (a copy). */
  async currentPositions(): Promise<StreamPositions> {
    const p = this.positions ?? (await (this.loading ??= this.load()));
    return { ...p };
  }

  private get activity(): StreamActivity {
    return this.activityTracker!;
  }

  async sync(req: SyncRequest): Promise<SyncResponse> {
    const deadline = Date.now() + Math.max(0, req.timeoutMs);
    for (;;) {
      // Start listening before reading positions so a change in between still wakes us.
      const remaining = deadline - Date.now();
      // Ended by the client going away (the request's signal) or, below, once answered.
      const wait = req.since && !req.fullState && remaining > 0 ? this.deps.notifier.waitFor([req.userId], remaining, req.signal) : undefined;
      const woken = wait?.woken;
      try {
        // Nothing can be new for the user: wait without building a response (the usual case of
        // a long-poll that arrives right after the previous answer).
        if (woken && this.quiet(req.userId, req.since!)) {
          const notified = await woken;
          if (notified && Date.now() < deadline && !req.signal?.aborted) continue;
          // Timed out, aborted or shutting down: answer with what there is.
          return (await this.buildNow(req)).response;
        }
        const { response, changed } = await this.buildNow(req);
        if (!woken || changed || Date.now() >= deadline || req.signal?.aborted) return response;
        const notified = await woken;
        // Timed out, aborted or shutting down with nothing new: answer with the same positions.
        if (!notified || Date.now() >= deadline || req.signal?.aborted) return response;
      } finally {
        wait?.cancel();
      }
    }
  }

  /** Builds the response for the positions current once a build slot is ours. */
  private buildNow(req: SyncRequest): Promise<{ response: SyncResponse; changed: boolean }> {
    // Positions are read once the slot is ours, so what committed while waiting is included.
    return this.slots.run(async () => {
      const to = await this.currentPositions();
      // Positions ahead of ours (e.g. an in-memory stream after a restart) count from zero.
      let since: StreamPositions | undefined;
      if (req.since) {
        since = { ...req.since };
        for (const s of STREAMS) if (since[s] > to[s]) since[s] = to[s];
      }
      return this.build(req, since, to);
    });
  }

  /**
   * Whether nothing can be new for the user after `since` (so a build would find nothing): every
   * change that may be is announced naming the user (see Notifier.publish), and the activity
   * tracker keeps the last position each user was named at. Presence and device-list changes
   * wake the other users without a position: any move of those streams counts.
   */
  private quiet(userId: string, since: StreamPositions): boolean {
    const to = this.positions;
    const activity = this.activityTracker;
    if (!to || !activity) return false;
    if (since.presence < to.presence || since.device_lists < to.device_lists) return false;
    for (const s of WOKEN_STREAMS) {
      if (since[s] < to[s] && activity.woken[s].last(userId) > since[s]) return false;
    }
    return true;
  }

  private async build(req: SyncRequest, since: StreamPositions | undefined, to: StreamPositions): Promise<{ response: SyncResponse; changed: boolean }> {
    const { events } = this.deps;
    // The token is set once the extensions ran (see below).
    const response = emptyResponse('');
    const activity = this.activity;
    const memberships = await events.roomsForUser(req.userId, MEMBERSHIPS);
    // By membership, in the filter's rooms.
    const joined: typeof memberships = [];
    const invites: typeof memberships = [];
    const knocks: typeof memberships = [];
    const left: typeof memberships = [];
    for (const m of memberships) {
      if (!roomAllowed(req.filter, m.roomId)) continue;
      if (m.membership === 'join') joined.push(m);
      else if (m.membership === 'invite') invites.push(m);
      else if (m.membership === 'knock') knocks.push(m);
      else left.push(m);
    }
    const membershipChanged = !since || activity.userMemberships.last(req.userId) > since.events;
    const changes = since && membershipChanged ? await events.membershipChanges(req.userId, since.events, to.events) : [];
    const changedRooms = changes.length ? new Map(changes.map((c) => [c.roomId, c])) : NO_CHANGES;
    let changed = false;
    // A new sync sequence: the client may have forgotten every member it was sent.
    if (!since || req.fullState) this.sentMembers.clearDevice(req.userId, req.deviceId);

    // Joined rooms: those with an event after `since` (known from the notifier; rooms it cannot
    // tell about are asked of the database).
    let withNewEvents: Set<string> | undefined;
    if (since) {
      withNewEvents = new Set();
      const unsure: string[] = [];
      for (const j of joined) {
        if (activity.roomEvents.last(j.roomId) <= since.events) continue;
        if (activity.roomEvents.known(j.roomId)) withNewEvents.add(j.roomId);
        else unsure.push(j.roomId);
      }
      if (unsure.length) for (const r of await events.roomsWithEventsSince(unsure, since.events, to.events)) withNewEvents.add(r);
    }
    for (const m of joined) {
      const newlyJoined = !!since && changedRooms.has(m.roomId) && (await events.membershipAt(m.roomId, req.userId, since.events))?.membership !== 'join';
      if (since && !req.fullState && !newlyJoined && !withNewEvents!.has(m.roomId)) continue;
      const fromPos = since && !newlyJoined ? since.events : 0;
      const room = await this.roomSection(req, m.roomId, fromPos, to.events, !since || newlyJoined || req.fullState, to.events);
      if (room.timeline.events.length || room.state.events.length || !since || req.fullState || newlyJoined) {
        response.rooms.join[m.roomId] = room;
        changed = true;
      }
    }

    // Invites (none while the user blocks them).
    if (invites.length && (await this.invitesBlocked?.(req.userId))) invites.length = 0;
    for (const m of invites) {
      if (since && !changedRooms.has(m.roomId)) continue;
      response.rooms.invite[m.roomId] = { invite_state: { events: await this.strippedRoomState(m.roomId, m.eventId) } };
      changed = true;
    }
    // Knocks.
    for (const m of knocks) {
      if (since && !changedRooms.has(m.roomId)) continue;
      response.rooms.knock[m.roomId] = { knock_state: { events: await this.strippedRoomState(m.roomId, m.eventId) } };
      changed = true;
    }
    // Left and banned rooms: on incremental sync when it happened since; on initial sync with include_leave.
    for (const m of left) {
      const change = changedRooms.get(m.roomId);
      if (since ? !change : !req.filter.room?.include_leave) continue;
      const leave = await events.getEvent(m.eventId);
      if (!leave || leave.streamOrdering > to.events) continue;
      const prior = since ? await events.membershipAt(m.roomId, req.userId, since.events) : undefined;
      if (since && prior && (prior.membership === 'leave' || prior.membership === 'ban') && !req.filter.room?.include_leave) continue;
      const section = await this.roomSection(req, m.roomId, since?.events ?? 0, leave.streamOrdering, !since || req.fullState, to.events);
      response.rooms.leave[m.roomId] = { timeline: section.timeline, state: section.state, account_data: { events: [] } };
      changed = true;
    }

    const window: SyncWindow = {
      req,
      since,
      to,
      joinedRoomIds: joined.map((j) => j.roomId),
      membershipChanged,
      activity,
      response,
      joinedRoom: (roomId) => (response.rooms.join[roomId] ??= newJoinedRoom()),
    };
    for (const ext of this.extensions) {
      if (await ext.collect(window)) changed = true;
    }
    // An extension that returns only part of what is waiting (to-device batches) lowers its
    // position in `to`, so the token is built after they ran.
    response.next_batch = formatSyncToken(to);
    return { response, changed };
  }

  /**
   * Timeline and state of one room for the window (from, to]; `responseAt` is the events
   * position of the response's token.
   */
  private async roomSection(req: SyncRequest, roomId: string, from: number, to: number, fullState: boolean, responseAt: number): Promise<JoinedRoomSync> {
    const { events, formatter } = this.deps;
    const tf = req.filter.room?.timeline;
    const limit = Math.min(MAX_TIMELINE_LIMIT, Math.max(1, tf?.limit ?? DEFAULT_TIMELINE_LIMIT));
    const fetched = await events.roomEventsBetween(roomId, from, to, limit + 1, 'backwards');
    const limited = fetched.length > limit;
    const page = fetched.length > limit ? fetched.slice(0, limit).reverse() : fetched.reverse();
    const matching = filterIsOpen(tf) ? page : page.filter((s) => eventMatches(tf, { type: s.event.type, sender: s.event.sender, room_id: roomId, content: s.event.content }));
    const timelineEvents = this.deps.visibility ? await this.deps.visibility.filter(req.userId, matching) : matching;
    const first = page[0];
    const startPos = first ? first.streamOrdering - 1 : to;

    const viewer = { userId: req.userId, deviceId: req.deviceId };
    const timeline = {
      events: timelineEvents.length ? await formatter.format(timelineEvents, { viewer, omitRoomId: true }) : [],
      limited: limited || (from === 0 && !!first && first.streamOrdering > 1 && limited),
      prev_batch: formatPaginationToken(startPos),
    };

    let stateIds: StateIds;
    // The state at the start of the timeline, read only when the response needs it.
    let atStartIds: StateIds | undefined;
    const atStart = async () => (atStartIds ??= await events.stateIdsAtStream(roomId, startPos));
    const wholeState = fullState || from === 0;
    let gapMembership = false;
    if (wholeState) {
      stateIds = await atStart();
    } else if (limited) {
      const atSince = await events.stateIdsAtStream(roomId, from);
      stateIds = new Map([...(await atStart())].filter(([k, id]) => atSince.get(k) !== id));
      gapMembership = [...stateIds.keys()].some((k) => parseStateKey(k)[0] === 'm.room.member');
    } else {
      stateIds = NO_STATE_IDS;
    }
    const sf = req.filter.room?.state;
    // Lazy-loaded members already sent to this device are left out of incremental responses
    // (the spec's redundant members), unless the filter asks for them.
    const dedupe = !!sf?.lazy_load_members && !sf.include_redundant_members && !req.stateAfter;
    const sent = this.sentMembers;
    // The room's whole state is sent (a join): the client may start the room afresh.
    if (dedupe && wholeState) sent.clearRoom(req.userId, req.deviceId, roomId);
    if (sf?.lazy_load_members) {
      const senders = new Set<string>();
      let timelineMembers: Set<string> | undefined;
      for (const s of timelineEvents) {
        senders.add(s.event.sender);
        if (s.event.type === 'm.room.member' && typeof s.event.state_key === 'string') (timelineMembers ??= new Set()).add(s.event.state_key);
      }
      senders.add(req.userId);
      if (stateIds.size) {
        stateIds = new Map([...stateIds].filter(([k]) => {
          const [type, key] = parseStateKey(k);
          return type !== 'm.room.member' || senders.has(key);
        }));
      }
      if (!wholeState) {
        // What was sent to this device for the room (redundant members are left out).
        const sentHere = dedupe ? sent.roomRecord(req.userId, req.deviceId, roomId) : undefined;
        const fromGap = stateIds.size > 0;
        // Lazy-loading clients may never have been sent a sender's member event (it was not
        // needed before): include it with the timeline, unless the timeline itself carries it
        // or it was sent to this device already.
        let missing: string[] | undefined;
        let keys: string[] | undefined;
        for (const u of senders) {
          if (u === req.userId || timelineMembers?.has(u)) continue;
          const key = memberStateKey(u);
          if (fromGap && stateIds.has(key)) continue;
          (missing ??= []).push(u);
          (keys ??= []).push(key);
        }
        if (missing && keys) {
          const ids = atStartIds ? keys.map((k) => atStartIds!.get(k)) : await events.stateIdsAtStreamOf(roomId, startPos, keys);
          for (let i = 0; i < keys.length; i++) {
            const id = ids[i];
            if (!id || (sentHere && SentMembers.sentIn(sentHere, missing[i]!, id, from))) continue;
            if (stateIds === NO_STATE_IDS) stateIds = new Map();
            stateIds.set(keys[i]!, id);
          }
        }
        // Member events of a gap's state changes: left out too if already sent.
        if (sentHere && fromGap) {
          for (const [k, id] of stateIds) {
            const [type, key] = parseStateKey(k);
            if (type === 'm.room.member' && SentMembers.sentIn(sentHere, key, id, from)) stateIds.delete(k);
          }
        }
      }
    }
    let stateStored: StoredEvent[] = [];
    if (stateIds.size) {
      const inTimeline = new Set(timelineEvents.map((s) => s.event.event_id));
      stateStored = [...(await events.getEvents(stateIds.values())).values()]
        .filter((s) => !inTimeline.has(s.event.event_id))
        .filter((s) => eventMatches(sf, { type: s.event.type, sender: s.event.sender, room_id: roomId }));
    }
    const room: JoinedRoomSync = {
      timeline,
      state: { events: stateStored.length === 0 ? [] : await formatter.format(stateStored, { viewer, omitRoomId: true }) },
      account_data: { events: [] },
      ephemeral: { events: [] },
    };
    let hasMemberEvent = false;
    if (dedupe) {
      // What this response gives the client: member events in its state and its timeline.
      let members: Array<[string, string]> | undefined;
      for (const s of stateStored) {
        if (s.event.type === 'm.room.member' && typeof s.event.state_key === 'string') (members ??= []).push([s.event.state_key, s.event.event_id]);
      }
      for (const s of timelineEvents) {
        if (s.event.type === 'm.room.member' && typeof s.event.state_key === 'string') (members ??= []).push([s.event.state_key, s.event.event_id]);
      }
      if (members) sent.record(req.userId, req.deviceId, roomId, members, responseAt);
    }
    for (const s of timelineEvents) if (s.event.type === 'm.room.member') hasMemberEvent = true;
    // The summary may be left out when unchanged: send it with the whole state or when
    // memberships moved.
    if (wholeState || gapMembership || hasMemberEvent) {
      room.summary = await this.summary(roomId, req.userId);
    }
    return room;
  }

  private async summary(roomId: string, userId: string): Promise<JsonObject> {
    const joined = await this.deps.events.members(roomId, ['join']);
    const invited = await this.deps.events.members(roomId, ['invite']);
    const heroes = [...joined, ...invited].filter((u) => u !== userId).sort().slice(0, 5);
    return { 'm.heroes': heroes, 'm.joined_member_count': joined.length, 'm.invited_member_count': invited.length };
  }

  /** Stripped state sent along with invites from other servers (set by federation). */
  remoteInviteState: ((roomId: string, userId: string) => Promise<JsonObject[] | undefined>) | undefined;

  /** The stripped state shown with an invite or knock (also used by sliding sync). */
  async strippedRoomState(roomId: string, membershipEventId: string): Promise<JsonObject[]> {
    const { events } = this.deps;
    const remote = this.remoteInviteState && (await events.getEvent(membershipEventId));
    if (remote && remote.outlier && remote.event.state_key) {
      const stripped = await this.remoteInviteState!(roomId, remote.event.state_key);
      if (stripped) {
        const member = { ...strippedState(remote.event), event_id: remote.event.event_id, origin_server_ts: remote.event.origin_server_ts };
        return [...stripped.filter((s) => !(s['type'] === 'm.room.member' && s['state_key'] === remote.event.state_key)), member];
      }
    }
    const state = await events.getCurrentState(roomId);
    const out: JsonObject[] = [];
    for (const [key, ev] of state) {
      const [type] = parseStateKey(key);
      if (STRIPPED_TYPES.includes(type)) out.push(strippedState(ev));
    }
    const member = await events.getEvent(membershipEventId);
    if (member) out.push({ ...strippedState(member.event), event_id: member.event.event_id, origin_server_ts: member.event.origin_server_ts });
    return out;
  }
}

export type { RoomEvent, StoredEvent };
