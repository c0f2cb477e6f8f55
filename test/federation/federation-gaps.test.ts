import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient } from '../client/_client.js';
import { eventually, paginateAll, type Federation, type FedMember, twoServers } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const enc = encodeURIComponent;

async function send(c: TestClient, roomId: string, body: string): Promise<string> {
  const res = await c.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', body });
  if (res.status !== 200) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.event_id;
}

describe.each<Engine>(['sqlite', 'postgres'])('gaps in the middle of the timeline on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  let alice: TestClient;
  let bob: TestClient;

  beforeAll(async () => {
    ({ fed, a, b, alice, bob } = await twoServers(engine));
  }, 60_000);

  afterAll(async () => {
    await fed?.close();
  });

  it('messages missed while a server was down are backfilled into their place when a client pages back', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'Gaps' });
    expect(created.status).toBe(200);
    const roomId = created.body.room_id as string;
    const joined = await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=a.test`, {});
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    for (let i = 0; i < 5; i++) await send(alice, roomId, `before ${i}`);
    await eventually(async () => {
      const res = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1`);
      return res.body.chunk[0]?.content?.body === 'before 4';
    }, 20_000, 'B has the first messages');
    await send(bob, roomId, 'bob is here');
    await eventually(async () => {
      const res = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1`);
      return res.body.chunk[0]?.content?.body === 'bob is here';
    }, 20_000, "A has B's message");
    const sinceBefore = (await bob.get('/_matrix/client/v3/sync?timeout=0')).body.next_batch as string;

    // B is down while A sends 150 messages; A then keeps only the newest for B (as it does for a
    // destination that fell far behind), so B gets 20 of the others through get_missing_events
    // and the state through /state_ids, and holds a gap of 129 messages.
    await b.stop();
    const sent: string[] = [];
    for (let i = 0; i < 150; i++) sent.push(await send(alice, roomId, `during ${i}`));
    await a.server!.ctx.federationRooms!.queue.trimPdus('b.test', 1);
    await b.start();
    await eventually(async () => {
      const res = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1`);
      return res.body.chunk[0]?.event_id === sent[149];
    }, 30_000, 'the newest message on B');

    const onA = (await paginateAll(alice, roomId, 200)).events.map((e) => e.event_id);
    const first = await paginateAll(bob, roomId, 30);
    const onB = first.events.map((e) => e.event_id);
    expect(new Set(onB).size).toBe(onB.length);
    expect(onB).toEqual(onA);
    const bodies = first.events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);
    expect(bodies).toEqual([...Array.from({ length: 5 }, (_, i) => `before ${i}`), 'bob is here', ...Array.from({ length: 150 }, (_, i) => `during ${i}`)]);
    expect(b.logs.filter((l) => l.includes('backfilled room history')).length).toBeGreaterThanOrEqual(2);
    // Tokens inside the gap are exact points of the timeline.
    expect(first.tokens.some((t) => /^t\d+_-\d+$/.test(t))).toBe(true);

    // A second pass is served from the store, identical, with other page sizes.
    expect((await paginateAll(bob, roomId, 7)).events.map((e) => e.event_id)).toEqual(onB);
    // Forwards from a token inside the gap reads on in order.
    const inGap = first.tokens.find((t) => /^t\d+_-\d+$/.test(t))!;
    const fwd = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=f&limit=5&from=${enc(inGap)}`);
    expect(fwd.status).toBe(200);
    const firstFwd = onB.indexOf(fwd.body.chunk[0].event_id);
    expect(fwd.body.chunk.map((e: any) => e.event_id)).toEqual(onB.slice(firstFwd, firstFwd + 5));
    const back = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=3&from=${enc(inGap)}`);
    expect(back.body.chunk.map((e: any) => e.event_id)).toEqual(onB.slice(firstFwd - 3, firstFwd).reverse());
    // A plain stream-position token just before the event after the gap (as /sync's prev_batch
    // would be) pages back into the filled gap.
    const child = onB.indexOf(sent[129]!);
    const start = (await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/context/${enc(sent[129]!)}?limit=0`)).body.start as string;
    expect(start).toMatch(/^t\d+$/);
    const fromStart = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=3&from=${enc(start)}`);
    expect(fromStart.body.chunk.map((e: any) => e.event_id)).toEqual(onB.slice(child - 3, child).reverse());
    // /context of a backfilled message orders around it.
    const mid = sent[50]!;
    const ctxRes = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/context/${enc(mid)}?limit=4`);
    expect(ctxRes.status).toBe(200);
    expect(ctxRes.body.events_before.map((e: any) => e.event_id)).toEqual([sent[49], sent[48]]);
    expect(ctxRes.body.events_after.map((e: any) => e.event_id)).toEqual([sent[51], sent[52]]);

    // /sync since before the outage reports only the messages that arrived, never the backfilled ones.
    const inc = await bob.get(`/_matrix/client/v3/sync?timeout=0&since=${enc(sinceBefore)}`);
    const timeline = (inc.body.rooms?.join?.[roomId]?.timeline?.events ?? []).map((e: any) => e.event_id);
    expect(timeline).toContain(sent[149]);
    expect(timeline).not.toContain(sent[10]);
  }, 240_000);
});
