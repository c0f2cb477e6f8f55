import type { Compilable, Kysely } from 'kysely';
import { parseStateKey, stateKeyOf, type RoomEvent } from '../../protocol/event.js';
import { LruCache } from '../../util/lru.js';
import type { Database, Tx } from '../db.js';
import { prepared, type Prepared } from '../prepared.js';
import type { Tables } from '../schema.js';

/** A persisted event with the server's bookkeeping about it. */
export interface StoredEvent {
  event: RoomEvent;
  roomId: string;
  streamOrdering: number;
  prevStateEventId: string | null;
  redactedBy: string | null;
  txnId: string | null;
  txnDeviceId: string | null;
  rejected: string | null;
  outlier: boolean;
  /** Events backfilled into a gap of the timeline: the stream position they are placed before. */
  timelineAnchor?: number;
}

/**
 * The place of an event in a room's timeline as /messages orders it: `[stream position, 0]`,
 * or, for events backfilled into a gap, `[anchor, own (negative) stream position]` (just before
 * the anchor, older batches lower). Compared as pairs.
 */
export interface TimelineKey {
  major: number;
  minor: number;
}

export function compareTimelineKeys(a: TimelineKey, b: TimelineKey): number {
  return a.major - b.major || a.minor - b.minor;
}

export function timelineKeyOf(s: StoredEvent): TimelineKey {
  return s.timelineAnchor !== undefined ? { major: s.timelineAnchor, minor: s.streamOrdering } : { major: s.streamOrdering, minor: 0 };
}

export interface RoomRow {
  roomId: string;
  roomVersion: string;
  creator: string;
  isPublic: boolean;
  createdTs: number;
}

/** State as (type, state_key) key → event ID. */
export type StateIds = Map<string, string>;

/** The remembered form of a transaction ID: with its scope, unambiguously. */
function txnKey(txnId: string, scope: readonly string[] | undefined): string {
  return scope && scope.length > 0 ? JSON.stringify([...scope, txnId]) : txnId;
}

// The statements every local event's write runs, built once (see prepared.ts).
const EVENT_COLUMNS = [
  'event_id', 'room_id', 'type', 'state_key', 'sender', 'origin_server_ts', 'depth', 'json', 'outlier', 'rejected',
  'prev_state_event_id', 'redacted_by', 'redacts', 'txn_id', 'txn_device_id', 'relates_to', 'rel_type', 'received_ts',
] as const;
type EventColumns = { [K in (typeof EVENT_COLUMNS)[number]]: Tables['events'][K] extends infer T ? (T extends { __insert__: infer I } ? I : T) : never };
const insertEventQuery = prepared(EVENT_COLUMNS.length, (db, ...values: unknown[]) =>
  db
    .insertInto('events')
    .values(Object.fromEntries(EVENT_COLUMNS.map((c, i) => [c, values[i]])) as never)
    .returning('stream_ordering'),
);
const insertEdgeQuery = prepared(2, (db, eventId: string, prevId: string) =>
  db.insertInto('event_edges').values({ event_id: eventId, prev_event_id: prevId }).onConflict((oc) => oc.doNothing()),
);
const insertEventStateQuery = prepared(2, (db, eventId: string, stateGroup: number) =>
  db.insertInto('event_state').values({ event_id: eventId, state_group: stateGroup }),
);
const deleteExtremityQuery = prepared(2, (db, roomId: string, eventId: string) =>
  db.deleteFrom('forward_extremities').where('room_id', '=', roomId).where('event_id', '=', eventId),
);
const insertExtremityQuery = prepared(2, (db, roomId: string, eventId: string) =>
  db.insertInto('forward_extremities').values({ room_id: roomId, event_id: eventId }),
);
const insertTxnQuery = prepared(5, (db, userId: string, deviceId: string, txnId: string, eventId: string, ts: number) =>
  db.insertInto('event_txns').values({ user_id: userId, device_id: deviceId, txn_id: txnId, event_id: eventId, created_ts: ts }),
);
const txnEventIdQuery = prepared(3, (db, userId: string, deviceId: string, txnId: string) =>
  db.selectFrom('event_txns').select('event_id').where('user_id', '=', userId).where('device_id', '=', deviceId).where('txn_id', '=', txnId),
);

/**
 * A transaction shared by a batch of writes (see GroupCommitter) that lets them leave rows to
 * its end: a batch of events then writes them with a few multi-row statements instead of
 * several statements per event.
 */
export interface DeferringTx extends Tx {
  /**
   * The state kept under `key` in this transaction, made by `init` on first use; `flush` runs
   * once, after every write of the transaction and before its commit (in order of first use).
   */
  deferred<S>(key: object, init: () => S, flush: (tx: Tx, state: S) => Promise<void>): S;
}

export function isDeferringTx(tx: Tx): tx is DeferringTx {
  return typeof (tx as Partial<DeferringTx>).deferred === 'function';
}

/** Rows of local events' writes left to the end of their transaction (see DeferringTx). */
interface DeferredEventRows {
  edges: unknown[];
  states: unknown[];
  txns: unknown[];
  /** Per room: extremities that existed before the transaction and go, and new ones that stay. */
  extremities: Map<string, { removed: Set<string>; added: Set<string> }>;
}

/** Inserts of n rows, prepared once per n (n a power of two, so few statements per table). */
class MultiRowInsert {
  private readonly byCount = new Map<number, Prepared<unknown[], unknown>>();

  constructor(
    private readonly width: number,
    private readonly build: (db: Kysely<Tables>, rows: unknown[][]) => Compilable<unknown>,
  ) {}

  /** Runs the insert for `params` (`width` values per row, flattened). */
  async run(db: Tx['db'], params: unknown[]): Promise<void> {
    const rows = params.length / this.width;
    let done = 0;
    while (done < rows) {
      // The largest power of two that fits, at most 64 rows per statement.
      let n = 64;
      while (n > rows - done) n >>= 1;
      const chunk = done === 0 && n === rows ? params : params.slice(done * this.width, (done + n) * this.width);
      await this.of(n).run(db, ...chunk);
      done += n;
    }
  }

  private of(n: number): Prepared<unknown[], unknown> {
    let q = this.byCount.get(n);
    if (!q) {
      const width = this.width;
      q = prepared(n * width, (db, ...v: unknown[]) => this.build(db, Array.from({ length: n }, (_, r) => v.slice(r * width, (r + 1) * width))));
      this.byCount.set(n, q);
    }
    return q;
  }
}

const insertEdges = new MultiRowInsert(2, (db, rows) =>
  db
    .insertInto('event_edges')
    .values(rows.map(([e, p]) => ({ event_id: e as string, prev_event_id: p as string })))
    .onConflict((oc) => oc.doNothing()),
);
const insertEventStates = new MultiRowInsert(2, (db, rows) =>
  db.insertInto('event_state').values(rows.map(([e, g]) => ({ event_id: e as string, state_group: g as number }))),
);
const insertExtremities = new MultiRowInsert(2, (db, rows) =>
  db.insertInto('forward_extremities').values(rows.map(([r, e]) => ({ room_id: r as string, event_id: e as string }))),
);
const insertTxns = new MultiRowInsert(5, (db, rows) =>
  db.insertInto('event_txns').values(
    rows.map(([u, d, t, e, ts]) => ({ user_id: u as string, device_id: d as string, txn_id: t as string, event_id: e as string, created_ts: ts as number })),
  ),
);

const DEFERRED_EVENT_ROWS = {};

async function flushEventRows(tx: Tx, rows: DeferredEventRows): Promise<void> {
  if (rows.edges.length) await insertEdges.run(tx.db, rows.edges);
  if (rows.states.length) await insertEventStates.run(tx.db, rows.states);
  const added: unknown[] = [];
  for (const [roomId, x] of rows.extremities) {
    for (const id of x.removed) await deleteExtremityQuery.run(tx.db, roomId, id);
    for (const id of x.added) added.push(roomId, id);
  }
  if (added.length) await insertExtremities.run(tx.db, added);
  if (rows.txns.length) await insertTxns.run(tx.db, rows.txns);
}

