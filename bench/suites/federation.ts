/**
 * Federation between two Myelin servers on loopback, each its own process with its own SQLite
 * database and signing key, over TLS with certificates from a CA made here (as in the tests):
 *   1. PDUs/s received: a user of A sends N messages (MYELIN_BENCH_FED_MESSAGES, default 1000;
 *      8 sends in flight) in a room a user of B is in; time from the first send until B's /sync
 *      has returned all of them;
 *      then the same for a backlog of up to 450 messages A queued while B was unreachable: B's
 *      receiving rate when A sends full transactions as fast as B accepts them;
 *   2. send→remote-sync latency: M messages (MYELIN_BENCH_FED_LATENCY_MESSAGES, default 100)
 *      sent one at a time, 50 ms apart; p50/p99 of (seen in B's /sync − send started);
 *   3. join of a room of A with MYELIN_BENCH_FED_MEMBERS members (default 1000) by a user of B:
 *      time to joined and B's peak RSS during the join (sampled every 20 ms in B's process).
 * Every phase has a deadline (MYELIN_BENCH_FED_TIMEOUT_S, default 180 s); the servers are
 * stopped at the end or on failure.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSigningKeyFile, generateSigningKey } from '../../src/protocol/signing.js';
import { createTestCa } from '../../test/_util/test-ca.js';
import { forkFedServer } from '../lib/fed-server-process.js';
import { report } from '../report.js';

const SUITE = 'federation';
const env = process.env;
const MESSAGES = Number(env.MYELIN_BENCH_FED_MESSAGES ?? 1000);
const LATENCY_MESSAGES = Number(env.MYELIN_BENCH_FED_LATENCY_MESSAGES ?? 100);
const MEMBERS = Number(env.MYELIN_BENCH_FED_MEMBERS ?? 1000);
const TIMEOUT_MS = Number(env.MYELIN_BENCH_FED_TIMEOUT_S ?? 180) * 1000;
const IN_FLIGHT = 8;
/** Queued while B is unreachable; below the sender's 500-PDU catch-up cut-off. */
const BACKLOG = Math.min(MESSAGES, 450);
const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------------
// Server processes

interface Node {
  name: string;
  proc: ChildProcess;
  dataDir: string;
  clientUrl: string;
  fedPort: number;
  call(msg: Record<string, unknown>, timeoutMs?: number): Promise<any>;
}

async function startNode(name: string, caFile: string, ca: ReturnType<typeof createTestCa>, root: string): Promise<Node> {
  const dir = mkdtempSync(join(root, `${name}-`));
  writeFileSync(join(dir, 'signing.key'), encodeSigningKeyFile(generateSigningKey()), { mode: 0o600 });
  const cert = ca.issue({ dnsNames: [name], ips: ['127.0.0.1'] });
  writeFileSync(join(dir, 'fed.crt'), cert.certPem);
  writeFileSync(join(dir, 'fed.key'), cert.keyPem, { mode: 0o600 });
  const node = await forkFedServer(name, dir, caFile, { callTimeoutMs: TIMEOUT_MS, startTimeoutMs: 60_000 });
  return { ...node, dataDir: dir };
}

// ---------------------------------------------------------------------------------------------
// Client

