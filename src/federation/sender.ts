/**
 * Outgoing federation: per-destination persistent queues of PDUs and EDUs, sent as
 * transactions (`PUT /_matrix/federation/v1/send/{txnId}`, at most 50 PDUs and 100 EDUs) with
 * exponential backoff and jitter per destination.
 *
 * Local events reach the queues from the event stream: the sender keeps its own position in the
 * stream in the database and enqueues events after it, in the same transaction that moves the
 * position, so nothing committed is skipped across restarts and nothing is queued twice. A row
 * leaves its queue only once a transaction carrying it was acknowledged.
 */
import type { Logger } from 'pino';
import { federationForm } from '../protocol/event-hash.js';
import { serverNameOf } from '../protocol/identifiers.js';
import type { JsonObject } from '../protocol/json.js';
import { getRoomVersion } from '../protocol/room-versions.js';
import type { Database } from '../storage/db.js';
import type { EventStore } from '../storage/stores/events.js';
import type { DestinationState, FederationQueueStore } from '../storage/stores/federation-queue.js';
import type { Notifier, StreamChange } from '../streams/notifier.js';
import type { FederationClient } from './client.js';

/** Transaction limits (server-server-api "Transactions"). */
export const MAX_PDUS_PER_TXN = 50;
export const MAX_EDUS_PER_TXN = 100;
/** A destination with more queued PDUs than this gets only the newest (it fetches the gap itself). */
const MAX_QUEUED_PDUS = 500;
const STREAM_BATCH = 200;
/** How long the stream position may go unwritten while batches queue nothing. */
const POSITION_WRITE_EVERY_MS = 10_000;

export interface SenderBackoff {
  /** First retry delay (default 5 s). */
  baseMs: number;
  /** Longest delay (default 1 h). */
  maxMs: number;
}

export interface SenderDeps {
  serverName: string;
  database: Database;
  events: EventStore;
  queue: FederationQueueStore;
  client: FederationClient;
  notifier: Notifier;
  log: Logger;
  isAllowed: (server: string) => boolean;
  backoff?: Partial<SenderBackoff>;
  now?: () => number;
  random?: () => number;
}

/** What the sender reports to the metrics (set after the context is built). */
export interface SenderObserver {
  transaction(result: 'ok' | 'error', pdus: number): void;
}

export class FederationSender {
  /** Rows in the persistent queue, kept in step with it (read at start, then counted). */
  private queued = 0;
  /** The position read up to (in memory); `storedPosition` is the one last written. */
  private position: number | undefined;
  private storedPosition: number | undefined;
  private storedAt = 0;
  /** Destinations with a failure recorded and their retry time. */
  private readonly retryAt = new Map<string, number>();
  observer: SenderObserver | undefined;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly backoff: SenderBackoff;
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private pumping: Promise<void> | undefined;
  private pumpAgain = false;
  private stopped = true;
  private txnSeq = 0;
  /**
   * The highest event-stream position announced: events are read up to it only. A commit is
   * announced once it is on disk, so no event goes to another server before it is durable here.
   */
  private announced = 0;
  private readonly onChange = (change: StreamChange) => {
    if (change.stream !== 'events') return;
    if (change.position > this.announced) this.announced = change.position;
    if (this.ready) this.pumpEvents();
  };
  /** Set once start() has the stored position (a pump before it would start from the beginning). */
  private ready = false;

  constructor(private readonly deps: SenderDeps) {
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.backoff = { baseMs: deps.backoff?.baseMs ?? 5000, maxMs: deps.backoff?.maxMs ?? 3600_000 };
  }

  /** Starts following the event stream, catches up on what was committed while stopped, resumes queues. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    // Listening first: nothing announced between reading the end of the stream and listening is missed.
    this.deps.notifier.on('change', this.onChange);
    const max = await this.deps.events.maxStreamOrdering();
    if (max > this.announced) this.announced = max;
    if ((await this.deps.queue.getPosition('events')) === undefined) {
      await this.deps.database.transaction((tx) => this.deps.queue.setPosition(tx, 'events', max));
    }
    this.queued = await this.deps.queue.countAll();
    for (const d of await this.deps.queue.destinationsInBackoff()) this.retryAt.set(d.destination, d.retryAt);
    this.ready = true;
    this.pumpEvents();
    for (const d of await this.deps.queue.destinationsWithQueue()) this.wake(d);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.ready = false;
    this.deps.notifier.off('change', this.onChange);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await this.pumping?.catch(() => undefined);
    await this.storePosition().catch((err: unknown) => this.deps.log.warn({ err }, 'federation sender could not store its position'));
    await Promise.allSettled([...this.running.values()]);
  }

  /** PDUs and EDUs waiting in the persistent queue. */
  get queueDepth(): number {
    return this.queued;
  }

