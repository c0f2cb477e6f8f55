/**
 * The write cost of push-rule evaluation results (`event_push_actions`) in SQLite, by table
 * layout: per insert statement (one message in a room of 10 local members: the sender's own
 * mark and 9 notifying rows) and WAL bytes per commit, on a file with 100,000 rows of 100 users
 * in 10 rooms; and the read queries of the table (unread counts, own marks, /notifications).
 *
 *   npx tsx bench/suites/push-actions-write.ts            (every layout)
 *   MYELIN_BENCH_PUSH_LAYOUTS=v0,v4 npx tsx bench/suites/push-actions-write.ts
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { median, report } from '../report.js';

const SUITE = 'push-actions-write';
const require = createRequire(import.meta.url);
const major = Number(process.versions.node.split('.')[0]);
const BetterSqlite3 = require(major >= 22 ? 'better-sqlite3-napi' : 'better-sqlite3') as typeof import('better-sqlite3');

const USERS = 100;
const ROOMS = 10;
const PER_ROOM = USERS / ROOMS;
const PREFILL_EVENTS = Number(process.env['MYELIN_BENCH_PUSH_PREFILL'] ?? 10_000); // × 10 rows
const MEASURED = Number(process.env['MYELIN_BENCH_PUSH_MESSAGES'] ?? 3000);
const COLS = ['user_id', 'event_id', 'room_id', 'stream_ordering', 'thread_id', 'notif', 'highlight', 'own', 'actions', 'ts'] as const;

interface Layout {
  name: string;
  describe: string;
  ddl: string[];
  conflict: string;
  /** Actions as stored (null: the default for the row's kind). */
  actions: (own: boolean) => string | null;
}

const OLD_INDEXES = [
  'create index epa_room on event_push_actions (user_id, room_id, stream_ordering)',
  'create index epa_user on event_push_actions (user_id, stream_ordering)',
];
const COLUMNS = `user_id text not null, event_id text not null, room_id text not null, stream_ordering integer not null,
  thread_id text not null, notif integer not null, highlight integer not null, own integer not null default 0, actions text, ts integer not null`;
const always = (own: boolean) => (own ? '[]' : '["notify"]');
const sparse = () => null;
const NOTIFYING = 'where notif = 1 and own = 0';

const LAYOUTS: Layout[] = [
  {
    name: 'v0',
    describe: 'migration 0004: rowid, text primary key (user, event), indexes (user, room, stream) and (user, stream)',
    ddl: [`create table event_push_actions (${COLUMNS}, primary key (user_id, event_id))`, ...OLD_INDEXES],
    conflict: 'user_id, event_id',
    actions: always,
  },
  {
    name: 'v1',
    describe: 'v0, actions stored only when not the default',
    ddl: [`create table event_push_actions (${COLUMNS}, primary key (user_id, event_id))`, ...OLD_INDEXES],
    conflict: 'user_id, event_id',
    actions: sparse,
  },
  {
    name: 'v2',
    describe: 'WITHOUT ROWID, primary key (user, room, stream), index (user, stream)',
    ddl: [
      `create table event_push_actions (${COLUMNS}, primary key (user_id, room_id, stream_ordering)) without rowid`,
      'create index epa_user on event_push_actions (user_id, stream_ordering)',
    ],
    conflict: 'user_id, room_id, stream_ordering',
    actions: always,
  },
  {
    name: 'v3',
    describe: 'v2 with the (user, stream) index only on notifying rows',
    ddl: [
      `create table event_push_actions (${COLUMNS}, primary key (user_id, room_id, stream_ordering)) without rowid`,
      `create index epa_user on event_push_actions (user_id, stream_ordering) ${NOTIFYING}`,
    ],
    conflict: 'user_id, room_id, stream_ordering',
    actions: always,
  },
  {
    name: 'v3s',
    describe: 'v3, actions stored only when not the default',
    ddl: [
      `create table event_push_actions (${COLUMNS}, primary key (user_id, room_id, stream_ordering)) without rowid`,
      `create index epa_user on event_push_actions (user_id, stream_ordering) ${NOTIFYING}`,
    ],
    conflict: 'user_id, room_id, stream_ordering',
    actions: sparse,
  },
  {
    name: 'v4',
    describe: 'v3 plus an index of own rows (user, room, thread, stream)',
    ddl: [
      `create table event_push_actions (${COLUMNS}, primary key (user_id, room_id, stream_ordering)) without rowid`,
      `create index epa_user on event_push_actions (user_id, stream_ordering) ${NOTIFYING}`,
      'create index epa_own on event_push_actions (user_id, room_id, thread_id, stream_ordering) where own = 1',
    ],
    conflict: 'user_id, room_id, stream_ordering',
    actions: always,
  },
  {
    name: 'v5',
    describe: 'v4, actions stored only when not the default',
    ddl: [
      `create table event_push_actions (${COLUMNS}, primary key (user_id, room_id, stream_ordering)) without rowid`,
      `create index epa_user on event_push_actions (user_id, stream_ordering) ${NOTIFYING}`,
      'create index epa_own on event_push_actions (user_id, room_id, thread_id, stream_ordering) where own = 1',
    ],
    conflict: 'user_id, room_id, stream_ordering',
    actions: sparse,
  },
  {
    name: 'v6',
    describe: 'WITHOUT ROWID primary key (user, room, stream) alone (lower bound: /notifications unindexed)',
    ddl: [`create table event_push_actions (${COLUMNS}, primary key (user_id, room_id, stream_ordering)) without rowid`],
    conflict: 'user_id, room_id, stream_ordering',
    actions: always,
  },
];

