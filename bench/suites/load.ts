/**
 * Client API load: N users in shared rooms send messages while every user long-polls /sync.
 *
 * Two bounded phases:
 *   1. throughput — every user sends as fast as the server answers (one send in flight per
 *      user) for MYELIN_BENCH_SECONDS (default 20) or MYELIN_BENCH_MESSAGES (default 100,000):
 *      messages/s persisted, and delivery latency under that saturation;
 *   2. latency — a fixed total rate (MYELIN_BENCH_RATE, default 200 messages/s) spread over the
 *      users for MYELIN_BENCH_LATENCY_SECONDS (default 10): send→sync delivery latency p50/p99.
 *
 * Delivery latency is measured at the receiving long-poll: each message carries its send time,
 * and every other member's /sync that returns it records now − sent. The server's RSS is read
 * at the end.
 *
 * Environment:
 *   MYELIN_BENCH_USERS (100), MYELIN_BENCH_ROOM_SIZE (10 users per room)
 *   MYELIN_BENCH_SYNC=0 — users do not long-poll /sync: the send path alone (deliveries are not measured)
 *   MYELIN_BENCH_INLINE_FILTER=1 — pass the /sync filter inline as JSON instead of uploading it once
 *     and passing its ID (what matrix-js-sdk and Element do)
 *   MYELIN_BENCH_SQLITE_SYNCHRONOUS — SQLite `synchronous` of the started server (default: its own, FULL)
 *   MYELIN_BENCH_CPU_PROF — a directory: the started server writes a V8 CPU profile there
 *   MYELIN_BENCH_HEAP_SNAPSHOT — a directory: the started server writes a heap snapshot there at
 *     the end of the throughput phase
 *   MYELIN_BENCH_NODE_ARGS — extra Node.js options for the started server (e.g. "--max-semi-space-size=2")
 *   MYELIN_BENCH_SERVER_STDOUT=1 — the started server's standard output is shown (with
 *     MYELIN_BENCH_NODE_ARGS="--trace-gc", its garbage collections)
 *   MYELIN_BENCH_SERVER_ENV — a JSON object of extra environment variables for the started server
 *     (e.g. '{"MYELIN_DATABASE__CACHE_SIZE_KIB":"4096"}'; other MYELIN_* variables are not passed)
 *   MYELIN_BENCH_MEMORY=1 — print the server's memory (RSS, anonymous/file RSS, V8 heap total/used,
 *     new space, external) every second; without it only at the end of each phase and the peak
 *   MYELIN_BENCH_URL — run against any homeserver's client API instead of starting Myelin; users
 *     are registered with MYELIN_BENCH_SHARED_SECRET (the Synapse-compatible
 *     /_synapse/admin/v1/register) or, without it, through open registration (m.login.dummy).
 *     Its per-user message rate limit must allow the load. MYELIN_BENCH_PID (optional) gives
 *     the server's process ID for the RSS figure.
 * Without a URL, the built server (dist/) is started as its own process on SQLite in a temp
 * data directory, so the RSS figure is its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonRequest } from '../lib/http-json.js';
import { report } from '../report.js';

const SUITE = 'load';
const env = process.env;
const USERS = Number(env.MYELIN_BENCH_USERS ?? 100);
const ROOM_SIZE = Math.min(USERS, Number(env.MYELIN_BENCH_ROOM_SIZE ?? 10));
const SECONDS = Number(env.MYELIN_BENCH_SECONDS ?? 20);
const MAX_MESSAGES = Number(env.MYELIN_BENCH_MESSAGES ?? 100_000);
const RATE = Number(env.MYELIN_BENCH_RATE ?? 200);
const LATENCY_SECONDS = Number(env.MYELIN_BENCH_LATENCY_SECONDS ?? 10);
const SETUP_CONCURRENCY = 10;
/** MYELIN_BENCH_SYNC=0: nobody long-polls, so the phases measure the send path alone (no deliveries). */
const SYNC = env.MYELIN_BENCH_SYNC !== '0';
const MEMORY_LOG = env.MYELIN_BENCH_MEMORY === '1';
const EXTRA_NODE_ARGS = (env.MYELIN_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const CLI = join(import.meta.dirname, '../../dist/cli/main.js');
const PASSWORD = 'load bench password';

// ---------------------------------------------------------------------------------------------
// HTTP with keep-alive agents: one pool for long-polls, one for everything else.

let baseUrl = env.MYELIN_BENCH_URL?.replace(/\/+$/, '') ?? '';
const agentOpts = { keepAlive: true, maxSockets: USERS + 16, keepAliveMsecs: 30_000 };
const sendAgent = { http: new http.Agent(agentOpts), https: new https.Agent(agentOpts) };
const syncAgent = { http: new http.Agent(agentOpts), https: new https.Agent(agentOpts) };

interface Res {
  status: number;
  body: any;
}

function request(method: string, path: string, body: unknown, token: string | undefined, pool = sendAgent): Promise<Res> {
  const url = baseUrl + path;
  return jsonRequest(url, { method, body, token, agent: url.startsWith('https:') ? pool.https : pool.http });
}

async function ok(method: string, path: string, body: unknown, token?: string): Promise<any> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const res = await request(method, path, body, token);
    if (res.status === 200) return res.body;
    if (res.status === 429) {
      await sleep(Number(res.body?.retry_after_ms ?? 500));
      continue;
    }
    throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  }
  throw new Error(`${method} ${path}: still rate-limited`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

// ---------------------------------------------------------------------------------------------
// The server under test.

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function startMyelin(): Promise<{ child: ChildProcess; dataDir: string; metricsPort: number }> {
  if (!existsSync(CLI)) throw new Error('dist/ is missing: run `npm run build` first (npm run bench does).');
  const dataDir = mkdtempSync(join(tmpdir(), 'myelin-load-'));
  const port = await freePort();
  const fedPort = await freePort();
  const metricsPort = await freePort();
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!k.startsWith('MYELIN_')) childEnv[k] = v;
  const lifted = { per_second: 1_000_000, burst: 1_000_000 };
  Object.assign(childEnv, {
    MYELIN_LOG_LEVEL: 'warn',
    MYELIN_REGISTRATION: 'open',
    MYELIN_PASSWORD_HASHING__SCRYPT_LOG_N: '12',
    MYELIN_RATE_LIMITS: JSON.stringify({ login: lifted, registration: lifted, message: lifted }),
    MYELIN_LISTENERS__CLIENT__BIND: '127.0.0.1',
    MYELIN_LISTENERS__CLIENT__PORT: String(port),
    MYELIN_LISTENERS__FEDERATION__BIND: '127.0.0.1',
    MYELIN_LISTENERS__FEDERATION__PORT: String(fedPort),
    MYELIN_LISTENERS__METRICS__PORT: String(metricsPort),
  });
  if (env.MYELIN_BENCH_SERVER_ENV) Object.assign(childEnv, JSON.parse(env.MYELIN_BENCH_SERVER_ENV) as Record<string, string>);
  // SQLite durability (FULL by default): MYELIN_BENCH_SQLITE_SYNCHRONOUS=NORMAL to compare.
  if (env.MYELIN_BENCH_SQLITE_SYNCHRONOUS) childEnv.MYELIN_DATABASE__SYNCHRONOUS = env.MYELIN_BENCH_SQLITE_SYNCHRONOUS;
  const nodeArgs = env.MYELIN_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${env.MYELIN_BENCH_CPU_PROF}`] : [];
  nodeArgs.push(...EXTRA_NODE_ARGS);
  // A heap snapshot of the server at the end of the throughput phase (SIGUSR2), written there.
  if (env.MYELIN_BENCH_HEAP_SNAPSHOT) nodeArgs.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${env.MYELIN_BENCH_HEAP_SNAPSHOT}`);
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'start', '--data-dir', dataDir], { env: childEnv, stdio: ['ignore', env.MYELIN_BENCH_SERVER_STDOUT === '1' ? 'inherit' : 'ignore', 'inherit'] });
  baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error('server did not answer within 60 s');
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await request('GET', '/_matrix/client/versions', undefined, undefined)).status === 200) break;
    } catch {
      /* not listening yet */
    }
    await sleep(20);
  }
  return { child, dataDir, metricsPort };
}