  /** Destinations whose next retry lies in the future. */
  backoffDestinations(now = this.now()): number {
    let n = 0;
    for (const at of this.retryAt.values()) if (at > now) n++;
    return n;
  }

  private setState(state: DestinationState): Promise<void> {
    if (state.retryAt > 0) this.retryAt.set(state.destination, state.retryAt);
    else this.retryAt.delete(state.destination);
    return this.deps.queue.setDestination(state);
  }

  /** Resolves once the event stream has been read up to now and queued (tests, shutdown). */
  async flushStream(): Promise<void> {
    while (this.pumping) await this.pumping.catch(() => undefined);
  }

  /** Servers with joined members in a room's current state, other than this one. */
  async destinationsForRoom(roomId: string): Promise<string[]> {
    const servers = new Set<string>();
    for (const m of await this.deps.events.members(roomId, ['join'])) {
      const s = serverNameOf(m);
      if (s && s !== this.deps.serverName) servers.add(s);
    }
    return [...servers].filter((s) => this.deps.isAllowed(s)).sort();
  }

  private pumpEvents(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = (async () => {
      do {
        this.pumpAgain = false;
        while (await this.pumpBatch()) {
          /* more */
        }
      } while (this.pumpAgain && !this.stopped);
    })()
      .catch((err: unknown) => this.deps.log.error({ err }, 'federation sender could not read the event stream'))
      .finally(() => {
        this.pumping = undefined;
      });
  }

  /** Writes the in-memory position if it moved without being written (on stop). */
  private async storePosition(): Promise<void> {
    const pos = this.position;
    if (pos === undefined || pos === this.storedPosition) return;
    await this.deps.database.transaction((tx) => this.deps.queue.setPosition(tx, 'events', pos));
    this.storedPosition = pos;
  }

  /** Queues one batch of local events after the sender's position; false when none were left. */
  private async pumpBatch(): Promise<boolean> {
    const { queue, database, serverName } = this.deps;
    if (this.position === undefined) this.storedPosition = this.position = (await queue.getPosition('events')) ?? 0;
    const from = this.position;
    if (from >= this.announced) return false;
    const rows = await queue.eventsAfter(from, this.announced, STREAM_BATCH);
    if (rows.length === 0) return false;
    const out: Array<{ destination: string; eventId: string }> = [];
    const destCache = new Map<string, string[]>();
    for (const r of rows) {
      if (serverNameOf(r.sender) !== serverName) continue;
      let dests = destCache.get(r.roomId);
      if (!dests) destCache.set(r.roomId, (dests = await this.destinationsForRoom(r.roomId)));
      const all = new Set(dests);
      // A membership change of a remote user also goes to that user's server.
      if (r.type === 'm.room.member' && r.stateKey) {
        const s = serverNameOf(r.stateKey);
        if (s && s !== serverName && this.deps.isAllowed(s)) all.add(s);
      }
      for (const d of all) out.push({ destination: d, eventId: r.eventId });
    }
    const last = rows[rows.length - 1]!.streamOrdering;
    // Nothing to send (no other server in these rooms): the position moves in memory only, and
    // is written with the next batch that queues something, at most POSITION_WRITE_EVERY_MS
    // later, or on stop. After a crash the unwritten batches are read again and queue nothing
    // new unless a server joined their rooms since (then it gets those events too, harmless).
    const now = this.now();
    if (out.length > 0 || now - this.storedAt >= POSITION_WRITE_EVERY_MS) {
      await database.transaction(async (tx) => {
        if (out.length > 0) await queue.enqueue(tx, out, now);
        await queue.setPosition(tx, 'events', last);
      });
      this.storedPosition = last;
      this.storedAt = now;
    }
    this.position = last;
    this.queued += out.length;
    for (const d of new Set(out.map((o) => o.destination))) this.wake(d);
    return rows.length === STREAM_BATCH;
  }

  /** Queues an existing event for some servers (events received through send_join and the like). */
  async sendEvent(eventId: string, destinations: string[]): Promise<void> {
    const dests = destinations.filter((d) => d !== this.deps.serverName && this.deps.isAllowed(d));
    await this.deps.queue.enqueue(undefined, dests.map((destination) => ({ destination, eventId })), this.now());
    this.queued += dests.length;
    for (const d of dests) this.wake(d);
  }

  /** Queues an EDU for some servers. */
  async sendEdu(destinations: Iterable<string>, eduType: string, content: JsonObject): Promise<void> {
    const edu = JSON.stringify({ edu_type: eduType, content });
    const dests = [...new Set(destinations)].filter((d) => d !== this.deps.serverName && this.deps.isAllowed(d));
    if (dests.length === 0) return;
    await this.deps.queue.enqueue(undefined, dests.map((destination) => ({ destination, edu })), this.now());
    this.queued += dests.length;
    for (const d of dests) this.wake(d);
  }