const userId = (u: number) => `@user${String(u).padStart(4, '0')}:bench.example.org`;
const roomId = (r: number) => `!room${String(r).padStart(2, '0')}abcdefghijklmn:bench.example.org`;
// Event IDs are hashes (room v4+): random order.
const eventId = (i: number) => `$${Buffer.from(`${(i * 2654435761) % 4294967296}-${i}`).toString('base64url').padEnd(43, 'x')}`;

/** The rows of message `i` (stream position `i`): the sender's own mark, a notifying row for each other member. */
function rowsOf(i: number, layout: Layout): unknown[] {
  const room = i % ROOMS;
  const sender = room * PER_ROOM + (Math.floor(i / ROOMS) % PER_ROOM);
  const out: unknown[] = [];
  for (let k = 0; k < PER_ROOM; k++) {
    const u = room * PER_ROOM + k;
    const own = u === sender;
    out.push(userId(u), eventId(i), roomId(room), i, 'main', own ? 0 : 1, 0, own ? 1 : 0, layout.actions(own), 1_700_000_000_000 + i);
  }
  return out;
}

function insertSql(layout: Layout): string {
  const one = `(${COLS.map(() => '?').join(', ')})`;
  return `insert into event_push_actions (${COLS.join(', ')}) values ${Array(PER_ROOM).fill(one).join(', ')} on conflict (${layout.conflict}) do nothing`;
}

interface Open {
  layout: Layout;
  dir: string;
  path: string;
  db: import('better-sqlite3').Database;
  insert: import('better-sqlite3').Statement;
  next: number;
  times: number[];
  walBytes: number;
}

function openLayout(layout: Layout): Open {
  const dir = mkdtempSync(join(tmpdir(), 'myelin-push-bench-'));
  const path = join(dir, 'db.sqlite');
  const db = new BetterSqlite3(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -8192');
  db.pragma('wal_autocheckpoint = 0');
  for (const d of layout.ddl) db.exec(d);
  const insert = db.prepare(insertSql(layout));
  const prefill = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) insert.run(rowsOf(i, layout));
  });
  for (let i = 1; i <= PREFILL_EVENTS; i += 1000) prefill(i, Math.min(i + 1000, PREFILL_EVENTS + 1));
  db.pragma('wal_checkpoint(TRUNCATE)');
  const pages = (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number);
  report(SUITE, `${layout.name} file size at ${PREFILL_EVENTS * PER_ROOM} rows`, pages / 1024 / 1024, 'MiB');
  return { layout, dir, path, db, insert, next: PREFILL_EVENTS + 1, times: [], walBytes: 0 };
}

