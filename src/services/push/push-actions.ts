import type { Logger } from 'pino';
import { stateKeyOf, type RoomEvent } from '../../protocol/event.js';
import { serverNameOf } from '../../protocol/identifiers.js';
import { levelOf, notificationLevel, powerLevelsFromState, type PowerLevels } from '../../protocol/power-levels.js';
import { actionsHighlight, actionsNotify, evaluatePushRules, type PushEvent } from '../../protocol/push-rules.js';
import type { Database } from '../../storage/db.js';
import type { EventStore, StoredEvent } from '../../storage/stores/events.js';
import type { PushActionRow, PushStore } from '../../storage/stores/push.js';
import type { ReceiptStore } from '../../storage/stores/receipts.js';
import { KeyedMutex } from '../../util/mutex.js';
import type { PushRulesService } from './push-rules.js';
import { threadOf } from './threads.js';

const BATCH = 200;

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
 * (`push_actions_progress`), writing the resulting `event_push_actions` rows and the new
 * position in one transaction. It runs after each event commit and, before counts are read,
 * up to the position being read — so counts shown with an event always include it, and an
 * event committed just before a crash is evaluated when the server comes back. Counts are
 * never stored: they are derived from those rows and the user's receipts when read, so a
 * receipt resets them without any further bookkeeping.
 */
export class PushActions {
  private position: number | undefined;
  /** The highest position a waiting catchUp asked for, and whether one asked for the end. */
  private wanted = 0;
  private wantEnd = false;
  private readonly lock = new KeyedMutex();
  private readonly committedListeners: Array<(position: number, notified: ReadonlySet<string>) => void> = [];

  constructor(private readonly deps: PushActionsDeps) {}

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
      const { store, events, database } = this.deps;
      this.position ??= await store.progress();
      let target = this.wanted;
      if (this.wantEnd) {
        this.wantEnd = false;
        target = Math.max(target, await events.maxStreamOrdering());
      }
      while (this.position < target) {
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
        this.position = end;
        const notified = new Set(rows.filter((r) => r.notif && !r.own).map((r) => r.userId));
        for (const fn of this.committedListeners) {
          try {
            fn(end, notified);
          } catch (err) {
            this.deps.log.error({ err }, 'push actions listener failed');
          }
        }
      }
    });
  }

  /** The push action rows of one event: one per notified local member, and the sender's own mark. */
  private async evaluate(s: StoredEvent): Promise<PushActionRow[]> {
    const { events, rules, serverName } = this.deps;
    const ev = s.event;
    const local = (u: string) => serverNameOf(u) === serverName;
    const joined = await events.members(s.roomId, ['join']);
    const thread = await threadOf(events, ev);
    const base = { eventId: ev.event_id, roomId: s.roomId, streamOrdering: s.streamOrdering, threadId: thread, ts: ev.origin_server_ts };
    const out: PushActionRow[] = [];
    if (local(ev.sender)) out.push({ ...base, userId: ev.sender, notif: false, highlight: false, own: true, actions: [] });

    const recipients = new Set(joined.filter((u) => u !== ev.sender && local(u)));
    if (ev.type === 'm.room.member' && ev.content['membership'] === 'invite' && ev.state_key && local(ev.state_key) && ev.state_key !== ev.sender) {
      recipients.add(ev.state_key);
    }
    if (recipients.size === 0) return out;

    // Power levels as of the event (for sender_notification_permission).
    const ids = (await events.getStateIdsAfter(ev.event_id)) ?? (await events.getCurrentStateIds(s.roomId));
    const wanted = new Map<string, string>();
    for (const k of [stateKeyOf('m.room.create', ''), stateKeyOf('m.room.power_levels', '')]) {
      const id = ids.get(k);
      if (id) wanted.set(k, id);
    }
    const levels: PowerLevels = powerLevelsFromState(await events.loadStateEvents(wanted));
    const pushEvent: PushEvent = { ...(ev as unknown as PushEvent), room_id: s.roomId };
    const redacted = !!s.redactedBy;
    for (const userId of recipients) {
      const rs = await rules.get(userId);
      // Only rules with contains_display_name need the member event (one read per recipient).
      const usesName = [...rs.override, ...rs.underride].some((r) => r.enabled && r.conditions?.some((c) => c.kind === 'contains_display_name'));
      const displayName = usesName ? await this.displayNameGetter(s.roomId, userId) : undefined;
      const match = evaluatePushRules(rs, redacted ? { ...pushEvent, content: {} } : pushEvent, {
        userId,
        roomMemberCount: joined.length,
        displayName,
        senderPowerLevel: () => levelOf(levels, ev.sender),
        notificationPowerLevel: (key) => notificationLevel(levels, key),
      });
      if (!match || !actionsNotify(match.actions)) continue;
      out.push({ ...base, userId, notif: true, highlight: actionsHighlight(match.actions), own: false, actions: match.actions });
    }
    return out;
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
    const { store, receipts } = this.deps;
    const marks = await store.ownMarks(userId, roomId);
    let unthreaded = 0;
    for (const r of await receipts.readReceipts(userId, roomId)) {
      if (r.threadId === '') unthreaded = Math.max(unthreaded, r.eventStreamOrdering);
      else marks.set(r.threadId, Math.max(marks.get(r.threadId) ?? 0, r.eventStreamOrdering));
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
    const sum = (list: Counts[]): Counts => ({
      notification_count: list.reduce((a, c) => a + c.notification_count, 0),
      highlight_count: list.reduce((a, c) => a + c.highlight_count, 0),
    });
    if (!byThread) return { room: sum([...perThread.values()]) };
    const threads: Record<string, Counts> = {};
    for (const [t, c] of perThread) if (t !== 'main') threads[t] = c;
    return { room: perThread.get('main') ?? { notification_count: 0, highlight_count: 0 }, threads };
  }

  /** Whether the user has read the event at this position (for GET /notifications). */
  async isRead(userId: string, roomId: string, threadId: string, streamOrdering: number): Promise<boolean> {
    const marks = await this.deps.store.ownMarks(userId, roomId);
    let mark = marks.get(threadId) ?? 0;
    for (const r of await this.deps.receipts.readReceipts(userId, roomId)) {
      if (r.threadId === '' || r.threadId === threadId) mark = Math.max(mark, r.eventStreamOrdering);
    }
    return streamOrdering <= mark;
  }
}

export type { RoomEvent };