async function stopMyelin(s: { child: ChildProcess; dataDir: string }): Promise<void> {
  const exited = new Promise((r) => s.child.on('exit', r));
  s.child.kill('SIGTERM');
  await Promise.race([exited, sleep(20_000)]);
  rmSync(s.dataDir, { recursive: true, force: true });
}

/** CPU seconds (user + system) a process has used, from /proc (undefined where unreadable). */
function cpuSeconds(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    // Fields after the command name (which may contain spaces): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** This (client) process's CPU seconds. */
function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/** One reading of the server's memory, in MiB (V8 figures from its Prometheus endpoint). */
interface MemorySample {
  t: number;
  phase: string;
  rss: number;
  anon: number;
  file: number;
  heapTotal?: number;
  heapUsed?: number;
  newSpace?: number;
  external?: number;
}

async function memorySample(pid: number, metricsPort: number | undefined, phase: string): Promise<MemorySample | undefined> {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN) / 1024;
  const s: MemorySample = { t: Date.now(), phase, rss: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile') };
  if (metricsPort) {
    try {
      const text = await new Promise<string>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port: metricsPort, path: '/metrics', agent: false, timeout: 2000 }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve(body));
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
      });
      const metric = (re: RegExp) => {
        const m = re.exec(text);
        return m ? Number(m[1]) / 1048576 : undefined;
      };
      s.heapTotal = metric(/^myelin_nodejs_heap_size_total_bytes (\S+)$/m);
      s.heapUsed = metric(/^myelin_nodejs_heap_size_used_bytes (\S+)$/m);
      s.external = metric(/^myelin_nodejs_external_memory_bytes (\S+)$/m);
      s.newSpace = metric(/^myelin_nodejs_heap_space_size_total_bytes\{space="new"\} (\S+)$/m);
    } catch {
      /* metrics not reachable: /proc figures only */
    }
  }
  return s;
}

