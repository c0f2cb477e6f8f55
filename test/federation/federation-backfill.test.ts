import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient } from '../client/_client.js';
import { eventually, paginateAll, type Federation, type FedMember, twoServers } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const enc = encodeURIComponent;

async function sendRaw(c: TestClient, roomId: string, content: Record<string, unknown>): Promise<string> {
  const res = await c.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, content);
  if (res.status !== 200) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.event_id;
}

describe.each<Engine>(['sqlite', 'postgres'])('backfill over federation on %s', (engine) => {
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

  it('a user of B who joins later pages back through the whole history of A, in order, with edits and redactions', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'History', topic: 'old times' });
    expect(created.status).toBe(200);
    const roomId = created.body.room_id as string;
    const ids: string[] = [];
    const redacted = new Set<string>();
    const edits = new Map<string, string>();
    for (let i = 0; i < 100; i++) {
      ids.push(await sendRaw(alice, roomId, { msgtype: 'm.text', body: `m${i}` }));
      if (i % 20 === 10) {
        const target = ids[i - 1]!;
        const edit = await sendRaw(alice, roomId, {
          msgtype: 'm.text',
          body: `* m${i - 1} edited`,
          'm.new_content': { msgtype: 'm.text', body: `m${i - 1} edited` },
          'm.relates_to': { rel_type: 'm.replace', event_id: target },
        });
        edits.set(target, edit);
      }
      if (i % 25 === 5) {
        const r = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/redact/${enc(ids[i]!)}/${Math.random().toString(36).slice(2)}`, { reason: 'oops' });
        expect(r.status).toBe(200);
        redacted.add(ids[i]!);
      }
    }
    // Alice's view of the room is the reference.
    const onA = (await paginateAll(alice, roomId, 200)).events.map((e) => e.event_id);
    expect(onA.length).toBeGreaterThan(100);

    const joined = await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=a.test`, {});
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    const sinceJoin = (await bob.get('/_matrix/client/v3/sync?timeout=0')).body.next_batch as string;

    const { events, pages } = await paginateAll(bob, roomId, 25);
    expect(pages).toBeGreaterThan(3);
    const onB = events.map((e) => e.event_id);
    const bobJoin = onB.indexOf(joined.body.event_id ?? onB.find((id, i) => events[i].type === 'm.room.member' && events[i].state_key === '@bob:b.test'));
    // Everything before Bob's join, exactly as on A, in the same order, no duplicates.
    expect(new Set(onB).size).toBe(onB.length);
    expect(onB.slice(0, bobJoin >= 0 ? bobJoin : undefined)).toEqual(onA);
    expect(events[0].type).toBe('m.room.create');
    expect(events.find((e) => e.type === 'm.room.topic')?.content.topic).toBe('old times');

    const byId = new Map(events.map((e) => [e.event_id, e]));
    // Redacted messages come back pruned.
    for (const id of redacted) {
      expect(byId.get(id)?.content).toEqual({});
      expect(byId.get(id)?.unsigned?.redacted_because?.type).toBe('m.room.redaction');
    }
    // Edits are there, pointing at their originals.
    for (const [target, edit] of edits) {
      expect(byId.get(edit)?.content['m.relates_to']).toEqual({ rel_type: 'm.replace', event_id: target });
      expect(byId.has(target)).toBe(true);
    }
    const plain = events.filter((e) => e.type === 'm.room.message' && !e.content['m.relates_to'] && e.content.body);
    const expected = Array.from({ length: 100 }, (_, i) => `m${i}`).filter((_, i) => !redacted.has(ids[i]!));
    expect(plain.map((e) => e.content.body)).toEqual(expected);

    // A second pass is served from the store, identical.
    const again = (await paginateAll(bob, roomId, 60)).events.map((e) => e.event_id);
    expect(again).toEqual(onB);
    // /context of a backfilled event works and orders around it.
    const mid = ids[40]!;
    const ctxRes = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/context/${enc(mid)}?limit=4`);
    expect(ctxRes.status).toBe(200);
    expect(ctxRes.body.events_before[0].event_id).toBe(onB[onB.indexOf(mid) - 1]);
    expect(ctxRes.body.events_after[0].event_id).toBe(onB[onB.indexOf(mid) + 1]);

    // Sync only looks forward: the history does not come back as new events.
    const inc = await bob.get(`/_matrix/client/v3/sync?timeout=0&since=${enc(sinceJoin)}`);
    const timeline = inc.body.rooms?.join?.[roomId]?.timeline?.events ?? [];
    expect(timeline.filter((e: any) => e.type === 'm.room.message')).toEqual([]);

    // New messages still arrive after the join, and sit after it.
    await sendRaw(alice, roomId, { msgtype: 'm.text', body: 'after join' });
    await eventually(async () => {
      const res = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1`);
      return res.body.chunk[0]?.content?.body === 'after join';
    }, 20_000, 'the new message on B');
  }, 180_000);
});