export interface PersistInput {
  event: RoomEvent;
  roomId: string;
  /** State group of the state before this event (null for the create event). */
  stateGroupBefore: number | null;
  /** The event this one replaces in the state, if a state event. */
  prevStateEventId: string | null;
  /**
   * The request's transaction ID. A retransmission is the same ID on the same path, so the
   * ID is remembered with `scope` (the request path without the ID: endpoint, room, type…).
   */
  txn?: { userId: string; deviceId: string; txnId: string; scope?: readonly string[] };
  /** Whether to update the room's current state and forward extremities (false for outliers). */
  updateCurrentState: boolean;
  /**
   * Whether the event is an outlier (default: `!updateCurrentState`). Outliers get no state
   * group. A timeline event with `updateCurrentState: false` (received over federation) has its
   * state group written but leaves extremities and current state to the caller.
   */
  outlier?: boolean;
  /** Why the event was rejected by the auth rules (stored, never served to clients). */
  rejected?: string | null;
  /**
   * Write the state group even for an outlier (soft-failed and rejected events: later events
   * may name them as prev_events). A rejected event's state is the state before it.
   */
  keepState?: boolean;
  /**
   * The full state before the event when `stateGroupBefore` may not hold it (several prev
   * events whose states were resolved): a group for it is written first when they differ.
   */
  stateBefore?: StateIds;
  /**
   * An explicit stream position (history fetched with /backfill: negative positions below every
   * other event, so it sorts before the room's known timeline and never reaches /sync).
   */
  streamOrdering?: number;
  /** With `streamOrdering`: history backfilled into a gap, placed before this stream position. */
  timelineAnchor?: number;
}

/** How many deltas a state group may sit on before a full snapshot is written. */
const MAX_DELTA_DEPTH = 32;

type Q = Kysely<Tables>;

/** A member row of a room's current state: user ID, membership, member event ID. */
type MemberRow = [userId: string, membership: string | null, eventId: string];

/**
 * A cache of facts read from the current state that is never stale: an entry is dropped when a
 * transaction changing the fact writes (so nothing read meanwhile is kept) and again once it
 * commits; a read that began before the last drop does not store its (maybe older) answer.
 */
class CurrentStateCache<K, V> {
  private readonly lru: LruCache<K, V>;
  private generation = 0;

  constructor(capacity: number) {
    this.lru = new LruCache(capacity);
  }

  get(key: K): V | undefined {
    return this.lru.get(key);
  }

  /** Reads through the cache: `load` runs on a miss and its answer is kept unless a write intervened. */
  async read(key: K, load: () => Promise<V>): Promise<V> {
    const hit = this.lru.get(key);
    if (hit !== undefined) return hit;
    const gen = this.generation;
    const v = await load();
    if (gen === this.generation) this.lru.set(key, v);
    return v;
  }

  /** Drops `key` now and after the transaction commits. */
  drop(tx: Tx | undefined, key: K): void {
    this.generation++;
    this.lru.delete(key);
    tx?.onCommit(() => {
      this.generation++;
      this.lru.delete(key);
    });
  }

  /** Drops many keys now and after the transaction commits (one callback for all of them). */
  dropMany(tx: Tx | undefined, keys: readonly K[]): void {
    if (keys.length === 0) return;
    const run = (): void => {
      this.generation++;
      for (const k of keys) this.lru.delete(k);
    };
    run();
    tx?.onCommit(run);
  }
}

/**
 * The latest timeline events of a room that all have the same state after them: every
 * non-outlier event of the room at a position in [from, last] has state group `group`, and none
 * is committed after `last` (see `stateIdsAtStream`). `from` is a position allocated since
 * start-up, so every event of the room written before start-up is below it.
 */
interface StateRun {
  from: number;
  last: number;
  group: number;
}

/** Rooms whose state run is kept (the least recently written are forgotten). */
const STATE_RUNS_KEPT = 10_000;

/**
 * A room's latest timeline events in stream order: every committed non-outlier event of the
 * room at a position above `completeAbove` is in `positions`/`ids` (see `roomEventsBetween`).
 */
interface RecentTimeline {
  completeAbove: number;
  positions: number[];
  ids: string[];
}

/** Events kept per room in its recent timeline, and rooms with one (least recently written forgotten). */
const RECENT_PER_ROOM = 48;
const RECENT_ROOMS_KEPT = 1000;

/** How many relation targets are tracked before tracking restarts (see `mayHaveRelations`). */
const RELATION_TARGETS_TRACKED = 100_000;

/** Events, room state and memberships. */
export class EventStore {
  private readonly eventCache: LruCache<string, StoredEvent>;
  private readonly stateCache: LruCache<number, StateIds>;
  /** Rooms (the version never changes; publicity changes through setRoomPublic). */
  private readonly roomCache = new CurrentStateCache<string, RoomRow>(2000);
  /** Current state IDs per room (copied out: callers may change what they get). */
  private readonly currentStateCache = new CurrentStateCache<string, StateIds>(256);
  /** Member rows of the current state per room. */
  private readonly memberCache = new CurrentStateCache<string, MemberRow[]>(1000);
  /** Event ID → the state group of the state after it (set once; changed only for outliers taken into the timeline). */
  private readonly stateGroupOfCache = new CurrentStateCache<string, number>(5000);
  /** Per user: the rooms they have a member event in, with its membership. */
  private readonly userRoomsCache = new CurrentStateCache<string, Array<{ roomId: string; membership: string; eventId: string }>>(5000);

  constructor(
    private readonly database: Database,
    opts: { eventCacheSize?: number; stateCacheSize?: number } = {},
  ) {
    this.eventCache = new LruCache(opts.eventCacheSize ?? 5000);
    this.stateCache = new LruCache(opts.stateCacheSize ?? 64);
  }

  /**
   * Generations of rooms' history (history-visibility events and membership rows in stream
   * order): a room's value changes whenever a transaction writes to it (now and on commit);
   * `historyFloor` moves for writes whose room is not known here (outliers turned into
   * timeline events).
   */
  private readonly historyGens = new Map<string, number>();
  private historyCounter = 0;
  private historyFloor = 0;

  /**
   * Targets of the relations (`m.relates_to`) written since tracking began (a superset: writes
   * rolled back stay), so events created here since then can be known to have no children.
   * `relationsTrackedFrom`: every event above it was written after tracking began (unknown
   * until read); both restart when the set grows past its bound.
   */
  private readonly relationTargets = new Set<string>();
  private relationsTrackedFrom: number | undefined;
  private relationsEpoch = 0;
  private relationsReading = false;

  private relationWritten(targetId: unknown): void {
    if (typeof targetId !== 'string') return;
    if (this.relationTargets.size >= RELATION_TARGETS_TRACKED) {
      this.relationTargets.clear();
      this.relationsTrackedFrom = undefined;
      this.relationsEpoch++;
    }
    this.relationTargets.add(targetId);
  }

  /**
   * False only when none of these events can be the target of a relation: each was created by
   * this server (`serverName`) after tracking began — so every child of it was written since,
   * here — and none of them is a tracked target. True when unsure.
   */
  mayHaveRelations(events: readonly StoredEvent[], serverName: string): boolean {
    const from = this.relationsTrackedFrom;
    if (from === undefined) {
      if (!this.relationsReading) {
        this.relationsReading = true;
        const epoch = this.relationsEpoch;
        this.maxStreamOrdering()
          .then((max) => {
            if (epoch === this.relationsEpoch) this.relationsTrackedFrom = max;
          })
          .catch(() => undefined)
          .finally(() => (this.relationsReading = false));
      }
      return true;
    }
    const suffix = `:${serverName}`;
    for (const s of events) {
      if (s.streamOrdering <= from || !s.event.sender.endsWith(suffix) || this.relationTargets.has(s.event.event_id)) return true;
    }
    return false;
  }

