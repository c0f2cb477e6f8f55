import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import pino from 'pino';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { openDatabase, type Database } from '../../src/storage/db.js';
import { MIGRATION_TABLE, migrateToLatest, SchemaTooNewError } from '../../src/storage/migrate.js';
import type { MigrationStep } from '../../src/storage/migrations/types.js';
import { MIGRATIONS } from '../../src/storage/migrations/index.js';
import { ServerMetaStore } from '../../src/storage/stores/server-meta.js';
import { databaseOverrides, tempDir, type Engine } from '../_util/server.js';

const log = pino({ level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function open(engine: Engine): Promise<{ db: Database; config: ReturnType<typeof validateConfig>['database'] }> {
  const dir = tempDir();
  const { database, pg } = await databaseOverrides(engine);
  const config = validateConfig({ server_name: 'localhost', database }, dir).database;
  const db = await openDatabase(config, log);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  if (pg) cleanups.push(() => pg.drop());
  cleanups.push(() => db.close().catch(() => {}));
  return { db, config };
}

describe.each<Engine>(['sqlite', 'postgres'])('storage on %s', (engine) => {
  it('applies every migration once and records it', async () => {
    const { db, config } = await open(engine);
    const tables = (await db.db.introspection.getTables()).map((t) => t.name);
    expect(tables).toContain('server_meta');
    const rows = await sql<{ name: string }>`select name from ${sql.table(MIGRATION_TABLE)} order by name`.execute(db.db);
    expect(rows.rows.map((r) => r.name)).toEqual(MIGRATIONS.map((m) => m.name));
    await db.close();
    // Re-opening applies nothing new and keeps data.
    const again = await openDatabase(config, log);
    cleanups.push(() => again.close().catch(() => {}));
    const rows2 = await sql<{ name: string }>`select name from ${sql.table(MIGRATION_TABLE)}`.execute(again.db);
    expect(rows2.rows).toHaveLength(MIGRATIONS.length);
  });

  it('stores and updates values, and rolls back a failed transaction entirely', async () => {
    const { db } = await open(engine);
    const meta = new ServerMetaStore(db);
    await meta.set('a', '1');
    await meta.set('a', '2');
    expect(await meta.get('a')).toBe('2');
    const committed: string[] = [];
    await expect(
      db.transaction(async (tx) => {
        await tx.db.insertInto('server_meta').values({ key: 'b', value: 'x' }).execute();
        tx.onCommit(() => committed.push('b'));
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await meta.get('b')).toBeUndefined();
    expect(committed).toEqual([]);
    await db.transaction(async (tx) => {
      await tx.db.insertInto('server_meta').values({ key: 'c', value: 'y' }).execute();
      tx.onCommit(() => committed.push('c'));
    });
    expect(committed).toEqual(['c']);
    expect(await meta.get('c')).toBe('y');
  });

  it('refuses a database written by a newer version, before changing anything', async () => {
    const { db, config } = await open(engine);
    await sql`insert into ${sql.table(MIGRATION_TABLE)} (name, timestamp) values ('9999-from-the-future', '2030-01-01T00:00:00Z')`.execute(
      db.db,
    );
    await db.close();
    await expect(openDatabase(config, log)).rejects.toThrow(SchemaTooNewError);
    await expect(openDatabase(config, log)).rejects.toThrow(/newer than this version of Myelin.*9999-from-the-future/);
  });

  it('runs a failing migration atomically and reports which one failed', async () => {
    const { db } = await open(engine);
    const bad: MigrationStep = {
      name: '0900-bad',
      async up(k: Kysely<unknown>) {
        await k.schema.createTable('half_written').addColumn('id', 'integer').execute();
        await sql`select * from no_such_table`.execute(k);
      },
    };
    await expect(migrateToLatest(db.db as Kysely<unknown>, engine, log, [...MIGRATIONS, bad])).rejects.toThrow(
      /migration 0900-bad failed/,
    );
    const tables = (await db.db.introspection.getTables()).map((t) => t.name);
    expect(tables).not.toContain('half_written');
  });
});

describe('PostgreSQL connections', () => {
  it('survives the server closing idle connections, and reconnects on the next query', async () => {
    const { db, config } = await open('postgres');
    const meta = new ServerMetaStore(db);
    await meta.set('k', 'v1');
    const name = new URL(config.url!).pathname.slice(1);
    const admin = new pg.Client({ connectionString: inject('postgresUrl') });
    await admin.connect();
    try {
      const killed = await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
      expect(killed.rowCount).toBeGreaterThan(0);
    } finally {
      await admin.end();
    }
    await new Promise((r) => setTimeout(r, 200));
    await meta.set('k', 'v2');
    expect(await meta.get('k')).toBe('v2');
  });
});

describe('SQLite settings', () => {
  it('uses WAL, synchronous FULL made by syncing the log off the event loop, foreign keys and a busy timeout', async () => {
    const { db, config } = await open('sqlite');
    const get = async (pragma: string) =>
      Object.values((await sql.raw(`pragma ${pragma}`).execute(db.db)).rows[0] as object)[0];
    expect(await get('journal_mode')).toBe('wal');
    // FULL is kept by syncing the log after each commit on the thread pool; the connection
    // itself runs with OFF and leaves checkpoints to the server (sqlite-durability.test.ts).
    expect(config.synchronous).toBe('FULL');
    expect(await get('synchronous')).toBe(0);
    expect(await get('wal_autocheckpoint')).toBe(0);
    expect(await get('foreign_keys')).toBe(1);
    expect(await get('busy_timeout')).toBe(config.busy_timeout_ms);
    expect(config.path).toMatch(new RegExp(`${join('', 'myelin.db')}$`));
  });
});
