import type { Logger } from 'pino';
import { stateKeyOf, type RoomEvent } from '../../protocol/event.js';
import { serverNameOf } from '../../protocol/identifiers.js';
import { levelOf, notificationLevel, powerLevelsFromState, type PowerLevels } from '../../protocol/power-levels.js';
import { PushEvaluation, preparePushEvent, type CompiledRule, type PushAction, type PushEvent } from '../../protocol/push-rules.js';
import type { Database, Tx } from '../../storage/db.js';
import { isDeferringTx, type EventStore, type StoredEvent } from '../../storage/stores/events.js';
import type { PushActionRow, PushStore } from '../../storage/stores/push.js';
import type { ReceiptStore } from '../../storage/stores/receipts.js';
import { LruCache } from '../../util/lru.js';
import { KeyedMutex } from '../../util/mutex.js';
import type { PushRulesService } from './push-rules.js';
import { threadOf } from './threads.js';

const BATCH = 200;
/** (user, room) pairs whose unread counts are kept between syncs. */
const COUNTS_CACHE_SIZE = 20_000;

/** Rows and evaluation position of a batch of local events, written at the end of its transaction. */
interface DeferredPushRows {
  rows: PushActionRow[];
  progress: number | undefined;
}

/** The actions of the sender's own mark. */
const NO_ACTIONS: readonly PushAction[] = Object.freeze([]);
const NO_ACTIONS_JSON = '[]';
/** Thrown by an evaluation that asks for the power levels before they are read (they are read, and it runs again). */
const LEVELS_NEEDED = new Error('power levels needed');

/**
 * What is known of one user's counts in one room: `version` moves whenever a receipt of theirs
 * there lands or a row arrives out of order; `lastRow` is at least the position of every row
 * of theirs there. `cached` holds the counts per thread up to `to`, kept up to date as newer
 * rows land (a notifying row adds one, their own event clears its thread).
 */
interface CountsEntry {
  version: number;
  lastRow: number;
  cached?: { to: number; perThread: Map<string, Counts> };
}

export interface Counts {
  notification_count: number;
  highlight_count: number;
}

export interface RoomCounts {
  /** The whole room, or only the main timeline when threads are counted apart. */
  room: Counts;
  /** Per thread root (only when asked for), threads with nothing unread left out. */
  threads?: Record<string, Counts>;
}

export interface PushActionsDeps {
  serverName: string;
  database: Database;
  events: EventStore;
  store: PushStore;
  receipts: ReceiptStore;
  rules: PushRulesService;
  log: Logger;
}

/**
 * Evaluates local users' push rules against events and derives notification counts.
 *
 * Durability: evaluation follows the event stream from a position stored in the database
 * (`push_actions_progress`). Local events are evaluated before they are written and their
 * `event_push_actions` rows and the new position are written in the event's own transaction
 * (`prepareLocal`), so a /sync woken by the event never waits for evaluation. Events written
 * elsewhere (received over federation) are evaluated right after their writer's turn of the
 * event-stream lock (`settle`) and, before counts are read, up to the position being read — so
 * counts shown with an event always include it, and an event committed just before a crash is
 * evaluated when the server comes back. Counts are derived from those rows and the user's
 * receipts when read (kept per user and room until a row or receipt of theirs there moves
 * them), so a receipt resets them without any further bookkeeping.
 */
export class PushActions {
  private position: number | undefined;
  /** The highest position a waiting catchUp asked for, and whether one asked for the end. */
  private wanted = 0;
  private wantEnd = false;
  private readonly lock = new KeyedMutex();
  private readonly committedListeners: Array<(position: number, notified: ReadonlySet<string>) => void> = [];
  /**
   * Whether every event written so far is evaluated (or being evaluated in its own write):
   * only then may a local event's write move the stored position. False until the first
   * `settle`, and while events are written by someone else (federation).
   */
  private clean = false;
  private readonly countsCache = new LruCache<string, CountsEntry>(COUNTS_CACHE_SIZE);
  /** The highest position of any committed row. */
  private maxRow = 0;
  private stopped = false;

