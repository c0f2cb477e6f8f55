import type { Metrics } from '../metrics/registry.js';

/** One point of the live stats page, read from the metrics registry. */
export interface StatsSample {
  /** Unix time, milliseconds. */
  t: number;
  messagesPerMin: number;
  messagesTotal: number;
  eventsTotal: number;
  usersOnline: number;
  users: number;
  devices: number;
  rooms: number;
  syncWaiting: number;
  fedTxnInPerMin: number;
  fedTxnOutPerMin: number;
  fedPdusInPerMin: number;
  fedPdusOutPerMin: number;
  fedQueue: number;
  fedBackoff: number;
  rssBytes: number;
  heapBytes: number;
  cpuPercent: number;
  tunnelEnabled: boolean;
  tunnelUp: boolean;
  tunnelReconnects: number;
  uptimeSeconds: number;
}

/** Raw counter readings kept beside each sample, to turn counters into rates. */
interface Raw {
  t: number;
  cpu: number;
  fedTxnIn: number;
  fedTxnOut: number;
  fedPdusIn: number;
  fedPdusOut: number;
}

export interface SamplerOptions {
  intervalMs: number;
  historySize: number;
  now?: () => number;
}

type Listener = (sample: StatsSample) => void;

/**
 * Samples the registry for the stats page while someone watches: the timer starts with the
 * first subscriber and stops with the last, so an unwatched server runs no timer at all.
 * Recent samples are kept (a bounded ring) for charts of newly opened pages.
 */
export class StatsSampler {
  private readonly listeners = new Set<Listener>();
  private readonly samples: StatsSample[] = [];
  private readonly raws: Raw[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;
  private readonly now: () => number;
  /** Start of the current run: rates never span a period when nobody watched. */
  private runStart = 0;

  constructor(
    private readonly metrics: Metrics,
    private readonly opts: SamplerOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  history(): StatsSample[] {
    return [...this.samples];
  }

  /** Adds a watcher; returns the function that removes it. */
  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    if (!this.timer) {
      this.runStart = this.now();
      this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
      void this.tick();
    }
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0) this.stop();
    };
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes a sample now and sends it to every watcher. */
  async tick(): Promise<StatsSample | undefined> {
    if (this.sampling) return undefined;
    this.sampling = true;
    try {
      const sample = await this.sample();
      for (const fn of [...this.listeners]) {
        try {
          fn(sample);
        } catch {
          /* a broken watcher must not stop the others */
        }
      }
      return sample;
    } finally {
      this.sampling = false;
    }
  }

  private async sample(): Promise<StatsSample> {
    const m = this.metrics;
    const v = async (name: string, labels?: Record<string, string>) => (await m.value(name, labels)) ?? 0;
    const t = this.now();
    // prom-client sets a group's values in one member's collect: read those members first.
    await Promise.all([v('process_cpu_user_seconds_total'), v('nodejs_heap_size_total_bytes')]);
    const [
      messagesPerMin, message, encrypted, eventsTotal, usersOnline, users, devices, rooms, syncWaiting,
      fedTxnIn, fedTxnOut, fedPdusIn, fedPdusOut, fedQueue, fedBackoff, rssBytes, heapBytes, cpu,
      tunnelEnabled, tunnelUp, tunnelReconnects, startTime,
    ] = await Promise.all([
      v('messages_last_minute'),
      v('events_persisted_total', { class: 'message' }),
      v('events_persisted_total', { class: 'encrypted' }),
      v('events_persisted_total'),
      v('online_users'),
      v('local_users'),
      v('devices'),
      v('rooms'),
      v('sync_long_polls'),
      v('federation_transactions_in_total'),
      v('federation_transactions_out_total'),
      v('federation_pdus_in_total'),
      v('federation_pdus_out_total'),
      v('federation_queue_depth'),
      v('federation_backoff_destinations'),
      v('process_resident_memory_bytes'),
      v('nodejs_heap_size_used_bytes'),
      v('process_cpu_seconds_total'),
      v('tunnel_enabled'),
      v('tunnel_up'),
      v('tunnel_reconnects_total'),
      v('process_start_time_seconds'),
    ]);
    const raw: Raw = { t, cpu, fedTxnIn, fedTxnOut, fedPdusIn, fedPdusOut };
    // Rates over the last minute of this run (or since the run started).
    const base = this.raws.find((r) => r.t >= this.runStart && r.t >= t - 60_000);
    const dtMin = base ? (t - base.t) / 60_000 : 0;
    const perMin = (now: number, then: number | undefined) => (dtMin > 0 && then !== undefined ? Math.max(0, (now - then) / dtMin) : 0);
    const prev = this.raws.length > 0 ? this.raws[this.raws.length - 1] : undefined;
    const cpuPercent = prev && prev.t >= this.runStart && t > prev.t ? Math.max(0, ((cpu - prev.cpu) * 1000 * 100) / (t - prev.t)) : 0;
    const sample: StatsSample = {
      t,
      messagesPerMin,
      messagesTotal: message + encrypted,
      eventsTotal,
      usersOnline,
      users,
      devices,
      rooms,
      syncWaiting,
      fedTxnInPerMin: perMin(fedTxnIn, base?.fedTxnIn),
      fedTxnOutPerMin: perMin(fedTxnOut, base?.fedTxnOut),
      fedPdusInPerMin: perMin(fedPdusIn, base?.fedPdusIn),
      fedPdusOutPerMin: perMin(fedPdusOut, base?.fedPdusOut),
      fedQueue,
      fedBackoff,
      rssBytes,
      heapBytes,
      cpuPercent: Math.round(cpuPercent * 10) / 10,
      tunnelEnabled: tunnelEnabled > 0,
      tunnelUp: tunnelUp > 0,
      tunnelReconnects,
      uptimeSeconds: startTime > 0 ? Math.max(0, Math.round(t / 1000 - startTime)) : 0,
    };
    this.samples.push(sample);
    this.raws.push(raw);
    while (this.samples.length > this.opts.historySize) this.samples.shift();
    while (this.raws.length > 0 && this.raws[0]!.t < t - 120_000) this.raws.shift();
    return sample;
  }
}
