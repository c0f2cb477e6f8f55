import type { Logger } from 'pino';
import { parseStateKey, stateKeyOf } from '../../protocol/event.js';
import type { EventStore, StateIds, StoredEvent } from '../../storage/stores/events.js';
import type { Notifier, StreamChange } from '../../streams/notifier.js';
import type { UserDataService } from '../accounts/user-data.js';
import type { PushActions } from '../push/push-actions.js';
import type { ClientEvent, ClientEventFormatter } from '../rooms/client-events.js';
import type { HistoryVisibility } from '../rooms/visibility.js';
import { StreamActivity } from '../sync/activity.js';
import type { SyncService } from '../sync/sync-service.js';
import { formatPaginationToken, STREAMS, type StreamPositions } from '../sync/token.js';
import type { BumpStamps } from './bump.js';
import { ConnectionStore, type ConnectionState, type RoomSent } from './connections.js';
import { collectExtensions, type ExtensionDeps } from './extensions.js';
import { combine, expands, normaliseRequiredState, wants, wantsKey, type RequiredState } from './required-state.js';
import type { Hero, SlidingRoomFilters, SlidingRoomResult, SlidingSyncRequest, SlidingSyncResponse } from './types.js';

/** The most timeline events a room carries in one response, whatever the client asks. */
export const MAX_TIMELINE_LIMIT = 100;
const MAX_HEROES = 5;
const MEMBER = 'm.room.member';
/** How every membership's state key (see stateKeyOf) begins. */
const MEMBER_KEY_PREFIX = stateKeyOf(MEMBER, '').slice(0, -3);

export interface SlidingSyncDeps extends ExtensionDeps {
  events: EventStore;
  formatter: ClientEventFormatter;
  visibility: HistoryVisibility;
  notifier: Notifier;
  sync: SyncService;
  userData: UserDataService;
  pushActions: PushActions;
  bumps: BumpStamps;
  log: Logger;
}

/** A room the user has (or had) a membership in, as the lists see it. */
interface Candidate {
  roomId: string;
  membership: string;
  eventId: string;
  /** Stream position of the user's membership event. */
  memberPos: number;
  /** Who sent it (a leave sent by someone else is a kick). */
  memberSender: string;
  bump: number;
}

interface RoomConfig {
  timelineLimit: number;
  requiredState: RequiredState;
  lists: string[];
}

/**
 * Events to format for a response, collected over all its rooms and formatted in two calls
 * (timelines with bundled aggregations, state without): a fixed number of queries.
 */
class PendingFormats {
  private readonly timeline: Array<{ events: StoredEvent[]; done: (out: ClientEvent[]) => void }> = [];
  private readonly state: Array<{ events: StoredEvent[]; done: (out: ClientEvent[]) => void }> = [];

  addTimeline(events: StoredEvent[], done: (out: ClientEvent[]) => void): void {
    this.timeline.push({ events, done });
  }

  addState(events: StoredEvent[], done: (out: ClientEvent[]) => void): void {
    this.state.push({ events, done });
  }

  async run(formatter: ClientEventFormatter, viewer: { userId: string; deviceId: string }): Promise<void> {
    for (const [jobs, bundle] of [[this.timeline, true], [this.state, false]] as const) {
      if (!jobs.length) continue;
      const out = await formatter.format(
        jobs.flatMap((j) => j.events),
        { viewer, omitRoomId: true, bundle },
      );
      let i = 0;
      for (const j of jobs) {
        j.done(out.slice(i, i + j.events.length));
        i += j.events.length;
      }
    }
  }
}

/** What one response computed, before it is committed to the connection. */
interface Built {
  response: SlidingSyncResponse;
  state: ConnectionState;
  hasData: boolean;
}

/**
 * Simplified sliding sync (MSC4186, as served on the unstable endpoint): the user's rooms as
 * ranges of lists sorted by recent activity plus explicit room subscriptions, with what each
 * connection was already sent remembered per `pos` so later responses carry only changes.
 */
export class SlidingSyncService {
  readonly connections = new ConnectionStore();
  private activityTracker: StreamActivity | undefined;
  private activityLoading: Promise<StreamActivity> | undefined;
  private readonly earlyChanges: StreamChange[] = [];

