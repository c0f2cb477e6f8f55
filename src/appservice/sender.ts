import type { Logger } from 'pino';
import type { JsonObject } from '../protocol/json.js';
import type { ClientEventFormatter } from '../services/rooms/client-events.js';
import type { AliasStore } from '../storage/stores/aliases.js';
import type { AppServiceStore, PendingTxn, ScannedEvent } from '../storage/stores/appservice.js';
import type { EventStore } from '../storage/stores/events.js';
import { AppServiceRequestError, requestAppService } from './http-client.js';
import type { AppService } from './registration.js';

export interface DeliveryOptions {
  /** Most events in one transaction (and most events scanned per step). */
  batchSize: number;
  /** First retry delay after a failed transaction; doubles up to `retryMaxMs`. */
  retryInitialMs: number;
  retryMaxMs: number;
  requestTimeoutMs: number;
}

export interface SenderDeps {
  store: AppServiceStore;
  events: EventStore;
  aliases: AliasStore;
  formatter: ClientEventFormatter;
  log: Logger;
  options: DeliveryOptions;
  now?: () => number;
  random?: () => number;
}

/** Most ephemeral entries waiting in memory for one service; older ones are dropped first. */
const MAX_PENDING_EPHEMERAL = 1000;

/** Delivery figures of one service (admin API, tests). */
export interface SenderStatus {
  position: number;
  lastTxnId: number;
  /** Transactions attempted since start (each retry counts). */
  attempts: number;
  /** Consecutive failures of the current transaction. */
  failures: number;
  delivered: number;
  /** Transactions queued and not yet acknowledged. */
  queued: number;
  lastError?: string;
}

/**
 * Pushes one application service's transactions. The durable truth is the events table plus
 * this service's stream position: a step scans events after the position, queues the
 * interesting ones as a transaction and advances the position in one database transaction,
 * then sends the oldest queued transaction until the service answers 200, retrying the same
 * transaction ID with exponential backoff and jitter, capped. When idle nothing runs: the
 * event notifier (or pushed ephemeral data) wakes it.
 */
export class TransactionSender {
  private running: Promise<void> | undefined;
  private pending = false;
  private stopped = false;
  private started = false;
  private readonly abort = new AbortController();
  private wakeSleep: (() => void) | undefined;
  private ephemeral: JsonObject[] = [];
  private toDevice: JsonObject[] = [];
  private readonly stat: SenderStatus = { position: 0, lastTxnId: 0, attempts: 0, failures: 0, delivered: 0, queued: 0 };
  /**
   * The highest event-stream position announced: events are scanned up to it only. A commit is
   * announced once it is on disk, so the service never hears of an event that may be lost here.
   */
  private announced = 0;

  constructor(
    readonly service: AppService,
    private readonly deps: SenderDeps,
  ) {}

