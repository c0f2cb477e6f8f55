import { rmSync } from 'node:fs';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { openDatabase, type Database } from '../../src/storage/db.js';
import { prepared } from '../../src/storage/prepared.js';
import { databaseOverrides, tempDir, type Engine } from '../_util/server.js';

const log = pino({ level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function open(engine: Engine): Promise<Database> {
  const dir = tempDir();
  const { database, pg } = await databaseOverrides(engine);
  const db = await openDatabase(validateConfig({ server_name: 'localhost', database }, dir).database, log);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  if (pg) cleanups.push(() => pg.drop());
  cleanups.push(() => db.close().catch(() => {}));
  return db;
}

// Arguments in another order than their parameters, and constants (outlier = 0) in between.
const window = prepared(4, (db, limit: number, roomId: string, to: number, from: number) =>
  db
    .selectFrom('events')
    .select(['event_id', 'stream_ordering'])
    .where('room_id', '=', roomId)
    .where('outlier', '=', 0)
    .where('stream_ordering', '>', from)
    .where('stream_ordering', '<=', to)
    .orderBy('stream_ordering', 'desc')
    .limit(limit),
);
const insertEvent = prepared(4, (db, id: string, roomId: string, outlier: number, ts: number) =>
  db.insertInto('events').values({
    event_id: id,
    room_id: roomId,
    type: 'm.room.message',
    state_key: null,
    sender: '@a:localhost',
    origin_server_ts: ts,
    depth: 1,
    json: '{}',
    outlier,
    received_ts: ts,
  }),
);

describe.each<Engine>(['sqlite', 'postgres'])('prepared queries on %s', (engine) => {
  it('answer as the same query built each time, with new arguments on every call, also in transactions', async () => {
    const db = await open(engine);
    await db.transaction(async (tx) => {
      for (let i = 0; i < 30; i++) {
        const r = await insertEvent.run(tx.db, `$e${i}`, `!r${i % 3}:localhost`, i % 5 === 0 ? 1 : 0, 1000 + i);
        expect(Number(r.numAffectedRows)).toBe(1);
      }
    });
    for (const [roomId, from, to, limit] of [['!r0:localhost', 0, 100, 50], ['!r1:localhost', 5, 20, 3], ['!r2:localhost', 10, 11, 1], ['!nope:localhost', 0, 100, 10]] as const) {
      const built = await db.db
        .selectFrom('events')
        .select(['event_id', 'stream_ordering'])
        .where('room_id', '=', roomId)
        .where('outlier', '=', 0)
        .where('stream_ordering', '>', from)
        .where('stream_ordering', '<=', to)
        .orderBy('stream_ordering', 'desc')
        .limit(limit)
        .execute();
      expect(await window.rows(db.db, limit, roomId, to, from)).toEqual(built);
    }
    // Outliers (constant outlier = 0) are left out: 2 of room 0's 10 events.
    expect(await window.rows(db.db, 100, '!r0:localhost', 100, 0)).toHaveLength(8);
    const inTx = await db.transaction(async (tx) => window.first(tx.db, 1, '!r1:localhost', 100, 0));
    expect(inTx?.event_id).toBe('$e28');
  });

  it('refuses a builder that does more with an argument than use it as a value', async () => {
    const db = await open(engine);
    const computed = prepared(1, (qb, limit: number) => qb.selectFrom('events').select('event_id').limit(limit + 1));
    await expect(computed.rows(db.db, 5)).rejects.toThrow(/prepared query/);
    const unused = prepared(2, (qb, roomId: string, _other: string) => qb.selectFrom('events').select('event_id').where('room_id', '=', roomId));
    await expect(unused.rows(db.db, '!a:localhost', 'x')).rejects.toThrow(/each of its 2 arguments/);
  });
});