  /**
   * Per room, the run of its latest timeline events sharing one state (from commits seen since
   * start-up; a room without one is unknown and asked of the database).
   */
  private readonly stateRuns = new Map<string, StateRun>();
  /** Per room, its latest timeline events (from commits seen since start-up; unknown otherwise). */
  private readonly recentTimelines = new Map<string, RecentTimeline>();
  /**
   * The highest position of a timeline event seen committed since start-up. A run or recent
   * timeline starts only with an event above it (so no event seen before is above its start), and
   * answers only for positions up to it (an event committed but not yet seen here is above it).
   */
  private committedMax = Number.NEGATIVE_INFINITY;

  /**
   * A timeline (non-outlier) event with the state group after it was committed. `explicit`: its
   * position was given by the writer (history fetched with /backfill), not allocated now, so
   * events written before start-up may lie between it and the run: it never starts or extends one.
   */
  private timelineEventCommitted(roomId: string, eventId: string, position: number, group: number, explicit: boolean): void {
    const fresh = !explicit && position > this.committedMax;
    if (position > this.committedMax) this.committedMax = position;
    this.stateRunCommitted(roomId, position, group, explicit, fresh);
    this.recentCommitted(roomId, eventId, position, fresh);
  }

  private stateRunCommitted(roomId: string, position: number, group: number, explicit: boolean, fresh: boolean): void {
    const run = this.stateRuns.get(roomId);
    if (run && position <= run.last) {
      // Committed out of order (a concurrent transaction, history placed before the timeline):
      // the run holds only if the event is before it or has the same state.
      if (position >= run.from && group !== run.group) this.stateRuns.delete(roomId);
      return;
    }
    this.stateRuns.delete(roomId);
    if (explicit) return;
    if (run && group === run.group) {
      run.last = position;
      this.stateRuns.set(roomId, run);
    } else if (fresh) {
      this.stateRuns.set(roomId, { from: position, last: position, group });
    }
    if (this.stateRuns.size > STATE_RUNS_KEPT) this.stateRuns.delete(this.stateRuns.keys().next().value as string);
  }

  private recentCommitted(roomId: string, eventId: string, position: number, fresh: boolean): void {
    let recent = this.recentTimelines.get(roomId);
    if (recent) {
      if (position <= recent.completeAbove) return;
      // In order, unless committed out of order.
      let i = recent.positions.length;
      while (i > 0 && recent.positions[i - 1]! > position) i--;
      recent.positions.splice(i, 0, position);
      recent.ids.splice(i, 0, eventId);
      if (recent.positions.length > RECENT_PER_ROOM) {
        recent.completeAbove = recent.positions.shift()!;
        recent.ids.shift();
      }
      this.recentTimelines.delete(roomId);
    } else if (fresh) {
      recent = { completeAbove: position - 1, positions: [position], ids: [eventId] };
    } else {
      return;
    }
    this.recentTimelines.set(roomId, recent);
    if (this.recentTimelines.size > RECENT_ROOMS_KEPT) this.recentTimelines.delete(this.recentTimelines.keys().next().value as string);
  }

  /**
   * An outlier joined a timeline (at `position` once committed): every state run and recent
   * timeline is forgotten, now and once the transaction commits, and none starts below it.
   */
  private outlierJoinedTimeline(tx: Tx, position: () => number | undefined): void {
    const forget = (): void => {
      this.stateRuns.clear();
      this.recentTimelines.clear();
    };
    forget();
    tx.onCommit(() => {
      forget();
      const p = position();
      if (p !== undefined && p > this.committedMax) this.committedMax = p;
    });
  }

  /**
   * The IDs of a room's timeline events in (from, to] from its recent timeline, when it holds
   * all that the query would return; undefined when unsure.
   */
  private recentBetween(roomId: string, from: number, to: number, limit: number, direction: 'forwards' | 'backwards'): string[] | undefined {
    const recent = this.recentTimelines.get(roomId);
    if (!recent || to > this.committedMax) return undefined;
    const { positions, ids } = recent;
    const out: string[] = [];
    if (direction === 'backwards') {
      let i = positions.length - 1;
      while (i >= 0 && positions[i]! > to) i--;
      for (; i >= 0 && positions[i]! > from && out.length < limit; i--) out.push(ids[i]!);
      // Complete when the window starts within the kept events, or the limit was reached
      // before older events (not kept) could have come in.
      return from >= recent.completeAbove || out.length >= limit ? out : undefined;
    }
    if (from < recent.completeAbove) return undefined;
    for (let i = 0; i < positions.length && out.length < limit; i++) {
      const p = positions[i]!;
      if (p > to) break;
      if (p > from) out.push(ids[i]!);
    }
    return out;
  }

  /** A value that changes whenever the room's history-visibility or membership history may have changed. */
  historyGeneration(roomId: string): number {
    return Math.max(this.historyFloor, this.historyGens.get(roomId) ?? 0);
  }

  private historyChanged(tx: Tx, roomId: string | undefined): void {
    const bump = () => {
      if (roomId === undefined) this.historyFloor = ++this.historyCounter;
      else this.historyGens.set(roomId, ++this.historyCounter);
    };
    bump();
    tx.onCommit(bump);
  }

  /** Drops what the caches hold about a changed state key of a room. */
  private stateChanged(tx: Tx | undefined, roomId: string, type: string, stateKey: string): void {
    this.currentStateCache.drop(tx, roomId);
    if (type === 'm.room.member') {
      this.memberCache.drop(tx, roomId);
      this.userRoomsCache.drop(tx, stateKey);
    }
  }

  private get db(): Q {
    return this.database.db;
  }

  async getRoom(roomId: string, q: Q = this.db): Promise<RoomRow | undefined> {
    const load = async (): Promise<RoomRow | undefined> => {
      const r = await q.selectFrom('rooms').selectAll().where('room_id', '=', roomId).executeTakeFirst();
      return r && { roomId: r.room_id, roomVersion: r.room_version, creator: r.creator, isPublic: !!r.is_public, createdTs: r.created_ts };
    };
    if (q !== this.db) return load();
    const hit = this.roomCache.get(roomId);
    if (hit) return { ...hit };
    // Unknown rooms are not remembered (a room may be created next).
    const row = await load();
    if (row) await this.roomCache.read(roomId, async () => row);
    return row && { ...row };
  }

  async insertRoom(tx: Tx, room: RoomRow): Promise<void> {
    this.roomCache.drop(tx, room.roomId);
    await tx.db
      .insertInto('rooms')
      .values({
        room_id: room.roomId,
        room_version: room.roomVersion,
        creator: room.creator,
        is_public: room.isPublic ? 1 : 0,
        created_ts: room.createdTs,
      })
      .execute();
  }

  async setRoomPublic(roomId: string, isPublic: boolean): Promise<void> {
    this.roomCache.drop(undefined, roomId);
    await this.db.updateTable('rooms').set({ is_public: isPublic ? 1 : 0 }).where('room_id', '=', roomId).execute();
    this.roomCache.drop(undefined, roomId);
  }

  async publicRooms(): Promise<string[]> {
    const rows = await this.db.selectFrom('rooms').select('room_id').where('is_public', '=', 1).orderBy('created_ts').execute();
    return rows.map((r) => r.room_id);
  }

