import { rmSync } from 'node:fs';
import type { Kysely } from 'kysely';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { connectDatabase, Database } from '../../src/storage/db.js';
import { migrateToLatest } from '../../src/storage/migrate.js';
import type { Tables } from '../../src/storage/schema.js';
import { PushStore, type PushActionRow } from '../../src/storage/stores/push.js';
import { databaseOverrides, tempDir, type Engine } from '../_util/server.js';
import { TestClient } from '../client/_client.js';
import { startRestartable, type RestartableServer } from '../client/_restartable.js';

const log = pino({ level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function open(engine: Engine): Promise<{ kysely: Kysely<Tables>; db: Database; store: PushStore }> {
  const dir = tempDir();
  const { database, pg } = await databaseOverrides(engine);
  const config = validateConfig({ server_name: 'localhost', database }, dir).database;
  const kysely = await connectDatabase(config);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  if (pg) cleanups.push(() => pg.drop());
  cleanups.push(() => kysely.destroy().catch(() => {}));
  await migrateToLatest(kysely as Kysely<unknown>, engine, log);
  const db = new Database(engine, kysely, log);
  return { kysely, db, store: new PushStore(db) };
}

const ROOM = '!room:localhost';
const USERS = ['@alice:localhost', '@bob:localhost', '@carol:localhost'];

/** Rows of 40 events: each user gets a notification, a highlight every 5th, or their own mark; some in a thread. */
function rows(): PushActionRow[] {
  const out: PushActionRow[] = [];
  for (let i = 1; i <= 40; i++) {
    const sender = USERS[i % 3]!;
    const threadId = i % 4 === 0 ? '$root' : 'main';
    for (const userId of USERS) {
      const own = userId === sender;
      const highlight = !own && i % 5 === 0;
      out.push({ userId, eventId: `$e${i}`, roomId: i % 7 === 0 ? '!other:localhost' : ROOM, streamOrdering: i, threadId, notif: !own, highlight, own, actions: own ? [] : highlight ? ['notify', { set_tweak: 'highlight' }] : ['notify'], ts: 1000 + i });
    }
  }
  return out;
}

/** Everything the store answers about the rows. */
async function answers(store: PushStore): Promise<unknown> {
  const out: Record<string, unknown> = {};
  for (const u of USERS) {
    out[u] = {
      newest: await store.notifications(u, undefined, 100, false),
      page: await store.notifications(u, 30, 4, false),
      highlights: await store.notifications(u, undefined, 100, true),
      oldest: await store.notificationsAfter(u, 10, 100),
      oldestPage: await store.notificationsAfter(u, 18, 5),
      counts: await store.countsAfter(u, ROOM, 5, 38),
      thread: await store.countsAfter(u, ROOM, 0, 40, '$root'),
      marks: Object.fromEntries(await store.ownMarks(u, ROOM, 3)),
      ownFrom: [await store.hasOwnEventFrom(u, ROOM, 'main', 30), await store.hasOwnEventFrom(u, ROOM, '$root', 39)],
    };
  }
  return out;
}

describe.each<Engine>(['sqlite', 'postgres'])('push action rows in two tables on %s', (engine) => {
  it('writes new rows to the recent table and moves them up to a position, answering the same throughout', async () => {
    const { kysely, db, store } = await open(engine);
    const all = rows();
    await db.transaction((tx) => store.insertActions(tx, all));
    expect(await kysely.selectFrom('event_push_actions').selectAll().execute()).toHaveLength(0);
    expect(await store.recentCounts()).toEqual(new Map(USERS.map((u) => [u, 40])));
    const before = await answers(store);
    // Sanity of the answers themselves.
    const alice = (before as Record<string, { newest: PushActionRow[]; counts: Array<{ threadId: string; notifications: number }> }>)['@alice:localhost']!;
    expect(alice.newest.map((r) => r.streamOrdering)).toEqual(all.filter((r) => r.userId === '@alice:localhost' && r.notif).map((r) => r.streamOrdering).reverse());

    // Alice's and Bob's rows up to 20: those move (in one transaction), the others stay.
    const [alice0, bob0, carol0] = USERS as [string, string, string];
    expect(await db.transaction((tx) => store.foldRecent(tx, 20, [alice0, bob0]))).toBe(40);
    const main = await kysely.selectFrom('event_push_actions').select(['stream_ordering', 'user_id']).execute();
    expect(main.every((r) => Number(r.stream_ordering) <= 20 && r.user_id !== carol0)).toBe(true);
    expect(main).toHaveLength(40);
    expect(await store.recentCounts()).toEqual(new Map([[alice0, 20], [bob0, 20], [carol0, 40]]));
    expect(await answers(store)).toEqual(before);

    // The rest, then nothing left to move.
    expect(await db.transaction((tx) => store.foldRecent(tx, 40, USERS))).toBe(all.length - 40);
    expect(await store.recentCounts()).toEqual(new Map());
    expect(await db.transaction((tx) => store.foldRecent(tx, 40, USERS))).toBe(0);
    expect(await db.transaction((tx) => store.foldRecent(tx, 40, []))).toBe(0);
    expect(await answers(store)).toEqual(before);
    // Every row once, every field kept.
    const stored = await kysely.selectFrom('event_push_actions').selectAll().orderBy('stream_ordering').orderBy('user_id').execute();
    expect(stored.map((r) => ({ ...r, stream_ordering: Number(r.stream_ordering), ts: Number(r.ts) }))).toEqual(
      [...all]
        .sort((a, b) => a.streamOrdering - b.streamOrdering || (a.userId < b.userId ? -1 : 1))
        .map((r) => ({ user_id: r.userId, event_id: r.eventId, room_id: r.roomId, stream_ordering: r.streamOrdering, thread_id: r.threadId, notif: r.notif ? 1 : 0, highlight: r.highlight ? 1 : 0, own: r.own ? 1 : 0, actions: JSON.stringify(r.actions), ts: r.ts })),
    );
  });

  it('lists a row once when it moved between the reads of the two tables', async () => {
    const { kysely, db, store } = await open(engine);
    const all = rows();
    await db.transaction((tx) => store.insertActions(tx, all));
    const expected = await store.notifications('@bob:localhost', undefined, 100, false);
    const expectedAfter = await store.notificationsAfter('@bob:localhost', 0, 100);
    // What two reads see when a move lands between them: rows up to 20 in both tables.
    await kysely.insertInto('event_push_actions').expression((eb) => eb.selectFrom('event_push_actions_recent').selectAll().where('stream_ordering', '<=', 20)).execute();
    expect(await store.notifications('@bob:localhost', undefined, 100, false)).toEqual(expected);
    expect(await store.notificationsAfter('@bob:localhost', 0, 100)).toEqual(expectedAfter);
  });
});

describe.each<Engine>(['sqlite', 'postgres'])('notification counts while push rows move on %s', (engine) => {
  let s: RestartableServer;
  let alice: TestClient;
  let bob: TestClient;
  const C = '/_matrix/client/v3';
  const enc = encodeURIComponent;

  beforeAll(async () => {
    s = await startRestartable(engine);
    alice = new TestClient(s.url);
    bob = new TestClient(s.url);
    await alice.register('alice');
    await bob.register('bob');
  });
  afterAll(() => s?.close());

  async function recentRows(): Promise<number> {
    const r = await s.server.ctx.database.db.selectFrom('event_push_actions_recent').select((eb) => eb.fn.countAll().as('n')).executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  it('moves the rows of sent messages to the main table by itself, and counts stay the same', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const rid = enc(roomId);
    await bob.post(`${C}/join/${rid}`, {});
    for (let i = 0; i < 5; i++) await alice.put(`${C}/rooms/${rid}/send/m.room.message/t${i}`, { msgtype: 'm.text', body: `m${i}`, ...(i === 2 ? { 'm.mentions': { user_ids: ['@bob:localhost'] } } : {}) });
    const counts = () => bob.get(`${C}/sync`).then((r) => r.body.rooms.join[roomId].unread_notifications);
    expect(await counts()).toEqual({ notification_count: 5, highlight_count: 1 });
    // Moved within about a second of the last write (bounded wait).
    const deadline = Date.now() + 10_000;
    while ((await recentRows()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await recentRows()).toBe(0);
    const main = await s.server.ctx.database.db.selectFrom('event_push_actions').select('user_id').where('room_id', '=', roomId).execute();
    expect(main.filter((r) => r.user_id === '@bob:localhost')).toHaveLength(5 + 1); // 5 messages and his join's own mark
    expect(await counts()).toEqual({ notification_count: 5, highlight_count: 1 });
    const notifs = (await bob.get(`${C}/notifications`)).body.notifications as Array<{ event: { content: { body: string } } }>;
    expect(notifs.map((n) => n.event.content.body)).toEqual(['m4', 'm3', 'm2', 'm1', 'm0']);

    // After a restart, from the main table alone.
    await s.restart();
    expect(await counts()).toEqual({ notification_count: 5, highlight_count: 1 });
  });
});