  constructor(private readonly deps: PushActionsDeps) {}

  /** The evaluated position (every event up to it has its rows), once known. */
  get evaluatedPosition(): number | undefined {
    return this.position;
  }

  /**
   * Stops evaluating (before the database closes): runs not yet started do nothing, and this
   * resolves once the one in progress has finished. What is left is evaluated at the next start.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.lock.run('events', () => Promise.resolve());
  }

  /** Events are about to be written by someone who does not evaluate them (under the stream lock). */
  unsettle(): void {
    this.clean = false;
  }

  /**
   * Evaluates every event written so far. Called holding the event-stream lock (no event is
   * written meanwhile), so afterwards local writes may move the stored position again.
   */
  async settle(): Promise<void> {
    this.clean = false;
    await this.catchUp();
    this.clean = true;
  }

  /**
   * Evaluates a local event before it is written and returns what its write must do: insert
   * the rows once the event has a stream position and, when every earlier event is evaluated,
   * move the stored position to it in the same transaction. `stateAfter` is the room state
   * including the event. Reads happen here, outside the write: the writer's transaction must
   * not wait for other queries (SQLite has one connection).
   */
  async prepareLocal(roomId: string, event: RoomEvent, stateAfter: ReadonlyMap<string, string>): Promise<(tx: Tx, streamOrdering: number) => Promise<void>> {
    let rows: PushActionRow[] = [];
    try {
      let joined = await this.deps.events.members(roomId, ['join']);
      if (event.type === 'm.room.member' && typeof event.state_key === 'string') {
        const target = event.state_key;
        const joins = event.content['membership'] === 'join';
        if (joins && !joined.includes(target)) joined = [...joined, target];
        if (!joins && joined.includes(target)) joined = joined.filter((u) => u !== target);
      }
      rows = await this.evaluateEvent(event, roomId, false, joined, stateAfter);
    } catch (err) {
      this.deps.log.error({ err, eventId: event.event_id }, 'push rule evaluation failed; the event does not notify');
    }
    return async (tx, streamOrdering) => {
      // The rows are this write's alone: a retried write (its batch failed) places them again.
      for (const r of rows) r.streamOrdering = streamOrdering;
      const advance = this.clean && this.position !== undefined;
      if (isDeferringTx(tx)) {
        // Written with the rest of the batch's rows, once, at its end.
        const d = tx.deferred<DeferredPushRows>(this, () => ({ rows: [], progress: undefined }), (t, x) => this.flushDeferred(t, x));
        for (const r of rows) d.rows.push(r);
        if (advance) d.progress = Math.max(d.progress ?? 0, streamOrdering);
      } else {
        if (rows.length) await this.deps.store.insertActions(tx, rows);
        if (advance) await this.deps.store.setProgress(tx, streamOrdering);
      }
      tx.onCommit(() => {
        if (advance) this.position = Math.max(this.position!, streamOrdering);
        this.rowsCommitted(advance ? streamOrdering : undefined, rows);
      });
    };
  }

  private async flushDeferred(tx: Tx, d: DeferredPushRows): Promise<void> {
    if (d.rows.length) await this.deps.store.insertActions(tx, d.rows);
    if (d.progress !== undefined) await this.deps.store.setProgress(tx, d.progress);
  }

  /** After rows commit: counts caches of their users move, and listeners hear of it. */
  private rowsCommitted(position: number | undefined, rows: readonly PushActionRow[]): void {
    const notified = new Set<string>();
    for (const r of rows) {
      if (r.streamOrdering > this.maxRow) this.maxRow = r.streamOrdering;
      this.rowLanded(r);
      if (r.notif && !r.own) notified.add(r.userId);
    }
    if (position === undefined && notified.size === 0) return;
    for (const fn of this.committedListeners) {
      try {
        fn(position ?? this.position ?? 0, notified);
      } catch (err) {
        this.deps.log.error({ err }, 'push actions listener failed');
      }
    }
  }

