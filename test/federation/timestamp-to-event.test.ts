/**
 * timestamp_to_event across servers: the federation endpoint (who may ask, what it answers) and
 * the client endpoint of a server that joined a room late, which asks the other servers in the
 * room for the history it does not hold and fetches the event they name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FederationHttpError } from '../../src/federation/errors.js';
import type { FederationClient } from '../../src/federation/client.js';
import { SpecClient } from '../client/_spec-client.js';
import type { TestClient } from '../client/_client.js';
import { expectMatchesSpec } from '../_util/openapi.js';
import { registerOn, twoServers, type Federation, type FedMember } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sent {
  id: string;
  ts: number;
}

async function send(c: TestClient, roomId: string, body: string): Promise<Sent> {
  const res = await c.put(`${C}/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', body });
  if (res.status !== 200) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
  const ev = await c.get(`${C}/rooms/${enc(roomId)}/event/${enc(res.body.event_id)}`);
  // Distinct timestamps for the events that follow.
  await sleep(15);
  return { id: res.body.event_id, ts: ev.body.origin_server_ts };
}

/** A signed federation request; the answer validated against the spec. */
async function ask(from: FederationClient, to: string, roomId: string, ts: number, dir: string): Promise<{ status: number; body: any }> {
  const path = `/_matrix/federation/v1/timestamp_to_event/${enc(roomId)}`;
  try {
    const body = await from.get<any>(to, path, { query: { ts, dir } });
    expectMatchesSpec('GET', path, 200, body);
    return { status: 200, body };
  } catch (err) {
    if (!(err instanceof FederationHttpError)) throw err;
    expectMatchesSpec('GET', path, err.status, err.body);
    return { status: err.status, body: err.body };
  }
}

