import { createRequire } from 'node:module';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { HttpRequestSeries } from './http-series.js';
import { TopRooms } from './top-rooms.js';

/** Every metric name starts with this. */
export const PREFIX = 'myelin_';

/** How events are counted: a fixed, small set of classes (bounded label values). */
export const EVENT_CLASSES = ['message', 'encrypted', 'membership', 'state', 'reaction', 'redaction', 'other'] as const;
export type EventClass = (typeof EVENT_CLASSES)[number];

/** What became of a PDU received in a transaction (`known`: already held; `error`: not processed). */
export const FEDERATION_PDU_OUTCOMES = ['accepted', 'soft_failed', 'rejected', 'known', 'error'] as const;
export type FederationPduOutcome = (typeof FEDERATION_PDU_OUTCOMES)[number];

/** The class of an event type; `message` and `encrypted` are what people call messages. */
export function eventClass(type: string, stateKey: string | undefined): EventClass {
  if (type === 'm.room.member') return 'membership';
  if (stateKey !== undefined) return 'state';
  switch (type) {
    case 'm.room.message':
    case 'm.sticker':
      return 'message';
    case 'm.room.encrypted':
      return 'encrypted';
    case 'm.reaction':
      return 'reaction';
    case 'm.room.redaction':
      return 'redaction';
    default:
      return 'other';
  }
}

export function isMessageClass(c: EventClass): boolean {
  return c === 'message' || c === 'encrypted';
}

/** Counts from the database, read when the metrics are collected (see MetricsOptions.counts). */
export interface ServerCounts {
  users: number;
  devices: number;
  rooms: number;
  onlineUsers: number;
}

export interface MetricsOptions {
  version: string;
  /** How many rooms `myelin_room_messages` reports (the busiest since start). */
  topRooms?: number;
  /** Reads the database counts; called at most once per `countsCacheMs`. */
  counts?: () => Promise<ServerCounts>;
  countsCacheMs?: number;
  /** Sync long-polls in flight (read on collect). */
  syncWaiting?: () => number;
  /** How long the event-loop delay monitor keeps running after the last read. */
  loopMonitorIdleMs?: number;
  now?: () => number;
}

type SourceFn = () => number;

/** The moving window behind `myelin_messages_last_minute`: 60 one-second buckets, cleared lazily (no timer). */
class MinuteWindow {
  private readonly buckets = new Float64Array(60);
  private readonly stamps = new Float64Array(60).fill(-1);

  add(nowMs: number, n = 1): void {
    const sec = Math.floor(nowMs / 1000);
    const i = sec % 60;
    if (this.stamps[i] !== sec) {
      this.stamps[i] = sec;
      this.buckets[i] = 0;
    }
    this.buckets[i]! += n;
  }

  total(nowMs: number): number {
    const sec = Math.floor(nowMs / 1000);
    let sum = 0;
    for (let i = 0; i < 60; i++) if (this.stamps[i]! > sec - 60) sum += this.buckets[i]!;
    return sum;
  }
}

/**
 * The event-loop delay histogram runs only while someone reads it (a Prometheus scrape or
 * the stats page), and stops `idleMs` after the last read: an idle server has no 10 ms timer.
 */
class LoopDelayMonitor {
  private histogram: IntervalHistogram | undefined;
  private stopTimer: NodeJS.Timeout | undefined;

  constructor(private readonly idleMs: number) {}

  get running(): boolean {
    return this.histogram !== undefined;
  }

  /** Returns the delays seen since the previous read (undefined on the first read), and resets. */
  read(): { p50: number; p99: number; max: number; mean: number } | undefined {
    const h = this.histogram;
    let out: { p50: number; p99: number; max: number; mean: number } | undefined;
    if (h && h.count > 0) {
      out = { p50: h.percentile(50) / 1e9, p99: h.percentile(99) / 1e9, max: h.max / 1e9, mean: h.mean / 1e9 };
      h.reset();
    }
    if (!h) {
      this.histogram = monitorEventLoopDelay({ resolution: 20 });
      this.histogram.enable();
    }
    clearTimeout(this.stopTimer);
    this.stopTimer = setTimeout(() => this.stop(), this.idleMs);
    this.stopTimer.unref();
    return out;
  }

  stop(): void {
    clearTimeout(this.stopTimer);
    this.stopTimer = undefined;
    this.histogram?.disable();
    this.histogram = undefined;
  }
}

/** Time until a setImmediate callback runs: the event loop's lag right now. */
function measureLag(): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve) => setImmediate(() => resolve(Number(process.hrtime.bigint() - start) / 1e9)));
}