  private fromRow(r: Tables['events'] extends infer T ? { [K in keyof T]: T[K] extends { __select__: infer S } ? S : T[K] } : never): StoredEvent {
    const event = JSON.parse(r.json) as RoomEvent;
    event.event_id = r.event_id;
    return {
      event,
      roomId: r.room_id,
      streamOrdering: r.stream_ordering,
      prevStateEventId: r.prev_state_event_id,
      redactedBy: r.redacted_by,
      txnId: r.txn_id,
      txnDeviceId: r.txn_device_id,
      rejected: r.rejected,
      outlier: !!r.outlier,
      ...(r.timeline_anchor !== null && r.timeline_anchor !== undefined ? { timelineAnchor: Number(r.timeline_anchor) } : {}),
    };
  }

  /** Events by ID (cached); missing IDs are absent from the result. */
  async getEvents(ids: Iterable<string>, q: Q = this.db): Promise<Map<string, StoredEvent>> {
    const out = new Map<string, StoredEvent>();
    const missing: string[] = [];
    for (const id of new Set(ids)) {
      const hit = this.eventCache.get(id);
      if (hit) out.set(id, hit);
      else missing.push(id);
    }
    for (let i = 0; i < missing.length; i += 500) {
      const chunk = missing.slice(i, i + 500);
      const rows = await q.selectFrom('events').selectAll().where('event_id', 'in', chunk).execute();
      for (const r of rows) {
        const s = this.fromRow(r);
        this.eventCache.set(r.event_id, s);
        out.set(r.event_id, s);
      }
    }
    return out;
  }

  async getEvent(id: string, q: Q = this.db): Promise<StoredEvent | undefined> {
    return (await this.getEvents([id], q)).get(id);
  }

  async getCurrentStateIds(roomId: string, q: Q = this.db): Promise<StateIds> {
    if (q !== this.db) return this.loadCurrentStateIds(roomId, q);
    return new Map(await this.currentStateIdsShared(roomId));
  }

  private async loadCurrentStateIds(roomId: string, q: Q): Promise<StateIds> {
    const rows = await q.selectFrom('current_state').select(['type', 'state_key', 'event_id']).where('room_id', '=', roomId).execute();
    return new Map(rows.map((r) => [stateKeyOf(r.type, r.state_key), r.event_id]));
  }

  /** The cached current state IDs of a room, not copied: only for reading here. */
  private currentStateIdsShared(roomId: string): Promise<StateIds> {
    return this.currentStateCache.read(roomId, () => this.loadCurrentStateIds(roomId, this.db));
  }

  /** Member rows of a room's current state (cached). */
  private async memberRows(roomId: string, q: Q): Promise<MemberRow[]> {
    const load = async (): Promise<MemberRow[]> => {
      const rows = await q
        .selectFrom('current_state')
        .select(['state_key', 'membership', 'event_id'])
        .where('room_id', '=', roomId)
        .where('type', '=', 'm.room.member')
        .execute();
      return rows.map((r) => [r.state_key, r.membership, r.event_id]);
    };
    return q === this.db ? this.memberCache.read(roomId, load) : load();
  }

  /** Current state as events. */
  async getCurrentState(roomId: string, q: Q = this.db): Promise<Map<string, RoomEvent>> {
    return this.loadStateEvents(await this.getCurrentStateIds(roomId, q), q);
  }

  async loadStateEvents(ids: StateIds, q: Q = this.db): Promise<Map<string, RoomEvent>> {
    const events = await this.getEvents(ids.values(), q);
    const out = new Map<string, RoomEvent>();
    for (const [key, id] of ids) {
      const e = events.get(id);
      if (e) out.set(key, e.event);
    }
    return out;
  }

  async getCurrentStateEvent(roomId: string, type: string, stateKey: string, q: Q = this.db): Promise<StoredEvent | undefined> {
    if (q === this.db) {
      const id = (await this.currentStateIdsShared(roomId)).get(stateKeyOf(type, stateKey));
      return id === undefined ? undefined : this.getEvent(id, q);
    }
    const row = await q
      .selectFrom('current_state')
      .select('event_id')
      .where('room_id', '=', roomId)
      .where('type', '=', type)
      .where('state_key', '=', stateKey)
      .executeTakeFirst();
    return row ? this.getEvent(row.event_id, q) : undefined;
  }

  async getMembership(roomId: string, userId: string, q: Q = this.db): Promise<string | undefined> {
    if (q === this.db) return (await this.memberRows(roomId, q)).find((m) => m[0] === userId)?.[1] ?? undefined;
    const row = await q
      .selectFrom('current_state')
      .select('membership')
      .where('room_id', '=', roomId)
      .where('type', '=', 'm.room.member')
      .where('state_key', '=', userId)
      .executeTakeFirst();
    return row?.membership ?? undefined;
  }

  /** Rooms where the user's current membership is one of `memberships`. */
  async roomsForUser(userId: string, memberships: string[], q: Q = this.db): Promise<Array<{ roomId: string; membership: string; eventId: string }>> {
    if (q === this.db) {
      const all = await this.userRoomsCache.read(userId, async () => {
        const rows = await q
          .selectFrom('current_state')
          .select(['room_id', 'membership', 'event_id'])
          .where('type', '=', 'm.room.member')
          .where('state_key', '=', userId)
          .execute();
        return rows.map((r) => ({ roomId: r.room_id, membership: r.membership ?? '', eventId: r.event_id }));
      });
      return all.filter((r) => memberships.includes(r.membership)).map((r) => ({ ...r }));
    }
    const rows = await q
      .selectFrom('current_state')
      .select(['room_id', 'membership', 'event_id'])
      .where('type', '=', 'm.room.member')
      .where('state_key', '=', userId)
      .where('membership', 'in', memberships)
      .execute();
    return rows.map((r) => ({ roomId: r.room_id, membership: r.membership!, eventId: r.event_id }));
  }

  /** User IDs whose current membership is one of `memberships` (default: join). */
  async members(roomId: string, memberships: string[] = ['join'], q: Q = this.db): Promise<string[]> {
    if (q === this.db) return (await this.memberRows(roomId, q)).filter((m) => m[1] !== null && memberships.includes(m[1])).map((m) => m[0]);
    const rows = await q
      .selectFrom('current_state')
      .select('state_key')
      .where('room_id', '=', roomId)
      .where('type', '=', 'm.room.member')
      .where('membership', 'in', memberships)
      .execute();
    return rows.map((r) => r.state_key);
  }

  async getForwardExtremities(roomId: string, q: Q = this.db): Promise<string[]> {
    const rows = await q.selectFrom('forward_extremities').select('event_id').where('room_id', '=', roomId).execute();
    return rows.map((r) => r.event_id).sort();
  }

  async getStateGroupOf(eventId: string, q: Q = this.db): Promise<number | undefined> {
    if (q === this.db) {
      const hit = this.stateGroupOfCache.get(eventId);
      if (hit !== undefined) return hit;
    }
    const row = await q.selectFrom('event_state').select('state_group').where('event_id', '=', eventId).executeTakeFirst();
    if (q === this.db && row) await this.stateGroupOfCache.read(eventId, async () => row.state_group);
    return row?.state_group;
  }

  /** The full state of a state group (following its delta chain). */
  async getStateIdsAtGroup(group: number, q: Q = this.db): Promise<StateIds> {
    const cached = this.stateCache.get(group);
    if (cached) return new Map(cached);
    const chain: number[] = [];
    let base: StateIds | undefined;
    let cur: number | null = group;
    while (cur !== null) {
      const hit = this.stateCache.get(cur);
      if (hit) {
        base = new Map(hit);
        break;
      }
      chain.push(cur);
      const row: { prev_group: number | null } | undefined = await q
        .selectFrom('state_groups')
        .select('prev_group')
        .where('id', '=', cur)
        .executeTakeFirst();
      if (!row) throw new Error(`state group ${cur} is missing`);
      cur = row.prev_group;
    }
    const state = base ?? new Map<string, string>();
    const entries = chain.length
      ? await q.selectFrom('state_group_entries').selectAll().where('state_group', 'in', chain).execute()
      : [];
    const byGroup = new Map<number, typeof entries>();
    for (const e of entries) {
      const list = byGroup.get(e.state_group) ?? [];
      list.push(e);
      byGroup.set(e.state_group, list);
    }
    for (const g of chain.reverse()) {
      for (const e of byGroup.get(g) ?? []) state.set(stateKeyOf(e.type, e.state_key), e.event_id);
    }
    this.stateCache.set(group, new Map(state));
    return state;
  }