describe.each<Engine>(['sqlite', 'postgres'])('timestamp_to_event over federation on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  let c: FedMember;
  let alice: TestClient;
  let bob: TestClient;
  let fromB: FederationClient;
  let fromC: FederationClient;

  beforeAll(async () => {
    ({ fed, a, b, alice, bob } = await twoServers(engine));
    c = await fed.add('c.test');
    await registerOn(c, 'carol');
    fromB = b.server!.ctx.federation.client;
    fromC = c.server!.ctx.federation.client;
  }, 90_000);

  afterAll(async () => {
    await fed?.close();
  });

  it('the federation endpoint answers a server with a joined member, and refuses one without', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const m1 = await send(alice, roomId, 'one');
    const m2 = await send(alice, roomId, 'two');
    const m3 = await send(alice, roomId, 'three');
    expect((await bob.post(`${C}/join/${enc(roomId)}?server_name=a.test`, {})).status).toBe(200);

    expect((await ask(fromB, 'a.test', roomId, m2.ts, 'f')).body).toEqual({ event_id: m2.id, origin_server_ts: m2.ts });
    expect((await ask(fromB, 'a.test', roomId, m2.ts - 1, 'b')).body).toEqual({ event_id: m1.id, origin_server_ts: m1.ts });
    expect((await ask(fromB, 'a.test', roomId, m3.ts + 1, 'f')).body.event_id).not.toBe(m3.id);
    const none = await ask(fromB, 'a.test', roomId, Date.now() + 3_600_000, 'f');
    expect(none.status).toBe(404);
    expect(none.body.errcode).toBe('M_NOT_FOUND');
    expect((await ask(fromB, 'a.test', roomId, m1.ts, 'x')).status).toBe(400);
    expect((await ask(fromB, 'a.test', roomId, Number.NaN, 'f')).status).toBe(400);

    // C has no member in the room (nor does B in the private one): refused.
    expect((await ask(fromC, 'a.test', roomId, m2.ts, 'f')).status).toBe(403);
    const priv = (await alice.post(`${C}/createRoom`, { preset: 'private_chat' })).body.room_id as string;
    const secret = await send(alice, priv, 'secret');
    const refused = await ask(fromB, 'a.test', priv, secret.ts, 'b');
    expect(refused.status).toBe(403);
    expect(refused.body.errcode).toBe('M_FORBIDDEN');
    expect((await ask(fromC, 'a.test', '!unknown:a.test', secret.ts, 'b')).status).toBe(404);

    // A world_readable room can be looked into by any server.
    const open = (await alice.post(`${C}/createRoom`, {
      preset: 'private_chat',
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'world_readable' } }],
    })).body.room_id as string;
    const shown = await send(alice, open, 'for all');
    expect((await ask(fromC, 'a.test', open, shown.ts, 'b')).body.event_id).toBe(shown.id);
  });

  it('only events the asking server may see are answered (history visibility "joined")', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, {
      preset: 'public_chat',
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }],
    })).body.room_id as string;
    const before = await send(alice, roomId, 'before B');
    expect((await bob.post(`${C}/join/${enc(roomId)}?server_name=a.test`, {})).status).toBe(200);
    const after = await send(alice, roomId, 'after B');
    // Backwards, the message is skipped for the room's creation events, sent before the
    // history visibility became "joined".
    const skipped = await ask(fromB, 'a.test', roomId, before.ts, 'b');
    expect(skipped.body.event_id).not.toBe(before.id);
    expect(skipped.body.origin_server_ts).toBeLessThan(before.ts);
    expect((await ask(fromB, 'a.test', roomId, before.ts, 'f')).body.event_id).not.toBe(before.id);
    expect((await ask(fromB, 'a.test', roomId, after.ts, 'b')).body.event_id).toBe(after.id);
  });

  it("the client endpoint of B finds, on A, the history B does not hold, and keeps its own answer when A is away", async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const m1 = await send(alice, roomId, 'one');
    const m2 = await send(alice, roomId, 'two');
    const m3 = await send(alice, roomId, 'three');
    expect((await bob.post(`${C}/join/${enc(roomId)}?server_name=a.test`, {})).status).toBe(200);
    const own = await send(bob, roomId, 'from B');
    const spec = new SpecClient(b.clientUrl, bob.token);
    const path = (ts: number, dir: string) => `/_matrix/client/v1/rooms/${enc(roomId)}/timestamp_to_event?ts=${ts}&dir=${dir}`;
    const store = b.server!.ctx.eventStore;

    // B holds nothing of the room before its join: without asking A, nothing is found backwards.
    expect(await store.getEvent(m2.id)).toBeUndefined();
    const back = await spec.get(path(m2.ts, 'b'));
    expect(back.status, JSON.stringify(back.body)).toBe(200);
    expect(back.body).toEqual({ event_id: m2.id, origin_server_ts: m2.ts });
    // The event was fetched and joined B's timeline (the client can go on from it).
    const held = await store.getEvent(m2.id);
    expect(held?.outlier).toBe(false);
    expect((await bob.get(`${C}/rooms/${enc(roomId)}/event/${enc(m2.id)}`)).body.content.body).toBe('two');
    const ctxRes = await bob.get(`${C}/rooms/${enc(roomId)}/context/${enc(m2.id)}?limit=0`);
    expect(ctxRes.status).toBe(200);
    expect(ctxRes.body.event.event_id).toBe(m2.id);

    // Forwards from before B's join: B's nearest event (its join) is past a gap; A knows closer.
    const fwd = await spec.get(path(m1.ts, 'f'));
    expect(fwd.body).toEqual({ event_id: m1.id, origin_server_ts: m1.ts });

    // After B's join, B's own timeline answers.
    expect((await spec.get(path(own.ts, 'b'))).body.event_id).toBe(own.id);

    // With A away, B still answers with what it holds.
    await a.stop();
    try {
      const alone = await spec.get(path(m3.ts, 'f'));
      expect(alone.status).toBe(200);
      expect(alone.body.event_id).not.toBe(m3.id);
      expect(alone.body.origin_server_ts).toBeGreaterThanOrEqual(m3.ts);
      expect(await store.getEvent(m3.id)).toBeUndefined();
      expect((await spec.get(path(m2.ts, 'b'))).body.event_id).toBe(m2.id);
    } finally {
      await a.start();
    }
    expect((await spec.get(path(1, 'x'))).status).toBe(400);
  }, 60_000);
});
