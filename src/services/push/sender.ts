import type { Logger } from 'pino';
import type { JsonObject } from '../../protocol/json.js';
import type { EventStore, StoredEvent } from '../../storage/stores/events.js';
import type { PushActionRow, PusherKey, PusherState, PushStore } from '../../storage/stores/push.js';
import type { PushActions } from './push-actions.js';
import { GatewayFailedError, GatewayRefusedError, type GatewayClient, type GatewayResponse } from './gateway-client.js';
import { countsNotification, eventNotification, isEventIdOnly, type NotifyRoomInfo } from './notification.js';

/** Notifications read per query while a pusher catches up. */
const BATCH = 20;
/** Pushers delivering at the same time; others wait their turn (a message to a big room, start-up). */
const MAX_CONCURRENT = 8;

export interface PushSenderOptions {
  /** First retry delay after a failed delivery; doubles per failure up to `retryMaxMs`. */
  retryInitialMs: number;
  retryMaxMs: number;
  /** After the gateway has failed for this long, notifications are given up on instead of retried. */
  maxRetryDurationMs: number;
  /** At most one badge-only update per user per this interval. */
  badgeIntervalMs: number;
}

export interface PushSenderDeps {
  store: PushStore;
  events: EventStore;
  pushActions: PushActions;
  client: GatewayClient;
  log: Logger;
  options: PushSenderOptions;
  now?: () => number;
  random?: () => number;
}

interface PusherWorker {
  key: PusherKey;
  running?: Promise<void>;
  again: boolean;
  /** Pending retry after a failure (the only timer a pusher ever holds). */
  retryTimer?: NodeJS.Timeout;
  /** Failures in a row (for the backoff delay; not persisted, a restart retries soon). */
  attempts: number;
  badgeWanted: boolean;
  /** Waiting for a free delivery slot. */
  queued: boolean;
  /** The `unread` count the gateway last got from this server (undefined: unknown). */
  lastUnread?: number;
}

type Outcome = 'next' | 'wait' | 'gone';

const keyString = (k: PusherKey) => JSON.stringify([k.userId, k.appId, k.pushkey]);

/**
 * The wait before retry number `failures` (0 after the first failure): `initialMs` doubling
 * per failure up to `maxMs`, then scaled by a random factor in [0.5, 1) (`random` in [0, 1)).
 */
export function retryDelay(failures: number, initialMs: number, maxMs: number, random: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 40));
  return Math.max(1, Math.round(base * (0.5 + random / 2)));
}

/**
 * Sends notifications to the push gateways of `http` pushers.
 *
 * Each pusher follows the user's notifying rows of `event_push_actions` (in stream order) from
 * its own position stored on its `pushers` row. A notification is sent, then the position is
 * advanced: delivery is at-least-once (a crash between the two resends the notification after
 * the restart; gateways drop duplicates by `event_id`), and nothing is lost across restarts.
 *
 * Nothing runs while idle: a pusher is woken when evaluated actions for its user commit, when
 * its retry delay ends, or at start-up (to catch up). A failed delivery is retried with
 * exponential backoff and jitter; once the gateway has been failing for `maxRetryDurationMs`,
 * notifications are given up on (logged) rather than retried, until a delivery succeeds again.
 * Pushkeys the gateway rejects lose their pusher. After a read receipt, a counts-only update
 * is sent (rate-limited per user) when the user's unread count went down.
 */
export class PushSender {
  private readonly workers = new Map<string, PusherWorker>();
  private readonly badgeTimers = new Map<string, NodeJS.Timeout>();
  private readonly badgeLastSent = new Map<string, number>();
  private readonly queue: PusherWorker[] = [];
  private active = 0;
  private started = false;
  private stopped = false;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly log: Logger;

  constructor(private readonly deps: PushSenderDeps) {
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.log = deps.log;
  }

  /** Starts delivering: every pusher catches up from its stored position. */
  async start(): Promise<void> {
    if (this.started || this.stopped) return;
    this.started = true;
    for (const p of await this.deps.store.pushersOf()) if (p.kind === 'http') this.kick(p);
  }

  /** Stops: no new work, pending retries cancelled, requests in flight aborted and awaited. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.badgeTimers.values()) clearTimeout(t);
    this.badgeTimers.clear();
    for (const w of this.workers.values()) clearTimeout(w.retryTimer);
    this.deps.client.close();
    await Promise.allSettled([...this.workers.values()].map((w) => w.running));
  }

  /** Evaluated push actions committed: wakes the pushers of the notified users. */
  onActionsCommitted(notified: ReadonlySet<string>): void {
    if (!this.started || this.stopped || notified.size === 0) return;
    this.deps.store.pushersOf([...notified]).then(
      (list) => {
        for (const p of list) if (p.kind === 'http') this.kick(p);
      },
      (err: unknown) => this.log.error({ err }, 'reading pushers failed; they catch up with the next notification'),
    );
  }