  /** State after an event, as IDs. */
  async getStateIdsAfter(eventId: string, q: Q = this.db): Promise<StateIds | undefined> {
    const group = await this.getStateGroupOf(eventId, q);
    return group === undefined ? undefined : this.getStateIdsAtGroup(group, q);
  }

  async getTxnEventId(userId: string, deviceId: string, txnId: string, scope?: readonly string[]): Promise<string | undefined> {
    return (await txnEventIdQuery.first(this.db, userId, deviceId, txnKey(txnId, scope)))?.event_id;
  }

  async maxStreamOrdering(q: Q = this.db): Promise<number> {
    const row = await q.selectFrom('events').select((eb) => eb.fn.max('stream_ordering').as('m')).executeTakeFirst();
    return Number(row?.m ?? 0);
  }

  /** Writes a state group: `changes` over `before` (null: `changes` is the full state). */
  createStateGroup(tx: Tx, roomId: string, before: number | null, changes: Array<[string, string]>): Promise<number> {
    return this.writeStateGroup(tx, roomId, before, changes);
  }

  async setForwardExtremities(tx: Tx, roomId: string, eventIds: string[]): Promise<void> {
    await tx.db.deleteFrom('forward_extremities').where('room_id', '=', roomId).execute();
    if (eventIds.length) {
      await tx.db
        .insertInto('forward_extremities')
        .values([...new Set(eventIds)].map((id) => ({ room_id: roomId, event_id: id })))
        .execute();
    }
  }

  /**
   * Makes `state` the room's current state (rows changed, added and removed). Member events'
   * memberships are read from `events` (or the store). Returns the keys that changed.
   */
  async replaceCurrentState(tx: Tx, roomId: string, state: StateIds): Promise<string[]> {
    const current = await this.getCurrentStateIds(roomId, tx.db);
    const changed: string[] = [];
    for (const [key, id] of state) if (current.get(key) !== id) changed.push(key);
    const removed = [...current.keys()].filter((k) => !state.has(k));
    // One cache drop per room and one for all changed members (a big room's join changes tens
    // of thousands of keys at once).
    const users: string[] = [];
    for (const list of [changed, removed]) {
      for (const key of list) {
        const [type, stateKey] = parseStateKey(key);
        if (type === 'm.room.member') users.push(stateKey);
      }
    }
    if (changed.length || removed.length) this.currentStateCache.drop(tx, roomId);
    if (users.length) {
      this.memberCache.drop(tx, roomId);
      this.userRoomsCache.dropMany(tx, users);
    }
    // In chunks: a big room's state (a join over federation) is never loaded at once. Member
    // events' memberships come from their membership rows (no event bodies read); the events
    // of those without one (soft-failed outliers) are read.
    for (let i = 0; i < changed.length; i += 500) {
      const keys = changed.slice(i, i + 500);
      const members = keys.filter((k) => parseStateKey(k)[0] === 'm.room.member').map((k) => state.get(k)!);
      const membership = new Map<string, string>();
      if (members.length) {
        const rows = await tx.db.selectFrom('room_memberships').select(['event_id', 'membership']).where('event_id', 'in', members).execute();
        for (const r of rows) membership.set(r.event_id, r.membership);
        const rest = members.filter((id) => !membership.has(id));
        if (rest.length) for (const [id, s] of await this.getEvents(rest, tx.db)) membership.set(id, String(s.event.content['membership'] ?? ''));
      }
      const rows = keys.map((key) => {
        const [type, stateKey] = parseStateKey(key);
        const id = state.get(key)!;
        return { room_id: roomId, type, state_key: stateKey, event_id: id, membership: type === 'm.room.member' ? membership.get(id) ?? '' : null };
      });
      await tx.db
        .insertInto('current_state')
        .values(rows)
        .onConflict((oc) =>
          oc.columns(['room_id', 'type', 'state_key']).doUpdateSet((eb) => ({ event_id: eb.ref('excluded.event_id'), membership: eb.ref('excluded.membership') })),
        )
        .execute();
    }
    for (const key of removed) {
      const [type, stateKey] = parseStateKey(key);
      await tx.db.deleteFrom('current_state').where('room_id', '=', roomId).where('type', '=', type).where('state_key', '=', stateKey).execute();
    }
    return [...changed, ...removed];
  }

  /** Which of these event IDs are stored (outliers included). */
  async haveEvents(ids: string[], q: Q = this.db): Promise<Set<string>> {
    return new Set((await this.getEvents(ids, q)).keys());
  }

  /** Whether an event is stored as an outlier (no known state), or undefined if unknown. */
  async isOutlier(id: string, q: Q = this.db): Promise<boolean | undefined> {
    const ev = await this.getEvent(id, q);
    return ev?.outlier;
  }

  /** The lowest stream position of any event (0 when there are none or all are positive). */
  async minStreamOrdering(q: Q = this.db): Promise<number> {
    const row = await q.selectFrom('events').select((eb) => eb.fn.min('stream_ordering').as('m')).executeTakeFirst();
    return Math.min(0, Number(row?.m ?? 0));
  }

  /** The room's oldest timeline event (lowest stream position). */
  async oldestTimelineEvent(roomId: string, q: Q = this.db): Promise<StoredEvent | undefined> {
    const row = await q
      .selectFrom('events')
      .select('event_id')
      .where('room_id', '=', roomId)
      .where('outlier', '=', 0)
      .where('timeline_anchor', 'is', null)
      .orderBy('stream_ordering', 'asc')
      .limit(1)
      .executeTakeFirst();
    return row ? this.getEvent(row.event_id, q) : undefined;
  }

  /**
   * Turns an outlier into a backfilled timeline event: a new (negative) stream position, the
   * state group of the state after it, and the state event it replaced.
   */
  async promoteOutlier(tx: Tx, eventId: string, streamOrdering: number, stateGroup: number, prevStateEventId: string | null, timelineAnchor?: number): Promise<void> {
    this.historyChanged(tx, undefined);
    this.outlierJoinedTimeline(tx, () => streamOrdering);
    await tx.db
      .updateTable('events')
      .set({ outlier: 0, stream_ordering: streamOrdering, prev_state_event_id: prevStateEventId, ...(timelineAnchor !== undefined ? { timeline_anchor: timelineAnchor } : {}) })
      .where('event_id', '=', eventId)
      .execute();
    this.stateGroupOfCache.drop(tx, eventId);
    await tx.db.deleteFrom('event_state').where('event_id', '=', eventId).execute();
    await tx.db.insertInto('event_state').values({ event_id: eventId, state_group: stateGroup }).execute();
    await tx.db.updateTable('room_memberships').set({ stream_ordering: streamOrdering }).where('event_id', '=', eventId).execute();
    this.eventCache.delete(eventId);
    tx.onCommit(() => this.eventCache.delete(eventId));
  }

  /** Turns a stored outlier into a timeline event with a state group (after fetching its state). */
  async deOutlier(tx: Tx, eventId: string, stateGroup: number): Promise<void> {
    this.historyChanged(tx, undefined);
    let position: number | undefined;
    this.outlierJoinedTimeline(tx, () => position);
    const row = await tx.db.updateTable('events').set({ outlier: 0 }).where('event_id', '=', eventId).returning('stream_ordering').executeTakeFirst();
    position = row?.stream_ordering;
    this.stateGroupOfCache.drop(tx, eventId);
    await tx.db.insertInto('event_state').values({ event_id: eventId, state_group: stateGroup }).execute();
    tx.onCommit(() => this.eventCache.delete(eventId));
  }

