import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient } from '../client/_client.js';
import { bodies, eventually, roomMessages, type Federation, type FedMember, twoServers, registerOn } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const enc = encodeURIComponent;

async function send(c: TestClient, roomId: string, content: Record<string, unknown>): Promise<string> {
  const res = await c.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', ...content });
  if (res.status !== 200) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.event_id;
}

/**
 * Local events are evaluated for push rules inside their own write; events received over
 * federation are evaluated after their write. Interleaved, both must count for a local member.
 */
describe.each<Engine>(['sqlite', 'postgres'])('unread counts with local and federated messages on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  let alice: TestClient;
  let carol: TestClient;
  let bob: TestClient;

  beforeAll(async () => {
    ({ fed, a, b, alice, bob } = await twoServers(engine));
    carol = await registerOn(a, 'carol');
  }, 60_000);

  afterAll(async () => {
    await fed?.close();
  });

  it('counts local and remote messages sent at the same time, and remote mentions highlight', async () => {
    const roomId = (await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' })).body.room_id as string;
    expect((await carol.post(`/_matrix/client/v3/join/${enc(roomId)}`, {})).status).toBe(200);
    const joined = await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=a.test`, {});
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    await eventually(async () => {
      const m = await carol.get(`/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`);
      return m.body.joined?.['@bob:b.test'];
    }, 20_000, 'A to see bob joined');
    const start = await carol.get('/_matrix/client/v3/sync');
    expect(start.body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });

    const sends: Array<Promise<string>> = [];
    for (let i = 0; i < 5; i++) {
      sends.push(send(alice, roomId, { body: `local ${i}` }));
      sends.push(send(bob, roomId, i === 2 ? { body: 'carol, look', 'm.mentions': { user_ids: ['@carol:a.test'] } } : { body: `remote ${i}` }));
    }
    await Promise.all(sends);
    await eventually(async () => bodies(await roomMessages(carol, roomId)).filter((x) => /^(local|remote) \d$|^carol, look$/.test(x)).length === 10, 30_000, 'all ten messages on A');

    // Every sync from now on shows all ten, one of them highlighted, however it is asked.
    const incremental = await carol.get(`/_matrix/client/v3/sync?since=${start.body.next_batch}`);
    expect(incremental.body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 10, highlight_count: 1 });
    const initial = await carol.get('/_matrix/client/v3/sync');
    expect(initial.body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 10, highlight_count: 1 });

    // A receipt on the last event clears them; a remote message after it counts one.
    const last = initial.body.rooms.join[roomId].timeline.events.at(-1).event_id as string;
    expect((await carol.post(`/_matrix/client/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(last)}`, {})).status).toBe(200);
    const read = await carol.get(`/_matrix/client/v3/sync?since=${initial.body.next_batch}`);
    expect(read.body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });
    await send(bob, roomId, { body: 'one more' });
    await eventually(async () => bodies(await roomMessages(carol, roomId)).includes('one more'), 20_000, 'the last message on A');
    const more = await carol.get(`/_matrix/client/v3/sync?since=${read.body.next_batch}`);
    expect(more.body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 1, highlight_count: 0 });
  }, 90_000);
});
