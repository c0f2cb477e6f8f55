import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;

/** Runs a long-poll /sync, then `trigger`, and returns the sync response and how long it took. */
async function wakes(client: TestClient, since: string, trigger: () => Promise<unknown>, filter?: string): Promise<{ body: any; ms: number }> {
  const started = Date.now();
  const poll = client.get(`${C}/sync?since=${since}&timeout=20000${filter ? `&filter=${enc(filter)}` : ''}`);
  await new Promise((r) => setTimeout(r, 300));
  await trigger();
  const res = await poll;
  expect(res.status).toBe(200);
  return { body: res.body, ms: Date.now() - started };
}

const ephemeralOf = (body: any, roomId: string, type: string) => (body.rooms.join[roomId]?.ephemeral.events ?? []).filter((e: any) => e.type === type);

describe.each<Engine>(['sqlite', 'postgres'])('typing, receipts, account data and presence in sync on %s', (engine) => {
  let t: TestServer;
  let alice: TestClient;
  let bob: TestClient;
  let carol: TestClient;
  let roomId: string;
  let rid: string;

  beforeAll(async () => {
    t = await startAccountsServer(engine);
    alice = new TestClient(t.clientUrl);
    bob = new TestClient(t.clientUrl);
    carol = new TestClient(t.clientUrl);
    await alice.register('alice');
    await bob.register('bob');
    await carol.register('carol');
    roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id;
    rid = enc(roomId);
    expect((await bob.post(`${C}/join/${rid}`, {})).status).toBe(200);
  });
  afterAll(() => t?.close());

  it('typing: only for yourself, only when joined, shown to members and woken by long-polls', async () => {
    expect((await alice.put(`${C}/rooms/${rid}/typing/${enc('@bob:localhost')}`, { typing: true })).status).toBe(403);
    expect((await carol.put(`${C}/rooms/${rid}/typing/${enc('@carol:localhost')}`, { typing: true })).status).toBe(403);
    expect((await alice.put(`${C}/rooms/${rid}/typing/${enc('@alice:localhost')}`, {})).body.errcode).toBe('M_BAD_JSON');

    const s0 = await bob.get(`${C}/sync`);
    const woke = await wakes(bob, s0.body.next_batch, () => alice.put(`${C}/rooms/${rid}/typing/${enc('@alice:localhost')}`, { typing: true, timeout: 30000 }));
    expect(woke.ms).toBeLessThan(10000);
    expect(ephemeralOf(woke.body, roomId, 'm.typing')).toEqual([{ type: 'm.typing', content: { user_ids: ['@alice:localhost'] } }]);

    // Initial sync shows who is typing now.
    expect(ephemeralOf((await bob.get(`${C}/sync`)).body, roomId, 'm.typing')[0].content.user_ids).toEqual(['@alice:localhost']);

    const stopped = await wakes(bob, woke.body.next_batch, () => alice.put(`${C}/rooms/${rid}/typing/${enc('@alice:localhost')}`, { typing: false }));
    expect(ephemeralOf(stopped.body, roomId, 'm.typing')[0].content.user_ids).toEqual([]);
  });

  it('typing times out on its own', async () => {
    const s0 = await bob.get(`${C}/sync`);
    await alice.put(`${C}/rooms/${rid}/typing/${enc('@alice:localhost')}`, { typing: true, timeout: 500 });
    const s1 = await bob.get(`${C}/sync?since=${s0.body.next_batch}&timeout=0`);
    expect(ephemeralOf(s1.body, roomId, 'm.typing')[0].content.user_ids).toEqual(['@alice:localhost']);
    const expired = await bob.get(`${C}/sync?since=${s1.body.next_batch}&timeout=15000`);
    expect(ephemeralOf(expired.body, roomId, 'm.typing')[0].content.user_ids).toEqual([]);
  });

  it('receipts: public ones reach everyone, private ones only their owner; threaded receipts carry thread_id', async () => {
    const ev = (await alice.put(`${C}/rooms/${rid}/send/m.room.message/r1`, { msgtype: 'm.text', body: 'read me' })).body.event_id;
    const a0 = await alice.get(`${C}/sync`);
    const b0 = await bob.get(`${C}/sync`);

    const woke = await wakes(alice, a0.body.next_batch, () => bob.post(`${C}/rooms/${rid}/receipt/m.read/${enc(ev)}`, {}));
    expect(woke.ms).toBeLessThan(10000);
    const [receipt] = ephemeralOf(woke.body, roomId, 'm.receipt');
    expect(Object.keys(receipt.content[ev]['m.read'])).toEqual(['@bob:localhost']);
    expect(typeof receipt.content[ev]['m.read']['@bob:localhost'].ts).toBe('number');

    // Bob's private receipt: Bob sees it (and is woken), Alice does not.
    const a1 = woke.body.next_batch;
    const b1 = (await bob.get(`${C}/sync?since=${b0.body.next_batch}`)).body.next_batch;
    const own = await wakes(bob, b1, () => bob.post(`${C}/rooms/${rid}/receipt/m.read.private/${enc(ev)}`, {}));
    expect(ephemeralOf(own.body, roomId, 'm.receipt')[0].content[ev]['m.read.private']).toHaveProperty(['@bob:localhost']);
    const other = await alice.get(`${C}/sync?since=${a1}&timeout=0`);
    expect(ephemeralOf(other.body, roomId, 'm.receipt')).toEqual([]);
    const initial = await alice.get(`${C}/sync`);
    const all = ephemeralOf(initial.body, roomId, 'm.receipt')[0].content;
    expect(all[ev]['m.read']).toHaveProperty(['@bob:localhost']);
    expect(all[ev]['m.read.private']).toBeUndefined();

    // Threaded receipts.
    const threadEv = (await alice.put(`${C}/rooms/${rid}/send/m.room.message/r2`, { msgtype: 'm.text', body: 'in thread', 'm.relates_to': { rel_type: 'm.thread', event_id: ev } })).body.event_id;
    expect((await bob.post(`${C}/rooms/${rid}/receipt/m.read/${enc(threadEv)}`, { thread_id: ev })).status).toBe(200);
    expect((await bob.post(`${C}/rooms/${rid}/receipt/m.read/${enc(ev)}`, { thread_id: 'main' })).status).toBe(200);
    const threaded = ephemeralOf((await alice.get(`${C}/sync`)).body, roomId, 'm.receipt')[0].content;
    expect(threaded[threadEv]['m.read']['@bob:localhost'].thread_id).toBe(ev);
    expect(threaded[ev]['m.read']['@bob:localhost'].thread_id).toBe('main');
  });

  it('receipt errors: thread_id validation, unknown types, unknown events, non-members', async () => {
    const ev = (await alice.put(`${C}/rooms/${rid}/send/m.room.message/e1`, { msgtype: 'm.text', body: 'x' })).body.event_id;
    const post = (type: string, body: unknown, who = bob, eventId = ev) => who.post(`${C}/rooms/${rid}/receipt/${type}/${enc(eventId)}`, body);
    for (const bad of [{ thread_id: '' }, { thread_id: 5 }, { thread_id: 'nope' }]) {
      const r = await post('m.read', bad);
      expect(r.status).toBe(400);
      expect(r.body.errcode).toBe('M_INVALID_PARAM');
    }
    expect((await post('m.fully_read', { thread_id: 'main' })).body.errcode).toBe('M_INVALID_PARAM');
    // The event is in the main timeline, not in a thread rooted at itself... but a root may name its own thread.
    expect((await post('m.read', { thread_id: '$notarootofthis' })).body.errcode).toBe('M_INVALID_PARAM');
    expect((await post('m.read', { thread_id: ev })).status).toBe(200);
    expect((await post('m.unknown', {})).body.errcode).toBe('M_INVALID_PARAM');
    expect((await post('m.read', {}, bob, '$missing:localhost')).status).toBe(404);
    expect((await post('m.read', {}, bob, 'not-an-event')).body.errcode).toBe('M_INVALID_PARAM');
    expect((await post('m.read', {}, carol)).status).toBe(403);
  });

  it('read markers: m.fully_read lands in room account data, m.read and m.read.private as receipts', async () => {
    const ev = (await alice.put(`${C}/rooms/${rid}/send/m.room.message/m1`, { msgtype: 'm.text', body: 'marker' })).body.event_id;
    const b0 = await bob.get(`${C}/sync`);
    const woke = await wakes(bob, b0.body.next_batch, () =>
      bob.post(`${C}/rooms/${rid}/read_markers`, { 'm.fully_read': ev, 'm.read': ev, 'm.read.private': ev }),
    );
    const room = woke.body.rooms.join[roomId];
    // The first change to arrive may be only part of the three; the rest follows.
    const after = await bob.get(`${C}/sync?since=${b0.body.next_batch}&timeout=0`);
    const r2 = after.body.rooms.join[roomId];
    expect(r2.account_data.events).toContainEqual({ type: 'm.fully_read', content: { event_id: ev } });
    const receipt = r2.ephemeral.events.find((e: any) => e.type === 'm.receipt').content[ev];
    expect(Object.keys(receipt).sort()).toEqual(['m.read', 'm.read.private']);
    expect(room).toBeDefined();
    expect((await bob.get(`${C}/user/${enc('@bob:localhost')}/rooms/${rid}/account_data/m.fully_read`)).body).toEqual({ event_id: ev });
    expect((await bob.post(`${C}/rooms/${rid}/receipt/m.fully_read/${enc(ev)}`, {})).status).toBe(200);
    expect((await carol.post(`${C}/rooms/${rid}/read_markers`, { 'm.fully_read': ev })).status).toBe(403);
    expect((await bob.post(`${C}/rooms/${rid}/read_markers`, { 'm.fully_read': 5 })).body.errcode).toBe('M_BAD_JSON');
  });

  it('account data: global and per-room (tags) in sync, incremental changes only, long-poll wakes', async () => {
    const s0 = await alice.get(`${C}/sync`);
    const types = s0.body.account_data.events.map((e: any) => e.type);
    expect(types).toContain('m.push_rules');
    const woke = await wakes(alice, s0.body.next_batch, () => alice.put(`${C}/user/${enc('@alice:localhost')}/account_data/org.example.cfg`, { a: 1 }));
    expect(woke.ms).toBeLessThan(10000);
    expect(woke.body.account_data.events).toEqual([{ type: 'org.example.cfg', content: { a: 1 } }]);

    const tagged = await wakes(alice, woke.body.next_batch, () => alice.put(`${C}/user/${enc('@alice:localhost')}/rooms/${rid}/tags/u.work`, { order: 0.5 }));
    expect(tagged.body.rooms.join[roomId].account_data.events).toEqual([{ type: 'm.tag', content: { tags: { 'u.work': { order: 0.5 } } } }]);
    expect(tagged.body.account_data.events).toEqual([]);

    const quiet = await alice.get(`${C}/sync?since=${tagged.body.next_batch}&timeout=0`);
    expect(quiet.body.account_data.events).toEqual([]);
    const initial = await alice.get(`${C}/sync`);
    expect(initial.body.account_data.events).toContainEqual({ type: 'org.example.cfg', content: { a: 1 } });
    expect(initial.body.rooms.join[roomId].account_data.events).toContainEqual({ type: 'm.tag', content: { tags: { 'u.work': { order: 0.5 } } } });
    // Filters apply.
    const filtered = await alice.get(`${C}/sync?filter=${enc(JSON.stringify({ account_data: { not_types: ['m.push_rules'] } }))}`);
    expect(filtered.body.account_data.events.map((e: any) => e.type)).not.toContain('m.push_rules');
  });

  it('presence of the user and of people sharing a room, not of strangers', async () => {
    await bob.put(`${C}/presence/${enc('@bob:localhost')}/status`, { presence: 'online', status_msg: 'here' });
    await carol.put(`${C}/presence/${enc('@carol:localhost')}/status`, { presence: 'online' });
    const s0 = await alice.get(`${C}/sync?set_presence=offline`);
    const senders = s0.body.presence.events.map((e: any) => e.sender);
    expect(senders).toContain('@bob:localhost');
    expect(senders).not.toContain('@carol:localhost');
    const bobP = s0.body.presence.events.find((e: any) => e.sender === '@bob:localhost');
    expect(bobP).toMatchObject({ type: 'm.presence', content: { presence: 'online', status_msg: 'here' } });

    const woke = await wakes(alice, s0.body.next_batch, () => bob.put(`${C}/presence/${enc('@bob:localhost')}/status`, { presence: 'unavailable' }));
    const changed = woke.body.presence.events.filter((e: any) => e.sender === '@bob:localhost');
    expect(changed.map((e: any) => e.content.presence)).toEqual(['unavailable']);
  });
});
