import { rmSync } from 'node:fs';
import { CompiledQuery, sql, type Kysely, type KyselyPlugin, type RootOperationNode } from 'kysely';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { connectDatabase, Database } from '../../src/storage/db.js';
import { migrateToLatest } from '../../src/storage/migrate.js';
import { MIGRATIONS } from '../../src/storage/migrations/index.js';
import type { Tables } from '../../src/storage/schema.js';
import { PushStore, type PushActionRow } from '../../src/storage/stores/push.js';
import { databaseOverrides, tempDir, type Engine } from '../_util/server.js';

const log = pino({ level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const LAYOUT = '0018-push-actions-layout';
const BEFORE = MIGRATIONS.slice(
  0,
  MIGRATIONS.findIndex((m) => m.name === LAYOUT),
);

/** A database migrated up to (not including) the layout change, and every query the store builds, compiled. */
async function openOld(engine: Engine): Promise<{ kysely: Kysely<Tables>; queries: CompiledQuery[] }> {
  const dir = tempDir();
  const { database, pg } = await databaseOverrides(engine);
  const config = validateConfig({ server_name: 'localhost', database }, dir).database;
  const kysely = await connectDatabase(config);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  if (pg) cleanups.push(() => pg.drop());
  cleanups.push(() => kysely.destroy().catch(() => {}));
  expect(MIGRATIONS[BEFORE.length]?.name).toBe(LAYOUT);
  await migrateToLatest(kysely as Kysely<unknown>, engine, log, BEFORE);
  const queries: CompiledQuery[] = [];
  const executor = kysely.getExecutor();
  const capture: KyselyPlugin = {
    transformQuery(args) {
      queries.push(executor.compileQuery(args.node as RootOperationNode, args.queryId));
      return args.node;
    },
    transformResult: (args) => Promise.resolve(args.result),
  };
  return { kysely: kysely.withPlugin(capture), queries };
}

const ROOM = '!room:localhost';
const OTHER_ROOM = '!other:localhost';

interface OldRow {
  user_id: string;
  event_id: string;
  room_id: string;
  stream_ordering: number;
  thread_id: string;
  notif: number;
  highlight: number;
  own: number;
  actions: string;
  ts: number;
}

/** Rows as migration 0004 stored them: own marks, plain and highlighted notifications, a thread. */
function oldRows(): OldRow[] {
  const rows: OldRow[] = [];
  for (let i = 1; i <= 30; i++) {
    const room = i % 3 === 0 ? OTHER_ROOM : ROOM;
    const sender = i % 5 === 0 ? '@alice:localhost' : i % 5 === 1 ? '@bob:localhost' : '@carol:localhost';
    const thread = i % 7 === 0 ? '$root' : 'main';
    for (const user of ['@alice:localhost', '@bob:localhost']) {
      const own = user === sender;
      if (!own && user === '@bob:localhost' && i % 4 === 0) continue; // not every event notifies everyone
      const highlight = !own && i % 6 === 0;
      rows.push({
        user_id: user,
        event_id: `$e${i}`,
        room_id: room,
        stream_ordering: 100 + i,
        thread_id: thread,
        notif: own ? 0 : 1,
        highlight: highlight ? 1 : 0,
        own: own ? 1 : 0,
        actions: JSON.stringify(own ? [] : highlight ? ['notify', { set_tweak: 'highlight' }] : ['notify']),
        ts: 1_700_000_000_000 + i,
      });
    }
  }
  return rows;
}

function sortRows(rows: OldRow[]): OldRow[] {
  return [...rows].sort((a, b) => a.user_id.localeCompare(b.user_id) || a.stream_ordering - b.stream_ordering);
}

describe.each<Engine>(['sqlite', 'postgres'])('event_push_actions layout (migration 0018) on %s', (engine) => {
  it('keeps every row, and the store reads and writes them as before', async () => {
    const { kysely } = await openOld(engine);
    const rows = oldRows();
    await kysely.insertInto('event_push_actions').values(rows).execute();
    await migrateToLatest(kysely as Kysely<unknown>, engine, log);

    const after = await kysely.selectFrom('event_push_actions').selectAll().execute();
    expect(sortRows(after.map((r) => ({ ...r, stream_ordering: Number(r.stream_ordering), ts: Number(r.ts) })))).toEqual(sortRows(rows));

    const store = new PushStore(new Database(engine, kysely, log));
    const alice = '@alice:localhost';
    const expectedNotifs = rows.filter((r) => r.user_id === alice && r.notif === 1 && r.own === 0);
    // /notifications, newest first, and the pusher's view, oldest first: every field as stored.
    const newest = await store.notifications(alice, undefined, 100, false);
    expect(newest.map((r) => r.eventId)).toEqual([...expectedNotifs].reverse().map((r) => r.event_id));
    const h = newest.find((r) => r.highlight)!;
    expect(h).toMatchObject({ userId: alice, notif: true, own: false, actions: ['notify', { set_tweak: 'highlight' }] });
    expect((await store.notifications(alice, 120, 3, false)).map((r) => r.streamOrdering)).toEqual(
      expectedNotifs.filter((r) => Number(r.stream_ordering) < 120).slice(-3).reverse().map((r) => r.stream_ordering),
    );
    expect((await store.notifications(alice, undefined, 100, true)).map((r) => r.eventId)).toEqual(
      [...expectedNotifs].reverse().filter((r) => r.highlight === 1).map((r) => r.event_id),
    );
    const oldest = await store.notificationsAfter(alice, 110, 100);
    expect(oldest.map((r) => r.streamOrdering)).toEqual(expectedNotifs.filter((r) => Number(r.stream_ordering) > 110).map((r) => r.stream_ordering));
    expect(oldest[0]).toMatchObject({ roomId: expect.any(String), threadId: expect.any(String), ts: expect.any(Number) });

    // Counts per thread in a range, own marks per thread, own events from a position.
    const inRoom = rows.filter((r) => r.user_id === alice && r.room_id === ROOM);
    const counts = await store.countsAfter(alice, ROOM, 105, 125);
    const expected = new Map<string, { n: number; h: number }>();
    for (const r of inRoom) {
      const so = Number(r.stream_ordering);
      if (r.notif !== 1 || r.own !== 0 || so <= 105 || so > 125) continue;
      const e = expected.get(String(r.thread_id)) ?? { n: 0, h: 0 };
      expected.set(String(r.thread_id), { n: e.n + 1, h: e.h + Number(r.highlight) });
    }
    expect(new Map(counts.map((c) => [c.threadId, { n: c.notifications, h: c.highlights }]))).toEqual(expected);
    const ownRows = inRoom.filter((r) => r.own === 1);
    expect(ownRows.length).toBeGreaterThan(1);
    const marks = await store.ownMarks(alice, ROOM);
    const lastOwn = Math.max(...ownRows.filter((r) => r.thread_id === 'main').map((r) => Number(r.stream_ordering)));
    expect(marks.get('main')).toBe(lastOwn);
    expect((await store.ownMarks(alice, ROOM, lastOwn)).has('main')).toBe(false);
    expect(await store.hasOwnEventFrom(alice, ROOM, 'main', lastOwn)).toBe(true);
    expect(await store.hasOwnEventFrom(alice, ROOM, 'main', lastOwn + 1)).toBe(false);

    // A row already there for the user and event is kept; new ones are added.
    const again: PushActionRow = {
      userId: alice,
      eventId: String(expectedNotifs[0]!.event_id),
      roomId: String(expectedNotifs[0]!.room_id),
      streamOrdering: Number(expectedNotifs[0]!.stream_ordering),
      threadId: 'main',
      notif: true,
      highlight: true,
      own: false,
      actions: ['notify', { set_tweak: 'sound', value: 'other' }],
      ts: 1,
    };
    const fresh: PushActionRow = { ...again, eventId: '$new', streamOrdering: 500, highlight: false, actions: ['notify'] };
    const db = new Database(engine, kysely, log);
    await db.transaction((tx) => new PushStore(db).insertActions(tx, [again, fresh]));
    const [kept] = await store.notificationsAfter(alice, again.streamOrdering - 1, 1);
    expect(kept).toMatchObject({ eventId: again.eventId, actions: JSON.parse(String(expectedNotifs[0]!.actions)) as unknown });
    expect((await store.notifications(alice, undefined, 1, false))[0]).toMatchObject({ eventId: '$new', streamOrdering: 500, actions: ['notify'], ts: 1 });
  });

  it('has an index for every query of the table', async () => {
    const { kysely, queries } = await openOld(engine);
    await migrateToLatest(kysely as Kysely<unknown>, engine, log);
    const store = new PushStore(new Database(engine, kysely, log));
    await kysely.insertInto('event_push_actions').values(oldRows()).execute();
    queries.length = 0;
    const alice = '@alice:localhost';
    await store.notifications(alice, undefined, 20, false);
    await store.notifications(alice, 120, 20, true);
    await store.notificationsAfter(alice, 110, 20);
    await store.countsAfter(alice, ROOM, 105, 125);
    await store.countsAfter(alice, ROOM, 105, 125, 'main');
    await store.ownMarks(alice, ROOM);
    await store.ownMarks(alice, ROOM, 110);
    await store.hasOwnEventFrom(alice, ROOM, 'main', 110);
    const selects = queries.filter((q) => /from "event_push_actions"/.test(q.sql));
    expect(selects).toHaveLength(8);
    if (engine === 'postgres') await sql`set enable_seqscan = off`.execute(kysely);
    for (const q of selects) {
      const explain = await kysely.executeQuery<Record<string, unknown>>(CompiledQuery.raw(`explain ${engine === 'sqlite' ? 'query plan ' : ''}${q.sql}`, [...q.parameters]));
      const plan = explain.rows.map((r) => String(r['detail'] ?? r['QUERY PLAN'])).join('\n');
      if (engine === 'sqlite') {
        expect(plan, q.sql).toMatch(/SEARCH event_push_actions USING (PRIMARY KEY|(COVERING )?INDEX \w+) \(user_id=\?/);
        expect(plan, q.sql).not.toMatch(/TEMP B-TREE FOR ORDER BY/);
      } else {
        expect(plan, q.sql).toMatch(/Index (Only )?Scan/);
        expect(plan, q.sql).not.toMatch(/Seq Scan on event_push_actions/);
      }
      // /notifications and the pusher use the index of notifying rows.
      if (/order by "stream_ordering"/.test(q.sql)) expect(plan, q.sql).toMatch(/event_push_actions_notifying/);
    }
  });
});
