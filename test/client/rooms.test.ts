import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const C = '/_matrix/client/v3';

describe.each<Engine>(['sqlite', 'postgres'])('rooms and messaging on %s', (engine) => {
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

  it('creates a public room with name, topic and alias, defaulting to room version 12', async () => {
    const r = await alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'Lobby', topic: 'Welcome', room_alias_name: `lobby-${engine}`, visibility: 'public' });
    expect(r.status).toBe(200);
    const roomId = r.body.room_id as string;
    expect(roomId).toMatch(/^![A-Za-z0-9_-]{43}$/);
    const create = await alice.get(`${C}/rooms/${encodeURIComponent(roomId)}/state/m.room.create`);
    expect(create.body.room_version).toBe('12');
    expect((await alice.get(`${C}/rooms/${encodeURIComponent(roomId)}/state/m.room.name`)).body).toEqual({ name: 'Lobby' });
    const jr = await alice.get(`${C}/rooms/${encodeURIComponent(roomId)}/state/m.room.join_rules/`);
    expect(jr.body).toEqual({ join_rule: 'public' });
    const alias = await bob.get(`${C}/directory/room/${encodeURIComponent(`#lobby-${engine}:localhost`)}`);
    expect(alias.body.room_id).toBe(roomId);
    const pub = await bob.get(`${C}/publicRooms`);
    expect(pub.body.chunk.map((c: any) => c.room_id)).toContain(roomId);
  });

  it('join, chat, sync, paginate, redact', async () => {
    const { body } = await alice.post(`${C}/createRoom`, { preset: 'public_chat' });
    const roomId = body.room_id as string;
    const rid = encodeURIComponent(roomId);
    const join = await bob.post(`${C}/join/${rid}`, {});
    expect(join.status).toBe(200);
    const s0 = await bob.get(`${C}/sync`);
    expect(s0.status).toBe(200);
    expect(Object.keys(s0.body.rooms.join)).toContain(roomId);

    const sent = await alice.put(`${C}/rooms/${rid}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hello' });
    expect(sent.status).toBe(200);
    const again = await alice.put(`${C}/rooms/${rid}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hello' });
    expect(again.body.event_id).toBe(sent.body.event_id);

    const s1 = await bob.get(`${C}/sync?since=${s0.body.next_batch}&timeout=0`);
    const tl = s1.body.rooms.join[roomId].timeline.events;
    expect(tl.map((e: any) => e.event_id)).toEqual([sent.body.event_id]);
    expect(tl[0].content.body).toBe('hello');

    // Long-poll wakes when alice sends.
    const started = Date.now();
    const poll = bob.get(`${C}/sync?since=${s1.body.next_batch}&timeout=20000`);
    await new Promise((r) => setTimeout(r, 200));
    const m2 = await alice.put(`${C}/rooms/${rid}/send/m.room.message/t2`, { msgtype: 'm.text', body: 'wake up' });
    const s2 = await poll;
    expect(Date.now() - started).toBeLessThan(10000);
    expect(s2.body.rooms.join[roomId].timeline.events.map((e: any) => e.event_id)).toEqual([m2.body.event_id]);

    for (let i = 0; i < 30; i++) await alice.put(`${C}/rooms/${rid}/send/m.room.message/p${i}`, { msgtype: 'm.text', body: `n${i}` });
    const seen: string[] = [];
    let from: string | undefined;
    for (let page = 0; page < 10; page++) {
      const res = await bob.get(`${C}/rooms/${rid}/messages?dir=b&limit=7${from ? `&from=${from}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body));
      if (!res.body.end) break;
      from = res.body.end;
    }
    expect(seen.slice(0, 30)).toEqual(Array.from({ length: 30 }, (_, i) => `n${29 - i}`));
    expect(seen.slice(30)).toEqual(['wake up', 'hello']);

    const red = await alice.put(`${C}/rooms/${rid}/redact/${encodeURIComponent(sent.body.event_id)}/r1`, { reason: 'oops' });
    expect(red.status).toBe(200);
    const ev = await bob.get(`${C}/rooms/${rid}/event/${encodeURIComponent(sent.body.event_id)}`);
    expect(ev.body.content).toEqual({});
    expect(ev.body.unsigned.redacted_because.event_id).toBe(red.body.event_id);
    const notMine = await bob.put(`${C}/rooms/${rid}/redact/${encodeURIComponent(m2.body.event_id)}/r2`, {});
    expect(notMine.status).toBe(403);
    expect(notMine.body.errcode).toBe('M_FORBIDDEN');
  });

  it('private rooms need an invite; kick and ban need power', async () => {
    const { body } = await alice.post(`${C}/createRoom`, { preset: 'private_chat', invite: ['@bob:localhost'], is_direct: true });
    const rid = encodeURIComponent(body.room_id);
    const denied = await carol.post(`${C}/rooms/${rid}/join`, {});
    expect(denied.status).toBe(403);
    const sync = await bob.get(`${C}/sync`);
    expect(sync.body.rooms.invite[body.room_id].invite_state.events.some((e: any) => e.type === 'm.room.member' && e.content.is_direct)).toBe(true);
    expect((await bob.post(`${C}/rooms/${rid}/join`, {})).status).toBe(200);
    const members = await bob.get(`${C}/rooms/${rid}/joined_members`);
    expect(Object.keys(members.body.joined).sort()).toEqual(['@alice:localhost', '@bob:localhost']);
    expect((await bob.post(`${C}/rooms/${rid}/kick`, { user_id: '@alice:localhost' })).status).toBe(403);
    expect((await alice.post(`${C}/rooms/${rid}/ban`, { user_id: '@bob:localhost', reason: 'spam' })).status).toBe(200);
    expect((await bob.post(`${C}/rooms/${rid}/join`, {})).status).toBe(403);
    expect((await alice.post(`${C}/rooms/${rid}/unban`, { user_id: '@bob:localhost' })).status).toBe(200);
    const joined = await bob.get(`${C}/joined_rooms`);
    expect(joined.body.joined_rooms).not.toContain(body.room_id);
  });

  it('bad input gets the spec errors and changes nothing', async () => {
    expect((await alice.post(`${C}/createRoom`, { room_version: '999' })).body.errcode).toBe('M_UNSUPPORTED_ROOM_VERSION');
    expect((await alice.post(`${C}/createRoom`, { preset: 'nope' })).body.errcode).toBe('M_BAD_JSON');
    expect((await alice.put(`${C}/rooms/!nope:localhost/send/m.room.message/x`, { body: 'x' })).status).toBe(404);
    expect((await alice.get(`${C}/sync?since=garbage`)).body.errcode).toBe('M_INVALID_PARAM');
    expect((await alice.post(`${C}/createRoom`, {}, { token: null })).body.errcode).toBe('M_MISSING_TOKEN');
  });
});
