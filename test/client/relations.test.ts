import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const C = '/_matrix/client/v3';
const V1 = '/_matrix/client/v1';
let txn = 0;

async function send(c: TestClient, roomId: string, content: Record<string, unknown>, type = 'm.room.message'): Promise<string> {
  const r = await c.put(`${C}/rooms/${encodeURIComponent(roomId)}/send/${type}/r${++txn}`, content);
  if (r.status !== 200) throw new Error(`send: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.event_id;
}

const text = (body: string) => ({ msgtype: 'm.text', body });
const thread = (root: string, body: string) => ({ ...text(body), 'm.relates_to': { rel_type: 'm.thread', event_id: root } });

describe.each<Engine>(['sqlite', 'postgres'])('relations, threads and timestamps on %s', (engine) => {
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
    rid = encodeURIComponent(roomId);
    await bob.post(`${C}/join/${rid}`, {});
  });
  afterAll(() => t?.close());

  it('lists relations by type and event type, paginates both ways, and recurses', async () => {
    const root = await send(alice, roomId, text('root'));
    const replies: string[] = [];
    for (let i = 0; i < 5; i++) replies.push(await send(i % 2 ? bob : alice, roomId, thread(root, `reply ${i}`)));
    const reaction = await send(bob, roomId, { 'm.relates_to': { rel_type: 'm.annotation', event_id: root, key: '👍' } }, 'm.reaction');
    // A reference to a reply: related to the root only indirectly.
    const nested = await send(bob, roomId, { ...text('ref'), 'm.relates_to': { rel_type: 'm.reference', event_id: replies[0] } });

    const all = await alice.get(`${V1}/rooms/${rid}/relations/${encodeURIComponent(root)}?limit=50`);
    expect(all.status).toBe(200);
    expect(all.body.chunk.map((e: any) => e.event_id)).toEqual([...replies, reaction].reverse());
    expect(all.body.next_batch).toBeUndefined();

    const threads = await alice.get(`${V1}/rooms/${rid}/relations/${encodeURIComponent(root)}/m.thread?dir=f`);
    expect(threads.body.chunk.map((e: any) => e.event_id)).toEqual(replies);
    const reactions = await alice.get(`${V1}/rooms/${rid}/relations/${encodeURIComponent(root)}/m.annotation/m.reaction`);
    expect(reactions.body.chunk.map((e: any) => e.event_id)).toEqual([reaction]);
    const none = await alice.get(`${V1}/rooms/${rid}/relations/${encodeURIComponent(root)}/m.annotation/m.room.message`);
    expect(none.body.chunk).toEqual([]);

    // Pages of 2, backwards then forwards.
    const seen: string[] = [];
    let from: string | undefined;
    for (let i = 0; i < 10; i++) {
      const r = await alice.get(`${V1}/rooms/${rid}/relations/${encodeURIComponent(root)}/m.thread?limit=2${from ? `&from=${from}` : ''}`);
      expect(r.body.chunk.length).toBeLessThanOrEqual(2);
      seen.push(...r.body.chunk.map((e: any) => e.event_id));
      if (!r.body.next_batch) break;
      from = r.body.next_batch;
    }
    expect(seen).toEqual([...replies].reverse());
    const fwd: string[] = [];
    from = undefined;
    for (let i = 0; i < 10; i++) {
      const r = await alice.get(`${V1}/rooms/${rid}/relations/${encodeURIComponent(root)}/m.thread?dir=f&limit=3${from ? `&from=${from}` : ''}`);
      fwd.push(...r.body.chunk.map((e: any) => e.event_id));
      if (!r.body.next_batch) break;
      from = r.body.next_batch;
    }
    expect(fwd).toEqual(replies);

    const direct = await alice.get(`${V1}/rooms/${rid}/relations/${encodeURIComponent(root)}?limit=50&recurse=false`);
    expect(direct.body.chunk.map((e: any) => e.event_id)).not.toContain(nested);
    expect(direct.body.recursion_depth).toBe(1);
    const deep = await alice.get(`${V1}/rooms/${rid}/relations/${encodeURIComponent(root)}?limit=50&recurse=true`);
    expect(deep.body.chunk.map((e: any) => e.event_id)).toContain(nested);
    expect(deep.body.recursion_depth).toBeGreaterThanOrEqual(3);
    // Three hops deep.
    const hop3 = await send(bob, roomId, { ...text('ref2'), 'm.relates_to': { rel_type: 'm.reference', event_id: nested } });
    const deeper = await alice.get(`${V1}/rooms/${rid}/relations/${encodeURIComponent(root)}/m.reference?limit=50&recurse=true`);
    expect(deeper.body.chunk.map((e: any) => e.event_id).sort()).toEqual([nested, hop3].sort());

    // Unknown events and outsiders get 404 / 403.
    expect((await alice.get(`${V1}/rooms/${rid}/relations/${encodeURIComponent('$nope')}`)).status).toBe(404);
    expect((await carol.get(`${V1}/rooms/${rid}/relations/${encodeURIComponent(root)}`)).status).toBe(403);
  });

  it('bundles thread, edit and reference aggregations into served events', async () => {
    const root = await send(alice, roomId, text('original'));
    await send(alice, roomId, thread(root, 't1'));
    const t2 = await send(bob, roomId, thread(root, 't2'));
    // Edits: bob's edit of alice's message is invalid; the last valid one wins.
    await send(alice, roomId, { ...text('* edit 1'), 'm.new_content': text('edit 1'), 'm.relates_to': { rel_type: 'm.replace', event_id: root } });
    await send(bob, roomId, { ...text('* hijack'), 'm.new_content': text('hijack'), 'm.relates_to': { rel_type: 'm.replace', event_id: root } });
    const edit2 = await send(alice, roomId, { ...text('* edit 2'), 'm.new_content': text('edit 2'), 'm.relates_to': { rel_type: 'm.replace', event_id: root } });
    await send(alice, roomId, { ...text('* no new content'), 'm.relates_to': { rel_type: 'm.replace', event_id: root } });
    const ref = await send(bob, roomId, { ...text('see above'), 'm.relates_to': { rel_type: 'm.reference', event_id: root } });

    const ev = await alice.get(`${C}/rooms/${rid}/event/${encodeURIComponent(root)}`);
    const rel = ev.body.unsigned['m.relations'];
    expect(rel['m.thread'].count).toBe(2);
    expect(rel['m.thread'].latest_event.event_id).toBe(t2);
    expect(rel['m.thread'].latest_event.content.body).toBe('t2');
    expect(rel['m.thread'].current_user_participated).toBe(true);
    expect(rel['m.replace'].event_id).toBe(edit2);
    expect(rel['m.replace'].content['m.new_content'].body).toBe('edit 2');
    expect(rel['m.reference'].chunk).toEqual([{ event_id: ref }]);

    // carol is not in the thread; after joining she sees participated=false.
    await carol.post(`${C}/join/${rid}`, {});
    const forCarol = await carol.get(`${C}/rooms/${rid}/event/${encodeURIComponent(root)}`);
    expect(forCarol.body.unsigned['m.relations']['m.thread'].current_user_participated).toBe(false);

    // Bundles also appear in /messages, and a redacted reply leaves the count.
    const msgs = await alice.get(`${C}/rooms/${rid}/messages?dir=b&limit=50`);
    const inTimeline = msgs.body.chunk.find((e: any) => e.event_id === root);
    expect(inTimeline.unsigned['m.relations']['m.thread'].count).toBe(2);
    await bob.put(`${C}/rooms/${rid}/redact/${encodeURIComponent(t2)}/red1`, {});
    const after = await alice.get(`${C}/rooms/${rid}/event/${encodeURIComponent(root)}`);
    expect(after.body.unsigned['m.relations']['m.thread'].count).toBe(1);

    // An edit itself cannot be edited: no m.replace bundle on the edit.
    await send(alice, roomId, { ...text('* e'), 'm.new_content': text('e'), 'm.relates_to': { rel_type: 'm.replace', event_id: edit2 } });
    const editEv = await alice.get(`${C}/rooms/${rid}/event/${encodeURIComponent(edit2)}`);
    expect(editEv.body.unsigned['m.relations']?.['m.replace']).toBeUndefined();
  });

  it('lists thread roots, newest activity first, with include=participated and pagination', async () => {
    const { body } = await alice.post(`${C}/createRoom`, { preset: 'public_chat' });
    const r2 = body.room_id as string;
    const r2e = encodeURIComponent(r2);
    await bob.post(`${C}/join/${r2e}`, {});
    const a = await send(alice, r2, text('A'));
    const b = await send(bob, r2, text('B'));
    const c = await send(bob, r2, text('C'));
    await send(bob, r2, thread(a, 'a1'));
    await send(bob, r2, thread(b, 'b1'));
    await send(bob, r2, thread(c, 'c1'));
    await send(alice, r2, thread(b, 'b2'));

    const all = await alice.get(`${V1}/rooms/${r2e}/threads`);
    expect(all.status).toBe(200);
    expect(all.body.chunk.map((e: any) => e.event_id)).toEqual([b, c, a]);
    expect(all.body.chunk[0].unsigned['m.relations']['m.thread'].count).toBe(2);

    const mine = await alice.get(`${V1}/rooms/${r2e}/threads?include=participated`);
    expect(mine.body.chunk.map((e: any) => e.event_id)).toEqual([b, a]);

    const p1 = await alice.get(`${V1}/rooms/${r2e}/threads?limit=2`);
    expect(p1.body.chunk.map((e: any) => e.event_id)).toEqual([b, c]);
    expect(p1.body.next_batch).toBeTruthy();
    const p2 = await alice.get(`${V1}/rooms/${r2e}/threads?limit=2&from=${p1.body.next_batch}`);
    expect(p2.body.chunk.map((e: any) => e.event_id)).toEqual([a]);
    expect(p2.body.next_batch).toBeUndefined();
    expect((await alice.get(`${V1}/rooms/${r2e}/threads?include=bogus`)).status).toBe(400);
  });

  it('finds the event closest to a timestamp in either direction', async () => {
    const { body } = await alice.post(`${C}/createRoom`, { preset: 'public_chat' });
    const r3 = encodeURIComponent(body.room_id);
    const first = await send(alice, body.room_id, text('first'));
    const firstEv = (await alice.get(`${C}/rooms/${r3}/event/${encodeURIComponent(first)}`)).body;
    await new Promise((r) => setTimeout(r, 30));
    const second = await send(alice, body.room_id, text('second'));
    const secondEv = (await alice.get(`${C}/rooms/${r3}/event/${encodeURIComponent(second)}`)).body;
    expect(secondEv.origin_server_ts).toBeGreaterThan(firstEv.origin_server_ts);

    const f = await alice.get(`${V1}/rooms/${r3}/timestamp_to_event?ts=${firstEv.origin_server_ts + 1}&dir=f`);
    expect(f.body).toEqual({ event_id: second, origin_server_ts: secondEv.origin_server_ts });
    const b = await alice.get(`${V1}/rooms/${r3}/timestamp_to_event?ts=${secondEv.origin_server_ts - 1}&dir=b`);
    expect(b.body.event_id).toBe(first);
    const future = await alice.get(`${V1}/rooms/${r3}/timestamp_to_event?ts=${secondEv.origin_server_ts + 60000}&dir=f`);
    expect(future.status).toBe(404);
    expect(future.body.errcode).toBe('M_NOT_FOUND');
    const past = await alice.get(`${V1}/rooms/${r3}/timestamp_to_event?ts=0&dir=f`);
    expect(past.status).toBe(200);
    expect((await alice.get(`${V1}/rooms/${r3}/timestamp_to_event?ts=1&dir=x`)).status).toBe(400);
    expect((await carol.get(`${V1}/rooms/${r3}/timestamp_to_event?ts=0&dir=f`)).status).toBe(403);
  });
});

describe.each<Engine>(['sqlite', 'postgres'])('bundled aggregations across a restart on %s', (engine) => {
  it('events from before and after a restart get their edits bundled, also after a sync formatted them without', async () => {
    const { startRestartable } = await import('./_restartable.js');
    const srv = await startRestartable(engine);
    try {
      const alice = new TestClient(srv.url);
      await alice.register('alice');
      const roomId = (await alice.post(`${C}/createRoom`, { preset: 'private_chat' })).body.room_id as string;
      const rid = encodeURIComponent(roomId);
      const before = await send(alice, roomId, text('before the restart'));
      await srv.restart();
      const after = await send(alice, roomId, text('after the restart'));
      // Formatted (and bundled) once without any relation pointing at them.
      for (let i = 0; i < 2; i++) {
        const s = await alice.get(`${C}/sync?timeout=0`);
        expect(s.status).toBe(200);
        const ids = (s.body.rooms.join[roomId].timeline.events as any[]).map((e) => e.event_id);
        expect(ids).toContain(after);
      }
      for (const [target, label] of [
        [before, 'old'],
        [after, 'new'],
      ] as const) {
        const edit = await send(alice, roomId, {
          ...text(`* ${label}`),
          'm.new_content': text(label),
          'm.relates_to': { rel_type: 'm.replace', event_id: target },
        });
        const ev = await alice.get(`${C}/rooms/${rid}/event/${encodeURIComponent(target)}`);
        expect(ev.body.unsigned?.['m.relations']?.['m.replace']?.event_id).toBe(edit);
        const msgs = await alice.get(`${C}/rooms/${rid}/messages?dir=b&limit=20`);
        const inTimeline = (msgs.body.chunk as any[]).find((e) => e.event_id === target);
        expect(inTimeline.unsigned?.['m.relations']?.['m.replace']?.event_id).toBe(edit);
      }
    } finally {
      await srv.close();
    }
  });
});