  private rowLanded(r: PushActionRow): void {
    const e = this.countsCache.get(countsKey(r.userId, r.roomId));
    if (!e) return;
    const c = e.cached;
    if (c && r.streamOrdering > e.lastRow && c.to >= e.lastRow) {
      // Newer than everything known and counted: the counts move by this row alone.
      if (r.own) c.perThread.delete(r.threadId);
      else if (r.notif) {
        const t = c.perThread.get(r.threadId) ?? { notification_count: 0, highlight_count: 0 };
        c.perThread.set(r.threadId, { notification_count: t.notification_count + 1, highlight_count: t.highlight_count + (r.highlight ? 1 : 0) });
      }
      c.to = r.streamOrdering;
    } else {
      e.version++;
      e.cached = undefined;
    }
    e.lastRow = Math.max(e.lastRow, r.streamOrdering);
  }

  /** A receipt of the user's in the room moved: their counts there are read again. */
  receiptChanged(userId: string, roomId: string): void {
    const e = this.countsCache.get(countsKey(userId, roomId));
    if (!e) return;
    e.version++;
    e.cached = undefined;
  }

  /**
   * Calls `fn` after each batch of evaluated actions commits, with the new evaluation position
   * and the users that got a notifying action in the batch (the push sender wakes on it).
   */
  onCommitted(fn: (position: number, notified: ReadonlySet<string>) => void): void {
    this.committedListeners.push(fn);
  }

  /**
   * Evaluates every event up to stream position `to` (default: the end of the stream). Calls
   * waiting for a run in progress are served together: the next run goes up to the highest
   * position asked for meanwhile, so a burst of events is evaluated and committed in batches
   * rather than one transaction per event.
   */
  catchUp(to?: number): Promise<void> {
    if (to !== undefined && this.position !== undefined && this.position >= to) return Promise.resolve();
    if (to === undefined) this.wantEnd = true;
    else this.wanted = Math.max(this.wanted, to);
    return this.lock.run('events', async () => {
      if (this.stopped) return;
      const { store, events, database } = this.deps;
      this.position ??= await store.progress();
      let target = this.wanted;
      if (this.wantEnd) {
        this.wantEnd = false;
        target = Math.max(target, await events.maxStreamOrdering());
      }
      while (this.position < target && !this.stopped) {
        const batch = await store.eventsBetween(this.position, target, BATCH);
        const end = batch.length < BATCH ? target : batch[batch.length - 1]!.streamOrdering;
        const stored = await events.getEvents(batch.map((b) => b.eventId));
        const rows: PushActionRow[] = [];
        for (const b of batch) {
          const s = stored.get(b.eventId);
          if (!s) continue;
          try {
            rows.push(...(await this.evaluate(s)));
          } catch (err) {
            this.deps.log.error({ err, eventId: b.eventId }, 'push rule evaluation failed; the event does not notify');
          }
        }
        await database.transaction(async (tx) => {
          await store.insertActions(tx, rows);
          await store.setProgress(tx, end);
        });
        // Local writes may have moved it further meanwhile.
        this.position = Math.max(this.position, end);
        this.rowsCommitted(end, rows);
      }
    });
  }

  /** The push action rows of one stored event: one per notified local member, and the sender's own mark. */
  private async evaluate(s: StoredEvent): Promise<PushActionRow[]> {
    const { events } = this.deps;
    const ev = s.event;
    const joined = await events.members(s.roomId, ['join']);
    // The state after the event is read only when someone is to be notified.
    const state = async () => (await events.getStateIdsAfter(ev.event_id)) ?? (await events.getCurrentStateIds(s.roomId));
    const rows = await this.evaluateEvent(ev, s.roomId, !!s.redactedBy, joined, state);
    for (const r of rows) r.streamOrdering = s.streamOrdering;
    return rows;
  }

