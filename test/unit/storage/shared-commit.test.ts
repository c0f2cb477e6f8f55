import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../../src/storage/db.js';

describe('SQLite transactions sharing one commit', () => {
  let dir: string;
  let database: Database;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'myelin-shared-commit-'));
    database = await openDatabase(
      { engine: 'sqlite', path: join(dir, 'db.sqlite'), synchronous: 'FULL', busy_timeout_ms: 5000, cache_size_kib: 2048, pool_size: 1 } as never,
      pino({ level: 'silent' }),
    );
  });
  afterAll(async () => {
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const put = (id: string) => (tx: Parameters<Parameters<Database['transaction']>[0]>[0]) =>
    tx.db.insertInto('server_meta' as never).values({ key: id, value: id } as never).execute();
  const keys = async () =>
    ((await database.db.selectFrom('server_meta' as never).select('key' as never).execute()) as Array<{ key: string }>).map((r) => r.key).filter((k) => k.startsWith('t-'));

  it('commits transactions requested together, rolls back only the one that fails, and runs hooks only for committed ones', async () => {
    const hooks: string[] = [];
    const results = await Promise.allSettled([
      database.transaction(async (tx) => {
        await put('t-1')(tx);
        tx.onCommit(() => hooks.push('t-1'));
        return 1;
      }),
      database.transaction(async (tx) => {
        await put('t-2')(tx);
        tx.onCommit(() => hooks.push('t-2'));
        throw new Error('second fails');
      }),
      database.transaction(async (tx) => {
        await put('t-3')(tx);
        tx.onCommit(() => hooks.push('t-3'));
        return 3;
      }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[0] as PromiseFulfilledResult<number>).value).toBe(1);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe('second fails');
    expect(hooks).toEqual(['t-1', 't-3']);
    expect((await keys()).sort()).toEqual(['t-1', 't-3']);
  });

  it('a write failing on a constraint inside the shared commit leaves the others intact', async () => {
    const results = await Promise.allSettled([database.transaction(put('t-4')), database.transaction(put('t-1')), database.transaction(put('t-5'))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await keys()).sort()).toEqual(['t-1', 't-3', 't-4', 't-5']);
  });

  it('under load, a commit waits commit_gather_ms for more transactions to share it', async () => {
    const gatherDir = mkdtempSync(join(tmpdir(), 'myelin-gather-'));
    const gathering = await openDatabase(
      { engine: 'sqlite', path: join(gatherDir, 'db.sqlite'), synchronous: 'FULL', busy_timeout_ms: 5000, cache_size_kib: 2048, pool_size: 1, commit_gather_ms: 40 } as never,
      pino({ level: 'silent' }),
    );
    try {
      const put2 = (id: string) => (tx: Parameters<Parameters<Database['transaction']>[0]>[0]) =>
        tx.db.insertInto('server_meta' as never).values({ key: id, value: id } as never).execute();
      await gathering.transaction(put2('g-0')); // a commit just ended: the next one counts as under load
      let secondRequested = false;
      let firstSawSecond: boolean | undefined;
      const first = gathering.transaction(put2('g-1')).then(() => (firstSawSecond = secondRequested));
      await new Promise((r) => setTimeout(r, 5));
      secondRequested = true;
      const second = gathering.transaction(put2('g-2'));
      await Promise.all([first, second]);
      expect(firstSawSecond).toBe(true);
      const rows = (await gathering.db.selectFrom('server_meta' as never).select('key' as never).execute()) as Array<{ key: string }>;
      expect(rows.map((r) => r.key).filter((k) => k.startsWith('g-')).sort()).toEqual(['g-0', 'g-1', 'g-2']);
    } finally {
      await gathering.close();
      rmSync(gatherDir, { recursive: true, force: true });
    }
  });
});