  private async writeStateGroup(tx: Tx, roomId: string, before: number | null, changes: Array<[string, string]>): Promise<number> {
    let prevGroup = before;
    let depth = 0;
    if (before !== null) {
      const row = await tx.db.selectFrom('state_groups').select('delta_depth').where('id', '=', before).executeTakeFirstOrThrow();
      depth = row.delta_depth + 1;
    }
    let entries: Array<[string, string]> = changes;
    if (before !== null && depth > MAX_DELTA_DEPTH) {
      const full = await this.getStateIdsAtGroup(before, tx.db);
      for (const [k, v] of changes) full.set(k, v);
      entries = [...full];
      prevGroup = null;
      depth = 0;
    }
    const { id } = await tx.db
      .insertInto('state_groups')
      .values({ room_id: roomId, prev_group: prevGroup, delta_depth: depth })
      .returning('id')
      .executeTakeFirstOrThrow();
    for (let i = 0; i < entries.length; i += 200) {
      await tx.db
        .insertInto('state_group_entries')
        .values(
          entries.slice(i, i + 200).map(([key, eventId]) => {
            const [type, stateKey] = parseStateKey(key);
            return { state_group: id, type, state_key: stateKey, event_id: eventId };
          }),
        )
        .execute();
    }
    return id;
  }

  /**
   * Writes an event with its edges, state group, current state, forward extremities,
   * membership row and transaction ID, in the caller's transaction. Returns its stream position.
   */
  async persist(tx: Tx, input: PersistInput): Promise<{ streamOrdering: number; stateGroup: number }> {
    const { event, roomId } = input;
    const isState = typeof event.state_key === 'string';
    const outlier = input.outlier ?? !input.updateCurrentState;
    const relates = event.content['m.relates_to'] as { event_id?: unknown; rel_type?: unknown } | undefined;
    this.relationWritten(relates?.event_id);
    const json = JSON.stringify(storedForm(event));
    const row: EventColumns = {
      event_id: event.event_id,
      room_id: roomId,
      type: event.type,
      state_key: isState ? event.state_key! : null,
      sender: event.sender,
      origin_server_ts: event.origin_server_ts,
      depth: event.depth,
      json,
      outlier: outlier ? 1 : 0,
      rejected: input.rejected ?? null,
      prev_state_event_id: input.prevStateEventId,
      redacted_by: null,
      redacts: event.type === 'm.room.redaction' ? redactsOf(event) : null,
      txn_id: input.txn?.txnId ?? null,
      txn_device_id: input.txn?.deviceId ?? null,
      relates_to: typeof relates?.event_id === 'string' ? relates.event_id : null,
      rel_type: typeof relates?.rel_type === 'string' ? relates.rel_type : null,
      received_ts: Date.now(),
    };
    const { stream_ordering: streamOrdering } =
      input.streamOrdering === undefined && input.timelineAnchor === undefined
        ? (await insertEventQuery.first(tx.db, ...EVENT_COLUMNS.map((c) => row[c])))!
        : await tx.db
            .insertInto('events')
            .values({
              ...(input.streamOrdering !== undefined ? { stream_ordering: input.streamOrdering } : {}),
              ...(input.timelineAnchor !== undefined ? { timeline_anchor: input.timelineAnchor } : {}),
              ...row,
            })
            .returning('stream_ordering')
            .executeTakeFirstOrThrow();

    // Local events of a shared batch: the rows nobody reads before the commit wait for its end.
    const deferred = isDeferringTx(tx)
      ? tx.deferred<DeferredEventRows>(DEFERRED_EVENT_ROWS, () => ({ edges: [], states: [], txns: [], extremities: new Map() }), flushEventRows)
      : undefined;
    const prevIds = event.prev_events.map((p) => (typeof p === 'string' ? p : p[0]));
    if (deferred) {
      for (const p of new Set(prevIds)) deferred.edges.push(event.event_id, p);
    } else if (prevIds.length === 1) {
      await insertEdgeQuery.run(tx.db, event.event_id, prevIds[0]!);
    } else if (prevIds.length) {
      await tx.db
        .insertInto('event_edges')
        .values(prevIds.map((p) => ({ event_id: event.event_id, prev_event_id: p })))
        .onConflict((oc) => oc.doNothing())
        .execute();
    }

    let stateGroup: number;
    const withState = !outlier || !!input.keepState;
    if (withState && input.stateBefore && input.stateGroupBefore !== null) {
      const base = await this.getStateIdsAtGroup(input.stateGroupBefore, tx.db);
      const removed = [...base.keys()].some((k) => !input.stateBefore!.has(k));
      const delta = [...input.stateBefore].filter(([k, v]) => base.get(k) !== v);
      if (removed) input = { ...input, stateGroupBefore: await this.writeStateGroup(tx, roomId, null, [...input.stateBefore]) };
      else if (delta.length) input = { ...input, stateGroupBefore: await this.writeStateGroup(tx, roomId, input.stateGroupBefore, delta) };
    }
    if (!withState) {
      stateGroup = -1;
    } else if (input.rejected && input.stateGroupBefore !== null) {
      stateGroup = input.stateGroupBefore;
    } else if (isState || input.stateGroupBefore === null) {
      stateGroup = await this.writeStateGroup(
        tx,
        roomId,
        input.stateGroupBefore,
        isState ? [[stateKeyOf(event.type, event.state_key!), event.event_id]] : [],
      );
    } else {
      stateGroup = input.stateGroupBefore;
    }
    if (withState) {
      if (deferred) deferred.states.push(event.event_id, stateGroup);
      else await insertEventStateQuery.run(tx.db, event.event_id, stateGroup);
    }
    if (!outlier) {
      const explicit = input.streamOrdering !== undefined;
      tx.onCommit(() => {
        this.timelineEventCommitted(roomId, event.event_id, streamOrdering, stateGroup, explicit);
        // Its readers (every member's /sync) find it without a query: the row as written
        // (hooks of later writes to it in the same commit, such as a redaction, run after this).
        const stored = JSON.parse(json) as RoomEvent;
        stored.event_id = event.event_id;
        this.eventCache.set(event.event_id, {
          event: stored,
          roomId,
          streamOrdering,
          prevStateEventId: input.prevStateEventId,
          redactedBy: null,
          txnId: input.txn?.txnId ?? null,
          txnDeviceId: input.txn?.deviceId ?? null,
          rejected: input.rejected ?? null,
          outlier: false,
          ...(input.timelineAnchor !== undefined ? { timelineAnchor: input.timelineAnchor } : {}),
        });
      });
    }

    if (input.updateCurrentState && deferred) {
      // Net changes per room: an extremity added by an earlier event of the batch and taken as
      // a prev event by a later one is never written.
      let x = deferred.extremities.get(roomId);
      if (!x) deferred.extremities.set(roomId, (x = { removed: new Set(), added: new Set() }));
      for (const p of prevIds) if (!x.added.delete(p)) x.removed.add(p);
      x.added.add(event.event_id);
    } else if (input.updateCurrentState) {
      if (prevIds.length === 1) {
        await deleteExtremityQuery.run(tx.db, roomId, prevIds[0]!);
      } else if (prevIds.length) {
        await tx.db.deleteFrom('forward_extremities').where('room_id', '=', roomId).where('event_id', 'in', prevIds).execute();
      }
      await insertExtremityQuery.run(tx.db, roomId, event.event_id);
    }
    if (input.updateCurrentState) {
      if (isState) {
        const membership = event.type === 'm.room.member' ? String(event.content['membership'] ?? '') : null;
        this.stateChanged(tx, roomId, event.type, event.state_key!);
        await tx.db
          .insertInto('current_state')
          .values({ room_id: roomId, type: event.type, state_key: event.state_key!, event_id: event.event_id, membership })
          .onConflict((oc) =>
            oc.columns(['room_id', 'type', 'state_key']).doUpdateSet({ event_id: event.event_id, membership }),
          )
          .execute();
      }
    }

    if (isState && (event.type === 'm.room.member' || event.type === 'm.room.history_visibility')) this.historyChanged(tx, roomId);
    // Rejected and soft-failed events never count as membership changes.
    if (event.type === 'm.room.member' && isState && !input.rejected && !(outlier && input.keepState)) {
      await tx.db
        .insertInto('room_memberships')
        .values({
          event_id: event.event_id,
          room_id: roomId,
          user_id: event.state_key!,
          sender: event.sender,
          membership: String(event.content['membership'] ?? ''),
          stream_ordering: streamOrdering,
          forgotten: 0,
        })
        .execute();
    }

    if (input.txn && deferred) {
      deferred.txns.push(input.txn.userId, input.txn.deviceId, txnKey(input.txn.txnId, input.txn.scope), event.event_id, Date.now());
    } else if (input.txn) {
      await insertTxnQuery.run(tx.db, input.txn.userId, input.txn.deviceId, txnKey(input.txn.txnId, input.txn.scope), event.event_id, Date.now());
    }
    return { streamOrdering, stateGroup };
  }