  /**
   * The push action rows of an event given the room's joined members and its state after the
   * event (for power levels, read only when a rule asks for the sender's level), with stream
   * position 0 (set when it is known).
   */
  private async evaluateEvent(
    ev: RoomEvent,
    roomId: string,
    redacted: boolean,
    joined: readonly string[],
    stateAfter: ReadonlyMap<string, string> | (() => Promise<ReadonlyMap<string, string>>),
  ): Promise<PushActionRow[]> {
    const { events, rules, serverName } = this.deps;
    const local = (u: string) => serverNameOf(u) === serverName;
    const thread = await threadOf(events, ev);
    const eventId = ev.event_id;
    const ts = ev.origin_server_ts;
    // Rows as plain literals of one shape: `{ ...base, userId, … }` (properties added to a spread
    // copy) cost microseconds per row on Node 20.
    const out: PushActionRow[] = [];
    if (local(ev.sender)) {
      out.push({ userId: ev.sender, eventId, roomId, streamOrdering: 0, threadId: thread, notif: false, highlight: false, own: true, actions: NO_ACTIONS, actionsJson: NO_ACTIONS_JSON, ts });
    }

    // `joined` holds each member once.
    const recipients: string[] = [];
    for (const u of joined) if (u !== ev.sender && local(u)) recipients.push(u);
    const invited = ev.type === 'm.room.member' && ev.content['membership'] === 'invite' ? ev.state_key : undefined;
    if (invited && local(invited) && invited !== ev.sender && !recipients.includes(invited)) recipients.push(invited);
    if (recipients.length === 0) return out;

    // Power levels as of the event (for sender_notification_permission), read when first asked for.
    let levels: PowerLevels | undefined;
    const levelsOrThrow = (): PowerLevels => {
      if (!levels) throw LEVELS_NEEDED;
      return levels;
    };
    // Prepared once: every recipient's rules read the same properties of the same event.
    const pushEvent: PushEvent = { ...(ev as unknown as PushEvent), room_id: roomId };
    const evaluation = new PushEvaluation(
      preparePushEvent(redacted ? { ...pushEvent, content: {} } : pushEvent),
      joined.length,
      () => levelOf(levelsOrThrow(), ev.sender),
      (key) => notificationLevel(levelsOrThrow(), key),
    );
    for (const userId of recipients) {
      const rs = rules.compiledCached(userId) ?? (await rules.getCompiled(userId));
      let match: CompiledRule | undefined;
      if (evaluation.knows(rs)) match = evaluation.match(rs, userId);
      else {
        // Only rules with contains_display_name need the member event (one read per recipient).
        const displayName = rs.usesDisplayName ? await this.displayNameGetter(roomId, userId) : undefined;
        try {
          match = evaluation.match(rs, userId, displayName);
        } catch (err) {
          if (err !== LEVELS_NEEDED) throw err;
          levels = await this.powerLevels(ev, stateAfter);
          match = evaluation.match(rs, userId, displayName);
        }
      }
      if (!match || !match.notify) continue;
      out.push({ userId, eventId, roomId, streamOrdering: 0, threadId: thread, notif: true, highlight: match.highlight, own: false, actions: match.actions, actionsJson: match.actionsJson, ts });
    }
    return out;
  }

  /** The power levels as of the event (`stateAfter` includes it; a local event is not stored yet). */
  private async powerLevels(ev: RoomEvent, stateAfter: ReadonlyMap<string, string> | (() => Promise<ReadonlyMap<string, string>>)): Promise<PowerLevels> {
    const ids = typeof stateAfter === 'function' ? await stateAfter() : stateAfter;
    const wanted = new Map<string, string>();
    for (const k of [stateKeyOf('m.room.create', ''), stateKeyOf('m.room.power_levels', '')]) {
      const id = ids.get(k);
      if (id) wanted.set(k, id);
    }
    const loaded = await this.deps.events.loadStateEvents(new Map([...wanted].filter(([, id]) => id !== ev.event_id)));
    for (const [k, id] of wanted) if (id === ev.event_id) loaded.set(k, ev);
    return powerLevelsFromState(loaded);
  }

  private async displayNameGetter(roomId: string, userId: string): Promise<() => string | undefined> {
    const member = await this.deps.events.getCurrentStateEvent(roomId, 'm.room.member', userId);
    const name = member?.event.content['displayname'];
    return () => (typeof name === 'string' && name ? name : undefined);
  }

