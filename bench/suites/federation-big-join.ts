/**
 * Joining a big room over federation: server A holds a room with MYELIN_BENCH_BIG_MEMBERS
 * members (default 20,000) and MYELIN_BENCH_BIG_MESSAGES messages of history (default 5,000),
 * generated on A's database before A starts (bench/lib/big-room-generator.ts: real signed
 * events with their state groups, written in batches); then a user of server B joins it.
 * A and B are separate processes (bench/lib/fed-server.ts) over TLS on loopback, so B's RSS is
 * its own. Figures: time to joined (the client's /join returning) and B's peak RSS during the
 * join (sampled every 20 ms). Goal on this machine: under 30 s and under 300 MB.
 * MYELIN_BENCH_BIG_CACHE=dir keeps A's generated data directory there and reuses it for the same
 * sizes (generating 20,000 members takes minutes). Memory diagnostics of B (bench/lib/fed-server.ts):
 * MYELIN_BENCH_TRACE_MEM=ms (process.memoryUsage() and heap spaces), MYELIN_BENCH_TRACE_GC=1 (or
 * "minor" for scavenges too), MYELIN_BENCH_HEAP_PROF=dir (sampling heap profile of what young-
 * generation collections did not free), MYELIN_BENCH_HEAP_SNAPSHOT=dir with
 * MYELIN_BENCH_HEAP_SNAPSHOT_MB=n (one heap snapshot when RSS first exceeds n MB);
 * MYELIN_BENCH_B_NODE_ARGS: Node.js options for B.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSigningKeyFile, generateSigningKey } from '../../src/protocol/signing.js';
import { createTestCa } from '../../test/_util/test-ca.js';
import { forkFedServer } from '../lib/fed-server-process.js';
import { report } from '../report.js';

const SUITE = 'federation-big-join';
const MEMBERS = Number(process.env.MYELIN_BENCH_BIG_MEMBERS ?? 20_000);
const MESSAGES = Number(process.env.MYELIN_BENCH_BIG_MESSAGES ?? 5_000);
const TIMEOUT_MS = Number(process.env.MYELIN_BENCH_BIG_TIMEOUT_S ?? 300) * 1000;
const enc = encodeURIComponent;

interface Node {
  name: string;
  proc: ChildProcess;
  clientUrl: string;
  fedPort: number;
  call(msg: Record<string, unknown>, timeoutMs?: number): Promise<any>;
}

function prepare(name: string, ca: ReturnType<typeof createTestCa>, root: string): string {
  const dir = mkdtempSync(join(root, `${name}-`));
  writeFileSync(join(dir, 'signing.key'), encodeSigningKeyFile(generateSigningKey()), { mode: 0o600 });
  const cert = ca.issue({ dnsNames: [name], ips: ['127.0.0.1'] });
  writeFileSync(join(dir, 'fed.crt'), cert.certPem);
  writeFileSync(join(dir, 'fed.key'), cert.keyPem, { mode: 0o600 });
  return dir;
}

/** MYELIN_BENCH_B_NODE_ARGS: Node.js options for B only (e.g. the systemd unit's "--max-old-space-size=384 --max-semi-space-size=8"). */
const B_NODE_ARGS = (process.env['MYELIN_BENCH_B_NODE_ARGS'] ?? '').split(/\s+/).filter(Boolean);

async function startNode(name: string, dir: string, caFile: string, nodeArgs: string[] = []): Promise<Node> {
  return forkFedServer(name, dir, caFile, { callTimeoutMs: TIMEOUT_MS, startTimeoutMs: 120_000, nodeArgs });
}