  /** A destination showed it is up (it sent us a request): forget its backoff and retry now. */
  async destinationIsUp(destination: string): Promise<void> {
    const state = await this.deps.queue.getDestination(destination);
    if (state && state.failures > 0) {
      await this.setState({ ...state, failures: 0, retryAt: 0 });
      const t = this.timers.get(destination);
      if (t) clearTimeout(t);
      this.timers.delete(destination);
      this.wake(destination);
    }
  }

  /** Starts delivering a destination's queue unless it is backing off. */
  wake(destination: string): void {
    if (this.stopped) return;
    if (this.running.has(destination)) {
      this.again.add(destination);
      return;
    }
    const run = this.deliver(destination)
      .catch((err: unknown) => this.deps.log.error({ err, destination }, 'federation delivery loop failed'))
      .finally(() => {
        this.running.delete(destination);
        if (this.again.delete(destination)) this.wake(destination);
      });
    this.running.set(destination, run);
  }

  private delayFor(failures: number): number {
    const exp = Math.min(this.backoff.maxMs, this.backoff.baseMs * 2 ** Math.min(failures - 1, 30));
    // Full jitter in [0.5, 1.5) of the delay, capped.
    return Math.min(this.backoff.maxMs, Math.round(exp * (0.5 + this.random())));
  }

  private schedule(destination: string, at: number): void {
    const prev = this.timers.get(destination);
    if (prev) clearTimeout(prev);
    const t = setTimeout(() => {
      this.timers.delete(destination);
      this.wake(destination);
    }, Math.max(0, at - this.now()));
    t.unref();
    this.timers.set(destination, t);
  }

  private async deliver(destination: string): Promise<void> {
    const { queue, events, client, log } = this.deps;
    const state = await queue.getDestination(destination);
    if (state && state.retryAt > this.now()) {
      this.schedule(destination, state.retryAt);
      return;
    }
    while (!this.stopped) {
      const dropped = await queue.trimPdus(destination, MAX_QUEUED_PDUS);
      this.queued = Math.max(0, this.queued - dropped);
      if (dropped) log.info({ destination, dropped }, 'destination fell far behind: sending only the newest events');
      const batch = await queue.peek(destination, MAX_PDUS_PER_TXN, MAX_EDUS_PER_TXN);
      if (batch.pdus.length === 0 && batch.edus.length === 0) return;
      const stored = await events.getEvents(batch.pdus.map((r) => r.eventId!));
      const versions = new Map<string, string | undefined>();
      const pdus: JsonObject[] = [];
      for (const r of batch.pdus) {
        const s = stored.get(r.eventId!);
        if (!s) continue;
        if (!versions.has(s.roomId)) versions.set(s.roomId, (await events.getRoom(s.roomId))?.roomVersion);
        const version = getRoomVersion(versions.get(s.roomId) ?? '');
        const { unsigned: _u, ...pdu } = federationForm(s.event, version);
        pdus.push(pdu as JsonObject);
      }
      const edus = batch.edus.map((r) => JSON.parse(r.edu!) as JsonObject);
      const txnId = `${this.now()}.${++this.txnSeq}`;
      try {
        const res = await client.put<{ pdus?: Record<string, { error?: string }> }>(
          destination,
          `/_matrix/federation/v1/send/${encodeURIComponent(txnId)}`,
          { origin: this.deps.serverName, origin_server_ts: this.now(), pdus, edus },
        );
        for (const [id, r] of Object.entries(res.pdus ?? {})) {
          if (r && typeof r.error === 'string') log.info({ destination, eventId: id, error: r.error }, 'destination refused a PDU');
        }
      } catch (err) {
        this.observer?.transaction('error', pdus.length);
        const failures = (state?.failures ?? 0) + 1;
        const retryAt = this.now() + this.delayFor(failures);
        await this.setState({ destination, failures, retryAt, lastSuccessTs: state?.lastSuccessTs ?? null });
        log.info({ destination, failures, retry_in_ms: retryAt - this.now(), err: (err as Error).message }, 'federation transaction failed; backing off');
        this.schedule(destination, retryAt);
        return;
      }
      this.observer?.transaction('ok', pdus.length);
      await queue.remove([...batch.pdus, ...batch.edus].map((r) => r.id));
      this.queued = Math.max(0, this.queued - batch.pdus.length - batch.edus.length);
      if (!state || state.failures > 0 || state.lastSuccessTs === null || this.now() - state.lastSuccessTs > 60_000) {
        await this.setState({ destination, failures: 0, retryAt: 0, lastSuccessTs: this.now() });
      }
    }
  }
}