  constructor(private readonly deps: SlidingSyncDeps) {
    deps.notifier.on('change', (c) => {
      if (this.activityTracker) this.activityTracker.observe(c);
      // While the positions are read: announced changes may be newer than the answer. (Before
      // that, nothing is kept: the positions read cover every change announced earlier.)
      else if (this.activityLoading) this.earlyChanges.push(c);
    });
  }

  /**
   * What moved since the first request, per room and user (from the notifier; changes
   * announced while the positions were read are replayed into it).
   */
  private activity(): Promise<StreamActivity> {
    if (this.activityTracker) return Promise.resolve(this.activityTracker);
    return (this.activityLoading ??= this.deps.sync.currentPositions().then((p) => {
      const a = new StreamActivity(p);
      for (const c of this.earlyChanges.splice(0)) a.observe(c);
      this.activityTracker = a;
      return a;
    }));
  }

  async sync(req: SlidingSyncRequest): Promise<SlidingSyncResponse> {
    const connId = req.body.conn_id ?? '';
    // Checked before waiting: an unknown position answers at once.
    const prev = req.pos === undefined ? undefined : this.connections.get(req.userId, req.deviceId, connId, req.pos);
    const deadline = Date.now() + Math.max(0, req.timeoutMs);
    for (;;) {
      const remaining = deadline - Date.now();
      // Listen before reading positions, so a change in between still wakes us.
      const wait = prev && remaining > 0 ? this.deps.notifier.waitFor([req.userId], remaining, req.signal) : undefined;
      const woken = wait?.woken;
      try {
        const built = await this.build(req, prev);
        const done = !woken || built.hasData || Date.now() >= deadline || req.signal?.aborted;
        if (done || !(await woken) || Date.now() >= deadline || req.signal?.aborted) {
          built.response.pos = this.connections.put(req.userId, req.deviceId, connId, built.state, req.pos);
          return built.response;
        }
      } finally {
        wait?.cancel();
      }
    }
  }

  private async build(req: SlidingSyncRequest, prev: ConnectionState | undefined): Promise<Built> {
    const { events, pushActions } = this.deps;
    const activity = await this.activity();
    const to = await this.deps.sync.currentPositions();
    // Positions ahead of ours (an in-memory stream after a restart) count from zero.
    const from = prev && (Object.fromEntries(STREAMS.map((s) => [s, Math.min(prev.positions[s], to[s])])) as StreamPositions);
    const response: SlidingSyncResponse = { pos: '', lists: {}, rooms: {}, extensions: {} };
    const prevRooms = prev?.rooms ?? new Map<string, RoomSent>();
    const rooms = new Map(prevRooms);

    const candidates = await this.candidates(req.userId, prevRooms);
    const byId = new Map(candidates.map((c) => [c.roomId, c]));
    const direct = await this.directRooms(req.userId);

    // Lists: filter, sort by recency, cut the ranges; each room's configs are combined.
    const configs = new Map<string, { limits: number[]; states: RequiredState[]; lists: string[] }>();
    const addConfig = (roomId: string, limit: number | undefined, rs: RequiredState, list?: string) => {
      let c = configs.get(roomId);
      if (!c) configs.set(roomId, (c = { limits: [], states: [], lists: [] }));
      c.limits.push(Math.max(0, Math.min(MAX_TIMELINE_LIMIT, limit ?? 0)));
      c.states.push(rs);
      if (list !== undefined) c.lists.push(list);
    };
    const listRooms = new Map<string, string[]>();
    for (const [name, list] of Object.entries(req.body.lists ?? {})) {
      const matching = await this.filterRooms(req.userId, candidates, list.filters, direct);
      matching.sort((a, b) => b.bump - a.bump || (a.roomId < b.roomId ? -1 : a.roomId > b.roomId ? 1 : 0));
      const ranges = list.ranges ?? (list.range ? [list.range] : list.slow_get_all_rooms ? [[0, matching.length - 1] as [number, number]] : []);
      const picked: string[] = [];
      const seen = new Set<string>();
      for (const [start, end] of ranges) {
        for (let i = Math.max(0, start); i <= end && i < matching.length; i++) {
          const id = matching[i]!.roomId;
          if (seen.has(id)) continue;
          seen.add(id);
          picked.push(id);
        }
      }
      const rs = normaliseRequiredState(list.required_state, req.userId);
      for (const id of picked) addConfig(id, list.timeline_limit, rs, name);
      listRooms.set(name, picked);
      response.lists[name] = { count: matching.length, ops: [{ op: 'SYNC', range: ranges[0] ?? [0, -1], room_ids: picked }] };
    }
    // Subscriptions: rooms the user is or was in, or is invited to or knocked on.
    const subscribed: string[] = [];
    for (const [roomId, sub] of Object.entries(req.body.room_subscriptions ?? {})) {
      if (!byId.has(roomId)) {
        const m = await this.anyMembership(req.userId, roomId);
        if (!m) continue;
        candidates.push(m);
        byId.set(roomId, m);
      }
      subscribed.push(roomId);
      addConfig(roomId, sub.timeline_limit, normaliseRequiredState(sub.required_state, req.userId));
    }

    let hasData = false;
    const receiptRows = from && from.receipts < to.receipts ? await this.deps.receipts.store.between(from.receipts, to.receipts) : [];
    const ownReceiptRooms = new Set(receiptRows.filter((r) => r.userId === req.userId).map((r) => r.roomId));
    if (configs.size) await pushActions.catchUp(to.events);
    const initialRooms: string[] = [];
    const formats = new PendingFormats();
    for (const [roomId, c] of configs) {
      const cand = byId.get(roomId)!;
      const cfg: RoomConfig = { timelineLimit: Math.max(...c.limits), requiredState: combine(c.states), lists: c.lists };
      const out = await this.room(req, cand, cfg, prevRooms.get(roomId), from, to, activity, direct, ownReceiptRooms.has(roomId), formats);
      if (out.sent) rooms.set(roomId, out.sent);
      if (out.result) {
        response.rooms[roomId] = out.result;
        hasData = true;
        if (out.result.initial) initialRooms.push(roomId);
      }
    }
    await formats.run(this.deps.formatter, { userId: req.userId, deviceId: req.deviceId });

    const extHasData = await collectExtensions(this.deps, {
      req,
      from,
      to,
      activity,
      response,
      listRooms,
      subscribed,
      joined: new Set(candidates.filter((c) => c.membership === 'join').map((c) => c.roomId)),
      initialRooms: new Set(initialRooms),
    });
    if (typeof req.body.txn_id === 'string') response.txn_id = req.body.txn_id;
    return { response, state: { positions: to, rooms }, hasData: hasData || extHasData };
  }