/** `n` messages, one transaction each (as the event's own transaction); the insert's CPU time (user + system). */
function writeSome(o: Open, n: number): void {
  const begin = o.db.prepare('begin');
  const commit = o.db.prepare('commit');
  const walBefore = statSync(`${o.path}-wal`).size;
  for (let k = 0; k < n; k++, o.next++) {
    const params = rowsOf(o.next, o.layout);
    begin.run();
    const c0 = process.cpuUsage();
    o.insert.run(params);
    const c = process.cpuUsage(c0);
    o.times.push(c.user + c.system);
    commit.run();
  }
  o.walBytes += statSync(`${o.path}-wal`).size - walBefore;
}

function readAndClose(o: Open): void {
  const { db, layout } = o;
  const name = layout.name;
  report(SUITE, `${name} insert statement (10 rows), median CPU`, median(o.times), 'µs');
  report(SUITE, `${name} insert statement (10 rows), mean CPU`, o.times.reduce((a, b) => a + b, 0) / o.times.length, 'µs');
  report(SUITE, `${name} WAL bytes per commit`, o.walBytes / o.times.length, 'B');
  // Reads, for user 5 in room 0.
  const u = userId(5);
  const r = roomId(0);
  const i = o.next;
  const reads: Array<[string, string, unknown[]]> = [
    [
      'countsAfter (200 events)',
      'select thread_id, count(*) as n, sum(highlight) as h from event_push_actions where user_id = ? and room_id = ? and own = 0 and notif = 1 and stream_ordering > ? and stream_ordering <= ? group by thread_id',
      [u, r, i - 200, i],
    ],
    [
      'ownMarks (all)',
      'select thread_id, max(stream_ordering) as m from event_push_actions where user_id = ? and room_id = ? and own = 1 group by thread_id',
      [u, r],
    ],
    [
      'ownMarks (200 events)',
      'select thread_id, max(stream_ordering) as m from event_push_actions where user_id = ? and room_id = ? and stream_ordering > ? and own = 1 group by thread_id',
      [u, r, i - 200],
    ],
    [
      'notifications (20)',
      'select * from event_push_actions where user_id = ? and notif = 1 and own = 0 and stream_ordering < ? order by stream_ordering desc limit ?',
      [u, i - 500, 20],
    ],
    [
      'notificationsAfter (200)',
      'select * from event_push_actions where user_id = ? and notif = 1 and own = 0 and stream_ordering > ? order by stream_ordering limit ?',
      [u, i - 5000, 200],
    ],
  ];
  for (const [q, text, params] of reads) {
    // notif/own are literals, as partial indexes need.
    const stmt = db.prepare(text);
    const plan = (db.prepare(`explain query plan ${text}`).all(...params) as Array<{ detail: string }>).map((p) => p.detail).join('; ');
    const t: number[] = [];
    for (let k = 0; k < 200; k++) {
      const c0 = process.cpuUsage();
      stmt.all(...params);
      const c = process.cpuUsage(c0);
      t.push(c.user + c.system);
    }
    report(SUITE, `${name} ${q}`, median(t), 'µs');
    process.stderr.write(`  ${name} ${q}: ${plan}\n`);
  }
  db.close();
  rmSync(o.dir, { recursive: true, force: true });
}

const wanted = process.env['MYELIN_BENCH_PUSH_LAYOUTS']?.split(',');
const chosen = LAYOUTS.filter((l) => !wanted || wanted.includes(l.name));
const opened: Open[] = [];
try {
  for (const layout of chosen) {
    process.stderr.write(`${layout.name}: ${layout.describe}\n`);
    opened.push(openLayout(layout));
  }
  // Interleaved in rounds, so drift in the machine's load spreads over every layout.
  const ROUND = 100;
  for (let done = 0; done < MEASURED; done += ROUND) for (const o of opened) writeSome(o, Math.min(ROUND, MEASURED - done));
  for (const o of opened) readAndClose(o);
} finally {
  for (const o of opened) if (o.db.open) o.db.close();
  for (const o of opened) rmSync(o.dir, { recursive: true, force: true });
}