  /**
   * Writes many outliers (state and auth chains received over federation) in the caller's
   * transaction with a few multi-row statements per 100 events: the rows `persist` writes for an
   * outlier without state (the event, its edges, and the membership row of an accepted member
   * event). The events must not be stored yet.
   */
  async persistOutliers(tx: Tx, roomId: string, items: ReadonlyArray<{ event: RoomEvent; rejected: string | null }>): Promise<void> {
    this.historyChanged(tx, roomId);
    const now = Date.now();
    for (let i = 0; i < items.length; i += 100) {
      const part = items.slice(i, i + 100);
      const rows = await tx.db
        .insertInto('events')
        .values(
          part.map(({ event, rejected }) => {
            const relates = event.content['m.relates_to'] as { event_id?: unknown; rel_type?: unknown } | undefined;
            this.relationWritten(relates?.event_id);
            return {
              event_id: event.event_id,
              room_id: roomId,
              type: event.type,
              state_key: typeof event.state_key === 'string' ? event.state_key : null,
              sender: event.sender,
              origin_server_ts: event.origin_server_ts,
              depth: event.depth,
              json: JSON.stringify(storedForm(event)),
              outlier: 1,
              rejected,
              prev_state_event_id: null,
              redacted_by: null,
              redacts: event.type === 'm.room.redaction' ? redactsOf(event) : null,
              txn_id: null,
              txn_device_id: null,
              relates_to: typeof relates?.event_id === 'string' ? relates.event_id : null,
              rel_type: typeof relates?.rel_type === 'string' ? relates.rel_type : null,
              received_ts: now,
            };
          }),
        )
        .returning(['event_id', 'stream_ordering'])
        .execute();
      const position = new Map(rows.map((r) => [r.event_id, r.stream_ordering]));
      const edges = part.flatMap(({ event }) => event.prev_events.map((p) => ({ event_id: event.event_id, prev_event_id: typeof p === 'string' ? p : p[0] })));
      for (let j = 0; j < edges.length; j += 500) {
        await tx.db.insertInto('event_edges').values(edges.slice(j, j + 500)).onConflict((oc) => oc.doNothing()).execute();
      }
      const memberships = part
        .filter(({ event, rejected }) => event.type === 'm.room.member' && typeof event.state_key === 'string' && !rejected)
        .map(({ event }) => ({
          event_id: event.event_id,
          room_id: roomId,
          user_id: event.state_key!,
          sender: event.sender,
          membership: String(event.content['membership'] ?? ''),
          stream_ordering: position.get(event.event_id)!,
          forgotten: 0,
        }));
      if (memberships.length) await tx.db.insertInto('room_memberships').values(memberships).execute();
    }
  }

  /**
   * Accepted redactions stored for `targetId` (oldest first): a redaction can arrive before the
   * event it redacts (backfill, federation), which is then redacted as it is stored.
   */
  async redactionsOf(targetId: string, q: Q = this.db): Promise<StoredEvent[]> {
    const rows = await q
      .selectFrom('events')
      .select('event_id')
      .where('redacts', '=', targetId)
      .where('outlier', '=', 0)
      .where('rejected', 'is', null)
      .orderBy('stream_ordering')
      .execute();
    if (!rows.length) return [];
    const got = await this.getEvents(rows.map((r) => r.event_id), q);
    return rows.map((r) => got.get(r.event_id)).filter((e): e is StoredEvent => !!e);
  }

  /** Marks `targetId` as redacted by `redactionId` (the content is pruned when served). */
  async markRedacted(tx: Tx, targetId: string, redactionId: string): Promise<void> {
    await tx.db.updateTable('events').set({ redacted_by: redactionId }).where('event_id', '=', targetId).where('redacted_by', 'is', null).execute();
    tx.onCommit(() => this.eventCache.delete(targetId));
  }

  /** Events of a room between two stream positions (exclusive `from`, inclusive `to`). */
  async roomEventsBetween(
    roomId: string,
    from: number,
    to: number,
    limit: number,
    direction: 'forwards' | 'backwards',
    q: Q = this.db,
  ): Promise<StoredEvent[]> {
    const recent = q === this.db ? this.recentBetween(roomId, from, to, limit, direction) : undefined;
    if (recent) {
      const events = await this.getEvents(recent);
      return recent.map((id) => events.get(id)!).filter(Boolean);
    }
    const rows = await q
      .selectFrom('events')
      .select('event_id')
      .where('room_id', '=', roomId)
      .where('outlier', '=', 0)
      .where('stream_ordering', '>', from)
      .where('stream_ordering', '<=', to)
      .orderBy('stream_ordering', direction === 'forwards' ? 'asc' : 'desc')
      .limit(limit)
      .execute();
    const events = await this.getEvents(rows.map((r) => r.event_id), q);
    return rows.map((r) => events.get(r.event_id)!).filter(Boolean);
  }

  /**
   * Timeline events of a room with `lower < key <= upper` in timeline order (see TimelineKey):
   * /messages and /context. Events backfilled into gaps come just before their anchor.
   */
  async roomTimeline(
    roomId: string,
    lower: TimelineKey,
    upper: TimelineKey,
    limit: number,
    direction: 'forwards' | 'backwards',
    q: Q = this.db,
  ): Promise<Array<{ stored: StoredEvent; key: TimelineKey }>> {
    if (limit <= 0 || compareTimelineKeys(lower, upper) >= 0) return [];
    const order = direction === 'forwards' ? 'asc' : 'desc';
    // Ordinary events: key [s, 0].
    const plain = await q
      .selectFrom('events')
      .select(['event_id', 'stream_ordering'])
      .where('room_id', '=', roomId)
      .where('outlier', '=', 0)
      .where('timeline_anchor', 'is', null)
      .where('stream_ordering', '>', lower.minor < 0 ? lower.major - 1 : lower.major)
      .where('stream_ordering', '<=', upper.minor >= 0 ? upper.major : upper.major - 1)
      .orderBy('stream_ordering', order)
      .limit(limit)
      .execute();
    // Gap events: key [anchor, s].
    const gaps = await q
      .selectFrom('events')
      .select(['event_id', 'stream_ordering', 'timeline_anchor'])
      .where('room_id', '=', roomId)
      .where('outlier', '=', 0)
      .where('timeline_anchor', '>=', lower.major)
      .where('timeline_anchor', '<=', upper.major)
      .where((eb) => eb.or([eb('timeline_anchor', '>', lower.major), eb('stream_ordering', '>', lower.minor)]))
      .where((eb) => eb.or([eb('timeline_anchor', '<', upper.major), eb('stream_ordering', '<=', upper.minor)]))
      .orderBy('timeline_anchor', order)
      .orderBy('stream_ordering', order)
      .limit(limit)
      .execute();
    const keyed = [
      ...plain.map((r) => ({ id: r.event_id, key: { major: Number(r.stream_ordering), minor: 0 } })),
      ...gaps.map((r) => ({ id: r.event_id, key: { major: Number(r.timeline_anchor), minor: Number(r.stream_ordering) } })),
    ];
    const sign = direction === 'forwards' ? 1 : -1;
    keyed.sort((a, b) => sign * compareTimelineKeys(a.key, b.key));
    const picked = keyed.slice(0, limit);
    const events = await this.getEvents(picked.map((r) => r.id), q);
    return picked.filter((r) => events.has(r.id)).map((r) => ({ stored: events.get(r.id)!, key: r.key }));
  }

