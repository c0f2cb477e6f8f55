import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../_util/pg-database.js';

const adminUrl = inject('postgresUrl');

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

describe('PostgreSQL test harness', () => {
  it('provides a reachable PostgreSQL server to tests and child processes', async () => {
    expect(adminUrl).toMatch(/^postgres(ql)?:\/\//);
    expect(process.env.MYELIN_TEST_POSTGRES_URL).toBe(adminUrl);
    const [row] = await query<{ version: string }>(adminUrl, 'select version() as version');
    const major = Number(/^PostgreSQL (\d+)/.exec(row?.version ?? '')?.[1]);
    // DROP DATABASE ... WITH (FORCE) needs 13; CI runs Debian's 15.
    expect(major).toBeGreaterThanOrEqual(13);
    const [server] = await query<{ v: string }>(adminUrl, 'show server_version_num');
    expect(Math.floor(Number(Object.values(server ?? {})[0]) / 10_000)).toBe(major);
  });

  it('creates an isolated database, usable for reads and writes, and drops it', async () => {
    const db = await createTestDatabase(adminUrl);
    try {
      expect(db.url).toContain(db.name);
      const [current] = await query<{ db: string }>(db.url, 'select current_database() as db');
      expect(current?.db).toBe(db.name);

      const client = new pg.Client({ connectionString: db.url });
      const clientErrors: Error[] = [];
      client.on('error', (error) => clientErrors.push(error));
      await client.connect();
      try {
        await client.query('create table t (k text primary key, v jsonb not null)');
        await client.query('insert into t values ($1, $2)', ['a', JSON.stringify({ n: 1 })]);
        const { rows } = await client.query<{ v: { n: number } }>('select v from t where k = $1', ['a']);
        expect(rows).toEqual([{ v: { n: 1 } }]);
        // Drop succeeds even while this session is still connected (WITH (FORCE)).
        await db.drop();
        // The forced drop terminated the open session.
        await expect(client.query('select 1')).rejects.toThrow();
      } finally {
        await client.end().catch(() => undefined);
      }
    } finally {
      await db.drop();
    }
    const rows = await query(adminUrl, 'select 1 from pg_database where datname = $1', [db.name]);
    expect(rows).toHaveLength(0);
  });

  it('gives every call its own database', async () => {
    const dbs = await Promise.all([1, 2, 3].map(() => createTestDatabase(adminUrl)));
    try {
      expect(new Set(dbs.map((d) => d.name)).size).toBe(3);
      await query(dbs[0]!.url, 'create table only_here (x int)');
      const elsewhere = await query(dbs[1]!.url, "select 1 from information_schema.tables where table_name = 'only_here'");
      expect(elsewhere).toHaveLength(0);
    } finally {
      await Promise.all(dbs.map((d) => d.drop()));
    }
  });
});