  /**
   * The rooms of the user's lists: joined, invited, knocked and banned rooms, rooms they were
   * kicked from, and rooms they left that this connection was sent before. Forgotten rooms are left out.
   */
  private async candidates(userId: string, prevRooms: ReadonlyMap<string, RoomSent>): Promise<Candidate[]> {
    const { events } = this.deps;
    const memberships = await events.roomsForUser(userId, ['join', 'invite', 'knock', 'leave', 'ban']);
    const memberEvents = await events.getEvents(memberships.map((m) => m.eventId));
    const out: Candidate[] = [];
    for (const m of memberships) {
      const ev = memberEvents.get(m.eventId);
      if (!ev) continue;
      if (m.membership === 'leave' && ev.event.sender === userId && !prevRooms.has(m.roomId)) continue;
      if ((m.membership === 'leave' || m.membership === 'ban') && (await events.isForgotten(userId, m.roomId))) continue;
      out.push(await this.candidate(m, ev));
    }
    return out;
  }

  private async candidate(m: { roomId: string; membership: string; eventId: string }, ev: StoredEvent): Promise<Candidate> {
    const memberPos = ev.streamOrdering;
    let bump = memberPos;
    if (m.membership === 'join') bump = (await this.deps.bumps.get(m.roomId)) ?? memberPos;
    else if (m.membership === 'leave' || m.membership === 'ban') bump = Math.min((await this.deps.bumps.get(m.roomId)) ?? memberPos, memberPos);
    return { roomId: m.roomId, membership: m.membership, eventId: m.eventId, memberPos, memberSender: ev.event.sender, bump };
  }

  /** A subscribed room the lists left out (e.g. one the user left): any membership counts. */
  private async anyMembership(userId: string, roomId: string): Promise<Candidate | undefined> {
    const ev = await this.deps.events.getCurrentStateEvent(roomId, MEMBER, userId);
    const membership = ev?.event.content['membership'];
    if (!ev || typeof membership !== 'string' || !['join', 'invite', 'knock', 'leave', 'ban'].includes(membership)) return undefined;
    if (membership === 'leave' || membership === 'ban') {
      // Only rooms they were joined to (or invited to) before.
      const before = await this.deps.events.membershipAt(roomId, userId, ev.streamOrdering - 1);
      if (!before || (before.membership !== 'join' && before.membership !== 'invite')) return undefined;
    }
    return this.candidate({ roomId, membership, eventId: ev.event.event_id }, ev);
  }

