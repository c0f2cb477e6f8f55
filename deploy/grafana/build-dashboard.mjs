// Writes myelin.json, the Grafana dashboard over Myelin's metrics (docs/metrics.md):
//   node deploy/grafana/build-dashboard.mjs deploy/grafana/myelin.json
// Every query is checked against a real Prometheus by test/integration/prometheus.test.ts.
import { writeFileSync } from 'node:fs';
const I = 'instance=~"$instance"';
const R = '$__rate_interval';
let id = 1;
let y = 0;
const panels = [];
const ds = { type: 'prometheus', uid: '${datasource}' };
function row(title) { panels.push({ type: 'row', title, id: id++, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] }); y += 1; }
let x = 0;
function place(w, h) { if (x + w > 24) { x = 0; y += h; } const g = { h, w, x, y }; x += w; if (x >= 24) { x = 0; y += h; } return g; }
function flush() { if (x > 0) { x = 0; y += 8; } }
function stat(title, expr, unit = 'short', opts = {}) {
  panels.push({ type: 'stat', title, id: id++, datasource: ds, gridPos: place(4, 4),
    fieldConfig: { defaults: { unit, color: { mode: 'thresholds' }, thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] }, ...(opts.mappings ? { mappings: opts.mappings } : {}) }, overrides: [] },
    options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: opts.graph ?? 'area', textMode: opts.textMode ?? 'auto', justifyMode: 'auto', orientation: 'auto' },
    targets: [{ refId: 'A', datasource: ds, expr, legendFormat: opts.legend ?? '', instant: false }] });
}
function ts(title, targets, unit = 'short', w = 12, desc) {
  panels.push({ type: 'timeseries', title, id: id++, datasource: ds, gridPos: place(w, 8), ...(desc ? { description: desc } : {}),
    fieldConfig: { defaults: { unit, custom: { drawStyle: 'line', lineWidth: 2, fillOpacity: 10, showPoints: 'never' } }, overrides: [] },
    options: { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
    targets: targets.map(([expr, legendFormat], i) => ({ refId: String.fromCharCode(65 + i), datasource: ds, expr, legendFormat })) });
}
row('Overview');
stat('Version', `myelin_build_info{${I}}`, 'none', { legend: '{{version}}', textMode: 'name', graph: 'none' });
stat('Uptime', `time() - myelin_process_start_time_seconds{${I}}`, 's', { graph: 'none' });
stat('Local users', `myelin_local_users{${I}}`);
stat('Users online', `myelin_online_users{${I}}`);
stat('Rooms', `myelin_rooms{${I}}`);
stat('Tunnel', `myelin_tunnel_up{${I}} + 2 * (1 - myelin_tunnel_enabled{${I}})`, 'none', { graph: 'none', mappings: [{ type: 'value', options: { '0': { text: 'DOWN', color: 'red' }, '1': { text: 'UP', color: 'green' }, '2': { text: 'off', color: 'text' } } }] });
flush();
row('Messages and clients');
ts('Messages per minute', [[`sum by (instance) (rate(myelin_events_persisted_total{class=~"message|encrypted",${I}}[${R}])) * 60`, '{{instance}}']], 'short');
ts('Events persisted per second, by class', [[`sum by (class) (rate(myelin_events_persisted_total{${I}}[${R}]))`, '{{class}}']], 'ops');
ts('Busiest rooms (messages since start)', [[`topk(10, myelin_room_messages{${I}})`, '{{room_id}}']], 'short');
ts('Users online, devices, sync long-polls', [
  [`myelin_online_users{${I}}`, 'online users'],
  [`myelin_devices{${I}}`, 'devices'],
  [`myelin_sync_long_polls{${I}}`, 'sync long-polls'],
], 'short');
flush();
row('HTTP');
ts('Requests per second, by route', [[`topk(15, sum by (route) (rate(myelin_http_requests_total{${I}}[${R}])))`, '{{route}}']], 'reqps');
ts('Responses per second, by status', [[`sum by (status) (rate(myelin_http_requests_total{${I}}[${R}]))`, '{{status}}']], 'reqps');
ts('Latency p95 by route (sync excluded)', [[`histogram_quantile(0.95, sum by (le, route) (rate(myelin_http_request_duration_seconds_bucket{route!~".*/sync",${I}}[${R}])))`, '{{route}}']], 's');
ts('Server errors (5xx) per second', [[`sum(rate(myelin_http_requests_total{status=~"5..",${I}}[${R}])) or vector(0)`, '5xx']], 'reqps');
flush();
row('Federation and application services');
ts('Federation transactions per second', [
  [`sum by (result) (rate(myelin_federation_transactions_in_total{${I}}[${R}]))`, 'in {{result}}'],
  [`sum by (result) (rate(myelin_federation_transactions_out_total{${I}}[${R}]))`, 'out {{result}}'],
], 'ops');
ts('Federation PDUs per second', [
  [`rate(myelin_federation_pdus_in_total{${I}}[${R}])`, 'in'],
  [`rate(myelin_federation_pdus_out_total{${I}}[${R}])`, 'out'],
], 'ops');
ts('Queues and back-off', [
  [`myelin_federation_queue_depth{${I}}`, 'federation queue'],
  [`myelin_federation_backoff_destinations{${I}}`, 'destinations in back-off'],
  [`myelin_appservice_queue_depth{${I}}`, 'appservice queue'],
], 'short');
ts('PDU processing time p50 / p95', [
  [`histogram_quantile(0.5, sum by (le) (rate(myelin_federation_pdu_processing_seconds_bucket{${I}}[${R}])))`, 'p50'],
  [`histogram_quantile(0.95, sum by (le) (rate(myelin_federation_pdu_processing_seconds_bucket{${I}}[${R}])))`, 'p95'],
], 's');
flush();
row('Database');
ts('Query time p95 by kind', [[`histogram_quantile(0.95, sum by (le, kind) (rate(myelin_db_query_duration_seconds_bucket{${I}}[${R}])))`, '{{kind}}']], 's');
ts('Queries per second by kind, errors', [
  [`sum by (kind) (rate(myelin_db_query_duration_seconds_count{${I}}[${R}]))`, '{{kind}}'],
  [`sum(rate(myelin_db_query_errors_total{${I}}[${R}])) or vector(0)`, 'errors'],
], 'ops');
flush();
row('Process');
ts('Memory', [
  [`myelin_process_resident_memory_bytes{${I}}`, 'RSS'],
  [`myelin_nodejs_heap_size_used_bytes{${I}}`, 'heap used'],
  [`myelin_nodejs_heap_size_total_bytes{${I}}`, 'heap total'],
], 'bytes', 8);
ts('CPU', [[`rate(myelin_process_cpu_seconds_total{${I}}[${R}])`, 'CPU']], 'percentunit', 8);
ts('Event-loop delay', [
  [`myelin_nodejs_eventloop_lag_p99_seconds{${I}}`, 'p99'],
  [`myelin_nodejs_eventloop_lag_max_seconds{${I}}`, 'max'],
  [`myelin_nodejs_eventloop_lag_seconds{${I}}`, 'at scrape'],
], 's', 8);
ts('GC time per second, by kind', [[`sum by (kind) (rate(myelin_nodejs_gc_duration_seconds_sum{${I}}[${R}]))`, '{{kind}}']], 'percentunit', 8);
ts('Tunnel', [
  [`myelin_tunnel_up{${I}}`, 'up'],
  [`increase(myelin_tunnel_reconnects_total{${I}}[${R}])`, 'reconnects'],
], 'short', 8);
ts('Open file descriptors', [[`myelin_process_open_fds{${I}}`, 'open fds']], 'short', 8);
flush();

const dashboard = {
  __requires: [
    { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
    { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
    { type: 'panel', id: 'timeseries', name: 'Time series', version: '' },
    { type: 'panel', id: 'stat', name: 'Stat', version: '' },
  ],
  title: 'Myelin',
  uid: 'myelin-homeserver',
  description: 'Myelin Matrix homeserver: messages, users, HTTP, federation, database and process metrics (metric reference: docs/metrics.md).',
  tags: ['matrix', 'myelin'],
  editable: true,
  graphTooltip: 1,
  schemaVersion: 39,
  version: 1,
  time: { from: 'now-6h', to: 'now' },
  refresh: '30s',
  timezone: '',
  annotations: { list: [] },
  links: [],
  templating: { list: [
    { name: 'datasource', type: 'datasource', query: 'prometheus', label: 'Data source', hide: 0, current: {} },
    { name: 'instance', label: 'Instance', type: 'query', datasource: ds, query: { query: 'label_values(myelin_build_info, instance)', refId: 'instance' }, definition: 'label_values(myelin_build_info, instance)', includeAll: true, multi: true, allValue: '.*', refresh: 2, hide: 0, current: {} },
  ] },
  panels,
};
writeFileSync(process.argv[2], JSON.stringify(dashboard, null, 2) + '\n');
console.log(panels.length, 'panels');