  /** Remembers prev events of `childEventId` that are missing from the timeline (a gap before it). */
  async addBackwardExtremities(tx: Tx, roomId: string, childEventId: string, missing: string[]): Promise<void> {
    if (!missing.length) return;
    await tx.db
      .insertInto('backward_extremities')
      .values(missing.map((id) => ({ room_id: roomId, event_id: id, child_event_id: childEventId })))
      .onConflict((oc) => oc.doNothing())
      .execute();
  }

  /** Forgets backward extremities that joined the timeline. */
  async removeBackwardExtremities(tx: Tx, eventIds: string[]): Promise<void> {
    for (let i = 0; i < eventIds.length; i += 500) {
      await tx.db.deleteFrom('backward_extremities').where('event_id', 'in', eventIds.slice(i, i + 500)).execute();
    }
  }

  /** The missing prev events of those of `childEventIds` that have a gap before them. */
  async backwardExtremitiesOf(childEventIds: string[], q: Q = this.db): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (let i = 0; i < childEventIds.length; i += 500) {
      const rows = await q
        .selectFrom('backward_extremities')
        .select(['child_event_id', 'event_id'])
        .where('child_event_id', 'in', childEventIds.slice(i, i + 500))
        .execute();
      for (const r of rows) out.set(r.child_event_id, [...(out.get(r.child_event_id) ?? []), r.event_id]);
    }
    return out;
  }

  /** Rooms with events after `since` (for incremental sync), limited to `roomIds`. */
  async roomsWithEventsSince(roomIds: string[], since: number, to: number): Promise<Set<string>> {
    if (roomIds.length === 0) return new Set();
    const out = new Set<string>();
    for (let i = 0; i < roomIds.length; i += 500) {
      const rows = await this.db
        .selectFrom('events')
        .select('room_id')
        .distinct()
        .where('room_id', 'in', roomIds.slice(i, i + 500))
        .where('stream_ordering', '>', since)
        .where('stream_ordering', '<=', to)
        .where('outlier', '=', 0)
        .execute();
      for (const r of rows) out.add(r.room_id);
    }
    return out;
  }

  /** The user's membership changes in (from, to]. */
  async membershipChanges(userId: string, from: number, to: number): Promise<Array<{ roomId: string; membership: string; eventId: string; streamOrdering: number }>> {
    const rows = await this.db
      .selectFrom('room_memberships')
      .select(['room_id', 'membership', 'event_id', 'stream_ordering'])
      .where('user_id', '=', userId)
      .where('stream_ordering', '>', from)
      .where('stream_ordering', '<=', to)
      .orderBy('stream_ordering')
      .execute();
    return rows.map((r) => ({ roomId: r.room_id, membership: r.membership, eventId: r.event_id, streamOrdering: r.stream_ordering }));
  }

  /** The user's last membership event in a room at or before a stream position. */
  async membershipAt(roomId: string, userId: string, at: number): Promise<{ membership: string; eventId: string; streamOrdering: number } | undefined> {
    const row = await this.db
      .selectFrom('room_memberships')
      .select(['membership', 'event_id', 'stream_ordering'])
      .where('room_id', '=', roomId)
      .where('user_id', '=', userId)
      .where('stream_ordering', '<=', at)
      .orderBy('stream_ordering', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && { membership: row.membership, eventId: row.event_id, streamOrdering: row.stream_ordering };
  }

  /**
   * State after the last event at or before a stream position in a room. Within the room's
   * latest run of events with one state (tracked as they commit), that state without a query.
   */
  async stateIdsAtStream(roomId: string, at: number): Promise<StateIds> {
    const run = this.stateRuns.get(roomId);
    if (run && at >= run.from && at <= this.committedMax) return this.getStateIdsAtGroup(run.group);
    const row = await this.db
      .selectFrom('events')
      .select('event_id')
      .where('room_id', '=', roomId)
      .where('outlier', '=', 0)
      .where('stream_ordering', '<=', at)
      .orderBy('stream_ordering', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (row) return (await this.getStateIdsAfter(row.event_id)) ?? new Map();
    // Nothing at or before `at` (a room joined over federation starts with the join, its earlier
    // state being outliers): the state before the room's first timeline event after `at`.
    const next = await this.db
      .selectFrom('events')
      .select('event_id')
      .where('room_id', '=', roomId)
      .where('outlier', '=', 0)
      .where('stream_ordering', '>', at)
      .orderBy('stream_ordering', 'asc')
      .limit(1)
      .executeTakeFirst();
    const first = next && (await this.getEvent(next.event_id));
    if (!first) return new Map();
    const state = new Map((await this.getStateIdsAfter(first.event.event_id)) ?? new Map<string, string>());
    if (typeof first.event.state_key === 'string' && !first.rejected) {
      const key = stateKeyOf(first.event.type, first.event.state_key);
      if (state.get(key) === first.event.event_id) {
        if (first.prevStateEventId) state.set(key, first.prevStateEventId);
        else state.delete(key);
      }
    }
    return state;
  }

  /**
   * Some entries of the state at a stream position (as stateIdsAtStream, in the order of
   * `keys`), read from the cached state of the room's latest run without copying the whole
   * state (sync's lazy-loaded members).
   */
  async stateIdsAtStreamOf(roomId: string, at: number, keys: readonly string[]): Promise<Array<string | undefined>> {
    const run = this.stateRuns.get(roomId);
    const state = (run && at >= run.from && at <= this.committedMax ? this.stateCache.get(run.group) : undefined) ?? (await this.stateIdsAtStream(roomId, at));
    return keys.map((k) => state.get(k));
  }

  /** Hides a left room from the user's sync (`/forget`). */
  async forgetRoom(userId: string, roomId: string): Promise<void> {
    await this.db.updateTable('room_memberships').set({ forgotten: 1 }).where('user_id', '=', userId).where('room_id', '=', roomId).execute();
  }

  async isForgotten(userId: string, roomId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('room_memberships')
      .select('forgotten')
      .where('user_id', '=', userId)
      .where('room_id', '=', roomId)
      .orderBy('stream_ordering', 'desc')
      .limit(1)
      .executeTakeFirst();
    return !!row?.forgotten;
  }

  /** Invalidate cached copies of an event (after an in-place update). */
  forget(eventId: string): void {
    this.eventCache.delete(eventId);
  }
}

/** The JSON stored for an event: the PDU without `unsigned` and without a computed event_id. */
function storedForm(event: RoomEvent): Record<string, unknown> {
  const { unsigned: _u, ...rest } = event;
  return rest;
}

/** The event a redaction redacts (top-level `redacts`, or `content.redacts` in newer room versions). */
function redactsOf(event: RoomEvent): string | null {
  if (typeof event.redacts === 'string') return event.redacts;
  const r = event.content['redacts'];
  return typeof r === 'string' ? r : null;
}
