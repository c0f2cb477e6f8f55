import { spawn } from 'node:child_process';
import { existsSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { openDatabase, type Database } from '../../src/storage/db.js';
import { tempDir } from '../_util/server.js';

/**
 * The log sync of `synchronous = FULL` (src/storage/sqlite-durable.ts): node:fs's fdatasync is
 * wrapped so a test can hold syncs back and count them; everything else is the real file system.
 */
const gate = vi.hoisted(() => ({ hold: false, calls: 0, waiting: [] as Array<() => void>, fds: [] as number[] }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const fdatasync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    gate.calls++;
    gate.fds.push(fd);
    const go = () => fs.fdatasync(fd, cb);
    if (gate.hold) gate.waiting.push(go);
    else go();
  };
  return { ...fs, default: { ...fs, fdatasync }, fdatasync };
});

const ROOT = join(import.meta.dirname, '../..');
const log = pino({ level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  gate.hold = false;
  for (const go of gate.waiting.splice(0)) go();
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function open(dir: string, synchronous?: string): Promise<{ db: Database; path: string }> {
  const config = validateConfig({ server_name: 'localhost', database: { engine: 'sqlite', ...(synchronous ? { synchronous } : {}) } }, dir).database;
  const db = await openDatabase(config, log);
  return { db, path: config.path };
}

async function openTemp(synchronous?: string): Promise<{ db: Database; path: string; dir: string }> {
  const dir = tempDir();
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const opened = await open(dir, synchronous);
  cleanups.push(() => opened.db.close().catch(() => {}));
  return { ...opened, dir };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const pragma = async (db: Database, name: string) => Object.values((await sql.raw(`pragma ${name}`).execute(db.db)).rows[0] as object)[0];

describe('SQLite commits with synchronous = FULL', () => {
  it('resolve a transaction, and run its commit hooks, only after the log is synced; the event loop and other queries go on meanwhile', async () => {
    const { db } = await openTemp();
    await sql`create table t (k text primary key, v text not null)`.execute(db.db);
    gate.hold = true;
    const before = gate.calls;
    let hooked = false;
    let resolved = false;
    const first = db
      .transaction(async (tx) => {
        await sql`insert into t (k, v) values ('a', '1')`.execute(tx.db);
        tx.onCommit(() => (hooked = true));
        return 'first';
      })
      .then((v) => {
        resolved = true;
        return v;
      });
    await until(() => gate.waiting.length === 1, 'the first log sync');
    // Committed (visible to other queries on the connection) but not acknowledged yet.
    expect(resolved).toBe(false);
    expect(hooked).toBe(false);
    expect((await sql<{ v: string }>`select v from t where k = 'a'`.execute(db.db)).rows).toEqual([{ v: '1' }]);

    // A second commit while the first sync runs waits for a sync of its own, started after it.
    let secondDone = false;
    const second = db.transaction(async (tx) => {
      await sql`insert into t (k, v) values ('b', '2')`.execute(tx.db);
    }).then(() => (secondDone = true));
    // A write outside any transaction waits for the sync as well.
    let autoDone = false;
    const auto = sql`insert into t (k, v) values ('c', '3')`.execute(db.db).then(() => (autoDone = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(gate.calls - before).toBe(1);
    expect(secondDone || autoDone || resolved).toBe(false);

    gate.waiting.shift()!();
    expect(await first).toBe('first');
    expect(hooked).toBe(true);
    // The writes made during the first sync share the next one.
    await until(() => gate.waiting.length === 1, 'the second log sync');
    expect(gate.calls - before).toBe(2);
    expect(secondDone || autoDone).toBe(false);
    gate.hold = false;
    gate.waiting.shift()!();
    await Promise.all([second, auto]);
    expect(gate.calls - before).toBe(2);
  });

  it('queries that change nothing do not wait for a sync', async () => {
    const { db } = await openTemp();
    await sql`create table t (k text primary key)`.execute(db.db);
    const before = gate.calls;
    await sql`select count(*) from t`.execute(db.db);
    await db.db.selectFrom('users').select('user_id').execute();
    await db.transaction(async (tx) => {
      await sql`select 1`.execute(tx.db);
    });
    // The (empty) transaction commits, a sync; the reads alone none.
    expect(gate.calls - before).toBe(1);
  });

  it('checkpoints the log into the database file while writes go on, and leaves no log after closing', async () => {
    const { db, path, dir } = await openTemp();
    await sql`create table big (n integer primary key, payload text not null)`.execute(db.db);
    const payload = 'y'.repeat(16 * 1024);
    // ≈ 11 MiB over ≈ 5 s, 16 rows at a time: checkpoints (every 2 s) copy it into the database
    // file and the log is reused from its start.
    const rows = 16 * 45;
    for (let n = 0; n < rows; n += 16) {
      await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          db.transaction(async (tx) => {
            await sql`insert into big (n, payload) values (${n + i}, ${payload})`.execute(tx.db);
          }),
        ),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(statSync(`${path}-wal`).size).toBeLessThan(8 * 1024 * 1024);
    expect(statSync(path).size).toBeGreaterThan(4 * 1024 * 1024);
    expect(await pragma(db, 'integrity_check')).toBe('ok');
    await db.close();
    expect(existsSync(`${path}-wal`)).toBe(false);
    const again = await open(dir);
    cleanups.push(() => again.db.close().catch(() => {}));
    expect(Number(((await sql<{ n: number }>`select count(*) as n from big`.execute(again.db.db)).rows[0]!).n)).toBe(rows);
  }, 30_000);

  it('checkpoints with both syncs off the event loop: reads and timers go on, writers wait for the database file sync', async () => {
    const { db, path } = await openTemp();
    await sql`create table t (n integer primary key, payload text not null)`.execute(db.db);
    const payload = 'z'.repeat(8 * 1024);
    const write = (n: number) => db.transaction((tx) => sql`insert into t (n, payload) values (${n}, ${payload})`.execute(tx.db).then(() => undefined));
    for (let n = 0; n < 50; n++) await write(n);
    // Past the checkpoint interval (2 s), the next commit's sync is followed by a checkpoint.
    await new Promise((r) => setTimeout(r, 2100));
    gate.hold = true;
    const first = write(50);
    await until(() => gate.waiting.length === 1, 'the commit log sync');
    gate.waiting.shift()!();
    await first;
    // The checkpoint holds the connection and syncs the log again (held here).
    await until(() => gate.waiting.length === 1, 'the checkpoint log sync');
    const fileOf = (fd: number) => readlinkSync(`/proc/self/fd/${fd}`);
    expect(fileOf(gate.fds[gate.fds.length - 1]!)).toBe(realpathSync(`${path}-wal`));
    let second = false;
    const blocked = write(51).then(() => (second = true));
    let ticked = false;
    setTimeout(() => (ticked = true), 10);
    // A read (a SELECT, which runs on the connection at once) is answered meanwhile.
    const count = await (db.db as unknown as Kysely<{ t: { n: number } }>).selectFrom('t').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(51);
    await until(() => ticked, 'a timer');
    gate.waiting.shift()!();
    // Then the pages are copied and the database file is synced, still before any write.
    await until(() => gate.waiting.length === 1, 'the database file sync');
    expect(fileOf(gate.fds[gate.fds.length - 1]!)).toBe(realpathSync(path));
    await new Promise((r) => setTimeout(r, 50));
    expect(second).toBe(false);
    gate.hold = false;
    for (const go of gate.waiting.splice(0)) go();
    await blocked;
    expect(second).toBe(true);
    // The rows were copied into the database file itself (their pages were only in the log).
    expect(statSync(path).size).toBeGreaterThan(51 * payload.length);
    expect(await pragma(db, 'integrity_check')).toBe('ok');
  }, 30_000);

  it('NORMAL and EXTRA keep SQLite syncing by itself', async () => {
    const normal = await openTemp('NORMAL');
    expect(await pragma(normal.db, 'synchronous')).toBe(1);
    const extra = await openTemp('EXTRA');
    expect(await pragma(extra.db, 'synchronous')).toBe(3);
    const before = gate.calls;
    await sql`create table t (k text)`.execute(extra.db.db);
    await extra.db.transaction(async (tx) => {
      await sql`insert into t values ('x')`.execute(tx.db);
    });
    expect(gate.calls).toBe(before);
  });

  it('loses no acknowledged transaction when the process is killed at any moment, across checkpoints', async () => {
    const dir = tempDir();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const acked = new Set<number>();
    let next = 0;
    for (let round = 0; round < 4; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/integration/_durability-writer.ts'), dir, String(next), '4000'], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      // Killed between 2.2 and 3.5 s after it started writing: past its first checkpoint (2 s).
      const killAt = 2200 + Math.floor(Math.random() * 1300);
      let seen = 0;
      let buf = '';
      await new Promise<void>((resolve, reject) => {
        child.on('error', reject);
        child.on('exit', () => resolve());
        child.stdout!.on('data', (chunk: Buffer) => {
          buf += chunk.toString();
          const lines = buf.split('\n');
          buf = lines.pop()!;
          for (const line of lines) {
            if (line === 'ready') setTimeout(() => child.kill('SIGKILL'), killAt);
            const m = /^ack (\d+)$/.exec(line);
            if (!m) continue;
            acked.add(Number(m[1]));
            seen++;
          }
        });
      });
      expect(seen).toBeGreaterThan(100);
      // Rows of the next round start past anything this one may have written.
      next += 100_000;
      const { db } = await open(dir);
      try {
        expect(await pragma(db, 'integrity_check')).toBe('ok');
        const rows = (await sql<{ n: number }>`select n from durability_rows`.execute(db.db)).rows;
        const stored = new Set(rows.map((r) => Number(r.n)));
        const missing = [...acked].filter((n) => !stored.has(n));
        expect(missing).toEqual([]);
      } finally {
        await db.close();
      }
    }
    expect(acked.size).toBeGreaterThan(400);
  }, 120_000);
});
