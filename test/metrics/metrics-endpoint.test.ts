import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../_util/server.js';
import { sampleSum } from '../_util/prom-text.js';
import { C, sendText, startMetricsServer, userWithRoom, type MetricsServer } from './_metrics.js';

const SEND_ROUTE = '/_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId';

describe.each<Engine>(['sqlite', 'postgres'])('metrics endpoint on %s', (engine) => {
  let t: MetricsServer;

  beforeAll(async () => {
    t = await startMetricsServer(engine);
  });
  afterAll(() => t?.close());

  it('serves every family in the text format, all named myelin_*, with help and type', async () => {
    const fams = await t.scrape();
    expect(fams.size).toBeGreaterThan(30);
    for (const f of fams.values()) {
      expect(f.name.startsWith('myelin_'), f.name).toBe(true);
      expect(f.help.length, f.name).toBeGreaterThan(0);
      expect(f.type, f.name).not.toBe('untyped');
    }
    for (const name of [
      'myelin_http_requests_total', 'myelin_http_request_duration_seconds', 'myelin_sync_long_polls',
      'myelin_events_persisted_total', 'myelin_messages_last_minute', 'myelin_room_messages', 'myelin_local_users',
      'myelin_devices', 'myelin_rooms', 'myelin_online_users', 'myelin_federation_transactions_in_total',
      'myelin_federation_transactions_out_total', 'myelin_federation_queue_depth', 'myelin_federation_backoff_destinations',
      'myelin_federation_pdu_processing_seconds', 'myelin_appservice_queue_depth', 'myelin_db_query_duration_seconds',
      'myelin_nodejs_eventloop_lag_seconds', 'myelin_nodejs_heap_size_used_bytes', 'myelin_process_resident_memory_bytes',
      'myelin_nodejs_gc_duration_seconds', 'myelin_tunnel_up', 'myelin_tunnel_reconnects_total',
      'myelin_process_start_time_seconds', 'myelin_build_info',
    ]) {
      expect(fams.has(name), name).toBe(true);
    }
    const info = fams.get('myelin_build_info')!.samples[0]!;
    expect(info.labels.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.value).toBe(1);
    const start = sampleSum(fams, 'myelin_process_start_time_seconds');
    expect(Math.abs(start - Date.now() / 1000)).toBeLessThan(3600);
  });

  it('registering users and sending messages moves the right counters', async () => {
    const before = await t.scrape();
    const { client, roomId } = await userWithRoom(t.clientUrl, `m1${engine}`);
    const other = await userWithRoom(t.clientUrl, `m2${engine}`);
    for (let i = 0; i < 5; i++) await sendText(client, roomId, `t${i}`);
    await sendText(other.client, other.roomId, 'x0');
    const r = await client.put(`${C}/rooms/${encodeURIComponent(roomId)}/send/m.reaction/r1`, {
      'm.relates_to': { rel_type: 'm.annotation', event_id: '$nothing', key: '👍' },
    });
    const reactions = r.status === 200 ? 1 : 0;
    // Database counts are cached for a second (concurrent readers share one query).
    await new Promise((res) => setTimeout(res, 1200));
    const after = await t.scrape();

    const delta = (name: string, labels: Record<string, string> = {}) => sampleSum(after, name, labels) - sampleSum(before, name, labels);
    expect(delta('myelin_events_persisted_total', { class: 'message' })).toBe(6);
    expect(delta('myelin_events_persisted_total', { class: 'reaction' })).toBe(reactions);
    // createRoom sends create, member, power levels, join rules, history visibility…
    expect(delta('myelin_events_persisted_total', { class: 'membership' })).toBe(2);
    expect(delta('myelin_events_persisted_total', { class: 'state' })).toBeGreaterThanOrEqual(6);
    expect(delta('myelin_local_users')).toBe(2);
    expect(delta('myelin_devices')).toBe(2);
    expect(delta('myelin_rooms')).toBe(2);
    expect(sampleSum(after, 'myelin_online_users')).toBeGreaterThanOrEqual(2);
    expect(sampleSum(after, 'myelin_messages_last_minute')).toBeGreaterThanOrEqual(6);
    // Messages per room: the busiest room first, labelled by room ID.
    expect(sampleSum(after, 'myelin_room_messages', { room_id: roomId })).toBeGreaterThanOrEqual(5);
    expect(sampleSum(after, 'myelin_room_messages', { room_id: other.roomId })).toBeGreaterThanOrEqual(1);
    // HTTP: by route template, never the raw URL.
    expect(delta('myelin_http_requests_total', { listener: 'client', method: 'PUT', route: SEND_ROUTE, status: '200' })).toBe(6 + reactions);
    expect(delta('myelin_http_request_duration_seconds_count', { listener: 'client', method: 'PUT', route: SEND_ROUTE })).toBe(6 + reactions);
    expect(delta('myelin_http_requests_total', { route: '/_matrix/client/v3/createRoom', status: '200' })).toBe(2);
    for (const f of after.values()) for (const s of f.samples) expect(s.labels.route ?? '').not.toContain(roomId);
    // Database: queries were timed.
    expect(delta('myelin_db_query_duration_seconds_count', { kind: 'insert' })).toBeGreaterThan(6);
    expect(delta('myelin_db_query_duration_seconds_count', { kind: 'select' })).toBeGreaterThan(6);
  });

  it('counts unmatched requests and error statuses without raw paths', async () => {
    const before = await t.scrape();
    await fetch(`${t.clientUrl}/_matrix/client/v3/no/such/thing/${Math.random()}`);
    await fetch(`${t.clientUrl}/_matrix/client/v3/account/whoami`);
    const after = await t.scrape();
    expect(sampleSum(after, 'myelin_http_requests_total', { route: 'unmatched', status: '404' }) - sampleSum(before, 'myelin_http_requests_total', { route: 'unmatched', status: '404' })).toBe(1);
    expect(sampleSum(after, 'myelin_http_requests_total', { route: '/_matrix/client/v3/account/whoami', status: '401' }) - sampleSum(before, 'myelin_http_requests_total', { route: '/_matrix/client/v3/account/whoami', status: '401' })).toBe(1);
  });

  it('reports sync long-polls in flight', async () => {
    const { client } = await userWithRoom(t.clientUrl, `sync${engine}`);
    const first = await client.get(`${C}/sync?timeout=0`);
    const since = first.body.next_batch as string;
    const ac = new AbortController();
    const polling = fetch(`${t.clientUrl}${C}/sync?timeout=20000&since=${encodeURIComponent(since)}`, {
      headers: { authorization: `Bearer ${client.token}` },
      signal: ac.signal,
    }).catch(() => undefined);
    let waiting = 0;
    for (let i = 0; i < 50 && waiting < 1; i++) {
      await new Promise((r) => setTimeout(r, 100));
      waiting = sampleSum(await t.scrape(), 'myelin_sync_long_polls');
    }
    ac.abort();
    await polling;
    expect(waiting).toBeGreaterThanOrEqual(1);
  });
});

describe('metrics listener with Basic auth', () => {
  let t: MetricsServer;
  beforeAll(async () => {
    t = await startMetricsServer('sqlite', { listeners: { metrics: { basic_auth: { username: 'prom', password: 'scrape-secret' } } } });
  });
  afterAll(() => t?.close());

  it('refuses scrapes without the right credentials', async () => {
    const none = await fetch(`${t.metricsUrl}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic /);
    const wrong = await fetch(`${t.metricsUrl}/metrics`, { headers: { authorization: `Basic ${Buffer.from('prom:nope').toString('base64')}` } });
    expect(wrong.status).toBe(401);
    const fams = await t.scrape(`Basic ${Buffer.from('prom:scrape-secret').toString('base64')}`);
    expect(fams.has('myelin_build_info')).toBe(true);
  });

  it('serves only metrics and health on the metrics listener', async () => {
    expect((await fetch(`${t.metricsUrl}/health`)).status).toBe(200);
    expect((await fetch(`${t.metricsUrl}/_matrix/client/versions`)).status).toBe(404);
    expect((await fetch(`${t.clientUrl}/metrics`)).status).toBe(404);
  });
});
