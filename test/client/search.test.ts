import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const C = '/_matrix/client/v3';
let txn = 0;

async function say(c: TestClient, roomId: string, body: string): Promise<string> {
  const r = await c.put(`${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/s${++txn}`, { msgtype: 'm.text', body });
  if (r.status !== 200) throw new Error(`send: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.event_id;
}

function search(c: TestClient, roomEvents: Record<string, unknown>, nextBatch?: string) {
  return c.post(`${C}/search${nextBatch ? `?next_batch=${encodeURIComponent(nextBatch)}` : ''}`, { search_categories: { room_events: roomEvents } });
}

describe.each<Engine>(['sqlite', 'postgres'])('search and reports on %s', (engine) => {
  let t: TestServer;
  let alice: TestClient;
  let bob: TestClient;
  let eve: TestClient;
  let room1: string;
  let room2: string;
  let secret: string;

  beforeAll(async () => {
    t = await startAccountsServer(engine);
    alice = new TestClient(t.clientUrl);
    bob = new TestClient(t.clientUrl);
    eve = new TestClient(t.clientUrl);
    await alice.register('alice');
    await bob.register('bob');
    await eve.register('eve');
    room1 = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'Cooking club', topic: 'recipes and baking' })).body.room_id;
    room2 = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id;
    await bob.post(`${C}/join/${encodeURIComponent(room1)}`, {});
    await bob.post(`${C}/join/${encodeURIComponent(room2)}`, {});
    // A room only eve is in.
    const eveRoom = (await eve.post(`${C}/createRoom`, { preset: 'private_chat' })).body.room_id;
    secret = await say(eve, eveRoom, 'the secret pancake recipe');
  });
  afterAll(() => t?.close());

  it('finds messages by words in joined rooms only, with rank, count and highlights', async () => {
    const a = await say(alice, room1, 'I baked pancakes this morning');
    const b = await say(bob, room1, 'Pancakes with maple syrup are the best pancakes');
    await say(bob, room1, 'unrelated chatter about the weather');
    const c = await say(alice, room2, 'pancake day is coming');

    const r = await search(bob, { search_term: 'pancakes' });
    expect(r.status).toBe(200);
    const res = r.body.search_categories.room_events;
    const ids = res.results.map((x: any) => x.result.event_id);
    expect(new Set(ids)).toEqual(new Set([a, b, c]));
    expect(ids).not.toContain(secret);
    expect(res.count).toBe(3);
    expect(res.highlights).toContain('pancakes');
    for (const x of res.results) expect(typeof x.rank).toBe('number');
    // The message mentioning pancakes twice ranks first.
    expect(ids[0]).toBe(b);

    // Multi-word terms need every word.
    const two = await search(bob, { search_term: 'maple pancakes' });
    expect(two.body.search_categories.room_events.results.map((x: any) => x.result.event_id)).toEqual([b]);
    // Punctuation and FTS operators in the term are only words.
    const odd = await search(bob, { search_term: 'pancakes" OR NOT *' });
    expect(odd.status).toBe(200);

    // Room filter and recent order.
    const onlyRoom2 = await search(bob, { search_term: 'pancakes', filter: { rooms: [room2] } });
    expect(onlyRoom2.body.search_categories.room_events.results.map((x: any) => x.result.event_id)).toEqual([c]);
    const recent = await search(bob, { search_term: 'pancakes', order_by: 'recent' });
    expect(recent.body.search_categories.room_events.results.map((x: any) => x.result.event_id)).toEqual([c, b, a]);
    const bySender = await search(bob, { search_term: 'pancakes', filter: { senders: ['@alice:localhost'] } });
    expect(new Set(bySender.body.search_categories.room_events.results.map((x: any) => x.result.event_id))).toEqual(new Set([a, c]));

    // eve finds her own message and nothing of the others.
    const forEve = await search(eve, { search_term: 'pancakes' });
    expect(forEve.body.search_categories.room_events.results.map((x: any) => x.result.event_id)).toEqual([secret]);
  });

  it('searches names and topics by key, paginates with next_batch, groups and adds context', async () => {
    const topic = await search(bob, { search_term: 'baking', keys: ['content.topic'] });
    const hits = topic.body.search_categories.room_events.results;
    expect(hits).toHaveLength(1);
    expect(hits[0].result.type).toBe('m.room.topic');
    const nameOnly = await search(bob, { search_term: 'baking', keys: ['content.name'] });
    expect(nameOnly.body.search_categories.room_events.results).toHaveLength(0);
    expect((await search(bob, { search_term: 'x', keys: ['content.nope'] })).status).toBe(400);

    const sent: string[] = [];
    for (let i = 0; i < 7; i++) sent.push(await say(alice, room2, `zebra sighting number ${i}`));
    for (const order of ['recent', 'rank'] as const) {
      const seen: string[] = [];
      let batch: string | undefined;
      for (let i = 0; i < 10; i++) {
        const r = await search(bob, { search_term: 'zebra', order_by: order, filter: { limit: 3 } }, batch);
        expect(r.status).toBe(200);
        const re = r.body.search_categories.room_events;
        expect(re.results.length).toBeLessThanOrEqual(3);
        seen.push(...re.results.map((x: any) => x.result.event_id));
        if (!re.next_batch) break;
        batch = re.next_batch;
      }
      expect(new Set(seen)).toEqual(new Set(sent));
      expect(seen).toHaveLength(7);
      if (order === 'recent') expect(seen).toEqual([...sent].reverse());
    }

    const grouped = await search(bob, {
      search_term: 'zebra',
      filter: { limit: 2 },
      groupings: { group_by: [{ key: 'room_id' }, { key: 'sender' }] },
      event_context: { before_limit: 1, after_limit: 1, include_profile: true },
      include_state: true,
    });
    const g = grouped.body.search_categories.room_events;
    expect(g.groups.room_id[room2].results).toHaveLength(2);
    expect(g.groups.sender['@alice:localhost'].results).toHaveLength(2);
    const ctx = g.results[0].context;
    expect(ctx.events_before.length + ctx.events_after.length).toBeGreaterThan(0);
    expect(ctx.profile_info['@alice:localhost']).toBeDefined();
    expect(typeof ctx.start).toBe('string');
    expect(Array.isArray(g.state[room2])).toBe(true);
  });

  it('forgets redacted messages and hides history from before the join in joined-only rooms', async () => {
    const id = await say(alice, room1, 'ephemeral walrus');
    expect((await search(bob, { search_term: 'walrus' })).body.search_categories.room_events.count).toBe(1);
    await alice.put(`${C}/rooms/${encodeURIComponent(room1)}/redact/${encodeURIComponent(id)}/rw`, {});
    expect((await search(bob, { search_term: 'walrus' })).body.search_categories.room_events.results).toHaveLength(0);

    const hidden = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: 'joined' } }] })).body.room_id;
    await say(alice, hidden, 'narwhal before');
    await bob.post(`${C}/join/${encodeURIComponent(hidden)}`, {});
    const after = await say(alice, hidden, 'narwhal after');
    const r = await search(bob, { search_term: 'narwhal' });
    expect(r.body.search_categories.room_events.results.map((x: any) => x.result.event_id)).toEqual([after]);
  });

  it('stores reports of events, rooms and users', async () => {
    const id = await say(alice, room1, 'something rude');
    const rid = encodeURIComponent(room1);
    expect((await bob.post(`${C}/rooms/${rid}/report/${encodeURIComponent(id)}`, { reason: 'rude' })).status).toBe(200);
    // Not joined: 404.
    expect((await eve.post(`${C}/rooms/${rid}/report/${encodeURIComponent(id)}`, { reason: 'x' })).status).toBe(404);
    expect((await bob.post(`${C}/rooms/${rid}/report/${encodeURIComponent('$missing')}`, { reason: 'x' })).status).toBe(404);
    expect((await eve.post(`${C}/rooms/${rid}/report`, { reason: 'spam room' })).status).toBe(200);
    expect((await eve.post(`${C}/rooms/${encodeURIComponent('!nope:localhost')}/report`, { reason: 'x' })).status).toBe(404);
    expect((await eve.post(`${C}/rooms/${rid}/report`, {})).status).toBe(400);
    expect((await eve.post(`${C}/users/${encodeURIComponent('@alice:localhost')}/report`, { reason: 'abuse' })).status).toBe(200);
    expect((await eve.post(`${C}/users/${encodeURIComponent('@ghost:localhost')}/report`, { reason: 'x' })).status).toBe(404);

    const reports = await t.server.ctx.reports.list();
    const mine = reports.filter((r) => r.reporter !== '@nobody:localhost');
    expect(mine.find((r) => r.kind === 'event')).toMatchObject({ roomId: room1, eventId: id, reporter: '@bob:localhost', reason: 'rude', targetUserId: '@alice:localhost' });
    expect(mine.find((r) => r.kind === 'room')).toMatchObject({ roomId: room1, reporter: '@eve:localhost', reason: 'spam room' });
    expect(mine.find((r) => r.kind === 'user')).toMatchObject({ targetUserId: '@alice:localhost', reporter: '@eve:localhost' });
  });
});