  /** A local user's read receipt: schedules a badge update for their pushers (rate-limited). */
  onReceipt(userId: string): void {
    if (!this.started || this.stopped || this.badgeTimers.has(userId)) return;
    const wait = (this.badgeLastSent.get(userId) ?? -Infinity) + this.deps.options.badgeIntervalMs - this.now();
    if (wait <= 0) {
      this.fireBadge(userId);
      return;
    }
    this.badgeTimers.set(
      userId,
      setTimeout(() => {
        this.badgeTimers.delete(userId);
        this.fireBadge(userId);
      }, wait),
    );
  }

  /** Whether a pusher has work running or a retry pending (tests, metrics). */
  get busy(): number {
    let n = 0;
    for (const w of this.workers.values()) if (w.running || w.retryTimer) n++;
    return n;
  }

  private fireBadge(userId: string): void {
    if (this.stopped) return;
    this.badgeLastSent.set(userId, this.now());
    this.deps.store.pushersOf([userId]).then(
      (list) => {
        for (const p of list) if (p.kind === 'http') this.kick(p, true);
      },
      (err: unknown) => this.log.error({ err, userId }, 'reading pushers for a badge update failed'),
    );
  }

  private kick(key: PusherKey, badge = false): void {
    if (this.stopped) return;
    const id = keyString(key);
    let w = this.workers.get(id);
    if (!w) this.workers.set(id, (w = { key: { userId: key.userId, appId: key.appId, pushkey: key.pushkey }, again: false, attempts: 0, badgeWanted: false, queued: false }));
    if (badge) w.badgeWanted = true;
    // While waiting out a retry delay, new work waits too (it is picked up when the delay ends).
    if (w.retryTimer) return;
    if (w.running) {
      w.again = true;
      return;
    }
    if (w.queued) return;
    if (this.active >= MAX_CONCURRENT) {
      w.queued = true;
      this.queue.push(w);
      return;
    }
    this.launch(w);
  }

  private launch(w: PusherWorker): void {
    this.active++;
    w.running = this.run(w)
      .catch((err: unknown) => {
        if (!this.stopped) this.log.error({ err, userId: w.key.userId, appId: w.key.appId }, 'pusher stopped on an error; it resumes with the next notification');
      })
      .finally(() => {
        w.running = undefined;
        this.active--;
        const next = this.queue.shift();
        if (next && !this.stopped) {
          next.queued = false;
          this.launch(next);
        }
        // Woken after its last look at the stream but before it finished: look again.
        if (w.again && !w.retryTimer && this.workers.get(keyString(w.key)) === w) {
          w.again = false;
          this.kick(w.key);
        }
      });
  }

  private async run(w: PusherWorker): Promise<void> {
    do {
      w.again = false;
      await this.process(w);
    } while (w.again && !this.stopped && !w.retryTimer);
  }

  private async process(w: PusherWorker): Promise<void> {
    const p = await this.deps.store.pusher(w.key);
    if (!p || p.kind !== 'http') {
      this.workers.delete(keyString(w.key));
      return;
    }
    for (;;) {
      const rows = await this.deps.store.notificationsAfter(p.userId, p.position, BATCH);
      for (const row of rows) {
        if (this.stopped) return;
        const outcome = await this.deliver(w, p, row);
        if (outcome === 'gone') {
          this.workers.delete(keyString(w.key));
          return;
        }
        if (outcome === 'wait') return;
      }
      if (rows.length < BATCH) break;
    }
    if (w.badgeWanted && !this.stopped) {
      w.badgeWanted = false;
      await this.sendBadge(w, p);
    }
  }

  /** Delivers one notification (or skips it); advances the stored position unless it must wait. */
  private async deliver(w: PusherWorker, p: PusherState, row: PushActionRow): Promise<Outcome> {
    const { store, events, pushActions } = this.deps;
    const advance = async (failingSince: number | null) => {
      await store.advancePusher(w.key, row.streamOrdering, failingSince);
      p.position = row.streamOrdering;
      p.failingSince = failingSince;
    };
    const stored = await events.getEvent(row.eventId);
    // Nothing to say about an event that is gone, was read meanwhile, or a room the user left.
    const membership = stored ? await events.getMembership(row.roomId, p.userId) : undefined;
    if (!stored || (membership !== 'join' && membership !== 'invite') || (await pushActions.isRead(p.userId, row.roomId, row.threadId, row.streamOrdering))) {
      await advance(p.failingSince);
      return 'next';
    }
    const unread = await this.unreadCount(p.userId);
    const room = isEventIdOnly(p) ? {} : await this.roomInfo(stored);
    const ev = stored.event;
    const body = eventNotification(
      p,
      p.userId,
      {
        event_id: ev.event_id,
        room_id: row.roomId,
        type: ev.type,
        sender: ev.sender,
        ...(ev.state_key !== undefined ? { state_key: ev.state_key } : {}),
        content: stored.redactedBy ? {} : (ev.content as JsonObject),
      },
      row.actions,
      room,
      { unread },
    );
    let res: GatewayResponse;
    try {
      res = await this.deps.client.notify(String(p.data['url']), body);
    } catch (err) {
      if (this.stopped) return 'wait';
      return this.failed(w, p, row, err, advance);
    }
    w.attempts = 0;
    w.lastUnread = unread;
    if (res.rejected.includes(p.pushkey)) {
      await store.deletePusher(p.userId, p.appId, p.pushkey);
      this.log.info({ userId: p.userId, appId: p.appId }, 'the push gateway rejected the pushkey; pusher removed');
      return 'gone';
    }
    await advance(null);
    this.log.debug({ userId: p.userId, appId: p.appId, eventId: row.eventId }, 'notification pushed');
    return 'next';
  }