async function req(base: string, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(base + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : {};
}

async function register(base: string, username: string): Promise<string> {
  const password = 'federation bench';
  const first = await fetch(`${base}/_matrix/client/v3/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
  const session = ((await first.json()) as { session: string }).session;
  const done = await req(base, '', 'POST', '/_matrix/client/v3/register', { username, password, auth: { type: 'm.login.dummy', session } });
  return done.access_token as string;
}

const root = mkdtempSync(join(tmpdir(), 'myelin-bench-bigjoin-'));
const ca = createTestCa();
const caFile = join(root, 'ca.pem');
writeFileSync(caFile, ca.certPem);
const nodes: Node[] = [];
const hardStop = setTimeout(() => {
  console.error('federation-big-join bench: overall deadline reached');
  for (const n of nodes) n.proc.kill('SIGKILL');
  process.exit(1);
}, 3 * TIMEOUT_MS);
hardStop.unref();

try {
  const dirA = prepare('a.bench', ca, root);
  const g0 = performance.now();
  // MYELIN_BENCH_BIG_CACHE=dir keeps A's generated data there and reuses it for the same sizes.
  const cache = process.env['MYELIN_BENCH_BIG_CACHE'] ? join(process.env['MYELIN_BENCH_BIG_CACHE'], `${MEMBERS}-${MESSAGES}`) : undefined;
  let roomId: string;
  if (cache && existsSync(join(cache, 'room.json'))) {
    cpSync(cache, dirA, { recursive: true });
    ({ roomId } = JSON.parse(readFileSync(join(cache, 'room.json'), 'utf8')) as { roomId: string });
  } else {
    const out = execFileSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../lib/big-room-generator.ts'), dirA, 'a.bench', String(MEMBERS), String(MESSAGES)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 3 * TIMEOUT_MS,
    });
    ({ roomId } = JSON.parse(out.trim().split('\n').pop()!) as { roomId: string });
    if (cache) {
      mkdirSync(cache, { recursive: true });
      for (const f of readdirSync(dirA)) if (!/\.(crt|key)$/.test(f) || f === 'signing.key') cpSync(join(dirA, f), join(cache, f), { recursive: true });
      writeFileSync(join(cache, 'room.json'), JSON.stringify({ roomId }));
    }
  }
  // A starts as a fresh process would (its first run writes its own configuration file).
  rmSync(join(dirA, 'myelin.yaml'), { force: true });
  rmSync(join(dirA, 'room.json'), { force: true });
  console.error(`federation-big-join bench: room of ${MEMBERS} members and ${MESSAGES} messages generated on A in ${Math.round(performance.now() - g0)} ms`);
  const a = await startNode('a.bench', dirA, caFile);
  nodes.push(a);
  const b = await startNode('b.bench', prepare('b.bench', ca, root), caFile, B_NODE_ARGS);
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
  const bob = await register(b.clientUrl, 'bob');
  const before = await b.call({ cmd: 'rss-reset' });
  const j0 = performance.now();
  await req(b.clientUrl, bob, 'POST', `/_matrix/client/v3/join/${enc(roomId)}?via=a.bench`, {});
  const joinMs = performance.now() - j0;
  const after = await b.call({ cmd: 'rss-peak' });
  console.error(`federation-big-join bench: B at its peak: ${after.atPeak}; after the join: ${after.now}`);
  const members = await req(b.clientUrl, bob, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`);
  const count = Object.keys(members.joined ?? {}).length;
  if (count < MEMBERS + 2) throw new Error(`joined room shows ${count} members on B, expected ${MEMBERS + 2}`);
  const label = `join a room of ${MEMBERS} members and ${MESSAGES} messages from B${B_NODE_ARGS.length ? ` (B: ${B_NODE_ARGS.join(' ')})` : ''}`;
  report(SUITE, `${label}: time to joined`, joinMs, 'ms');
  report(SUITE, `${label}: B peak RSS`, after.peak / 1048576, 'MB');
  report(SUITE, `${label}: B RSS before`, before.rss / 1048576, 'MB');
  report(SUITE, `${label}: B RSS after`, after.rss / 1048576, 'MB');
} finally {
  for (const n of nodes) await n.call({ cmd: 'stop' }, 60_000).catch(() => n.proc.kill('SIGKILL'));
  rmSync(root, { recursive: true, force: true });
  clearTimeout(hardStop);
}
