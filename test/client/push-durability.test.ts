import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../_util/server.js';
import { TestClient } from './_client.js';
import { startRestartable, type RestartableServer } from './_restartable.js';

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;

describe.each<Engine>(['sqlite', 'postgres'])('notification counts across restarts on %s', (engine) => {
  let s: RestartableServer;
  let alice: TestClient;
  let bob: TestClient;

  beforeAll(async () => {
    s = await startRestartable(engine);
    alice = new TestClient(s.url);
    bob = new TestClient(s.url);
    await alice.register('alice');
    await bob.register('bob');
  });
  afterAll(() => s?.close());

  it('keeps counts, receipts and push rules after a restart, and evaluates events whose evaluation was lost', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const rid = enc(roomId);
    await bob.post(`${C}/join/${rid}`, {});
    const first = (await alice.put(`${C}/rooms/${rid}/send/m.room.message/a1`, { msgtype: 'm.text', body: 'one' })).body.event_id;
    await alice.put(`${C}/rooms/${rid}/send/m.room.message/a2`, { msgtype: 'm.text', body: 'two', 'm.mentions': { user_ids: ['@bob:localhost'] } });
    await bob.post(`${C}/rooms/${rid}/receipt/m.read/${enc(first)}`, {});
    await bob.put(`${C}/pushrules/global/content/cake`, { pattern: 'cake', actions: ['notify'] });
    expect((await bob.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 1, highlight_count: 1 });

    await s.restart();
    expect((await bob.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 1, highlight_count: 1 });
    expect((await bob.get(`${C}/pushrules/global/content/cake`)).body.pattern).toBe('cake');

    // Lose the evaluation of the last two events, as a crash between commit and evaluation would.
    await alice.put(`${C}/rooms/${rid}/send/m.room.message/a3`, { msgtype: 'm.text', body: 'three' });
    await alice.put(`${C}/rooms/${rid}/send/m.room.message/a4`, { msgtype: 'm.text', body: 'four' });
    await bob.get(`${C}/sync`);
    const db = s.server.ctx.database.db;
    const rows = await db.selectFrom('event_push_actions').select(['event_id', 'stream_ordering']).where('user_id', '=', '@bob:localhost').orderBy('stream_ordering', 'desc').limit(2).execute();
    expect(rows).toHaveLength(2);
    const before = Math.min(...rows.map((r) => Number(r.stream_ordering))) - 1;
    await db.deleteFrom('event_push_actions').where('stream_ordering', '>', before).execute();
    await db.updateTable('push_actions_progress').set({ position: before }).where('name', '=', 'events').execute();

    await s.restart();
    expect((await bob.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 3, highlight_count: 1 });
  });
});
