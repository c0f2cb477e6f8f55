/**
 * Room previews ("peeking"): GET /rooms/{roomId}/initialSync, the long-poll GET /events?room_id=
 * and the deprecated GET /events/{eventId}, with every response checked against the spec; then
 * the real matrix-js-sdk peeking into a world-readable room it is not a member of.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, RoomEvent, type MatrixClient, type MatrixEvent } from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';
import { SpecClient } from './_spec-client.js';

(logger as unknown as { setLevel(level: string): void }).setLevel('error');

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;
let txn = 0;

async function say(c: TestClient, roomId: string, body: string): Promise<string> {
  const r = await c.put(`${C}/rooms/${enc(roomId)}/send/m.room.message/p${++txn}`, { msgtype: 'm.text', body });
  if (r.status !== 200) throw new Error(`send: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.event_id;
}

async function createRoom(c: TestClient, body: Record<string, unknown>): Promise<string> {
  const r = await c.post(`${C}/createRoom`, body);
  if (r.status !== 200) throw new Error(`createRoom: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.room_id;
}

function worldReadable(c: TestClient, extra: Record<string, unknown> = {}): Promise<string> {
  return createRoom(c, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: 'world_readable' } }], ...extra });
}

const texts = (chunk: any[]) => chunk.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);

describe.each<Engine>(['sqlite', 'postgres'])('room previews on %s', (engine) => {
  let t: TestServer;
  let alice: SpecClient;
  let bob: SpecClient;
  let carol: SpecClient;
  let aliceId: string;
  let bobId: string;
  let carolId: string;
  const sdkClients: MatrixClient[] = [];

  beforeAll(async () => {
    t = await startAccountsServer(engine);
    alice = new SpecClient(t.clientUrl);
    bob = new SpecClient(t.clientUrl);
    carol = new SpecClient(t.clientUrl);
    aliceId = (await alice.register('alice')).user_id;
    bobId = (await bob.register('bob')).user_id;
    carolId = (await carol.register('carol')).user_id;
  });
  afterAll(async () => {
    // The peek poll in flight is answered when the server stops, and not made again.
    for (const c of sdkClients) c.stopPeeking();
    await t?.close();
  });

  it('initialSync of a joined room: membership, latest messages, state, visibility and room account data', async () => {
    const roomId = await createRoom(alice, { preset: 'private_chat', name: 'Team' });
    for (let i = 1; i <= 4; i++) await say(alice, roomId, `m${i}`);
    expect((await alice.put(`${C}/user/${enc(aliceId)}/rooms/${enc(roomId)}/tags/u.work`, { order: 0.5 })).status).toBe(200);
    expect((await alice.put(`${C}/presence/${enc(aliceId)}/status`, { presence: 'online', status_msg: 'here' })).status).toBe(200);

    const r = await alice.get(`${C}/rooms/${enc(roomId)}/initialSync`);
    expect(r.status).toBe(200);
    expect(r.body.room_id).toBe(roomId);
    expect(r.body.membership).toBe('join');
    expect(r.body.visibility).toBe('private');
    // Oldest first, ending with the latest message.
    expect(texts(r.body.messages.chunk)).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(r.body.messages.chunk.every((e: any) => e.room_id === roomId)).toBe(true);
    expect(typeof r.body.messages.start).toBe('string');
    expect(typeof r.body.messages.end).toBe('string');
    const state = r.body.state as any[];
    expect(state.find((e) => e.type === 'm.room.create')).toBeDefined();
    expect(state.find((e) => e.type === 'm.room.name')?.content.name).toBe('Team');
    expect(state.find((e) => e.type === 'm.room.member' && e.state_key === aliceId)?.content.membership).toBe('join');
    expect(r.body.account_data).toEqual([{ type: 'm.tag', content: { tags: { 'u.work': { order: 0.5 } } } }]);
    const presence = r.body.presence.find((p: any) => p.sender === aliceId);
    expect(presence).toMatchObject({ type: 'm.presence', content: { presence: 'online', status_msg: 'here', user_id: aliceId } });

    // `limit` bounds the messages.
    const two = await alice.get(`${C}/rooms/${enc(roomId)}/initialSync?limit=2`);
    expect(two.body.messages.chunk.map((e: any) => e.content.body)).toEqual(['m3', 'm4']);
    expect((await alice.get(`${C}/rooms/${enc(roomId)}/initialSync?limit=-1`)).status).toBe(400);
  });

  it('a non-member peeks into a world-readable room; private and unknown rooms are forbidden', async () => {
    const open = await worldReadable(alice, { name: 'Lobby', visibility: 'public' });
    await say(alice, open, 'hello world');
    const peek = await bob.get(`${C}/rooms/${enc(open)}/initialSync`);
    expect(peek.status).toBe(200);
    expect(peek.body.room_id).toBe(open);
    expect(peek.body.membership).toBeUndefined();
    expect(peek.body.visibility).toBe('public');
    expect(texts(peek.body.messages.chunk)).toEqual(['hello world']);
    expect(peek.body.state.find((e: any) => e.type === 'm.room.name')?.content.name).toBe('Lobby');
    expect(peek.body.state.find((e: any) => e.type === 'm.room.member' && e.state_key === bobId)).toBeUndefined();
    expect(peek.body.account_data).toEqual([]);

    const priv = await createRoom(alice, { preset: 'private_chat' });
    const secret = await say(alice, priv, 'secret');
    const denied = await bob.get(`${C}/rooms/${enc(priv)}/initialSync`);
    expect(denied.status).toBe(403);
    expect(denied.body.errcode).toBe('M_FORBIDDEN');
    // A public room that is not world-readable cannot be peeked into either.
    const shared = await createRoom(alice, { preset: 'public_chat' });
    expect((await bob.get(`${C}/rooms/${enc(shared)}/initialSync`)).status).toBe(403);
    const unknown = await bob.get(`${C}/rooms/${enc('!nowhere:localhost')}/initialSync`);
    expect(unknown.status).toBe(403);
    expect(unknown.body.errcode).toBe('M_FORBIDDEN');
    const events = await bob.get(`${C}/events?room_id=${enc(priv)}&timeout=0`);
    expect(events.status).toBe(403);
    expect(events.body.errcode).toBe('M_FORBIDDEN');
    expect((await bob.get(`${C}/events/${enc(secret)}`)).status).toBe(404);
    expect((await bob.get(`${C}/rooms/${enc(open)}/initialSync`, { token: null })).status).toBe(401);
  });

  it('a member who left sees the room up to their leaving', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await carol.post(`${C}/join/${enc(roomId)}`, {});
    await say(alice, roomId, 'while carol was here');
    expect((await carol.post(`${C}/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    await say(alice, roomId, 'after carol left');
    await alice.put(`${C}/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'changed later' });

    const r = await carol.get(`${C}/rooms/${enc(roomId)}/initialSync`);
    expect(r.status).toBe(200);
    expect(r.body.membership).toBe('leave');
    expect(texts(r.body.messages.chunk)).toEqual(['while carol was here']);
    expect(r.body.state.find((e: any) => e.type === 'm.room.member' && e.state_key === carolId)?.content.membership).toBe('leave');
    expect(r.body.state.find((e: any) => e.type === 'm.room.topic')).toBeUndefined();
  });

  it('pages back from `start` and forwards from `end` with /messages', async () => {
    const roomId = await worldReadable(alice);
    for (let i = 1; i <= 12; i++) await say(alice, roomId, `n${i}`);
    const r = await bob.get(`${C}/rooms/${enc(roomId)}/initialSync?limit=5`);
    expect(texts(r.body.messages.chunk)).toEqual(['n8', 'n9', 'n10', 'n11', 'n12']);

    const back = await bob.get(`${C}/rooms/${enc(roomId)}/messages?dir=b&limit=5&from=${enc(r.body.messages.start)}`);
    expect(back.status).toBe(200);
    expect(texts(back.body.chunk)).toEqual(['n7', 'n6', 'n5', 'n4', 'n3']);
    const further = await bob.get(`${C}/rooms/${enc(roomId)}/messages?dir=b&limit=2&from=${enc(back.body.end)}`);
    expect(texts(further.body.chunk)).toEqual(['n2', 'n1']);

    const none = await bob.get(`${C}/rooms/${enc(roomId)}/messages?dir=f&from=${enc(r.body.messages.end)}`);
    expect(none.body.chunk).toEqual([]);
    await say(alice, roomId, 'n13');
    const later = await bob.get(`${C}/rooms/${enc(roomId)}/messages?dir=f&from=${enc(r.body.messages.end)}`);
    expect(texts(later.body.chunk)).toEqual(['n13']);
  });

  it('/events long-polls: a new message wakes a peeker at once; a timeout answers the same token', async () => {
    const roomId = await worldReadable(alice);
    await say(alice, roomId, 'before');
    const snap = await bob.get(`${C}/rooms/${enc(roomId)}/initialSync`);
    const from = snap.body.messages.end;

    const TIMEOUT = 20_000;
    const started = Date.now();
    let answered = false;
    const poll = bob.get(`${C}/events?room_id=${enc(roomId)}&from=${enc(from)}&timeout=${TIMEOUT}`).then((r) => {
      answered = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 300));
    // Still waiting: nothing new yet.
    expect(answered).toBe(false);
    const sentAt = Date.now();
    const eventId = await say(alice, roomId, 'live');
    const r = await poll;
    const latency = Date.now() - sentAt;
    expect(r.status).toBe(200);
    expect(r.body.chunk.map((e: any) => e.event_id)).toEqual([eventId]);
    expect(r.body.chunk[0].room_id).toBe(roomId);
    expect(r.body.start).toBe(from);
    expect(r.body.end).not.toBe(from);
    expect(latency).toBeLessThan(2_000);
    expect(Date.now() - started).toBeLessThan(TIMEOUT / 2);

    // Nothing new: the same token back once the timeout passes.
    const idleStart = Date.now();
    const idle = await bob.get(`${C}/events?room_id=${enc(roomId)}&from=${enc(r.body.end)}&timeout=400`);
    expect(idle.status).toBe(200);
    expect(idle.body.chunk).toEqual([]);
    expect(idle.body.end).toBe(r.body.end);
    expect(idle.body.start).toBe(r.body.end);
    expect(Date.now() - idleStart).toBeGreaterThanOrEqual(350);

    // A member is woken the same way; without `from` the stream starts now.
    const memberPoll = alice.get(`${C}/events?room_id=${enc(roomId)}&timeout=${TIMEOUT}`);
    await new Promise((r) => setTimeout(r, 300));
    const second = await say(alice, roomId, 'second');
    const m = await memberPoll;
    expect(m.body.chunk.map((e: any) => e.event_id)).toEqual([second]);

    // The global event stream is not served: room_id is required.
    const missing = await bob.get(`${C}/events?timeout=0`);
    expect(missing.status).toBe(400);
    expect(missing.body.errcode).toBe('M_MISSING_PARAM');
    expect((await bob.get(`${C}/events?room_id=${enc(roomId)}&from=nonsense&timeout=0`)).status).toBe(400);
  });

  it('/events/{eventId} answers events the user may see and 404 otherwise', async () => {
    const open = await worldReadable(alice);
    const visible = await say(alice, open, 'public words');
    const got = await bob.get(`${C}/events/${enc(visible)}`);
    expect(got.status).toBe(200);
    expect(got.body.event_id).toBe(visible);
    expect(got.body.content.body).toBe('public words');
    expect(got.body.room_id).toBe(open);

    const priv = await createRoom(alice, { preset: 'private_chat' });
    const hidden = await say(alice, priv, 'private words');
    expect((await alice.get(`${C}/events/${enc(hidden)}`)).status).toBe(200);
    const notYours = await bob.get(`${C}/events/${enc(hidden)}`);
    expect(notYours.status).toBe(404);
    expect(notYours.body.errcode).toBe('M_NOT_FOUND');
    expect((await bob.get(`${C}/events/${enc('$missing:localhost')}`)).status).toBe(404);
  });

  it('matrix-js-sdk peekInRoom: sees the history, then a new message through the peek poll', async () => {
    const roomId = await worldReadable(alice, { name: 'Peekable' });
    await say(alice, roomId, 'first');
    await say(alice, roomId, 'second');
    const dave = new TestClient(t.clientUrl);
    const reg = await dave.register('dave');
    const client = createClient({ baseUrl: t.clientUrl, accessToken: reg.access_token, userId: reg.user_id, deviceId: reg.device_id });
    sdkClients.push(client);

    const room = await client.peekInRoom(roomId);
    const bodies = () =>
      room
        .getLiveTimeline()
        .getEvents()
        .filter((e) => e.getType() === 'm.room.message')
        .map((e) => e.getContent().body);
    expect(bodies()).toEqual(['first', 'second']);
    expect(room.name).toBe('Peekable');
    expect(room.getMyMembership()).not.toBe('join');

    const arrived = new Promise<MatrixEvent>((resolve) => {
      const h = (ev: MatrixEvent) => {
        if (ev.getContent().body?.startsWith('live')) {
          room.off(RoomEvent.Timeline, h);
          resolve(ev);
        }
      };
      room.on(RoomEvent.Timeline, h);
    });
    // The SDK's first poll starts at the newest event when it is made: let it reach the
    // server, then send (again, should one have come before the poll).
    await new Promise((r) => setTimeout(r, 300));
    let got: MatrixEvent | undefined;
    for (let i = 0; i < 5 && !got; i++) {
      const sentAt = Date.now();
      await say(alice, roomId, `live ${i}`);
      got = await Promise.race([arrived, new Promise<undefined>((r) => setTimeout(() => r(undefined), 3_000))]);
      if (got) expect(Date.now() - sentAt).toBeLessThan(3_000);
    }
    expect(got?.getSender()).toBe(aliceId);
    expect(got?.getRoomId()).toBe(roomId);
    expect(bodies()).toContain(got?.getContent().body);
    // The SDK polls again at once: let that poll reach the server before it stops.
    client.stopPeeking();
    await new Promise((r) => setTimeout(r, 200));
  });
});
