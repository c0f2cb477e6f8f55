/**
 * The fixed cost of a client API request: the built server (dist/) is started as its own
 * process on SQLite, one user registers, and then a few keep-alive connections send bounded
 * runs of authenticated requests over 127.0.0.1 — GET /account/whoami, an incremental
 * GET /sync?timeout=0 that finds nothing new, and GET /versions (no authentication). The figure
 * is the server's CPU time (user + system, from /proc/<pid>/stat) per request.
 *
 * Environment: MYELIN_BENCH_REQUESTS (per measured run, default 20,000),
 * MYELIN_BENCH_CONNECTIONS (default 4), MYELIN_BENCH_CPU_PROF (a directory for the server's
 * V8 CPU profile).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonRequest, type JsonResponse } from '../lib/http-json.js';
import { median, report } from '../report.js';

const SUITE = 'http-request';
const env = process.env;
const REQUESTS = Number(env.MYELIN_BENCH_REQUESTS ?? 20_000);
const CONNECTIONS = Number(env.MYELIN_BENCH_CONNECTIONS ?? 4);
const RUNS = 3;
const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
let port = 0;

function request(method: string, path: string, body?: unknown, token?: string): Promise<JsonResponse> {
  return jsonRequest(`http://127.0.0.1:${port}${path}`, { method, body, token, agent });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
    srv.on('error', reject);
  });
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function start(): Promise<{ child: ChildProcess; dataDir: string }> {
  if (!existsSync(CLI)) throw new Error('dist/ is missing: run `npm run build` first.');
  const dataDir = mkdtempSync(join(tmpdir(), 'myelin-http-'));
  port = await freePort();
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!k.startsWith('MYELIN_')) childEnv[k] = v;
  Object.assign(childEnv, {
    MYELIN_LOG_LEVEL: 'warn',
    MYELIN_REGISTRATION: 'open',
    MYELIN_PASSWORD_HASHING__SCRYPT_LOG_N: '12',
    MYELIN_LISTENERS__CLIENT__BIND: '127.0.0.1',
    MYELIN_LISTENERS__CLIENT__PORT: String(port),
    MYELIN_LISTENERS__FEDERATION__BIND: '127.0.0.1',
    MYELIN_LISTENERS__FEDERATION__PORT: String(await freePort()),
    MYELIN_LISTENERS__METRICS__PORT: String(await freePort()),
  });
  const nodeArgs = env.MYELIN_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${env.MYELIN_BENCH_CPU_PROF}`] : [];
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'start', '--data-dir', dataDir], { env: childEnv, stdio: ['ignore', 'ignore', 'inherit'] });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error('server did not answer within 60 s');
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await request('GET', '/_matrix/client/versions')).status === 200) break;
    } catch {
      /* not listening yet */
    }
    await sleep(20);
  }
  return { child, dataDir };
}

/** Sends `n` requests over CONNECTIONS keep-alive connections; every answer must be 200. */
async function drive(n: number, path: string, token: string | undefined): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (next < n) {
        next++;
        const res = await request('GET', path, undefined, token);
        if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      }
    }),
  );
}

const server = await start();
try {
  const pid = server.child.pid!;
  const first = await request('POST', '/_matrix/client/v3/register', { username: 'bench', password: 'bench password' });
  const reg = await request('POST', '/_matrix/client/v3/register', {
    username: 'bench',
    password: 'bench password',
    auth: { type: 'm.login.dummy', session: first.body?.session },
  });
  if (reg.status !== 200) throw new Error(`register: ${reg.status} ${JSON.stringify(reg.body)}`);
  const token = reg.body.access_token as string;
  const room = await request('POST', '/_matrix/client/v3/createRoom', { name: 'bench' }, token);
  if (room.status !== 200) throw new Error(`createRoom: ${room.status}`);
  const initial = await request('GET', '/_matrix/client/v3/sync?timeout=0', undefined, token);
  const since = encodeURIComponent(initial.body.next_batch as string);

  const cases: Array<{ name: string; path: string; token?: string }> = [
    { name: 'GET /account/whoami', path: '/_matrix/client/v3/account/whoami', token },
    { name: 'GET /sync?timeout=0 (nothing new)', path: `/_matrix/client/v3/sync?timeout=0&since=${since}`, token },
    { name: 'GET /versions (no token)', path: '/_matrix/client/versions' },
  ];
  for (const c of cases) {
    await drive(Math.min(2000, REQUESTS), c.path, c.token); // warm-up: JIT, caches
    const perRequest: number[] = [];
    const wall: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const cpu0 = cpuSeconds(pid);
      const t0 = performance.now();
      await drive(REQUESTS, c.path, c.token);
      const ms = performance.now() - t0;
      perRequest.push(((cpuSeconds(pid) - cpu0) * 1e6) / REQUESTS);
      wall.push((ms * 1000) / REQUESTS);
    }
    report(SUITE, `${c.name}: server CPU per request`, median(perRequest), 'µs');
    report(SUITE, `${c.name}: wall time per request`, median(wall), 'µs');
  }
} finally {
  const exited = new Promise((r) => server.child.on('exit', r));
  server.child.kill('SIGTERM');
  await Promise.race([exited, sleep(20_000)]);
  agent.destroy();
  rmSync(server.dataDir, { recursive: true, force: true });
}