// prom-client's default metrics, except its event-loop monitor (which keeps a 10 ms timer
// running forever); Myelin's own LoopDelayMonitor replaces it.
const DEFAULT_METRIC_MODULES = [
  'processCpuTotal',
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
  'gc',
];

function registerDefaultMetrics(registry: Registry): boolean {
  const require = createRequire(import.meta.url);
  type Module = (registry: Registry, config: { prefix: string }) => void;
  let modules: Module[];
  try {
    modules = DEFAULT_METRIC_MODULES.map((m) => require(`prom-client/lib/metrics/${m}`) as Module);
  } catch {
    collectDefaultMetrics({ register: registry, prefix: PREFIX });
    return false;
  }
  for (const m of modules) m(registry, { prefix: PREFIX });
  return true;
}

/**
 * The server's metrics: one prom-client registry, every metric named `myelin_*`. Subsystems
 * update them through the fields (`metrics.federationTxnOut.inc({ result: 'ok' })`) or give a
 * gauge a function read on collect (`metrics.source(metrics.federationQueueDepth, () => n)`).
 * Nothing here runs a timer: counts are computed when the registry is read.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly version: string;

  // HTTP
  /** `http_requests_total` and `http_request_duration_seconds` (updated on every request: see HttpRequestSeries). */
  readonly http: HttpRequestSeries;
  readonly syncWaiting: Gauge;

  // Events and rooms
  readonly eventsPersisted: Counter<'class'>;
  readonly messagesLastMinute: Gauge;
  readonly roomMessages: Gauge<'room_id'>;
  readonly localUsers: Gauge;
  readonly devices: Gauge;
  readonly rooms: Gauge;
  readonly onlineUsers: Gauge;

  // Federation and appservices (updated by those subsystems)
  readonly federationTxnIn: Counter<'result'>;
  readonly federationTxnOut: Counter<'result'>;
  readonly federationPdusIn: Counter<'outcome'>;
  readonly federationPdusOut: Counter;
  readonly federationQueueDepth: Gauge;
  readonly federationBackoffDestinations: Gauge;
  readonly federationPduProcessing: Histogram;
  readonly federationJoinProgress: Gauge<'phase'>;
  readonly appserviceQueueDepth: Gauge;

  // Storage
  readonly dbQueryDuration: Histogram<'kind'>;
  readonly dbQueryErrors: Counter<'kind'>;

  // Tunnel (updated by the tunnel client)
  readonly tunnelEnabled: Gauge;
  readonly tunnelUp: Gauge;
  readonly tunnelReconnects: Counter;

  readonly buildInfo: Gauge<'version' | 'node_version'>;

  private readonly sources = new Map<Gauge, SourceFn>();
  private readonly minute = new MinuteWindow();
  private readonly topRooms: TopRooms;
  private readonly loop: LoopDelayMonitor;
  private readonly now: () => number;
  private countsCache: { at: number; value: Promise<ServerCounts> } | undefined;

  constructor(private readonly opts: MetricsOptions) {
    this.version = opts.version;
    this.now = opts.now ?? Date.now;
    this.topRooms = new TopRooms(Math.max(1000, (opts.topRooms ?? 10) * 20));
    this.loop = new LoopDelayMonitor(opts.loopMonitorIdleMs ?? 120_000);
    const registers = [this.registry];
    const sources = this.sources;
    const sourcedGauge = (name: string, help: string): Gauge =>
      new Gauge({
        name: PREFIX + name,
        help,
        registers,
        collect(this: Gauge) {
          const fn = sources.get(this);
          if (fn) this.set(fn());
        },
      });
    const readCounts = () => this.readCounts();
    const counts = (pick: (c: ServerCounts) => number) =>
      async function (this: Gauge) {
        const c = await readCounts();
        if (c) this.set(pick(c));
      };

    this.http = new HttpRequestSeries(
      { counter: PREFIX + 'http_requests_total', histogram: PREFIX + 'http_request_duration_seconds' },
      {
        counter: 'HTTP requests answered, by listener, method, route template and status code.',
        histogram: 'Time to answer HTTP requests, by listener, method and route template (long-polls included).',
      },
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    );
    this.registry.registerMetric(this.http.counter as never);
    this.registry.registerMetric(this.http.histogram as never);
    this.syncWaiting = sourcedGauge('sync_long_polls', 'Sync long-polls waiting for something to happen.');
    if (opts.syncWaiting) this.sources.set(this.syncWaiting, opts.syncWaiting);

    this.eventsPersisted = new Counter({
      name: PREFIX + 'events_persisted_total',
      help: `Room events persisted, by class (${EVENT_CLASSES.join(', ')}).`,
      labelNames: ['class'],
      registers,
    });
    for (const c of EVENT_CLASSES) this.eventsPersisted.inc({ class: c }, 0);
    const minute = this.minute;
    const now = this.now;
    this.messagesLastMinute = new Gauge({
      name: PREFIX + 'messages_last_minute',
      help: 'Messages (m.room.message, m.sticker, m.room.encrypted) persisted in the last 60 seconds.',
      registers,
      collect(this: Gauge) {
        this.set(minute.total(now()));
      },
    });
    const topRooms = this.topRooms;
    const topN = opts.topRooms ?? 10;
    this.roomMessages = new Gauge({
      name: PREFIX + 'room_messages',
      help: `Messages persisted since start in the ${topN} busiest rooms (only those rooms are labelled).`,
      labelNames: ['room_id'],
      registers,
      collect(this: Gauge<'room_id'>) {
        this.reset();
        for (const [roomId, n] of topRooms.top(topN)) this.set({ room_id: roomId }, n);
      },
    });
    this.localUsers = new Gauge({ name: PREFIX + 'local_users', help: 'Local accounts (not deactivated).', registers, collect: counts((c) => c.users) });
    this.devices = new Gauge({ name: PREFIX + 'devices', help: 'Devices of local accounts.', registers, collect: counts((c) => c.devices) });
    this.rooms = new Gauge({ name: PREFIX + 'rooms', help: 'Rooms known to the server.', registers, collect: counts((c) => c.rooms) });
    this.onlineUsers = new Gauge({
      name: PREFIX + 'online_users',
      help: 'Local users whose client was seen in the last 5 minutes.',
      registers,
      collect: counts((c) => c.onlineUsers),
    });

    this.federationTxnIn = new Counter({
      name: PREFIX + 'federation_transactions_in_total',
      help: 'Federation transactions received, by result (ok, error).',
      labelNames: ['result'],
      registers,
    });
    this.federationTxnOut = new Counter({
      name: PREFIX + 'federation_transactions_out_total',
      help: 'Federation transactions sent, by result (ok, error).',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['ok', 'error']) {
      this.federationTxnIn.inc({ result }, 0);
      this.federationTxnOut.inc({ result }, 0);
    }
    this.federationPdusIn = new Counter({
      name: PREFIX + 'federation_pdus_in_total',
      help: 'PDUs received in federation transactions, by outcome (accepted, soft_failed, rejected, known, error).',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of FEDERATION_PDU_OUTCOMES) this.federationPdusIn.inc({ outcome }, 0);
    this.federationPdusOut = new Counter({ name: PREFIX + 'federation_pdus_out_total', help: 'PDUs sent over federation (counted once per destination).', registers });
    this.federationQueueDepth = sourcedGauge('federation_queue_depth', 'PDUs and EDUs waiting to be sent to other servers.');
    this.federationBackoffDestinations = sourcedGauge('federation_backoff_destinations', 'Destinations in back-off after failed sends.');
    this.federationPduProcessing = new Histogram({
      name: PREFIX + 'federation_pdu_processing_seconds',
      help: 'Time to check and persist one received PDU.',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    });
    this.federationJoinProgress = new Gauge({
      name: PREFIX + 'federation_join_progress_events',
      help: 'State and auth chain events of the latest room joined over federation, by phase (received, checked, persisted); done is 1 once its state is stored.',
      labelNames: ['phase'],
      registers,
    });
    for (const phase of ['received', 'checked', 'persisted', 'done']) this.federationJoinProgress.set({ phase }, 0);
    this.appserviceQueueDepth = sourcedGauge('appservice_queue_depth', 'Transactions waiting to be pushed to application services.');

    this.dbQueryDuration = new Histogram({
      name: PREFIX + 'db_query_duration_seconds',
      help: 'Database query time, by kind (select, insert, update, delete, raw, other).',
      labelNames: ['kind'],
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    this.dbQueryErrors = new Counter({
      name: PREFIX + 'db_query_errors_total',
      help: 'Database queries that failed, by kind.',
      labelNames: ['kind'],
      registers,
    });

    this.tunnelEnabled = sourcedGauge('tunnel_enabled', '1 when a tunnel is configured, else 0.');
    this.tunnelUp = sourcedGauge('tunnel_up', '1 while the tunnel is connected, else 0.');
    this.tunnelEnabled.set(0);
    this.tunnelUp.set(0);
    this.tunnelReconnects = new Counter({ name: PREFIX + 'tunnel_reconnects_total', help: 'Tunnel reconnections.', registers });

    this.buildInfo = new Gauge({
      name: PREFIX + 'build_info',
      help: 'Always 1; the labels tell the Myelin and Node.js versions.',
      labelNames: ['version', 'node_version'],
      registers,
    });
    this.buildInfo.set({ version: opts.version, node_version: process.versions.node }, 1);

    const ownLoopMetrics = registerDefaultMetrics(this.registry);
    if (ownLoopMetrics) this.registerLoopMetrics();
  }

  private registerLoopMetrics(): void {
    const registers = [this.registry];
    const loop = this.loop;
    const p50 = new Gauge({ name: PREFIX + 'nodejs_eventloop_lag_p50_seconds', help: 'Median event-loop delay since the previous scrape.', registers });
    const p99 = new Gauge({ name: PREFIX + 'nodejs_eventloop_lag_p99_seconds', help: '99th percentile event-loop delay since the previous scrape.', registers });
    const max = new Gauge({ name: PREFIX + 'nodejs_eventloop_lag_max_seconds', help: 'Largest event-loop delay since the previous scrape.', registers });
    const mean = new Gauge({ name: PREFIX + 'nodejs_eventloop_lag_mean_seconds', help: 'Mean event-loop delay since the previous scrape.', registers });
    new Gauge({
      name: PREFIX + 'nodejs_eventloop_lag_seconds',
      help: 'Event-loop lag measured at scrape time (time for a setImmediate callback to run).',
      registers,
      async collect(this: Gauge) {
        const d = loop.read();
        if (d) {
          p50.set(d.p50);
          p99.set(d.p99);
          max.set(d.max);
          mean.set(d.mean);
        }
        this.set(await measureLag());
      },
    });
  }

  /** Whether the event-loop delay monitor is running (it stops after an idle period). */
  get loopMonitorRunning(): boolean {
    return this.loop.running;
  }

  /** Gives a gauge a function read every time the registry is collected. */
  source(gauge: Gauge, fn: SourceFn | undefined): void {
    if (fn) this.sources.set(gauge, fn);
    else this.sources.delete(gauge);
  }

  /** Counts one persisted room event (the notifier's change listener calls this). */
  eventPersisted(roomId: string, type: string, stateKey: string | undefined): void {
    const c = eventClass(type, stateKey);
    this.eventsPersisted.inc({ class: c });
    if (isMessageClass(c)) {
      this.minute.add(this.now());
      this.topRooms.add(roomId);
    }
  }

  /** Records a database query (the storage query observer calls this). */
  dbQuery(kind: string, durationMs: number, ok: boolean): void {
    this.dbQueryDuration.observe({ kind }, durationMs / 1000);
    if (!ok) this.dbQueryErrors.inc({ kind });
  }

  /** Records an answered HTTP request. */
  httpRequest(listener: string, method: string, route: string, status: number, durationMs: number): void {
    this.http.record(listener, method, route, status, durationMs / 1000);
  }

  private readCounts(): Promise<ServerCounts | undefined> {
    const read = this.opts.counts;
    if (!read) return Promise.resolve(undefined);
    const now = this.now();
    if (!this.countsCache || now - this.countsCache.at >= (this.opts.countsCacheMs ?? 1000)) {
      const value = read();
      this.countsCache = { at: now, value };
      value.catch(() => {
        if (this.countsCache?.value === value) this.countsCache = undefined;
      });
    }
    return this.countsCache.value;
  }

  /** The exposition text (Prometheus text format). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Sum of a metric's values whose labels include `labels` (undefined if no such metric). */
  async value(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
    const metric = this.registry.getSingleMetric(PREFIX + name);
    if (!metric) return undefined;
    const data = await metric.get();
    let sum = 0;
    let found = false;
    for (const v of data.values) {
      if ((v as { metricName?: string }).metricName !== undefined && (v as { metricName?: string }).metricName !== PREFIX + name) continue;
      const l = v.labels as Record<string, string | number>;
      if (Object.entries(labels).every(([k, want]) => String(l[k]) === want)) {
        sum += v.value;
        found = true;
      }
    }
    return found ? sum : data.values.length === 0 ? 0 : undefined;
  }

  /** Stops the event-loop monitor (server shutdown). */
  close(): void {
    this.loop.stop();
  }
}
