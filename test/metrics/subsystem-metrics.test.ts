/**
 * Federation and application-service metrics fed by the subsystems: transactions and PDUs
 * crossing between two servers, the outgoing queue and back-off while a destination is down,
 * and an application service's queue while it cannot be reached.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Myelin } from '../../src/app.js';
import { TestClient } from '../client/_client.js';
import { bodies, eventually, roomMessages, type Federation, type FedMember, twoServers } from '../_util/federation.js';
import { parsePrometheusText, sampleSum } from '../_util/prom-text.js';
import type { Engine } from '../_util/server.js';
import { freePort, Homeserver } from '../appservice/_harness.js';

const enc = encodeURIComponent;

/** What the server's /metrics endpoint would expose, parsed. */
async function scrape(server: Myelin) {
  return parsePrometheusText(await server.ctx.metrics.text());
}

async function send(c: TestClient, roomId: string, body: string): Promise<void> {
  const res = await c.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', body });
  if (res.status !== 200) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
}

describe.each<Engine>(['sqlite', 'postgres'])('federation metrics on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  let alice: TestClient;
  let bob: TestClient;
  let roomId: string;

  beforeAll(async () => {
    ({ fed, a, b, alice, bob } = await twoServers(engine));
  }, 60_000);

  afterAll(async () => {
    await fed?.close();
  });

  it('counts transactions and PDUs both ways, and times received PDUs', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', room_alias_name: 'metrics' });
    expect(created.status).toBe(200);
    roomId = created.body.room_id;
    const joined = await bob.post(`/_matrix/client/v3/join/${enc('#metrics:a.test')}`, {});
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    await send(alice, roomId, 'across');
    await eventually(async () => bodies(await roomMessages(bob, roomId)).includes('across'), 20_000, 'B to get the message');

    const onA = await eventually(async () => {
      const m = await scrape(a.server!);
      return sampleSum(m, 'myelin_federation_pdus_out_total') > 0 && m;
    }, 10_000, 'A to count the PDUs it sent');
    expect(sampleSum(onA, 'myelin_federation_transactions_out_total', { result: 'ok' })).toBeGreaterThan(0);

    const onB = await scrape(b.server!);
    expect(sampleSum(onB, 'myelin_federation_transactions_in_total', { result: 'ok' })).toBeGreaterThan(0);
    expect(sampleSum(onB, 'myelin_federation_pdus_in_total', { outcome: 'accepted' })).toBeGreaterThan(0);
    const observed = sampleSum(onB, 'myelin_federation_pdu_processing_seconds_count');
    expect(observed).toBeGreaterThan(0);
    expect(observed).toBe(sampleSum(onB, 'myelin_federation_pdus_in_total'));
    expect(sampleSum(onB, 'myelin_federation_pdu_processing_seconds_sum')).toBeGreaterThan(0);
    // Nothing left to send once everything was acknowledged.
    await eventually(async () => sampleSum(await scrape(a.server!), 'myelin_federation_queue_depth') === 0, 10_000, 'A’s queue to drain');
    expect(sampleSum(await scrape(a.server!), 'myelin_federation_backoff_destinations')).toBe(0);
  }, 60_000);

  it('shows the queue and the back-off while the destination is down', async () => {
    await b.stop();
    try {
      await send(alice, roomId, 'while b is down 1');
      await send(alice, roomId, 'while b is down 2');
      const m = await eventually(async () => {
        const s = await scrape(a.server!);
        return sampleSum(s, 'myelin_federation_backoff_destinations') > 0 && sampleSum(s, 'myelin_federation_queue_depth') >= 2 && s;
      }, 20_000, 'A to back off from B with both messages queued');
      expect(sampleSum(m, 'myelin_federation_backoff_destinations')).toBe(1);
      expect(sampleSum(m, 'myelin_federation_transactions_out_total', { result: 'error' })).toBeGreaterThan(0);
    } finally {
      await b.start();
    }
    // B is back: a request from it clears the back-off, and the queue drains.
    await send(bob, roomId, 'b is back');
    await eventually(async () => {
      const s = await scrape(a.server!);
      return sampleSum(s, 'myelin_federation_queue_depth') === 0 && sampleSum(s, 'myelin_federation_backoff_destinations') === 0;
    }, 30_000, 'A’s queue to drain after B came back');
  }, 90_000);
});

describe.each<Engine>(['sqlite', 'postgres'])('application service metrics on %s', (engine) => {
  let hs: Homeserver;

  beforeAll(async () => {
    const port = await freePort();
    hs = await Homeserver.create(engine, [
      {
        id: 'unreachable',
        url: `http://127.0.0.1:${port}`,
        as_token: 'as-token-metrics-test-00000000000',
        hs_token: 'hs-token-metrics-test-00000000000',
        sender_localpart: 'metricsbot',
        namespaces: { users: [{ regex: '@watched_.*:localhost', exclusive: false }], aliases: [], rooms: [] },
      },
    ]);
    await hs.start();
  }, 60_000);

  afterAll(async () => {
    await hs?.destroy();
  });

  it('counts transactions waiting for a service that cannot be reached', async () => {
    expect(sampleSum(await scrape(hs.server!), 'myelin_appservice_queue_depth')).toBe(0);
    const user = new TestClient(hs.url);
    await user.register('watched_one');
    const created = await user.post('/_matrix/client/v3/createRoom', { preset: 'private_chat' });
    expect(created.status).toBe(200);
    await send(user, created.body.room_id, 'for the bridge');
    await eventually(async () => sampleSum(await scrape(hs.server!), 'myelin_appservice_queue_depth') > 0, 15_000, 'the appservice queue to grow');
    expect(hs.server!.ctx.appservices.status('unreachable')!.delivered).toBe(0);
  }, 30_000);
});