function formatMemory(s: MemorySample): string {
  const f = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '?' : v.toFixed(0));
  return (
    `${s.phase}: RSS ${f(s.rss)} MiB (anon ${f(s.anon)}, file ${f(s.file)}); V8 heap ${f(s.heapTotal)} total / ${f(s.heapUsed)} used ` +
    `(new space ${f(s.newSpace)}), external ${f(s.external)}; other native ≈ ${f(s.anon - (s.heapTotal ?? 0) - (s.external ?? 0))}`
  );
}

/** Samples the server's memory every second until stopped; logs each sample with MYELIN_BENCH_MEMORY=1. */
function memorySampler(pid: number | undefined, metricsPort: number | undefined) {
  const samples: MemorySample[] = [];
  let phase = 'setup';
  let stopped = false;
  const loop = (async () => {
    while (!stopped && pid) {
      const s = await memorySample(pid, metricsPort, phase);
      if (s) {
        samples.push(s);
        if (MEMORY_LOG) process.stderr.write(`memory ${formatMemory(s)}\n`);
      }
      await sleep(1000);
    }
  })();
  return {
    samples,
    setPhase(p: string) {
      phase = p;
    },
    /** A sample now, logged (the end of a phase). */
    async mark(label: string): Promise<MemorySample | undefined> {
      if (!pid) return undefined;
      const s = await memorySample(pid, metricsPort, label);
      if (s) process.stderr.write(`memory ${formatMemory(s)}\n`);
      return s;
    },
    async stop(): Promise<void> {
      stopped = true;
      await loop;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Users, rooms, syncing and sending.

interface User {
  userId: string;
  token: string;
  roomId: string;
  since: string;
  /** The /sync filter parameter (a filter ID, or the filter inline). */
  filter: string;
  sent: number;
}

async function registerUser(name: string): Promise<{ userId: string; token: string }> {
  const secret = env.MYELIN_BENCH_SHARED_SECRET;
  if (secret) {
    const { nonce } = await ok('GET', '/_synapse/admin/v1/register', undefined);
    const mac = createHmac('sha1', secret).update(`${nonce}\0${name}\0${PASSWORD}\0notadmin`).digest('hex');
    const r = await ok('POST', '/_synapse/admin/v1/register', { nonce, username: name, password: PASSWORD, admin: false, mac });
    return { userId: r.user_id, token: r.access_token };
  }
  const first = await request('POST', '/_matrix/client/v3/register', { username: name, password: PASSWORD }, undefined);
  const session = first.body?.session;
  const r = await ok('POST', '/_matrix/client/v3/register', { username: name, password: PASSWORD, auth: { type: 'm.login.dummy', session } });
  return { userId: r.user_id, token: r.access_token };
}

const FILTER = {
  room: { timeline: { limit: 100 }, state: { lazy_load_members: true }, ephemeral: { types: [] }, account_data: { types: [] } },
  presence: { types: [] },
  account_data: { types: [] },
};
/** The filter as an inline JSON query parameter (MYELIN_BENCH_INLINE_FILTER=1 syncs with it). */
const INLINE_FILTER = encodeURIComponent(JSON.stringify(FILTER));

/**
 * The user's /sync filter parameter: like matrix-js-sdk (and so Element), the filter is uploaded
 * once and referred to by its ID.
 */
async function syncFilterFor(userId: string, token: string): Promise<string> {
  if (env.MYELIN_BENCH_INLINE_FILTER === '1') return INLINE_FILTER;
  const { filter_id } = await ok('POST', `/_matrix/client/v3/user/${encodeURIComponent(userId)}/filter`, FILTER, token);
  return encodeURIComponent(filter_id as string);
}

interface Stats {
  latencies: number[];
  limited: number;
  syncs: number;
  syncErrors: number;
}

/** Long-polls /sync for a user until `stop()` is true, recording delivery latencies into `stats()`. */
async function syncLoop(u: User, stopped: () => boolean, stats: () => Stats): Promise<void> {
  while (!stopped()) {
    let res: Res;
    try {
      res = await request('GET', `/_matrix/client/v3/sync?since=${u.since}&timeout=30000&filter=${u.filter}`, undefined, u.token, syncAgent);
    } catch {
      stats().syncErrors++;
      await sleep(100);
      continue;
    }
    const now = Date.now();
    const s = stats();
    if (res.status !== 200) {
      s.syncErrors++;
      await sleep(100);
      continue;
    }
    s.syncs++;
    u.since = res.body.next_batch;
    for (const room of Object.values<any>(res.body.rooms?.join ?? {})) {
      if (room.timeline?.limited) s.limited++;
      for (const ev of room.timeline?.events ?? []) {
        if (ev.type !== 'm.room.message' || ev.sender === u.userId) continue;
        const sentAt = ev.content?.sent_at;
        if (typeof sentAt === 'number') s.latencies.push(now - sentAt);
      }
    }
  }
}

let txnCounter = 0;
async function send(u: User, phase: string): Promise<boolean> {
  const txn = `${phase}${++txnCounter}`;
  const res = await request(
    'PUT',
    `/_matrix/client/v3/rooms/${encodeURIComponent(u.roomId)}/send/m.room.message/${txn}`,
    { msgtype: 'm.text', body: `load test message ${txn}`, sent_at: Date.now() },
    u.token,
  );
  if (res.status === 200) {
    u.sent++;
    return true;
  }
  if (res.status === 429) await sleep(Number(res.body?.retry_after_ms ?? 100));
  return false;
}

function newStats(): Stats {
  return { latencies: [], limited: 0, syncs: 0, syncErrors: 0 };
}

// ---------------------------------------------------------------------------------------------

const own = baseUrl ? undefined : await startMyelin();
const pid = own?.child.pid ?? (env.MYELIN_BENCH_PID ? Number(env.MYELIN_BENCH_PID) : undefined);
const memory = memorySampler(pid, own?.metricsPort);
try {
  const run = randomBytes(3).toString('hex');
  const t0 = Date.now();
  const accounts = await pool(Array.from({ length: USERS }, (_, i) => `load${run}u${i}`), SETUP_CONCURRENCY, registerUser);
  const roomCount = Math.ceil(USERS / ROOM_SIZE);
  const roomIds = await pool(Array.from({ length: roomCount }, (_, r) => r), SETUP_CONCURRENCY, async (r) => {
    const creator = accounts[r * ROOM_SIZE]!;
    const { room_id } = await ok('POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat', name: `load ${run} ${r}` }, creator.token);
    return room_id as string;
  });
  await pool(accounts, SETUP_CONCURRENCY, async (a, i) => {
    if (i % ROOM_SIZE !== 0) await ok('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomIds[Math.floor(i / ROOM_SIZE)]!)}`, {}, a.token);
  });
  const users: User[] = await pool(accounts, SETUP_CONCURRENCY, async (a, i) => {
    const filter = await syncFilterFor(a.userId, a.token);
    const s = await ok('GET', `/_matrix/client/v3/sync?timeout=0&filter=${filter}`, undefined, a.token);
    return { ...a, roomId: roomIds[Math.floor(i / ROOM_SIZE)]!, since: s.next_batch as string, filter, sent: 0 };
  });
  process.stderr.write(`setup: ${USERS} users in ${roomCount} rooms in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  await memory.mark('after setup');

  let current = newStats();
  let stopSync = false;
  const syncing = SYNC ? users.map((u) => syncLoop(u, () => stopSync, () => current)) : [];
  await sleep(500);

  // Phase 1: throughput.
  memory.setPhase('throughput');
  current = newStats();
  let total = 0;
  const started = Date.now();
  const deadline = started + SECONDS * 1000;
  const cpu0 = { server: cpuSeconds(pid), client: ownCpuSeconds() };
  await Promise.all(
    users.map(async (u) => {
      while (Date.now() < deadline && total < MAX_MESSAGES) {
        if (await send(u, 't')) total++;
      }
    }),
  );
  const elapsed = (Date.now() - started) / 1000;
  await sleep(1000); // let the long-polls deliver the tail
  const cpu1 = { server: cpuSeconds(pid), client: ownCpuSeconds() };
  if (env.MYELIN_BENCH_HEAP_SNAPSHOT && own) {
    process.stderr.write(`server RSS before the heap snapshot: ${rssMiB(own.child.pid!).toFixed(0)} MiB\n`);
    own.child.kill('SIGUSR2');
  }
  const tp = current;
  const tpSorted = [...tp.latencies].sort((a, b) => a - b);
  const rate = total / elapsed;
  process.stderr.write(
    `throughput: ${total} messages in ${elapsed.toFixed(1)} s = ${rate.toFixed(0)}/s; ${tp.latencies.length} deliveries ` +
      `(expected ${total * (ROOM_SIZE - 1)}), ${tp.limited} limited timelines, ${tp.syncs} syncs, p50 ${percentile(tpSorted, 50)} ms, p99 ${percentile(tpSorted, 99)} ms\n`,
  );
  const tpWall = elapsed + 1;
  const tpServerCpu = cpu0.server !== undefined && cpu1.server !== undefined ? cpu1.server - cpu0.server : undefined;
  process.stderr.write(
    `throughput CPU: server ${tpServerCpu?.toFixed(1) ?? '?'} s, client ${(cpu1.client - cpu0.client).toFixed(1)} s over ${tpWall.toFixed(1)} s wall` +
      (tpServerCpu !== undefined ? `; server ${((tpServerCpu * 1000) / Math.max(1, total)).toFixed(2)} ms CPU per message` : '') +
      '\n',
  );

  await memory.mark('after throughput');
  // Phase 2: latency at a fixed rate, spread evenly over users.
  memory.setPhase('latency');
  current = newStats();
  const interval = 1000 / RATE;
  const latencyMessages = Math.round(RATE * LATENCY_SECONDS);
  let sentLat = 0;
  const latStart = Date.now();
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; i < latencyMessages; i++) {
    const due = latStart + i * interval;
    const wait = due - Date.now();
    if (wait > 1) await sleep(wait);
    inflight.push(send(users[i % users.length]!, 'l').then((okay) => okay && sentLat++));
  }
  await Promise.all(inflight);
  await sleep(1000);
  const cpu2 = { server: cpuSeconds(pid), client: ownCpuSeconds() };
  const lat = current;
  const latSorted = [...lat.latencies].sort((a, b) => a - b);
  process.stderr.write(
    `latency: ${sentLat} messages at ${RATE}/s; ${lat.latencies.length} deliveries (expected ${sentLat * (ROOM_SIZE - 1)}), ` +
      `${lat.limited} limited, p50 ${percentile(latSorted, 50)} ms, p99 ${percentile(latSorted, 99)} ms, max ${latSorted[latSorted.length - 1]} ms\n`,
  );
  const latServerCpu = cpu1.server !== undefined && cpu2.server !== undefined ? cpu2.server - cpu1.server : undefined;
  process.stderr.write(
    `latency CPU: server ${latServerCpu?.toFixed(1) ?? '?'} s, client ${(cpu2.client - cpu1.client).toFixed(1)} s over ${((Date.now() - latStart) / 1000).toFixed(1)} s wall\n`,
  );

  const rss = pid ? rssMiB(pid) : undefined;
  const endSample = await memory.mark('at the end');
  await memory.stop();
  const peak = memory.samples.reduce<MemorySample | undefined>((a, b) => (a && a.rss >= b.rss ? a : b), undefined);
  if (peak) process.stderr.write(`memory peak (${peak.phase}): ${formatMemory(peak).replace(/^[^:]*: /, '')}\n`);
  stopSync = true;

  report(SUITE, `messages/s persisted (${USERS} users, ${roomCount} rooms, ${SYNC ? 'all' : 'none'} long-polling)`, rate, 'msg/s');
  if (SYNC) {
    report(SUITE, 'delivery latency p50 at full throughput', percentile(tpSorted, 50), 'ms');
    report(SUITE, 'delivery latency p99 at full throughput', percentile(tpSorted, 99), 'ms');
    report(SUITE, `delivery latency p50 at ${RATE} msg/s`, percentile(latSorted, 50), 'ms');
    report(SUITE, `delivery latency p99 at ${RATE} msg/s`, percentile(latSorted, 99), 'ms');
    report(SUITE, 'deliveries seen / expected at full throughput', tp.latencies.length / Math.max(1, total * (ROOM_SIZE - 1)), 'ratio');
  }
  if (rss !== undefined) report(SUITE, 'server RSS at the end', rss, 'MiB');
  if (peak) report(SUITE, 'server RSS peak', peak.rss, 'MiB');
  if (endSample?.heapTotal !== undefined) report(SUITE, 'server V8 heap total at the end', endSample.heapTotal, 'MiB');
  if (tpServerCpu !== undefined) {
    report(SUITE, 'server CPU per message at full throughput', (tpServerCpu * 1000) / Math.max(1, total), 'ms');
    report(SUITE, 'server CPU / wall at full throughput', tpServerCpu / tpWall, 'ratio');
  }

  // Long-polls end when the server stops (or within their 30 s timeout on another server).
  if (!own) await Promise.race([Promise.all(syncing), sleep(35_000)]);
} finally {
  await memory.stop();
  if (own) await stopMyelin(own);
  sendAgent.http.destroy();
  syncAgent.http.destroy();
  sendAgent.https.destroy();
  syncAgent.https.destroy();
}
