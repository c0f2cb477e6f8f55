/**
 * Joining a room of several hundred members over federation: the send_join answer is streamed
 * by the resident server and stored in chunks by the joining one; both end with the same state.
 * The joining server reports its progress on /metrics. The chunked checker also copes with an
 * answer whose state comes before its auth chain (as other servers may send it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JoinStateIngest } from '../../src/federation/join-state.js';
import { stateKeyOf } from '../../src/protocol/event.js';
import { getRoomVersion } from '../../src/protocol/room-versions.js';
import type { TestClient } from '../client/_client.js';
import { eventually, type Federation, type FedMember, twoServers } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const enc = encodeURIComponent;
const MEMBERS = 700;

/** The room's current state on a server, as type|state_key → event ID. */
async function stateMap(c: TestClient, roomId: string): Promise<Map<string, string>> {
  const res = await c.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state`);
  if (res.status !== 200) throw new Error(`state: ${res.status} ${JSON.stringify(res.body)}`);
  return new Map(res.body.map((e: any) => [`${e.type}|${e.state_key}`, e.event_id]));
}

/** `n` members of A (no accounts needed: A writes their joins itself), then state changes. */
async function populate(a: FedMember, roomId: string, n: number): Promise<void> {
  const ctx = a.server!.ctx;
  for (let i = 0; i < n; i++) {
    const user = `@m${i}:a.test`;
    // Display names with escapes and characters outside the BMP cross chunk boundaries.
    await ctx.roomEvents.send({ roomId, type: 'm.room.member', sender: user, stateKey: user, content: { membership: 'join', displayname: `member ${i} "é\\ 🎉 \u2028` } });
  }
  await ctx.roomEvents.send({ roomId, type: 'm.room.member', sender: '@m1:a.test', stateKey: '@m1:a.test', content: { membership: 'leave' } });
  await ctx.roomEvents.send({ roomId, type: 'm.room.member', sender: '@alice:a.test', stateKey: '@m2:a.test', content: { membership: 'ban', reason: 'test' } });
  await ctx.roomEvents.send({ roomId, type: 'm.room.topic', sender: '@alice:a.test', stateKey: '', content: { topic: 'big room' } });
  await ctx.roomEvents.send({ roomId, type: 'm.room.message', sender: '@m3:a.test', content: { msgtype: 'm.text', body: 'history' } });
}

describe.each<Engine>(['sqlite', 'postgres'])('joining a room of several hundred members on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  let alice: TestClient;
  let bob: TestClient;

  beforeAll(async () => {
    ({ fed, a, b, alice, bob } = await twoServers(engine, {
      b: {
        listeners: {
          client: { bind: '127.0.0.1', port: 0 },
          federation: { bind: '127.0.0.1', port: 0, tls: { cert_file: 'fed.crt', key_file: 'fed.key' } },
          metrics: { enabled: true, bind: '127.0.0.1', port: 0 },
        },
      },
    }));
  }, 60_000);

  afterAll(async () => {
    await fed?.close();
  });

  it('both servers hold the same state after the join, and B reports its progress on /metrics', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'Big' });
    expect(created.status).toBe(200);
    const roomId: string = created.body.room_id;
    await populate(a, roomId, MEMBERS);

    const joined = await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=a.test`, {});
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);

    const onB = await stateMap(bob, roomId);
    await eventually(async () => (await stateMap(alice, roomId)).get(`m.room.member|@bob:b.test`) !== undefined, 20_000, 'A to see the join');
    const onA = await stateMap(alice, roomId);
    expect(onB.size).toBe(onA.size);
    expect([...onB].sort()).toEqual([...onA].sort());
    // The state counts every member event, with the leave and the ban as they are on A.
    expect(onB.size).toBeGreaterThanOrEqual(MEMBERS + 6);
    const members = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`);
    expect(Object.keys(members.body.joined)).toHaveLength(MEMBERS - 2 + 2);
    const m5 = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc('@m5:a.test')}`);
    expect(m5.body.displayname).toBe('member 5 "é\\ 🎉 \u2028');
    const banned = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc('@m2:a.test')}`);
    expect(banned.body.membership).toBe('ban');

    // B chats in the room (its join is the forward extremity on top of the stored state).
    const sent = await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hi from b' });
    expect(sent.status).toBe(200);

    const port = b.server!.address('metrics')!.port;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const value = (phase: string) => Number(new RegExp(`^myelin_federation_join_progress_events\\{phase="${phase}"\\} (\\d+)`, 'm').exec(text)?.[1]);
    expect(value('received')).toBeGreaterThanOrEqual(onB.size);
    expect(value('checked')).toBe(value('received'));
    expect(value('persisted')).toBeGreaterThanOrEqual(onB.size - 1);
    expect(value('done')).toBe(1);
    expect(b.logs.some((l) => l.includes('joined room state stored'))).toBe(true);
  }, 240_000);

  it('stores an answer whose state comes before its auth chain, newest first', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'Reversed' });
    const roomId: string = created.body.room_id;
    await populate(a, roomId, 30);
    const ctxA = a.server!.ctx;
    const rooms = ctxA.federationRooms.rooms;
    const { state, authChain } = await rooms.stateAt(roomId, undefined);
    const version = getRoomVersion((await ctxA.eventStore.getRoom(roomId))!.roomVersion)!;
    const byDepthDesc = (x: { event: { depth: number } }, y: { event: { depth: number } }) => y.event.depth - x.event.depth;
    const raws = [...state.sort(byDepthDesc).map((s) => [s, true] as const), ...authChain.sort(byDepthDesc).map((s) => [s, false] as const)];

    const ctxB = b.server!.ctx;
    const ingest = new JoinStateIngest(
      { database: ctxB.database, events: ctxB.eventStore, roomEvents: ctxB.roomEvents, keyring: ctxB.federation.keyring, log: ctxB.log, chunkSize: 7 },
      roomId,
      version,
      'a.test',
      async (create) => {
        if (await ctxB.eventStore.getRoom(roomId)) return;
        await ctxB.database.transaction((tx) => ctxB.eventStore.insertRoom(tx, { roomId, roomVersion: version.id, creator: create.sender, isPublic: false, createdTs: create.origin_server_ts }));
      },
    );
    for (const [s, inState] of raws) await ingest.add(rooms.pduFormOf(s.event, version), inState);
    // A forged event (bad signature) is dropped; the rest is stored.
    await ingest.add({ ...rooms.pduFormOf(state[0]!.event, version), origin_server_ts: 1 }, true);
    const got = await ingest.finish();
    expect(b.logs.some((l) => l.includes('dropped a received event'))).toBe(true);

    const expected = new Map(state.map((s) => [stateKeyOf(s.event.type, s.event.state_key!), s.event.event_id]));
    expect([...got].sort()).toEqual([...expected].sort());
    const stored = await ctxB.eventStore.getEvents([...got.values()]);
    expect(stored.size).toBe(got.size);
    expect([...stored.values()].every((s) => s.outlier && !s.rejected)).toBe(true);
  }, 120_000);
});