  /**
   * The user's unread counts in a room up to stream position `to`. An event is read when a
   * receipt (m.read or m.read.private, unthreaded or for its thread) or the user's own later
   * event in the same thread is at or after it.
   */
  async counts(userId: string, roomId: string, to: number, byThread: boolean): Promise<RoomCounts> {
    const key = countsKey(userId, roomId);
    let entry = this.countsCache.get(key);
    const hit = entry?.cached;
    // Valid while no receipt of theirs there moved and every row of theirs up to `to` is counted.
    if (hit && hit.to <= to && entry!.lastRow <= hit.to) return shapeCounts(hit.perThread, byThread);
    if (!entry) {
      // Rows written before the entry existed lie at or below what was evaluated or written.
      entry = { version: 0, lastRow: this.position === undefined ? Number.MAX_SAFE_INTEGER : Math.max(this.position, this.maxRow) };
      this.countsCache.set(key, entry);
    }
    const version = entry.version;
    const perThread = await this.countsUncached(userId, roomId, to);
    if (this.countsCache.get(key) === entry && entry.version === version && (!entry.cached || entry.cached.to < to)) {
      entry.cached = { to, perThread: new Map([...perThread].map(([t, c]) => [t, { ...c }])) };
    }
    return shapeCounts(perThread, byThread);
  }

  /** Counts per thread (threads with nothing unread left out) up to `to`, from the database. */
  private async countsUncached(userId: string, roomId: string, to: number): Promise<Map<string, Counts>> {
    const { store, receipts } = this.deps;
    const read = await receipts.readReceipts(userId, roomId);
    let unthreaded = 0;
    for (const r of read) if (r.threadId === '') unthreaded = Math.max(unthreaded, r.eventStreamOrdering);
    // A thread's mark matters only past the unthreaded receipt: own events before it are not read.
    const marks = await store.ownMarks(userId, roomId, unthreaded);
    for (const r of read) {
      if (r.threadId !== '') marks.set(r.threadId, Math.max(marks.get(r.threadId) ?? 0, r.eventStreamOrdering));
    }
    const perThread = new Map<string, Counts>();
    for (const c of await store.countsAfter(userId, roomId, unthreaded, to)) {
      perThread.set(c.threadId, { notification_count: c.notifications, highlight_count: c.highlights });
    }
    for (const [threadId, mark] of marks) {
      if (mark <= unthreaded || !perThread.has(threadId)) continue;
      const [c] = await store.countsAfter(userId, roomId, mark, to, threadId);
      if (c) perThread.set(threadId, { notification_count: c.notifications, highlight_count: c.highlights });
      else perThread.delete(threadId);
    }
    return perThread;
  }

  /** Whether the user has read the event at this position (for GET /notifications). */
  async isRead(userId: string, roomId: string, threadId: string, streamOrdering: number): Promise<boolean> {
    for (const r of await this.deps.receipts.readReceipts(userId, roomId)) {
      if ((r.threadId === '' || r.threadId === threadId) && streamOrdering <= r.eventStreamOrdering) return true;
    }
    // Or the user's own event in the thread at or after it.
    return this.deps.store.hasOwnEventFrom(userId, roomId, threadId, streamOrdering);
  }
}

function countsKey(userId: string, roomId: string): string {
  return `${userId}\u0000${roomId}`;
}

/** The room's counts (all threads summed, or the main timeline and each thread apart). */
function shapeCounts(perThread: ReadonlyMap<string, Counts>, byThread: boolean): RoomCounts {
  if (!byThread) {
    const room: Counts = { notification_count: 0, highlight_count: 0 };
    for (const c of perThread.values()) {
      room.notification_count += c.notification_count;
      room.highlight_count += c.highlight_count;
    }
    return { room };
  }
  const threads: Record<string, Counts> = {};
  for (const [t, c] of perThread) if (t !== 'main') threads[t] = { ...c };
  const main = perThread.get('main');
  return { room: main ? { ...main } : { notification_count: 0, highlight_count: 0 }, threads };
}

export type { RoomEvent };
