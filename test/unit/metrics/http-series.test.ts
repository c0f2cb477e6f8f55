import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HttpRequestSeries } from '../../../src/metrics/http-series.js';
import { Metrics } from '../../../src/metrics/registry.js';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const NAMES = { counter: 'x_http_requests_total', histogram: 'x_http_request_duration_seconds' };
const HELP = { counter: 'Requests.', histogram: 'Durations.' };

/** The same observations through prom-client's own Counter and Histogram, and through HttpRequestSeries. */
function both(observations: Array<[string, string, string, number, number]>) {
  const own = new Registry();
  const series = new HttpRequestSeries(NAMES, HELP, BUCKETS);
  own.registerMetric(series.counter as never);
  own.registerMetric(series.histogram as never);
  const ref = new Registry();
  const counter = new Counter({ name: NAMES.counter, help: HELP.counter, labelNames: ['listener', 'method', 'route', 'status'], registers: [ref] });
  const histogram = new Histogram({ name: NAMES.histogram, help: HELP.histogram, labelNames: ['listener', 'method', 'route'], buckets: BUCKETS, registers: [ref] });
  for (const [listener, method, route, status, seconds] of observations) {
    series.record(listener, method, route, status, seconds);
    counter.inc({ listener, method, route, status: String(status) });
    histogram.observe({ listener, method, route }, seconds);
  }
  return { own, ref };
}

describe('HttpRequestSeries', () => {
  const observations: Array<[string, string, string, number, number]> = [
    ['client', 'GET', '/_matrix/client/v3/sync', 200, 0.0031],
    ['client', 'PUT', '/_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId', 200, 0.012],
    ['client', 'GET', '/_matrix/client/v3/sync', 200, 29.9],
    ['client', 'GET', '/_matrix/client/v3/sync', 401, 0.0004],
    ['federation', 'GET', 'unmatched', 404, 0.001],
    ['client', 'GET', '/_matrix/client/v3/sync', 200, 45],
    ['client', 'GET', '/_matrix/client/v3/sync', 200, 0.005],
    ['client', 'GET', '/a "quoted\\" \n route', 500, 1],
  ];

  it('exposes exactly what prom-client Counter and Histogram expose for the same requests', async () => {
    const { own, ref } = both(observations);
    expect(await own.metrics()).toBe(await ref.metrics());
    own.setContentType(Registry.OPENMETRICS_CONTENT_TYPE as never);
    ref.setContentType(Registry.OPENMETRICS_CONTENT_TYPE as never);
    expect(await own.metrics()).toBe(await ref.metrics());
  });

  it('reads like prom-client through get() (labels spread on every value)', async () => {
    const { own, ref } = both(observations);
    for (const name of [NAMES.counter, NAMES.histogram]) {
      const a = await own.getSingleMetric(name)!.get();
      const b = await ref.getSingleMetric(name)!.get();
      const norm = (v: object) => ({ exemplar: null, ...v, ...((v as { exemplar?: unknown }).exemplar ? {} : { exemplar: null }) });
      expect(a.values.map(norm)).toEqual(b.values.map(norm));
      expect({ ...a, values: [] }).toEqual({ ...b, values: [] });
    }
  });

  it('starts empty again after a reset', async () => {
    const { own } = both(observations);
    own.resetMetrics();
    expect(await own.metrics()).toBe(`# HELP ${NAMES.counter} ${HELP.counter}\n# TYPE ${NAMES.counter} counter\n\n# HELP ${NAMES.histogram} ${HELP.histogram}\n# TYPE ${NAMES.histogram} histogram\n`);
  });

  it('backs Metrics.httpRequest and Metrics.value', async () => {
    const m = new Metrics({ version: 'test' });
    m.httpRequest('client', 'GET', '/r', 200, 3);
    m.httpRequest('client', 'GET', '/r', 200, 7);
    m.httpRequest('client', 'GET', '/r', 404, 1);
    expect(await m.value('http_requests_total', { route: '/r' })).toBe(3);
    expect(await m.value('http_requests_total', { route: '/r', status: '200' })).toBe(2);
    expect(await m.value('http_request_duration_seconds_count', { route: '/r' })).toBeUndefined();
    expect(await m.text()).toContain('myelin_http_request_duration_seconds_bucket{le="0.005",listener="client",method="GET",route="/r"} 2');
    m.close();
  });
});