  private get log(): Logger {
    return this.deps.log;
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Loads the stream position (a new service starts at the current end of the stream) and catches up. */
  async start(): Promise<void> {
    const max = await this.deps.events.maxStreamOrdering();
    if (max > this.announced) this.announced = max;
    const st = await this.deps.store.state(this.service.id, () => Promise.resolve(max));
    this.stat.position = st.position;
    this.stat.lastTxnId = st.lastTxnId;
    this.stat.queued = await this.deps.store.pendingCount(this.service.id);
    this.started = true;
    this.kick();
  }

  /** Events up to `position` are committed and durable: scan them. */
  eventsAnnounced(position: number): void {
    if (position > this.announced) this.announced = position;
    this.kick();
  }

  /** Something new may be there: run a delivery pass (no-op while one runs; it re-checks). */
  kick(): void {
    if (this.stopped || !this.started) return;
    this.pending = true;
    this.running ??= this.run().finally(() => {
      this.running = undefined;
      if (this.pending && !this.stopped) this.kick();
    });
  }

  /** Cuts a backoff wait short (the service said it is back, e.g. through a ping). */
  retryNow(): void {
    this.wakeSleep?.();
  }

  /** Queues ephemeral data (typing, receipts, presence) for the next transaction. */
  pushEphemeral(entries: JsonObject[]): void {
    this.ephemeral.push(...entries);
    if (this.ephemeral.length > MAX_PENDING_EPHEMERAL) this.ephemeral.splice(0, this.ephemeral.length - MAX_PENDING_EPHEMERAL);
    this.kick();
  }

  /** Queues to-device messages for the next transaction. */
  pushToDevice(messages: JsonObject[]): void {
    this.toDevice.push(...messages);
    if (this.toDevice.length > MAX_PENDING_EPHEMERAL) this.toDevice.splice(0, this.toDevice.length - MAX_PENDING_EPHEMERAL);
    this.kick();
  }

  status(): SenderStatus {
    return { ...this.stat };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.wakeSleep?.();
    await this.running?.catch(() => undefined);
  }

  private async run(): Promise<void> {
    while (!this.stopped && this.pending) {
      this.pending = false;
      try {
        for (;;) {
          if (this.stopped) return;
          const txn = await this.deps.store.oldestPending(this.service.id);
          if (txn) {
            if (!(await this.deliver(txn))) return;
            this.pending = true;
            continue;
          }
          if (!(await this.buildNext())) break;
        }
      } catch (err) {
        if (this.stopped) return;
        // A database error: wait like a failed delivery, then try again.
        this.stat.failures++;
        this.log.error({ err, appservice: this.service.id }, 'application service queue failed; retrying');
        await this.sleep(this.backoff(this.stat.failures));
        this.pending = true;
      }
    }
  }

  /** Scans the next batch of events; queues a transaction if any concern the service. False when there was nothing new. */
  private async buildNext(): Promise<boolean> {
    const { batchSize } = this.deps.options;
    const scanned = this.stat.position < this.announced ? await this.deps.store.eventsAfter(this.stat.position, this.announced, batchSize) : [];
    const ephemeral = this.ephemeral.splice(0, batchSize);
    const toDevice = this.toDevice.splice(0, batchSize);
    if (scanned.length === 0 && ephemeral.length === 0 && toDevice.length === 0) return false;
    const eventIds = await this.interesting(scanned);
    const position = scanned.length ? scanned[scanned.length - 1]!.streamOrdering : this.stat.position;
    const any = eventIds.length > 0 || ephemeral.length > 0 || toDevice.length > 0;
    try {
      const txnId = await this.deps.store.advance(this.service.id, position, any ? { eventIds, ephemeral, toDevice } : undefined, this.now());
      if (txnId !== undefined) {
        this.stat.lastTxnId = txnId;
        this.stat.queued++;
      }
    } catch (err) {
      // Not queued: keep the ephemeral data for the next attempt.
      this.ephemeral.unshift(...ephemeral);
      this.toDevice.unshift(...toDevice);
      throw err;
    }
    this.stat.position = position;
    return true;
  }

  /** The IDs of scanned events the service is interested in (application-service-api "Registration"). */
  private async interesting(scanned: ScannedEvent[]): Promise<string[]> {
    const svc = this.service;
    const roomInterest = new Map<string, Promise<boolean>>();
    const roomInteresting = (roomId: string) => {
      let p = roomInterest.get(roomId);
      if (!p) {
        p = (async () => {
          if (svc.roomInNamespace(roomId)) return true;
          if (svc.reg.namespaces.aliases.length > 0) {
            for (const a of await this.deps.aliases.forRoom(roomId)) if (svc.aliasInNamespace(a)) return true;
            const canonical = await this.deps.events.getCurrentStateEvent(roomId, 'm.room.canonical_alias', '');
            const c = canonical?.event.content;
            const aliases = [c?.['alias'], ...(Array.isArray(c?.['alt_aliases']) ? (c['alt_aliases'] as unknown[]) : [])];
            if (aliases.some((a) => typeof a === 'string' && svc.aliasInNamespace(a))) return true;
          }
          return (await this.deps.events.members(roomId, ['join'])).some((m) => svc.isInterestedInUser(m));
        })();
        roomInterest.set(roomId, p);
      }
      return p;
    };
    const out: string[] = [];
    for (const ev of scanned) {
      const direct =
        svc.isInterestedInUser(ev.sender) || (ev.type === 'm.room.member' && ev.stateKey !== null && svc.isInterestedInUser(ev.stateKey));
      if (direct || (await roomInteresting(ev.roomId))) out.push(ev.eventId);
    }
    return out;
  }

  private backoff(failures: number): number {
    const { retryInitialMs, retryMaxMs } = this.deps.options;
    const base = Math.min(retryMaxMs, retryInitialMs * 2 ** Math.min(failures - 1, 30));
    // Full jitter over the upper half: spreads retries of many services, never below half.
    return Math.round(base / 2 + ((this.deps.random ?? Math.random)() * base) / 2);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeSleep = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeSleep = done;
    });
  }

  /** Sends one transaction until it succeeds; false when stopped first. */
  private async deliver(txn: PendingTxn): Promise<boolean> {
    const body = await this.body(txn);
    while (!this.stopped) {
      this.stat.attempts++;
      try {
        await requestAppService(this.service, {
          method: 'PUT',
          path: `/_matrix/app/v1/transactions/${encodeURIComponent(String(txn.txnId))}`,
          body,
          timeoutMs: this.deps.options.requestTimeoutMs,
          signal: this.abort.signal,
        });
        await this.deps.store.acknowledge(this.service.id, txn.txnId);
        this.stat.queued = Math.max(0, this.stat.queued - 1);
        if (this.stat.failures > 0) this.log.info({ appservice: this.service.id, txn_id: txn.txnId }, 'application service reachable again');
        this.stat.failures = 0;
        this.stat.delivered++;
        delete this.stat.lastError;
        return true;
      } catch (err) {
        if (this.stopped) return false;
        this.stat.failures++;
        this.stat.lastError = (err as Error).message;
        const delay = this.backoff(this.stat.failures);
        const level = this.stat.failures === 1 || this.stat.failures % 10 === 0 ? 'warn' : 'debug';
        this.log[level](
          { appservice: this.service.id, txn_id: txn.txnId, failures: this.stat.failures, retry_in_ms: delay, err: err instanceof AppServiceRequestError ? err.message : err },
          'application service transaction failed; will retry',
        );
        await this.sleep(delay);
      }
    }
    return false;
  }

  /** The transaction body: events in client format, plus ephemeral data when the service asked for it. */
  private async body(txn: PendingTxn): Promise<JsonObject> {
    const stored = await this.deps.events.getEvents(txn.eventIds);
    const inOrder = txn.eventIds.map((id) => stored.get(id)).filter((s) => s !== undefined);
    const events = (await this.deps.formatter.format(inOrder)) as unknown as JsonObject[];
    const body: JsonObject = { events };
    if (this.service.reg.receiveEphemeral && txn.ephemeral.length > 0) {
      body['ephemeral'] = txn.ephemeral;
      body['de.sorunome.msc2409.ephemeral'] = txn.ephemeral;
    }
    if (txn.toDevice.length > 0) body['de.sorunome.msc2409.to_device'] = txn.toDevice;
    return body;
  }
}