class Client {
  token = '';
  userId = '';
  constructor(private readonly base: string) {}
  async req(method: string, path: string, body?: unknown): Promise<any> {
    const res = await fetch(this.base + path, {
      method,
      headers: { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const parsed = text ? JSON.parse(text) : {};
    if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return parsed;
  }
  async register(username: string): Promise<void> {
    const password = 'federation bench';
    const first = await fetch(`${this.base}/_matrix/client/v3/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
    const session = ((await first.json()) as { session: string }).session;
    const done = await this.req('POST', '/_matrix/client/v3/register', { username, password, auth: { type: 'm.login.dummy', session } });
    this.token = done.access_token;
    this.userId = done.user_id;
  }
  send(roomId: string, body: string): Promise<any> {
    return this.req('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', body });
  }
}

/** Follows a user's /sync and records when each message body of a room is first seen. */
class SyncWatcher {
  readonly seen = new Map<string, number>();
  private stopped = false;
  private since: string | undefined;
  private loop: Promise<void> | undefined;
  constructor(private readonly client: Client, private readonly roomId: string) {}
  async start(): Promise<void> {
    const first = await this.client.req('GET', '/_matrix/client/v3/sync?timeout=0');
    this.since = first.next_batch;
    this.loop = this.run();
  }
  private async run(): Promise<void> {
    const filter = enc(JSON.stringify({ room: { timeline: { limit: 2000 }, state: { lazy_load_members: true } }, presence: { not_types: ['*'] } }));
    while (!this.stopped) {
      const res = await this.client.req('GET', `/_matrix/client/v3/sync?timeout=5000&filter=${filter}&since=${enc(this.since!)}`);
      const now = performance.now();
      this.since = res.next_batch;
      for (const ev of res.rooms?.join?.[this.roomId]?.timeline?.events ?? []) {
        if (ev.type === 'm.room.message' && typeof ev.content?.body === 'string' && !this.seen.has(ev.content.body)) this.seen.set(ev.content.body, now);
      }
    }
  }
  async waitFor(bodies: string[], deadlineMs: number): Promise<void> {
    const end = performance.now() + deadlineMs;
    while (bodies.some((b) => !this.seen.has(b))) {
      if (performance.now() > end) throw new Error(`only ${bodies.filter((b) => this.seen.has(b)).length}/${bodies.length} messages reached the other server`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop?.catch(() => undefined);
  }
}

function percentile(values: number[], p: number): number {
  const s = [...values].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

// ---------------------------------------------------------------------------------------------

const root = mkdtempSync(join(tmpdir(), 'myelin-bench-fed-'));
const ca = createTestCa();
const caFile = join(root, 'ca.pem');
writeFileSync(caFile, ca.certPem);
const nodes: Node[] = [];
const hardStop = setTimeout(() => {
  console.error('federation bench: overall deadline reached');
  for (const n of nodes) n.proc.kill('SIGKILL');
  process.exit(1);
}, 4 * TIMEOUT_MS);
hardStop.unref();

try {
  const a = await startNode('a.bench', caFile, ca, root);
  nodes.push(a);
  const b = await startNode('b.bench', caFile, ca, root);
  nodes.push(b);
  const dns = {
    a: { 'a.bench': ['127.0.0.1'], 'b.bench': ['127.0.0.1'] },
    srv: {
      '_matrix-fed._tcp.a.bench': [{ name: 'a.bench', port: a.fedPort, priority: 10, weight: 5 }],
      '_matrix-fed._tcp.b.bench': [{ name: 'b.bench', port: b.fedPort, priority: 10, weight: 5 }],
    },
  };
  await a.call({ cmd: 'dns', dns });
  await b.call({ cmd: 'dns', dns });

  const alice = new Client(a.clientUrl);
  await alice.register('alice');
  const bob = new Client(b.clientUrl);
  await bob.register('bob');
  const { room_id: roomId } = await alice.req('POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'bench' });
  await bob.req('POST', `/_matrix/client/v3/join/${enc(roomId)}?via=a.bench`, {});
  const watcher = new SyncWatcher(bob, roomId);
  await watcher.start();

  // 1. Throughput: N messages, IN_FLIGHT sends at a time.
  const bodies = Array.from({ length: MESSAGES }, (_, i) => `tp-${i}`);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < bodies.length) await alice.send(roomId, bodies[next++]!);
    }),
  );
  const sentMs = performance.now() - t0;
  await watcher.waitFor(bodies, TIMEOUT_MS);
  const lastSeen = Math.max(...bodies.map((x) => watcher.seen.get(x)!));
  report(SUITE, `${MESSAGES} messages: sent on A`, (MESSAGES * 1000) / sentMs, 'msg/s');
  report(SUITE, `${MESSAGES} messages: received in B's /sync`, (MESSAGES * 1000) / (lastSeen - t0), 'PDU/s');

  // 1b. Receiving capacity: B drains a backlog A queued while it could not reach B (full
  // transactions of 50 PDUs, as fast as B accepts them), not limited by A's sending rate.
  await a.call({ cmd: 'partition', cut: true });
  const backlog = Array.from({ length: BACKLOG }, (_, i) => `bl-${i}`);
  next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < backlog.length) await alice.send(roomId, backlog[next++]!);
    }),
  );
  await a.call({ cmd: 'partition', cut: false });
  const d0 = performance.now();
  await a.call({ cmd: 'wake', destination: 'b.bench' });
  await watcher.waitFor(backlog, TIMEOUT_MS);
  const drained = Math.max(...backlog.map((x) => watcher.seen.get(x)!));
  report(SUITE, `${BACKLOG} queued messages: received in B's /sync`, (BACKLOG * 1000) / (drained - d0), 'PDU/s');

  // 2. Latency: one message at a time.
  const latencies: number[] = [];
  for (let i = 0; i < LATENCY_MESSAGES; i++) {
    const body = `lat-${i}`;
    const start = performance.now();
    await alice.send(roomId, body);
    await watcher.waitFor([body], 30_000);
    latencies.push(watcher.seen.get(body)! - start);
    await new Promise((r) => setTimeout(r, 50));
  }
  report(SUITE, 'send → remote /sync latency p50', percentile(latencies, 50), 'ms');
  report(SUITE, 'send → remote /sync latency p99', percentile(latencies, 99), 'ms');
  await watcher.stop();

  // 3. Join of a room with many members.
  const { room_id: bigRoom } = await alice.req('POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'big' });
  const populated = await a.call({ cmd: 'populate', roomId: bigRoom, n: MEMBERS - 1, prefix: 'member' });
  console.error(`federation bench: ${MEMBERS} members on A in ${Math.round(populated.ms)} ms`);
  const carol = new Client(b.clientUrl);
  await carol.register('carol');
  const before = await b.call({ cmd: 'rss-reset' });
  const j0 = performance.now();
  await carol.req('POST', `/_matrix/client/v3/join/${enc(bigRoom)}?via=a.bench`, {});
  const joinMs = performance.now() - j0;
  const after = await b.call({ cmd: 'rss-peak' });
  const members = await carol.req('GET', `/_matrix/client/v3/rooms/${enc(bigRoom)}/joined_members`);
  const count = Object.keys(members.joined ?? {}).length;
  if (count < MEMBERS) throw new Error(`joined room shows ${count} members, expected ${MEMBERS + 1}`);
  report(SUITE, `join a room of ${MEMBERS} members from B: time`, joinMs, 'ms');
  report(SUITE, `join a room of ${MEMBERS} members from B: B peak RSS`, after.peak / 1048576, 'MB');
  report(SUITE, `join a room of ${MEMBERS} members from B: B RSS before`, before.rss / 1048576, 'MB');
} finally {
  for (const n of nodes) await n.call({ cmd: 'stop' }, 20_000).catch(() => n.proc.kill('SIGKILL'));
  rmSync(root, { recursive: true, force: true });
  clearTimeout(hardStop);
}
