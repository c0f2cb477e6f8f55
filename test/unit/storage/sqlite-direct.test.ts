import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../../src/storage/db.js';

/** Resolves after `n` turns of the microtask queue. */
async function microtasks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve();
}

describe('SQLite queries run on the connection directly', () => {
  let dir: string;
  let database: Database;
  const observed: Array<[string, boolean]> = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'myelin-sqlite-direct-'));
    database = await openDatabase(
      { engine: 'sqlite', path: join(dir, 'db.sqlite'), synchronous: 'FULL', busy_timeout_ms: 5000, cache_size_kib: 2048, pool_size: 1 } as never,
      pino({ level: 'silent' }),
    );
    database.observeQueries((kind, _ms, ok) => observed.push([kind, ok]));
  });
  afterAll(async () => {
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const meta = () => database.db.selectFrom('server_meta' as never).select(['key' as never, 'value' as never]);
  const get = async (key: string) => ((await meta().where('key' as never, '=', key as never).executeTakeFirst()) as { value: string } | undefined)?.value;

  it('answers a read outside transactions at once, and reports it', async () => {
    observed.length = 0;
    let done = false;
    const read = get('absent').then((v) => {
      done = true;
      return v;
    });
    // Kysely's own path takes many more turns (mutex, connection provider, logging wrapper).
    await microtasks(3);
    expect(done).toBe(true);
    expect(await read).toBeUndefined();
    expect(observed).toEqual([['select', true]]);
  });

  it('does not let a read outside a transaction see its uncommitted writes: the read waits for the commit', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let inside!: () => void;
    const written = new Promise<void>((r) => (inside = r));
    const order: string[] = [];
    const tx = database.transaction(async (t) => {
      await t.db.insertInto('server_meta' as never).values({ key: 'd-1', value: 'one' } as never).execute();
      inside();
      await gate;
      order.push('commit');
    });
    await written;
    const read = get('d-1').then((v) => {
      order.push('read');
      return v;
    });
    await microtasks(10);
    expect(order).toEqual([]);
    release();
    await tx;
    expect(await read).toBe('one');
    expect(order).toEqual(['commit', 'read']);
  });

  it('runs a transaction’s queries in call order, seeing its own writes', async () => {
    const [, , seen] = await database.transaction(async (t) =>
      Promise.all([
        t.db.insertInto('server_meta' as never).values({ key: 'd-2', value: 'two' } as never).execute(),
        t.db.updateTable('server_meta' as never).set({ value: 'two!' } as never).where('key' as never, '=', 'd-2' as never).executeTakeFirst(),
        t.db.selectFrom('server_meta' as never).select('value' as never).where('key' as never, '=', 'd-2' as never).executeTakeFirst(),
      ]),
    );
    expect(seen).toEqual({ value: 'two!' });
    expect(await get('d-2')).toBe('two!');
  });

  it('gives writes in a transaction the affected rows Kysely reports', async () => {
    const result = await database.transaction((t) =>
      t.db.updateTable('server_meta' as never).set({ value: 'x' } as never).where('key' as never, 'in', ['d-1', 'd-2'] as never).executeTakeFirst(),
    );
    expect(result.numUpdatedRows).toBe(2n);
  });

  it('rolls back a failing transaction’s direct writes, and rejects a failing query with SQLite’s error', async () => {
    observed.length = 0;
    await expect(
      database.transaction(async (t) => {
        await t.db.insertInto('server_meta' as never).values({ key: 'd-3', value: 'three' } as never).execute();
        await t.db.selectFrom('no_such_table' as never).selectAll().execute();
      }),
    ).rejects.toThrow(/no such table/);
    expect(observed).toContainEqual(['select', false]);
    expect(await get('d-3')).toBeUndefined();
    await expect(database.db.selectFrom('no_such_table' as never).selectAll().execute()).rejects.toThrow(/no such table/);
  });
});
