import { rmSync } from 'node:fs';
import { sql, type Kysely } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { connectDatabase } from '../../src/storage/db.js';
import { migrateToLatest } from '../../src/storage/migrate.js';
import type { Tables } from '../../src/storage/schema.js';
import { databaseOverrides, tempDir, type Engine } from '../_util/server.js';

const log = pino({ level: 'silent' });

/** Queries of the shapes the stores run over the sparse indexes, and the index each must use. */
const USES: ReadonlyArray<{ what: string; index: string; query: (db: Kysely<Tables>) => { compile(): { sql: string; parameters: readonly unknown[] } } }> = [
  {
    what: 'relations of an event',
    index: 'events_relates_to',
    query: (db) => db.selectFrom('events').select('event_id').where('relates_to', '=', '$target').where('rel_type', '=', 'm.annotation'),
  },
  {
    what: 'relations of several events',
    index: 'events_relates_to',
    query: (db) => db.selectFrom('events').select('event_id').where('relates_to', 'in', ['$a', '$b']).where('rel_type', 'in', ['m.thread']),
  },
  {
    what: 'redactions of an event',
    index: 'events_redacts',
    query: (db) => db.selectFrom('events').select('event_id').where('redacts', '=', '$target').where('outlier', '=', 0).orderBy('stream_ordering'),
  },
  {
    what: 'threads of a room',
    index: 'events_room_rel',
    query: (db) => db.selectFrom('events').select('event_id').where('room_id', '=', '!r:x').where('rel_type', '=', 'm.thread').orderBy('stream_ordering', 'desc'),
  },
  {
    what: 'backfilled gap events of a room',
    index: 'events_room_anchor',
    query: (db) => db.selectFrom('events').select('event_id').where('room_id', '=', '!r:x').where('timeline_anchor', '>=', 5).where('timeline_anchor', '<=', 9),
  },
];

describe.each<Engine>(['sqlite', 'postgres'])('sparse event indexes (migration 0019) on %s', (engine) => {
  let db: Kysely<Tables>;
  const cleanups: Array<() => Promise<void> | void> = [];

  beforeAll(async () => {
    const dir = tempDir();
    const { database, pg } = await databaseOverrides(engine);
    db = await connectDatabase(validateConfig({ server_name: 'localhost', database }, dir).database);
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    if (pg) cleanups.push(() => pg.drop());
    cleanups.push(() => db.destroy());
    await migrateToLatest(db as Kysely<unknown>, engine, log);
    // A room of plain messages with a few relations, redactions and gap events; PostgreSQL plans
    // from statistics (its autovacuum keeps them), SQLite from the schema alone.
    const rows = Array.from({ length: 3000 }, (_, i) => ({
      event_id: `$e${i}`,
      room_id: '!r:x',
      type: 'm.room.message',
      sender: '@u:x',
      origin_server_ts: i,
      depth: i,
      json: '{}',
      received_ts: i,
      relates_to: i % 100 === 1 ? `$e${i - 1}` : null,
      rel_type: i % 100 === 1 ? (i % 200 === 1 ? 'm.thread' : 'm.annotation') : null,
      redacts: i % 300 === 2 ? `$e${i - 2}` : null,
      timeline_anchor: i % 500 === 3 ? i + 1 : null,
    }));
    for (let i = 0; i < rows.length; i += 250) await db.insertInto('events').values(rows.slice(i, i + 250) as never).execute();
    if (engine === 'postgres') await sql`analyze events`.execute(db);
  });
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function plan(q: { sql: string; parameters: readonly unknown[] }): Promise<string> {
    const explain = engine === 'sqlite' ? 'explain query plan ' : 'explain ';
    const rows = await db.executeQuery<Record<string, unknown>>({ sql: explain + q.sql, parameters: q.parameters, query: { kind: 'RawNode' } as never, queryId: { queryId: 'plan' } });
    return rows.rows.map((r) => String(r['detail'] ?? r['QUERY PLAN'])).join('\n');
  }

  it('holds only rows with a value in each sparse index', async () => {
    const defs =
      engine === 'sqlite'
        ? (await sql<{ name: string; def: string }>`select name, sql as def from sqlite_master where type = 'index' and tbl_name = 'events' and sql is not null`.execute(db)).rows
        : (await sql<{ name: string; def: string }>`select indexname as name, indexdef as def from pg_indexes where tablename = 'events'`.execute(db)).rows;
    const byName = new Map(defs.map((d) => [d.name, d.def.toLowerCase()]));
    expect(byName.get('events_relates_to')).toMatch(/where \(?"?relates_to"? is not null/);
    expect(byName.get('events_room_rel')).toMatch(/where \(?"?rel_type"? is not null/);
    expect(byName.get('events_redacts')).toMatch(/where \(?"?redacts"? is not null/);
    expect(byName.get('events_room_anchor')).toMatch(/where \(?"?timeline_anchor"? is not null/);
  });

  it.each(USES)('still serves $what from $index', async ({ query, index }) => {
    expect(await plan(query(db).compile())).toContain(index);
  });

  it('reads a room timeline by stream position, not through the gap anchor index', async () => {
    const q = db
      .selectFrom('events')
      .select(['event_id', 'stream_ordering'])
      .where('room_id', '=', '!r:x')
      .where('outlier', '=', 0)
      .where('timeline_anchor', 'is', null)
      .where('stream_ordering', '>', 10)
      .orderBy('stream_ordering', 'desc')
      .limit(20);
    const p = await plan(q.compile());
    expect(p).not.toContain('events_room_anchor');
    // PostgreSQL may as well walk the stream positions' own key backwards.
    if (engine === 'sqlite') expect(p).toContain('events_room_stream');
  });
});