  /** Rooms named in the user's `m.direct` account data. */
  private async directRooms(userId: string): Promise<Set<string>> {
    const content = await this.deps.userData.getAccountData(userId, null, 'm.direct');
    const out = new Set<string>();
    for (const ids of Object.values(content ?? {})) if (Array.isArray(ids)) for (const id of ids) if (typeof id === 'string') out.add(id);
    return out;
  }

  private async filterRooms(userId: string, candidates: Candidate[], f: SlidingRoomFilters | undefined, direct: Set<string>): Promise<Candidate[]> {
    if (!f) return [...candidates];
    const { events } = this.deps;
    const isInvite = f.is_invite ?? f.is_invited;
    let spaceChildren: Set<string> | undefined;
    if (f.spaces) {
      spaceChildren = new Set();
      for (const space of f.spaces) {
        if ((await events.getMembership(space, userId)) !== 'join') continue;
        for (const [key, ev] of await events.getCurrentState(space)) {
          const [type, child] = parseStateKey(key);
          if (type === 'm.space.child' && Array.isArray(ev.content['via']) && (ev.content['via'] as unknown[]).length > 0) spaceChildren.add(child);
        }
      }
    }
    const out: Candidate[] = [];
    for (const c of candidates) {
      if (f.is_dm !== undefined && direct.has(c.roomId) !== f.is_dm) continue;
      if (isInvite !== undefined && (c.membership === 'invite') !== isInvite) continue;
      if (spaceChildren && !spaceChildren.has(c.roomId)) continue;
      if (f.is_encrypted !== undefined) {
        const enc = !!(await events.getCurrentStateEvent(c.roomId, 'm.room.encryption', ''));
        if (enc !== f.is_encrypted) continue;
      }
      if (f.room_types || f.not_room_types) {
        const create = await events.getCurrentStateEvent(c.roomId, 'm.room.create', '');
        const t = create?.event.content['type'];
        const type = typeof t === 'string' ? t : null;
        if (f.not_room_types?.includes(type)) continue;
        if (f.room_types && !f.room_types.includes(type)) continue;
      }
      if (f.tags || f.not_tags) {
        const tags = Object.keys(await this.deps.userData.getTags(userId, c.roomId));
        if (f.not_tags?.some((t) => tags.includes(t))) continue;
        if (f.tags && !f.tags.some((t) => tags.includes(t))) continue;
      }
      out.push(c);
    }
    return out;
  }

