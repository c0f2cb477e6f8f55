/**
 * Event-loop stalls of SQLite writes with `synchronous = FULL` (the default): the database is
 * opened as the server opens it (src/storage/db.ts, durable driver), and 20 transactions at a
 * time insert rows (≈ 700 bytes each, with an index) for MYELIN_BENCH_SECONDS (default 9) —
 * several checkpoints (every 2 s while writes happen). A 1 ms interval timer records how late
 * it runs: the longest gap and the gaps over 8 ms are the event loop's stops (a checkpoint's
 * disk syncs, before they moved to libuv's pool, were ≈ 10 ms each).
 *
 *   npx tsx bench/suites/sqlite-stalls.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import pino from 'pino';
import { validateConfig } from '../../src/config/load.js';
import { openDatabase } from '../../src/storage/db.js';
import { report } from '../report.js';

const SUITE = 'sqlite-stalls';
const SECONDS = Number(process.env.MYELIN_BENCH_SECONDS ?? 9);

const dir = mkdtempSync(join(tmpdir(), 'myelin-bench-stalls-'));
try {
  const cfg = validateConfig({ server_name: 'localhost', database: { engine: 'sqlite' } }, dir).database;
  const db = await openDatabase(cfg, pino({ level: 'silent' }));
  await sql`create table bench_rows (n integer primary key, k text not null, payload text not null)`.execute(db.db);
  await sql`create index bench_rows_k on bench_rows (k)`.execute(db.db);
  const gaps: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
  }, 1);
  const payload = 'p'.repeat(600);
  let rows = 0;
  const end = Date.now() + SECONDS * 1000;
  while (Date.now() < end) {
    await Promise.all(
      Array.from({ length: 20 }, () =>
        db.transaction((tx) => sql`insert into bench_rows (k, payload) values (${Math.random().toString(36)}, ${payload})`.execute(tx.db)),
      ),
    );
    rows += 20;
    await new Promise((r) => setTimeout(r, 5));
  }
  clearInterval(timer);
  await db.close();
  const long = gaps.filter((g) => g > 8);
  process.stderr.write(`${rows} rows in ${SECONDS} s; timer gaps over 8 ms: ${long.map((g) => g.toFixed(0)).join(', ') || 'none'}\n`);
  report(SUITE, 'rows written', rows, 'rows');
  report(SUITE, 'longest event-loop gap', Math.max(...gaps), 'ms');
  report(SUITE, 'event-loop gaps over 8 ms', long.length, 'count');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
