/**
 * `http_requests_total` and `http_request_duration_seconds`, kept as plain numbers per series
 * and turned into prom-client's shape only when the registry is read.
 *
 * Every request updates both, so the update is the hot path: with prom-client's Counter and
 * Histogram each update builds a labels object, validates it and builds and hashes a string of
 * every label (the route template is long), about 3.5 µs per request. Here a request finds its
 * series through maps keyed by strings that are the same instances every time (the listener,
 * the method from Node's parser, the route template Fastify keeps) and adds to numbers.
 *
 * The objects below implement what a prom-client Registry reads from a metric (name, help, type,
 * aggregator, get(), getForPromString(), reset()), and give the same exposition as
 * prom-client's own Counter and Histogram: series in the order first seen, cumulative buckets
 * with `le` first, then `+Inf`, `_sum` and `_count`.
 */

type Labels = Record<string, string>;

interface StatusCell {
  labels: Labels;
  count: number;
}

interface RouteCell {
  labels: Labels;
  /** Requests whose duration fell in each bucket (not cumulative); the last slot is +Inf. */
  buckets: Float64Array;
  sum: number;
  count: number;
  statuses: Map<number, StatusCell>;
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
  sharedLabels?: Labels;
  exemplar?: null;
}

interface MetricData {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: MetricValue[];
  aggregator: 'sum';
}

export class HttpRequestSeries {
  /** listener → method → route → series. */
  private readonly byListener = new Map<string, Map<string, Map<string, RouteCell>>>();
  /** In the order first seen (the order prom-client exposes them in). */
  private routeCells: RouteCell[] = [];
  private statusCells: StatusCell[] = [];
  readonly counter: SeriesMetric;
  readonly histogram: SeriesMetric;

  constructor(
    names: { counter: string; histogram: string },
    help: { counter: string; histogram: string },
    private readonly bounds: readonly number[],
  ) {
    this.counter = new SeriesMetric(names.counter, help.counter, 'counter', () => this.counterValues(), () => this.reset());
    this.histogram = new SeriesMetric(names.histogram, help.histogram, 'histogram', () => this.histogramValues(names.histogram), () => this.reset());
  }

  /** Counts one answered request and its duration in seconds. */
  record(listener: string, method: string, route: string, status: number, seconds: number): void {
    let methods = this.byListener.get(listener);
    if (!methods) this.byListener.set(listener, (methods = new Map()));
    let routes = methods.get(method);
    if (!routes) methods.set(method, (routes = new Map()));
    let cell = routes.get(route);
    if (!cell) {
      cell = { labels: { listener, method, route }, buckets: new Float64Array(this.bounds.length + 1), sum: 0, count: 0, statuses: new Map() };
      routes.set(route, cell);
      this.routeCells.push(cell);
    }
    let sc = cell.statuses.get(status);
    if (!sc) {
      sc = { labels: { listener, method, route, status: String(status) }, count: 0 };
      cell.statuses.set(status, sc);
      this.statusCells.push(sc);
    }
    sc.count++;
    if (!Number.isFinite(seconds)) return;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    cell.buckets[i]!++;
    cell.sum += seconds;
    cell.count++;
  }

  private reset(): void {
    this.byListener.clear();
    this.routeCells = [];
    this.statusCells = [];
  }

  private counterValues(): MetricValue[] {
    return this.statusCells.map((c) => ({ value: c.count, labels: c.labels }));
  }

  private histogramValues(name: string): MetricValue[] {
    const out: MetricValue[] = [];
    const bucketName = `${name}_bucket`;
    for (const c of this.routeCells) {
      if (c.count === 0) continue;
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += c.buckets[i]!;
        out.push({ labels: { le: this.bounds[i]! }, sharedLabels: c.labels, value: acc, metricName: bucketName, exemplar: null });
      }
      out.push({ labels: { le: '+Inf' }, sharedLabels: c.labels, value: c.count, metricName: bucketName, exemplar: null });
      out.push({ labels: {}, sharedLabels: c.labels, value: c.sum, metricName: `${name}_sum` });
      out.push({ labels: {}, sharedLabels: c.labels, value: c.count, metricName: `${name}_count` });
    }
    return out;
  }
}

/** One metric as a prom-client Registry reads it. */
export class SeriesMetric {
  readonly aggregator = 'sum' as const;

  constructor(
    public name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    private readonly values: () => MetricValue[],
    private readonly resetAll: () => void,
  ) {}

  /** Values with shared labels apart (what the registry's text exposition reads). */
  getForPromString(): Promise<MetricData> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: this.aggregator });
  }

  /** Values with every label on each (prom-client's get()). */
  get(): Promise<MetricData> {
    const values = this.values().map(({ sharedLabels, ...v }) => (sharedLabels ? { ...v, labels: { ...v.labels, ...sharedLabels } } : v));
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  reset(): void {
    this.resetAll();
  }
}