  /** One room of the response (or nothing when the connection already has all of it). */
  private async room(
    req: SlidingSyncRequest,
    c: Candidate,
    cfg: RoomConfig,
    prev: RoomSent | undefined,
    from: StreamPositions | undefined,
    to: StreamPositions,
    activity: StreamActivity,
    direct: Set<string>,
    ownReceipt: boolean,
    formats: PendingFormats,
  ): Promise<{ result?: SlidingRoomResult; sent?: RoomSent }> {
    const common = (): SlidingRoomResult => ({
      notification_count: 0,
      highlight_count: 0,
      bump_stamp: c.bump,
      membership: c.membership,
      ...(cfg.lists.length ? { lists: cfg.lists } : {}),
    });
    const isDm = direct.has(c.roomId);
    const sentBase = { membership: c.membership, membershipEventId: c.eventId, requiredState: cfg.requiredState, timelineLimit: cfg.timelineLimit, isDm };

    // Invites and knocks: the stripped state, once per membership event. So too for a rejected
    // or withdrawn invite (or knock): the user was never in the room.
    let neverJoined = false;
    if ((c.membership === 'leave' || c.membership === 'ban') && prev?.membership !== 'join') {
      neverJoined = prev?.membership === 'invite' || prev?.membership === 'knock' || (await this.deps.events.membershipAt(c.roomId, req.userId, c.memberPos - 1))?.membership !== 'join';
    }
    if (c.membership === 'invite' || c.membership === 'knock' || neverJoined) {
      if (prev && prev.membershipEventId === c.eventId) return { sent: { ...prev, ...sentBase } };
      const stripped = await this.deps.sync.strippedRoomState(c.roomId, c.eventId);
      const result: SlidingRoomResult = { ...common(), initial: true, invite_state: stripped, stripped_state: stripped };
      if (isDm) result.is_dm = true;
      return { result, sent: { ...sentBase, sentUpTo: c.memberPos, limited: false, lazyMembers: new Set() } };
    }

    const joined = c.membership === 'join';
    const upTo = joined ? to.events : c.memberPos;
    const initial = !prev || prev.membership === 'invite' || prev.membership === 'knock' || (prev.membership !== 'join' && joined);
    if (initial) return this.fullRoom(req, c, cfg, from, upTo, common(), isDm, formats);

    // Already sent: only what changed since.
    const newEvents = activity.roomEvents.last(c.roomId) > prev.sentUpTo && prev.sentUpTo < upTo;
    const expandedTimeline = cfg.timelineLimit > prev.timelineLimit && prev.limited;
    const expandedState = expands(prev.requiredState, cfg.requiredState);
    const fetched = newEvents || expandedTimeline ? await this.fetchTimeline(c.roomId, expandedTimeline ? 0 : prev.sentUpTo, upTo, cfg.timelineLimit) : undefined;
    // The `m.direct` account data named or dropped the room.
    const dmChanged = prev.isDm !== isDm;
    if (!fetched?.any && !expandedTimeline && !expandedState && !ownReceipt && !dmChanged) {
      return { sent: { ...prev, ...sentBase, sentUpTo: Math.max(prev.sentUpTo, upTo) } };
    }
    const result = common();
    if (dmChanged) result.is_dm = isDm;
    let lazyMembers = new Set(prev.lazyMembers);
    let limited = prev.limited;
    if (fetched && (fetched.any || expandedTimeline)) {
      const visible = await this.deps.visibility.filter(req.userId, fetched.events);
      limited = fetched.limited;
      formats.addTimeline(visible, (out) => (result.timeline = out));
      result.limited = fetched.limited;
      result.prev_batch = formatPaginationToken(fetched.startPos);
      result.num_live = from ? visible.filter((s) => s.streamOrdering > from.events).length : 0;
      if (expandedTimeline) {
        result.unstable_expanded_timeline = true;
        result.expanded_timeline = true;
      }
      // State: what changed between what was sent and now, as far as the config asks.
      const stateChanged = fetched.limited || fetched.events.some((s) => typeof s.event.state_key === 'string');
      const after = joined ? await this.deps.events.getCurrentStateIds(c.roomId) : await this.deps.events.stateIdsAtStream(c.roomId, upTo);
      const changedKeys = new Map<string, string | null>();
      if (stateChanged) {
        const before = await this.deps.events.stateIdsAtStream(c.roomId, prev.sentUpTo);
        for (const [k, id] of after) if (before.get(k) !== id) changedKeys.set(k, id);
        for (const k of before.keys()) if (!after.has(k)) changedKeys.set(k, null);
      }
      if (fetched.limited) lazyMembers = new Set();
      const needed = this.lazyUsers(visible);
      const pick = new Map<string, string | null>();
      for (const [k, id] of changedKeys) {
        const [type, key] = parseStateKey(k);
        if (wants(cfg.requiredState, type, key) || (type === MEMBER && cfg.requiredState.lazy && (!fetched.limited || needed.has(key)))) pick.set(k, id);
      }
      if (cfg.requiredState.lazy) {
        for (const u of needed) {
          if (lazyMembers.has(u)) continue;
          const id = after.get(stateKeyOf(MEMBER, u));
          if (id) pick.set(stateKeyOf(MEMBER, u), id);
        }
      }
      if (expandedState) this.addExpanded(prev.requiredState, cfg.requiredState, after, pick);
      for (const k of pick.keys()) {
        const [type, key] = parseStateKey(k);
        if (type === MEMBER && cfg.requiredState.lazy) lazyMembers.add(key);
      }
      await this.addState(result, pick, formats);
      await this.addMeta(req.userId, c.roomId, after, joined, result, changedKeys);
    } else if (expandedState) {
      const after = joined ? await this.deps.events.getCurrentStateIds(c.roomId) : await this.deps.events.stateIdsAtStream(c.roomId, upTo);
      const pick = new Map<string, string | null>();
      this.addExpanded(prev.requiredState, cfg.requiredState, after, pick);
      await this.addState(result, pick, formats);
    }
    if (joined) Object.assign(result, (await this.deps.pushActions.counts(req.userId, c.roomId, to.events, false)).room);
    return { result, sent: { ...sentBase, sentUpTo: fetched ? upTo : prev.sentUpTo, limited, lazyMembers } };
  }

