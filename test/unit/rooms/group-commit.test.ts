import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../../src/services/rooms/group-commit.js';
import { withStatementCache, type Database, type Tx } from '../../../src/storage/db.js';
import type { DeferringTx } from '../../../src/storage/stores/events.js';

/** A stand-in for Database.transaction that records each transaction's writes and hooks. */
function fakeDatabase(opts: { failOn?: string } = {}) {
  const commits: string[][] = [];
  const order: string[] = [];
  const db = {
    async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      const writes: string[] = [];
      const hooks: Array<() => void> = [];
      const tx = { db: { writes } as never, onCommit: (h: () => void) => hooks.push(h) } as Tx;
      await new Promise((r) => setTimeout(r, 5)); // a commit takes time: writers pile up
      const result = await fn(tx);
      if (opts.failOn && writes.includes(opts.failOn)) throw new Error(`constraint violated by ${opts.failOn}`);
      commits.push(writes);
      for (const h of hooks) h();
      return result;
    },
  };
  const write = (name: string) => async (tx: Tx) => {
    (tx.db as unknown as { writes: string[] }).writes.push(name);
    tx.onCommit(() => order.push(name));
    return `${name}-result`;
  };
  return { database: db as unknown as Database, commits, order, write };
}

describe('GroupCommitter', () => {
  it('commits writes submitted during a commit together, in order, each caller getting its own result', async () => {
    const f = fakeDatabase();
    const gc = new GroupCommitter(f.database);
    const first = gc.submit(f.write('a'));
    const rest = ['b', 'c', 'd', 'e'].map((n) => gc.submit(f.write(n)));
    expect(await Promise.all([first, ...rest])).toEqual(['a', 'b', 'c', 'd', 'e'].map((n) => `${n}-result`));
    // 'a' starts a commit alone; the four that arrived meanwhile share the next one.
    expect(f.commits).toEqual([['a'], ['b', 'c', 'd', 'e']]);
    expect(f.order).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('respects the batch size', async () => {
    const f = fakeDatabase();
    const gc = new GroupCommitter(f.database, 2);
    await Promise.all(['a', 'b', 'c', 'd', 'e'].map((n) => gc.submit(f.write(n))));
    expect(f.commits.every((c) => c.length <= 2)).toBe(true);
    expect(f.commits.flat()).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('a failing write fails alone: the batch is retried one write per transaction', async () => {
    const f = fakeDatabase({ failOn: 'bad' });
    const gc = new GroupCommitter(f.database);
    const a = gc.submit(f.write('a'));
    const others = [gc.submit(f.write('b')), gc.submit(f.write('bad')), gc.submit(f.write('c'))];
    const settled = await Promise.allSettled([a, ...others]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((settled[2] as PromiseRejectedResult).reason.message).toMatch(/bad/);
    expect(f.commits).toEqual([['a'], ['b'], ['c']]);
    // Hooks of the rolled-back batch never ran; each committed write's hook ran once.
    expect(f.order).toEqual(['a', 'b', 'c']);
  });

  it('writes deferred rows once per transaction, after every write of the batch and before the commit', async () => {
    const f = fakeDatabase({ failOn: 'bad' });
    const gc = new GroupCommitter(f.database);
    const key = {};
    const deferring = (name: string) => async (tx: DeferringTx) => {
      const rows = tx.deferred<string[]>(key, () => [], async (t, all) => {
        (t.db as unknown as { writes: string[] }).writes.push(`flush ${all.join('+')}`);
      });
      rows.push(name);
      return f.write(name)(tx);
    };
    await gc.submit(deferring('a'));
    const settled = await Promise.allSettled(['b', 'bad', 'c'].map((n) => gc.submit(deferring(n))));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    // The failed batch was retried one write per transaction, each with its own rows.
    expect(f.commits).toEqual([['a', 'flush a'], ['b', 'flush b'], ['c', 'flush c']]);
    await Promise.all(['d', 'e', 'f'].map((n) => gc.submit(deferring(n))));
    expect(f.commits.slice(3)).toEqual([['d', 'flush d'], ['e', 'f', 'flush e+f']]);
  });

  it('runs exclusive work between batches, never during one', async () => {
    const f = fakeDatabase();
    const gc = new GroupCommitter(f.database);
    const log: string[] = [];
    const a = gc.submit(f.write('a'));
    const b = gc.submit(f.write('b'));
    const x = gc.exclusive(async () => {
      log.push(`exclusive after ${f.commits.flat().join(',')}`);
      return 42;
    });
    const c = gc.submit(f.write('c'));
    expect(await Promise.all([a, b, x, c])).toEqual(['a-result', 'b-result', 42, 'c-result']);
    expect(log).toEqual(['exclusive after a,b']);
    expect(f.commits).toEqual([['a'], ['b'], ['c']]);
  });
});

describe('withStatementCache', () => {
  it('prepares each SQL text once and drops the least recently used beyond its size', () => {
    const prepared: string[] = [];
    let closed = false;
    const conn = {
      prepare: (sql: string) => {
        prepared.push(sql);
        return { sql };
      },
      close: () => {
        closed = true;
      },
      name: 'db',
    };
    const cached = withStatementCache(conn, 2);
    const s1 = cached.prepare('select 1');
    expect(cached.prepare('select 1')).toBe(s1);
    cached.prepare('select 2');
    cached.prepare('select 1'); // most recently used now
    cached.prepare('select 3'); // evicts select 2
    cached.prepare('select 1');
    cached.prepare('select 2');
    expect(prepared).toEqual(['select 1', 'select 2', 'select 3', 'select 2']);
    expect(cached.name).toBe('db');
    cached.close();
    expect(closed).toBe(true);
  });
});