  private async failed(w: PusherWorker, p: PusherState, row: PushActionRow, err: unknown, advance: (failingSince: number | null) => Promise<void>): Promise<Outcome> {
    const ctx = { userId: p.userId, appId: p.appId, eventId: row.eventId, err: (err as Error).message };
    if (err instanceof GatewayRefusedError || (err instanceof GatewayFailedError && !err.retry)) {
      // Retrying cannot help (refused address, 4xx answer): this notification is dropped.
      this.log.warn(ctx, 'notification not pushed; the gateway cannot take it');
      await advance(p.failingSince);
      return 'next';
    }
    const now = this.now();
    const since = p.failingSince ?? now;
    if (p.failingSince === null) {
      await this.deps.store.setPusherFailing(w.key, now);
      p.failingSince = now;
    }
    if (now - since >= this.deps.options.maxRetryDurationMs) {
      this.log.warn({ ...ctx, failing_since: since }, 'giving up on a notification: the push gateway has been failing too long');
      await advance(since);
      return 'next';
    }
    const delay = retryDelay(w.attempts, this.deps.options.retryInitialMs, this.deps.options.retryMaxMs, this.random());
    w.attempts++;
    this.log.info({ ...ctx, retry_in_ms: delay, attempts: w.attempts }, 'pushing a notification failed; retrying later');
    w.retryTimer = setTimeout(() => {
      w.retryTimer = undefined;
      this.kick(w.key);
    }, delay);
    return 'wait';
  }

  /** Sends the user's new unread count when it went down (or is not known to the gateway). */
  private async sendBadge(w: PusherWorker, p: PusherState): Promise<void> {
    const unread = await this.unreadCount(p.userId);
    if (w.lastUnread !== undefined && unread >= w.lastUnread) return;
    try {
      const res = await this.deps.client.notify(String(p.data['url']), countsNotification(p, { unread }));
      w.lastUnread = unread;
      if (res.rejected.includes(p.pushkey)) {
        await this.deps.store.deletePusher(p.userId, p.appId, p.pushkey);
        this.workers.delete(keyString(w.key));
        this.log.info({ userId: p.userId, appId: p.appId }, 'the push gateway rejected the pushkey; pusher removed');
      }
    } catch (err) {
      // Badge updates are not retried: the next notification carries the counts again.
      if (!this.stopped) this.log.info({ userId: p.userId, appId: p.appId, err: (err as Error).message }, 'badge update not pushed');
    }
  }

  /** Unread notifications over all the user's joined rooms (the `unread` count). */
  private async unreadCount(userId: string): Promise<number> {
    let n = 0;
    for (const r of await this.deps.events.roomsForUser(userId, ['join'])) {
      n += (await this.deps.pushActions.counts(userId, r.roomId, Number.MAX_SAFE_INTEGER, false)).room.notification_count;
    }
    return n;
  }

  private async roomInfo(s: StoredEvent): Promise<NotifyRoomInfo> {
    const { events } = this.deps;
    const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
    const [member, name, alias] = await Promise.all([
      events.getCurrentStateEvent(s.roomId, 'm.room.member', s.event.sender),
      events.getCurrentStateEvent(s.roomId, 'm.room.name', ''),
      events.getCurrentStateEvent(s.roomId, 'm.room.canonical_alias', ''),
    ]);
    const info: NotifyRoomInfo = {};
    const senderDisplayName = str(member?.event.content['displayname']);
    const roomName = str(name?.event.content['name']);
    const roomAlias = str(alias?.event.content['alias']);
    if (senderDisplayName) info.senderDisplayName = senderDisplayName;
    if (roomName) info.roomName = roomName;
    if (roomAlias) info.roomAlias = roomAlias;
    return info;
  }
}
