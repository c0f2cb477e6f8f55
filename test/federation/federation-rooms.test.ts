import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient } from '../client/_client.js';
import { bodies, createFederation, eventually, roomMessages, type Federation, type FedMember } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const enc = encodeURIComponent;

async function send(c: TestClient, roomId: string, body: string): Promise<string> {
  const res = await c.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', body });
  if (res.status !== 200) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.event_id;
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
    fed = await createFederation(engine);
    a = await fed.add('a.test');
    b = await fed.add('b.test');
    alice = a.client();
    await alice.register('alice');
    bob = b.client();
    await bob.register('bob');
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
});