  /** State the new config asks for and the old one did not. */
  private addExpanded(prev: RequiredState, next: RequiredState, state: StateIds, pick: Map<string, string | null>): void {
    for (const [k, id] of state) if (wantsKey(next, k) && !wantsKey(prev, k)) pick.set(k, id);
  }

  /** A room as if the connection had never seen it: latest timeline, required state, name, counts. */
  private async fullRoom(
    req: SlidingSyncRequest,
    c: Candidate,
    cfg: RoomConfig,
    from: StreamPositions | undefined,
    upTo: number,
    result: SlidingRoomResult,
    isDm: boolean,
    formats: PendingFormats,
  ): Promise<{ result: SlidingRoomResult; sent: RoomSent }> {
    const { events, visibility } = this.deps;
    const fetched = await this.fetchTimeline(c.roomId, 0, upTo, cfg.timelineLimit);
    const visible = await visibility.filter(req.userId, fetched.events);
    result.initial = true;
    if (isDm) result.is_dm = true;
    if (cfg.timelineLimit > 0) {
      formats.addTimeline(visible, (out) => (result.timeline = out));
      result.limited = fetched.limited;
      result.num_live = from ? visible.filter((s) => s.streamOrdering > from.events).length : 0;
    }
    result.prev_batch = formatPaginationToken(fetched.startPos);
    const state = c.membership === 'join' ? await events.getCurrentStateIds(c.roomId) : await events.stateIdsAtStream(c.roomId, upTo);
    const pick = new Map<string, string | null>();
    for (const [k, id] of state) if (wantsKey(cfg.requiredState, k)) pick.set(k, id);
    const lazyMembers = new Set<string>();
    if (cfg.requiredState.lazy) {
      for (const u of this.lazyUsers(visible)) {
        const id = state.get(stateKeyOf(MEMBER, u));
        if (id) pick.set(stateKeyOf(MEMBER, u), id);
      }
      // Every membership sent (lazily or by pattern) need not be sent again for the timeline.
      for (const k of pick.keys()) {
        const [type, key] = parseStateKey(k);
        if (type === MEMBER) lazyMembers.add(key);
      }
    }
    await this.addState(result, pick, formats);
    await this.addMeta(req.userId, c.roomId, state, c.membership === 'join', result, undefined);
    if (c.membership === 'join') Object.assign(result, (await this.deps.pushActions.counts(req.userId, c.roomId, upTo, false)).room);
    return {
      result,
      sent: {
        membership: c.membership,
        membershipEventId: c.eventId,
        sentUpTo: upTo,
        requiredState: cfg.requiredState,
        timelineLimit: cfg.timelineLimit,
        limited: fetched.limited,
        lazyMembers,
        isDm,
      },
    };
  }

  /** Members a lazy-loading client needs for a timeline: its senders and the targets of its membership events. */
  private lazyUsers(timeline: StoredEvent[]): Set<string> {
    const out = new Set<string>();
    for (const s of timeline) {
      out.add(s.event.sender);
      if (s.event.type === MEMBER && typeof s.event.state_key === 'string') out.add(s.event.state_key);
    }
    return out;
  }

  /** The last `limit` events in (after, upTo], and the pagination position before them. */
  private async fetchTimeline(
    roomId: string,
    after: number,
    upTo: number,
    limit: number,
  ): Promise<{ events: StoredEvent[]; limited: boolean; startPos: number; /** Whether the window has any event. */ any: boolean }> {
    if (limit <= 0) {
      const any = after < upTo ? await this.deps.events.roomEventsBetween(roomId, after, upTo, 1, 'backwards') : [];
      return { events: [], limited: any.length > 0, startPos: upTo, any: any.length > 0 };
    }
    const fetched = await this.deps.events.roomEventsBetween(roomId, after, upTo, limit + 1, 'backwards');
    const limited = fetched.length > limit;
    const page = fetched.slice(0, limit).reverse();
    return { events: page, limited, startPos: page.length ? page[0]!.streamOrdering - 1 : upTo, any: fetched.length > 0 };
  }

