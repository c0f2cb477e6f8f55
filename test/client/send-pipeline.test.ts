import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;

/**
 * Messages of one room are built on the room's pending message before it commits, so many
 * sends in flight at once must still give one linear history, exact unread counts, and one
 * event per transaction ID.
 */
describe.each<Engine>(['sqlite', 'postgres'])('concurrent sends in one room on %s', (engine) => {
  let t: TestServer;
  let alice: TestClient;
  let bob: TestClient;
  let carol: TestClient;

  beforeAll(async () => {
    t = await startAccountsServer(engine);
    alice = new TestClient(t.clientUrl);
    bob = new TestClient(t.clientUrl);
    carol = new TestClient(t.clientUrl);
    await alice.register('alice');
    await bob.register('bob');
    await carol.register('carol');
  });
  afterAll(() => t?.close());

  const send = (who: TestClient, rid: string, txn: string, body: string) =>
    who.put(`${C}/rooms/${rid}/send/m.room.message/${txn}`, { msgtype: 'm.text', body });

  it('keeps a linear history, counts every message and answers a retransmission with the same event', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const rid = enc(roomId);
    expect((await bob.post(`${C}/join/${rid}`, {})).status).toBe(200);
    expect((await carol.post(`${C}/join/${rid}`, {})).status).toBe(200);
    const start = await carol.get(`${C}/sync`);
    expect(start.body.rooms.join[roomId].unread_notifications.notification_count).toBe(0);

    // 40 messages in flight at once from two users, a state change in the middle, and each of
    // ten transaction IDs sent twice at the same time.
    const sends: Array<Promise<{ status: number; body: any }>> = [];
    for (let i = 0; i < 20; i++) {
      sends.push(send(alice, rid, `a${i}`, `alice ${i}`));
      sends.push(send(bob, rid, `b${i}`, `bob ${i}`));
      if (i === 10) sends.push(alice.put(`${C}/rooms/${rid}/state/m.room.topic/`, { topic: 'busy' }));
    }
    const twice: Array<Promise<{ status: number; body: any }>> = [];
    for (let i = 0; i < 10; i++) twice.push(send(alice, rid, `dup${i}`, `dup ${i}`), send(alice, rid, `dup${i}`, `dup ${i}`));
    const answers = await Promise.all([...sends, ...twice]);
    for (const a of answers) expect(a.status).toBe(200);
    const dupIds = await Promise.all(twice);
    for (let i = 0; i < 10; i++) expect(dupIds[2 * i]!.body.event_id).toBe(dupIds[2 * i + 1]!.body.event_id);
    // A retransmission after the commit gets the same event too.
    expect((await send(alice, rid, 'dup0', 'dup 0')).body.event_id).toBe(dupIds[0]!.body.event_id);

    // One linear history: every event after the join has exactly one prev event, the one
    // before it in the stream, and the room has one forward extremity.
    const ctx = t.server.ctx;
    const extremities = await ctx.eventStore.getForwardExtremities(roomId);
    expect(extremities).toHaveLength(1);
    const ids = [...answers.map((a) => a.body.event_id as string)];
    const stored = [...(await ctx.eventStore.getEvents([...new Set(ids)])).values()].sort((a, b) => a.streamOrdering - b.streamOrdering);
    expect(stored).toHaveLength(40 + 1 + 10);
    for (let i = 1; i < stored.length; i++) {
      const prevs = stored[i]!.event.prev_events.map((p) => (typeof p === 'string' ? p : p[0]));
      expect(prevs).toEqual([stored[i - 1]!.event.event_id]);
      expect(stored[i]!.event.depth).toBe(stored[i - 1]!.event.depth + 1);
    }
    expect(extremities[0]).toBe(stored[stored.length - 1]!.event.event_id);

    // Carol was sent 40 + 10 messages (the topic does not notify by default rules).
    const after = await carol.get(`${C}/sync?since=${start.body.next_batch}`);
    expect(after.body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 50, highlight_count: 0 });
    // Her own message clears them; the counts then follow new messages one by one.
    expect((await send(carol, rid, 'c1', 'read it all')).status).toBe(200);
    const cleared = await carol.get(`${C}/sync?since=${after.body.next_batch}`);
    expect(cleared.body.rooms.join[roomId].unread_notifications.notification_count).toBe(0);
    await send(bob, rid, 'b-last', 'one more');
    const one = await carol.get(`${C}/sync?since=${cleared.body.next_batch}`);
    expect(one.body.rooms.join[roomId].unread_notifications.notification_count).toBe(1);
    // A read receipt on the latest event clears them again.
    const latest = one.body.rooms.join[roomId].timeline.events.at(-1).event_id as string;
    expect((await carol.post(`${C}/rooms/${rid}/receipt/m.read/${enc(latest)}`, {})).status).toBe(200);
    const read = await carol.get(`${C}/sync?since=${one.body.next_batch}`);
    expect(read.body.rooms.join[roomId].unread_notifications.notification_count).toBe(0);
    // Bob's own latest message marks everything before it read for him.
    const bobSync = await bob.get(`${C}/sync`);
    expect(bobSync.body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });
  });

  it('writes the rows of events sharing a commit across rooms as each event alone would', async () => {
    const rooms: string[] = [];
    for (let r = 0; r < 3; r++) {
      const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
      expect((await bob.post(`${C}/join/${enc(roomId)}`, {})).status).toBe(200);
      rooms.push(roomId);
    }
    const sends: Array<Promise<{ status: number; body: any }>> = [];
    for (let i = 0; i < 10; i++) {
      for (const roomId of rooms) {
        sends.push(send(alice, enc(roomId), `m${roomId}${i}`, `alice ${i}`), send(bob, enc(roomId), `m${roomId}${i}`, `bob ${i}`));
      }
    }
    const answers = await Promise.all(sends);
    for (const a of answers) expect(a.status).toBe(200);
    const ctx = t.server.ctx;
    const db = ctx.database.db;
    const ids = answers.map((a) => a.body.event_id as string);
    expect(new Set(ids).size).toBe(60);
    const stored = await ctx.eventStore.getEvents(ids);
    for (const roomId of rooms) {
      // One forward extremity: the room's latest event.
      const latest = [...stored.values()].filter((s) => s.roomId === roomId).sort((a, b) => b.streamOrdering - a.streamOrdering)[0]!;
      expect(await ctx.eventStore.getForwardExtremities(roomId)).toEqual([latest.event.event_id]);
      const rows = await db.selectFrom('forward_extremities').select('event_id').where('room_id', '=', roomId).execute();
      expect(rows.map((r) => r.event_id)).toEqual([latest.event.event_id]);
    }
    // Every event has its edge, its state group and its transaction ID.
    const edges = await db.selectFrom('event_edges').select(['event_id', 'prev_event_id']).where('event_id', 'in', ids).execute();
    expect(edges).toHaveLength(60);
    for (const e of edges) {
      const prevs = stored.get(e.event_id)!.event.prev_events.map((p) => (typeof p === 'string' ? p : p[0]));
      expect(prevs).toEqual([e.prev_event_id]);
    }
    const states = await db.selectFrom('event_state').select('event_id').where('event_id', 'in', ids).execute();
    expect(states).toHaveLength(60);
    const txns = await db.selectFrom('event_txns').select('event_id').where('event_id', 'in', ids).execute();
    expect(txns).toHaveLength(60);
    // Each is answered as a retransmission, and push evaluation is stored up to the last one.
    expect((await send(bob, enc(rooms[1]!), `m${rooms[1]}3`, 'bob 3')).body.event_id).toBe(ids[3 * 6 + 3]);
    const progress = await db.selectFrom('push_actions_progress').select('position').where('name', '=', 'events').executeTakeFirst();
    expect(Number(progress!.position)).toBe(Math.max(...[...stored.values()].map((s) => s.streamOrdering)));
    // One push row per member of each message: the sender's own and the other member's.
    const pushRows = await db.selectFrom('event_push_actions').select('event_id').where('event_id', 'in', ids).execute();
    expect(pushRows).toHaveLength(120);
  });
});
