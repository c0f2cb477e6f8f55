import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const C = '/_matrix/client/v3';
const LAZY = encodeURIComponent(JSON.stringify({ room: { state: { lazy_load_members: true }, timeline: { limit: 2 } } }));

describe.each<Engine>(['sqlite', 'postgres'])('incremental sync with lazy-loaded members on %s', (engine) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startAccountsServer(engine);
  });
  afterAll(() => t?.close());

  it("sends a sender's member event with their first message the client sees, and summaries only when memberships move", async () => {
    const alice = new TestClient(t.clientUrl);
    const bob = new TestClient(t.clientUrl);
    const carol = new TestClient(t.clientUrl);
    await alice.register('alice');
    await bob.register('bob');
    await carol.register('carol');
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const rid = encodeURIComponent(roomId);
    await carol.post(`${C}/rooms/${rid}/join`, {});
    await bob.post(`${C}/rooms/${rid}/join`, {});
    for (let i = 0; i < 3; i++) await alice.put(`${C}/rooms/${rid}/send/m.room.message/a${i}`, { msgtype: 'm.text', body: `a${i}` });

    // Initial sync: only alice (sender) and bob (self) are loaded; carol is not.
    const s0 = await bob.get(`${C}/sync?filter=${LAZY}`);
    const members0 = s0.body.rooms.join[roomId].state.events.filter((e: any) => e.type === 'm.room.member').map((e: any) => e.state_key);
    expect(members0).not.toContain('@carol:localhost');
    expect(s0.body.rooms.join[roomId].summary['m.joined_member_count']).toBe(3);

    // Carol speaks: the incremental sync carries her member event in state.
    await carol.put(`${C}/rooms/${rid}/send/m.room.message/c1`, { msgtype: 'm.text', body: 'hello' });
    const s1 = await bob.get(`${C}/sync?filter=${LAZY}&since=${s0.body.next_batch}&timeout=0`);
    const room1 = s1.body.rooms.join[roomId];
    expect(room1.timeline.events.map((e: any) => e.content.body)).toEqual(['hello']);
    const carolMember = room1.state.events.find((e: any) => e.type === 'm.room.member' && e.state_key === '@carol:localhost');
    expect(carolMember?.content.membership).toBe('join');
    // Nothing about memberships changed: the summary is left out.
    expect(room1.summary).toBeUndefined();

    // A membership change brings the summary back.
    const dave = new TestClient(t.clientUrl);
    await dave.register('dave');
    await dave.post(`${C}/rooms/${rid}/join`, {});
    const s2 = await bob.get(`${C}/sync?filter=${LAZY}&since=${s1.body.next_batch}&timeout=0`);
    expect(s2.body.rooms.join[roomId].summary['m.joined_member_count']).toBe(4);
  });
});