  /** Sets `required_state` to the picked state (formatted with the response; removed entries as stubs). */
  private async addState(result: SlidingRoomResult, pick: Map<string, string | null>, formats: PendingFormats): Promise<void> {
    if (pick.size === 0) return;
    const ids = [...pick.values()].filter((id): id is string => id !== null);
    const stored = await this.deps.events.getEvents(ids);
    const stubs: Array<{ type: string; state_key: string }> = [];
    for (const [k, id] of pick) {
      if (id !== null) continue;
      const [type, state_key] = parseStateKey(k);
      stubs.push({ type, state_key });
    }
    formats.addState(
      ids.map((id) => stored.get(id)).filter((s): s is StoredEvent => !!s),
      (out) => (result.required_state = [...out, ...stubs]),
    );
  }

  /**
   * Name, avatar, heroes and member counts from the room state: all of them for a room sent
   * whole (`changed` undefined), else only what the changed state keys touch.
   */
  private async addMeta(
    userId: string,
    roomId: string,
    state: StateIds,
    /** Whether `state` is the room's current state (the user is joined). */
    current: boolean,
    result: SlidingRoomResult,
    changed: Map<string, string | null> | undefined,
  ): Promise<void> {
    const touched = (type: string) => !changed || [...changed.keys()].some((k) => parseStateKey(k)[0] === type);
    const nameKey = stateKeyOf('m.room.name', '');
    const avatarKey = stateKeyOf('m.room.avatar', '');
    const needed = [state.get(nameKey), state.get(avatarKey)].filter((x): x is string => !!x);
    const evs = await this.deps.events.getEvents(needed);
    const nameEv = state.get(nameKey) ? evs.get(state.get(nameKey)!) : undefined;
    const name = nameEv && !nameEv.redactedBy ? nameEv.event.content['name'] : undefined;
    const hasName = typeof name === 'string' && name !== '';
    if (touched('m.room.name')) {
      if (hasName) result.name = name;
      else if (changed) result.name = null;
    }
    if (touched('m.room.avatar')) {
      const avatarEv = state.get(avatarKey) ? evs.get(state.get(avatarKey)!) : undefined;
      const url = avatarEv && !avatarEv.redactedBy ? avatarEv.event.content['url'] : undefined;
      if (typeof url === 'string' && url !== '') result.avatar = url;
      else if (changed) result.avatar = null;
    }
    if (!touched(MEMBER) && !(changed && touched('m.room.name'))) return;
    // Member counts and heroes: from the (cached) current members while joined, else from the
    // state at the user's leave.
    const { events } = this.deps;
    let byMembership: (memberships: string[]) => Promise<string[]>;
    if (current) {
      byMembership = (m) => events.members(roomId, m);
    } else {
      const memberIds = [...state].filter(([k]) => k.startsWith(MEMBER_KEY_PREFIX)).map(([, id]) => id);
      const members = [...(await events.getEvents(memberIds)).values()];
      byMembership = async (m) => members.filter((s) => m.includes(s.event.content['membership'] as string)).map((s) => s.event.state_key!);
    }
    const joined = await byMembership(['join']);
    const invited = await byMembership(['invite']);
    result.joined_count = joined.length;
    result.invited_count = invited.length;
    if (hasName) return;
    const order = (list: string[]) => list.filter((u) => u !== userId).sort();
    let heroIds = [...order(joined), ...order(invited)].slice(0, MAX_HEROES);
    if (heroIds.length === 0) heroIds = order(await byMembership(['leave', 'ban'])).slice(0, MAX_HEROES);
    const heroEvents = await events.getEvents(heroIds.map((u) => state.get(stateKeyOf(MEMBER, u))).filter((id): id is string => !!id));
    const byUser = new Map([...heroEvents.values()].map((s) => [s.event.state_key!, s]));
    result.heroes = heroIds.map((u): Hero => {
      const s = byUser.get(u);
      if (!s) return { user_id: u };
      const h: Hero = { user_id: s.event.state_key! };
      const dn = s.event.content['displayname'];
      const av = s.event.content['avatar_url'];
      if (typeof dn === 'string') h.displayname = dn;
      if (typeof av === 'string') h.avatar_url = av;
      return h;
    });
  }
}

