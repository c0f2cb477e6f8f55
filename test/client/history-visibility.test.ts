import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient, TEST_OVERRIDES } from './_client.js';

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;
let txn = 0;

async function say(c: TestClient, roomId: string, body: string): Promise<string> {
  const r = await c.put(`${C}/rooms/${enc(roomId)}/send/m.room.message/h${++txn}`, { msgtype: 'm.text', body });
  if (r.status !== 200) throw new Error(`send: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.event_id;
}

async function bodies(c: TestClient, roomId: string): Promise<string[]> {
  const r = await c.get(`${C}/rooms/${enc(roomId)}/messages?dir=b&limit=100`);
  if (r.status !== 200) throw new Error(`messages: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body).reverse();
}

async function roomWith(c: TestClient, visibility: string): Promise<string> {
  const r = await c.post(`${C}/createRoom`, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: visibility } }] });
  return r.body.room_id;
}

describe.each<Engine>(['sqlite', 'postgres'])('history visibility on %s', (engine) => {
  let t: TestServer;
  let alice: TestClient;
  let bob: TestClient;
  let eve: TestClient;

  beforeAll(async () => {
    t = await startAccountsServer(engine);
    alice = new TestClient(t.clientUrl);
    bob = new TestClient(t.clientUrl);
    eve = new TestClient(t.clientUrl);
    await alice.register('alice');
    await bob.register('bob');
    await eve.register('eve');
  });
  afterAll(() => t?.close());

  it('joined: /messages, /context, /event and sync hide events from before the join', async () => {
    const roomId = await roomWith(alice, 'joined');
    const before = await say(alice, roomId, 'before');
    await bob.post(`${C}/join/${enc(roomId)}`, {});
    const after = await say(alice, roomId, 'after');
    expect(await bodies(bob, roomId)).toEqual(['after']);
    expect(await bodies(alice, roomId)).toEqual(['before', 'after']);
    expect((await bob.get(`${C}/rooms/${enc(roomId)}/event/${enc(before)}`)).status).toBe(404);
    expect((await bob.get(`${C}/rooms/${enc(roomId)}/event/${enc(after)}`)).status).toBe(200);
    expect((await bob.get(`${C}/rooms/${enc(roomId)}/context/${enc(before)}`)).status).toBe(404);
    const ctx = await bob.get(`${C}/rooms/${enc(roomId)}/context/${enc(after)}?limit=20`);
    expect(ctx.body.events_before.map((e: any) => e.event_id)).not.toContain(before);
    // bob's own join is visible to him.
    expect(ctx.body.events_before.some((e: any) => e.type === 'm.room.member' && e.state_key === '@bob:localhost')).toBe(true);
    const sync = await bob.get(`${C}/sync?filter=${enc(JSON.stringify({ room: { timeline: { limit: 50 } } }))}`);
    const tl = sync.body.rooms.join[roomId].timeline.events.map((e: any) => e.event_id);
    expect(tl).toContain(after);
    expect(tl).not.toContain(before);
  });

  it('invited: events from the invite on are visible, earlier ones are not', async () => {
    const roomId = await roomWith(alice, 'invited');
    await say(alice, roomId, 'old');
    await alice.post(`${C}/rooms/${enc(roomId)}/invite`, { user_id: '@bob:localhost' });
    await say(alice, roomId, 'while invited');
    await bob.post(`${C}/join/${enc(roomId)}`, {});
    await say(alice, roomId, 'joined');
    expect(await bodies(bob, roomId)).toEqual(['while invited', 'joined']);
  });

  it('shared: members see all history; world_readable: non-members read /messages and /event', async () => {
    const shared = await roomWith(alice, 'shared');
    await say(alice, shared, 'one');
    await bob.post(`${C}/join/${enc(shared)}`, {});
    await say(alice, shared, 'two');
    expect(await bodies(bob, shared)).toEqual(['one', 'two']);
    expect((await eve.get(`${C}/rooms/${enc(shared)}/messages?dir=b`)).status).toBe(403);

    const open = await roomWith(alice, 'world_readable');
    const id = await say(alice, open, 'hello world');
    expect(await bodies(eve, open)).toEqual(['hello world']);
    expect((await eve.get(`${C}/rooms/${enc(open)}/event/${enc(id)}`)).body.content.body).toBe('hello world');
    // Switching to joined hides later events from non-members, the old ones stay readable.
    await alice.put(`${C}/rooms/${enc(open)}/state/m.room.history_visibility`, { history_visibility: 'joined' });
    await say(alice, open, 'members only');
    expect((await eve.get(`${C}/rooms/${enc(open)}/messages?dir=b`)).status).toBe(403);
  });

  it('a user who left reads up to the leave only', async () => {
    const roomId = await roomWith(alice, 'shared');
    await bob.post(`${C}/join/${enc(roomId)}`, {});
    await say(alice, roomId, 'while there');
    await bob.post(`${C}/rooms/${enc(roomId)}/leave`, {});
    await say(alice, roomId, 'after leaving');
    expect(await bodies(bob, roomId)).toEqual(['while there']);
  });
});

describe.each<Engine>(['sqlite', 'postgres'])('sending limits on %s', (engine) => {
  let t: TestServer;
  let lim: TestClient;
  let other: TestClient;

  beforeAll(async () => {
    t = await startAccountsServer(engine, {
      rate_limits: { ...TEST_OVERRIDES.rate_limits, message: { per_second: 0.5, burst: 5 } },
    });
    lim = new TestClient(t.clientUrl);
    other = new TestClient(t.clientUrl);
    await lim.register('lim');
    await other.register('other');
  });
  afterAll(() => t?.close());

  it('limits sending per user with 429 M_LIMIT_EXCEEDED and retry_after_ms', async () => {
    const roomId = (await lim.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id;
    // createRoom does not use the sending bucket: 5 sends pass, the 6th is refused.
    const statuses: number[] = [];
    let limited: any;
    for (let i = 0; i < 8; i++) {
      const r = await lim.put(`${C}/rooms/${enc(roomId)}/send/m.room.message/lim${i}`, { msgtype: 'm.text', body: `m${i}` });
      statuses.push(r.status);
      if (r.status === 429) limited ??= r.body;
    }
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
    expect(limited.errcode).toBe('M_LIMIT_EXCEEDED');
    expect(limited.retry_after_ms).toBeGreaterThan(0);
    // Another user has their own bucket.
    await other.post(`${C}/join/${enc(roomId)}`, {});
    expect((await other.put(`${C}/rooms/${enc(roomId)}/send/m.room.message/other`, { msgtype: 'm.text', body: 'x' })).status).toBe(200);
    // State events and redactions count too.
    const st = await lim.put(`${C}/rooms/${enc(roomId)}/state/m.room.topic`, { topic: 't' });
    expect(st.status).toBe(429);
  });
});
