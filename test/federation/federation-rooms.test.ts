import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authEventKeysFor } from '../../src/protocol/auth-events.js';
import { computeContentHash } from '../../src/protocol/event-hash.js';
import { withEventId } from '../../src/protocol/event-id.js';
import { signEvent } from '../../src/protocol/event-signing.js';
import { stateKeyOf, type Pdu } from '../../src/protocol/event.js';
import { getRoomVersion } from '../../src/protocol/room-versions.js';
import { generateSigningKey } from '../../src/protocol/signing.js';
import type { TestClient } from '../client/_client.js';
import { bodies, eventually, roomMessages, type Federation, type FedMember, twoServers } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const enc = encodeURIComponent;

async function send(c: TestClient, roomId: string, body: string): Promise<string> {
  const res = await c.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', body });
  if (res.status !== 200) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.event_id;
}

async function stateOf(c: TestClient, roomId: string, type: string): Promise<any> {
  const res = await c.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/${type}/`);
  return res.status === 200 ? res.body : undefined;
}

/** Cuts (or restores) a server's outgoing federation requests. */
function partition(m: FedMember, cut: boolean): void {
  const client = m.server!.ctx.federation.client as any;
  if (cut) {
    client.__orig ??= client.request;
    client.request = async () => {
      throw new Error('network partition (test)');
    };
  } else if (client.__orig) {
    client.request = client.__orig;
    delete client.__orig;
  }
}

async function members(c: TestClient, roomId: string): Promise<Record<string, string>> {
  const res = await c.get(`/_matrix/client/v3/rooms/${enc(roomId)}/members`);
  if (res.status !== 200) throw new Error(`members: ${res.status} ${JSON.stringify(res.body)}`);
  return Object.fromEntries(res.body.chunk.map((e: any) => [e.state_key, e.content.membership]));
}

describe.each<Engine>(['sqlite', 'postgres'])('federated rooms on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  let alice: TestClient;
  let bob: TestClient;
  let roomId: string;

  beforeAll(async () => {
    ({ fed, a, b, alice, bob } = await twoServers(engine));
  }, 60_000);

  afterAll(async () => {
    await fed?.close();
  });

  it('a user of B joins a room of A by alias and both chat', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', room_alias_name: 'lobby', name: 'Lobby' });
    expect(created.status).toBe(200);
    roomId = created.body.room_id;
    await send(alice, roomId, 'before bob');

    const joined = await bob.post(`/_matrix/client/v3/join/${enc('#lobby:a.test')}`, {});
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    expect(joined.body.room_id).toBe(roomId);

    // A sees Bob joined; B has the room's state.
    await eventually(async () => (await members(alice, roomId))['@bob:b.test'] === 'join', 20_000, 'A to see the join');
    const onB = await members(bob, roomId);
    expect(onB['@alice:a.test']).toBe('join');
    expect(onB['@bob:b.test']).toBe('join');
    const name = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.name/`);
    expect(name.body.name).toBe('Lobby');

    await send(bob, roomId, 'hello from b');
    await eventually(async () => bodies(await roomMessages(alice, roomId)).includes('hello from b'), 20_000, 'A to get B’s message');
    await send(alice, roomId, 'hello from a');
    await eventually(async () => bodies(await roomMessages(bob, roomId)).includes('hello from a'), 20_000, 'B to get A’s message');

    // B's sync shows the room with A's message.
    const sync = await bob.get('/_matrix/client/v3/sync');
    const timeline = sync.body.rooms.join[roomId].timeline.events.map((e: any) => e.content?.body);
    expect(timeline).toContain('hello from a');
  }, 60_000);

  it('a user of B joins a room of A by room ID with server_name, and leaves', async () => {
    const carol = b.client();
    await carol.register('carol');
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'By ID' });
    const rid = created.body.room_id;
    const noVia = await carol.post(`/_matrix/client/v3/join/${enc(rid)}`, {});
    expect(noVia.status).toBe(404);
    const joined = await carol.post(`/_matrix/client/v3/join/${enc(rid)}?server_name=a.test`, {});
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    await eventually(async () => (await members(alice, rid))['@carol:b.test'] === 'join', 20_000, 'carol joined on A');
    const left = await carol.post(`/_matrix/client/v3/rooms/${enc(rid)}/leave`, {});
    expect(left.status).toBe(200);
    await eventually(async () => (await members(alice, rid))['@carol:b.test'] === 'leave', 20_000, 'carol left on A');
  }, 60_000);

  it('typing notifications and read receipts cross servers', async () => {
    const typing = await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/typing/${enc('@bob:b.test')}`, { typing: true, timeout: 20_000 });
    expect(typing.status).toBe(200);
    await eventually(
      async () => {
        const sync = await alice.get('/_matrix/client/v3/sync?timeout=0');
        const eph = sync.body.rooms?.join?.[roomId]?.ephemeral?.events ?? [];
        return eph.some((e: any) => e.type === 'm.typing' && e.content.user_ids.includes('@bob:b.test'));
      },
      20_000,
      'A to see B typing',
    );
    const last = (await roomMessages(bob, roomId)).filter((e) => e.type === 'm.room.message').pop();
    const receipt = await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(last.event_id)}`, {});
    expect(receipt.status).toBe(200);
    await eventually(
      async () => {
        const sync = await alice.get('/_matrix/client/v3/sync?timeout=0');
        const eph = sync.body.rooms?.join?.[roomId]?.ephemeral?.events ?? [];
        return eph.some((e: any) => e.type === 'm.receipt' && e.content[last.event_id]?.['m.read']?.['@bob:b.test']);
      },
      20_000,
      'A to see B’s receipt',
    );
  }, 60_000);

  it('invites both ways: the invitee sees the invite in sync and joins', async () => {
    // A invites a user of B to a private room.
    const dave = b.client();
    await dave.register('dave');
    const priv = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', name: 'Secret' });
    const rid = priv.body.room_id;
    const inv = await alice.post(`/_matrix/client/v3/rooms/${enc(rid)}/invite`, { user_id: '@dave:b.test' });
    expect(inv.status, JSON.stringify(inv.body)).toBe(200);
    const invited = await eventually(async () => {
      const sync = await dave.get('/_matrix/client/v3/sync?timeout=0');
      return sync.body.rooms?.invite?.[rid];
    }, 20_000, 'dave to see the invite');
    const types = invited.invite_state.events.map((e: any) => e.type);
    expect(types).toContain('m.room.name');
    expect(types).toContain('m.room.member');
    // Spec v1.16: the create event travels as a full PDU (checked by B) and reaches clients stripped.
    const create = invited.invite_state.events.find((e: any) => e.type === 'm.room.create');
    expect(Object.keys(create).sort()).toEqual(['content', 'sender', 'state_key', 'type']);
    expect(create.sender).toBe('@alice:a.test');
    const join = await dave.post(`/_matrix/client/v3/rooms/${enc(rid)}/join`, {});
    expect(join.status, JSON.stringify(join.body)).toBe(200);
    await eventually(async () => (await members(alice, rid))['@dave:b.test'] === 'join', 20_000, 'dave joined on A');

    // B invites a user of A; the invite is rejected (a leave through make_leave/send_leave).
    const room2 = await bob.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', name: 'From B' });
    const rid2 = room2.body.room_id;
    expect((await bob.post(`/_matrix/client/v3/rooms/${enc(rid2)}/invite`, { user_id: '@alice:a.test' })).status).toBe(200);
    await eventually(async () => (await alice.get('/_matrix/client/v3/sync?timeout=0')).body.rooms?.invite?.[rid2], 20_000, 'alice invite');
    const reject = await alice.post(`/_matrix/client/v3/rooms/${enc(rid2)}/leave`, {});
    expect(reject.status, JSON.stringify(reject.body)).toBe(200);
    await eventually(async () => (await members(bob, rid2))['@alice:a.test'] === 'leave', 20_000, 'rejection seen on B');
  }, 90_000);

  it('refuses PDUs with a bad signature, redacts those with a bad hash, rejects unauthorised ones', async () => {
    const ctxB = b.server!.ctx;
    const version = getRoomVersion((await ctxB.eventStore.getRoom(roomId))!.roomVersion)!;
    const state = await ctxB.eventStore.getCurrentStateIds(roomId);
    const build = (sender: string, content: Record<string, unknown>): Pdu => {
      const keys = authEventKeysFor({ type: 'm.room.message', sender, content: content as never }, version);
      return {
        room_id: roomId,
        type: 'm.room.message',
        sender,
        content: content as never,
        origin_server_ts: Date.now(),
        prev_events: [],
        auth_events: keys.map(([t, k]) => state.get(stateKeyOf(t, k))).filter((x): x is string => !!x),
        depth: 1,
        hashes: { sha256: '' },
        signatures: {},
      };
    };
    const ext = await ctxB.eventStore.getForwardExtremities(roomId);
    const prep = (p: Pdu) => ({ ...p, prev_events: ext, depth: 1000 });
    const sendTxn = (pdus: Pdu[]) =>
      ctxB.federation.client.put<any>('a.test', `/_matrix/federation/v1/send/forged-${Date.now()}`, { origin: 'b.test', origin_server_ts: Date.now(), pdus: pdus as never, edus: [] });

    // 1. Signed by a key that is not B's.
    const { hashes: _h1, ...unhashed1 } = prep(build('@bob:b.test', { msgtype: 'm.text', body: 'forged signature' }));
    const fakeKey = generateSigningKey(ctxB.signingKey.keyId.split(':')[1]);
    const forged = signEvent(unhashed1 as Pdu, version, 'b.test', fakeKey);
    // 2. Properly signed, but the content hash does not match the content.
    const p2 = prep(build('@bob:b.test', { msgtype: 'm.text', body: 'tampered body' }));
    p2.hashes = { sha256: computeContentHash({ ...p2, content: { msgtype: 'm.text', body: 'original body' } }, version) };
    const badHash = signEvent(p2, version, 'b.test', ctxB.signingKey);
    // 3. A sender who is not in the room.
    const { hashes: _h3, ...unhashed3 } = prep(build('@mallory:b.test', { msgtype: 'm.text', body: 'not a member' }));
    const intruder = signEvent(unhashed3 as Pdu, version, 'b.test', ctxB.signingKey);

    const res = await sendTxn([forged, badHash, intruder]);
    const ids = [forged, badHash, intruder].map((p) => withEventId(p, version).event_id);
    expect(res.pdus[ids[0]!]?.error).toMatch(/signature/i);
    expect(res.pdus[ids[1]!]).toEqual({});
    expect(res.pdus[ids[2]!]?.error).toBeTruthy();

    const onA = a.server!.ctx.eventStore;
    expect(await onA.getEvent(ids[0]!)).toBeUndefined();
    const redacted = await onA.getEvent(ids[1]!);
    expect(redacted?.event.content).toEqual({});
    const rejected = await onA.getEvent(ids[2]!);
    expect(rejected?.rejected).toBeTruthy();
    const texts = bodies(await roomMessages(alice, roomId));
    expect(texts).not.toContain('forged signature');
    expect(texts).not.toContain('not a member');
    expect(texts).not.toContain('tampered body');
    // The room's state is unharmed.
    expect((await members(alice, roomId))['@mallory:b.test']).toBeUndefined();
  }, 60_000);

  it('converges on the same state after a partition in which both sides changed it', async () => {
    const rid = (await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'Fork' })).body.room_id;
    expect((await bob.post(`/_matrix/client/v3/join/${enc(rid)}?via=a.test`, {})).status).toBe(200);
    const pl = await stateOf(alice, rid, 'm.room.power_levels');
    pl.users['@bob:b.test'] = 50;
    expect((await alice.put(`/_matrix/client/v3/rooms/${enc(rid)}/state/m.room.power_levels/`, pl)).status).toBe(200);
    await eventually(async () => (await stateOf(bob, rid, 'm.room.power_levels'))?.users?.['@bob:b.test'] === 50, 20_000, 'PL on B');

    partition(a, true);
    partition(b, true);
    try {
      expect((await alice.put(`/_matrix/client/v3/rooms/${enc(rid)}/state/m.room.topic/`, { topic: 'topic from A' })).status).toBe(200);
      expect((await alice.put(`/_matrix/client/v3/rooms/${enc(rid)}/state/m.room.name/`, { name: 'name from A' })).status).toBe(200);
      expect((await bob.put(`/_matrix/client/v3/rooms/${enc(rid)}/state/m.room.topic/`, { topic: 'topic from B' })).status).toBe(200);
      expect((await bob.put(`/_matrix/client/v3/rooms/${enc(rid)}/state/m.room.avatar/`, { url: 'mxc://b.test/avatar' })).status).toBe(200);
    } finally {
      partition(a, false);
      partition(b, false);
    }
    // Heal: each side retries its queue once the other is heard from.
    await send(alice, rid, 'after the partition (A)');
    await send(bob, rid, 'after the partition (B)');
    await eventually(async () => bodies(await roomMessages(alice, rid)).includes('after the partition (B)'), 30_000, 'A gets B’s message');
    await eventually(async () => bodies(await roomMessages(bob, rid)).includes('after the partition (A)'), 30_000, 'B gets A’s message');
    await send(alice, rid, 'merge A');
    await send(bob, rid, 'merge B');
    await eventually(
      async () => {
        const [sa, sb] = await Promise.all([a.server!.ctx.eventStore.getCurrentStateIds(rid), b.server!.ctx.eventStore.getCurrentStateIds(rid)]);
        return JSON.stringify([...sa].sort()) === JSON.stringify([...sb].sort());
      },
      30_000,
      'the same current state on both servers',
    );
    const topicA = (await stateOf(alice, rid, 'm.room.topic')).topic;
    expect(topicA).toBe((await stateOf(bob, rid, 'm.room.topic')).topic);
    expect((await stateOf(bob, rid, 'm.room.name')).name).toBe('name from A');
    expect((await stateOf(alice, rid, 'm.room.avatar')).url).toBe('mxc://b.test/avatar');
  }, 90_000);

  it('delivers queued messages once after the destination and the sender restart', async () => {
    await b.stop();
    for (let i = 1; i <= 3; i++) await send(alice, roomId, `while B was down ${i}`);
    // Let A's sender try (and fail) at least once, then restart A with the queue on disk.
    await eventually(async () => (await a.server!.ctx.federationRooms.queue.getDestination('b.test'))?.failures, 20_000, 'a failed attempt');
    await a.stop();
    await b.start();
    await a.start();
    alice = a.client(alice.token);
    bob = b.client(bob.token);
    await eventually(async () => bodies(await roomMessages(bob, roomId)).includes('while B was down 3'), 30_000, 'B caught up').catch((err) => {
      console.log(a.logs.filter((l) => l.includes('federation')).slice(-40).join('\n'));
      throw err;
    });
    const texts = bodies(await roomMessages(bob, roomId));
    for (let i = 1; i <= 3; i++) expect(texts.filter((t) => t === `while B was down ${i}`)).toHaveLength(1);
    // A empties its queue once B's answer to the transaction arrives (after B stored it).
    await eventually(async () => (await a.server!.ctx.federationRooms.queue.countQueued('b.test')) === 0, 10_000, 'A’s queue for B empty');
    // And the other way round.
    await send(bob, roomId, 'B is back');
    await eventually(async () => bodies(await roomMessages(alice, roomId)).includes('B is back'), 20_000, 'A gets B’s message');
  }, 120_000);

  it('a server ACL denies a server: its events and joins are refused', async () => {
    const rid = (await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'ACL' })).body.room_id;
    expect((await bob.post(`/_matrix/client/v3/join/${enc(rid)}?via=a.test`, {})).status).toBe(200);
    expect((await alice.put(`/_matrix/client/v3/rooms/${enc(rid)}/state/m.room.server_acl/`, { allow: ['*'], deny: ['b.test'], allow_ip_literals: false })).status).toBe(200);
    await eventually(async () => (await stateOf(bob, rid, 'm.room.server_acl'))?.deny, 20_000, 'ACL on B');
    await send(bob, rid, 'from a denied server');
    const erin = b.client();
    await erin.register('erin');
    // B is in the room, so erin joins there; A refuses the join event.
    expect((await erin.post(`/_matrix/client/v3/join/${enc(rid)}`, {})).status).toBe(200);
    // B may not even ask A for a join template.
    const made = await b.server!.ctx.federation.client
      .get('a.test', `/_matrix/federation/v1/make_join/${enc(rid)}/${enc('@erin:b.test')}`, { query: { ver: ['12', '11', '10'] } })
      .then(() => 200, (err: any) => err.status);
    expect(made).toBe(403);
    await send(alice, rid, 'marker');
    await new Promise((r) => setTimeout(r, 1500));
    expect(bodies(await roomMessages(alice, rid))).not.toContain('from a denied server');
    expect((await members(alice, rid))['@erin:b.test']).toBeUndefined();
  }, 60_000);
});
