/** Three servers in one room, knocking over federation, presence between servers. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient } from '../client/_client.js';
import { bodies, createFederation, eventually, roomMessages, type Federation, type FedMember } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const enc = encodeURIComponent;

async function send(c: TestClient, roomId: string, body: string): Promise<void> {
  const res = await c.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', body });
  if (res.status !== 200) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
}

async function membership(c: TestClient, roomId: string, userId: string): Promise<string | undefined> {
  const res = await c.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`);
  return res.status === 200 ? res.body.membership : undefined;
}

describe.each<Engine>(['sqlite', 'postgres'])('federation paths on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  let c: FedMember;
  let alice: TestClient;
  let bob: TestClient;
  let carol: TestClient;

  beforeAll(async () => {
    fed = await createFederation(engine);
    a = await fed.add('a.test');
    b = await fed.add('b.test');
    c = await fed.add('c.test');
    alice = a.client();
    await alice.register('alice');
    bob = b.client();
    await bob.register('bob');
    carol = c.client();
    await carol.register('carol');
  }, 60_000);

  afterAll(async () => {
    await fed?.close();
  });

  it('three servers: messages from each reach the other two; a stopped server catches up', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'Three' });
    const roomId = created.body.room_id as string;
    expect((await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=a.test`, {})).status).toBe(200);
    expect((await carol.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=a.test`, {})).status).toBe(200);
    await eventually(async () => (await membership(bob, roomId, '@carol:c.test')) === 'join', 20_000, 'B to see C join');
    await send(alice, roomId, 'from a');
    await send(bob, roomId, 'from b');
    await send(carol, roomId, 'from c');
    for (const [who, client] of [['a', alice], ['b', bob], ['c', carol]] as const) {
      await eventually(async () => {
        const got = bodies(await roomMessages(client, roomId));
        return ['from a', 'from b', 'from c'].every((m) => got.includes(m));
      }, 30_000, `${who} to have every message`);
    }
    // C goes down; A and B talk; C comes back and receives what it missed.
    await c.stop();
    await send(alice, roomId, 'while c was away (a)');
    await send(bob, roomId, 'while c was away (b)');
    await c.start();
    await eventually(async () => {
      const got = bodies(await roomMessages(carol, roomId));
      return got.includes('while c was away (a)') && got.includes('while c was away (b)');
    }, 60_000, 'C to catch up');
  }, 180_000);

  it('knocking over federation: the knock shows on both sides, an invite admits the knocker', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', room_version: '10', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] });
    expect(created.status).toBe(200);
    const roomId = created.body.room_id as string;
    const knocked = await bob.post(`/_matrix/client/v3/knock/${enc(roomId)}?server_name=a.test`, { reason: 'let me in' });
    expect(knocked.status, JSON.stringify(knocked.body)).toBe(200);
    await eventually(async () => (await membership(alice, roomId, '@bob:b.test')) === 'knock', 20_000, 'A to see the knock');
    const sync = await bob.get('/_matrix/client/v3/sync?timeout=0');
    const knockState = sync.body.rooms?.knock?.[roomId]?.knock_state?.events ?? [];
    expect(knockState.some((e: any) => e.type === 'm.room.join_rules' && e.content.join_rule === 'knock')).toBe(true);
    // Spec v1.16: full PDUs in knock_room_state, checked and stripped for the client.
    const create = knockState.find((e: any) => e.type === 'm.room.create');
    expect(Object.keys(create).sort()).toEqual(['content', 'sender', 'state_key', 'type']);
    expect(create.content.room_version).toBe('10');
    expect((await alice.post(`/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: '@bob:b.test' })).status).toBe(200);
    await eventually(async () => (await bob.get('/_matrix/client/v3/sync?timeout=0')).body.rooms?.invite?.[roomId], 20_000, 'B to see the invite');
    const joined = await bob.post(`/_matrix/client/v3/join/${enc(roomId)}`, {});
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    await eventually(async () => (await membership(alice, roomId, '@bob:b.test')) === 'join', 20_000, 'A to see the join');
  }, 120_000);

  it('presence of a user reaches the servers sharing a room', async () => {
    const res = await alice.put(`/_matrix/client/v3/presence/${enc('@alice:a.test')}/status`, { presence: 'online', status_msg: 'at the booth' });
    expect(res.status).toBe(200);
    // B's clients see it in /sync and through GET /presence.
    await eventually(async () => {
      const sync = await bob.get('/_matrix/client/v3/sync?timeout=0');
      const events = sync.body.presence?.events ?? [];
      return events.some((e: any) => e.sender === '@alice:a.test' && e.content.presence === 'online' && e.content.status_msg === 'at the booth');
    }, 20_000, 'B to see Alice online');
    const got = await bob.get(`/_matrix/client/v3/presence/${enc('@alice:a.test')}/status`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ presence: 'online', status_msg: 'at the booth', currently_active: true });
    // A user of another server B has heard nothing about, and a malformed ID.
    const unknown = await bob.get(`/_matrix/client/v3/presence/${enc('@nobody:a.test')}/status`);
    expect([unknown.status, unknown.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
    const bad = await bob.get(`/_matrix/client/v3/presence/${enc('not-a-user')}/status`);
    expect([bad.status, bad.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
  }, 60_000);
});
