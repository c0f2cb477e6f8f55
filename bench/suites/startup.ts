/**
 * Start-up time to the first answered request, and idle RSS after start-up, of the built
 * server (`dist/`) on its embedded default (SQLite). Median of 5 runs each.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, report } from '../report.js';

const RUNS = 5;
const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

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

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

async function startOnce(dataDir: string): Promise<{ ms: number; child: ChildProcess }> {
  const port = await freePort();
  const fedPort = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, 'start', '--data-dir', dataDir], {
    env: {
      ...process.env,
      MYELIN_LOG_LEVEL: 'warn',
      MYELIN_LISTENERS__CLIENT__BIND: '127.0.0.1',
      MYELIN_LISTENERS__CLIENT__PORT: String(port),
      MYELIN_LISTENERS__FEDERATION__BIND: '127.0.0.1',
      MYELIN_LISTENERS__FEDERATION__PORT: String(fedPort),
      MYELIN_LISTENERS__METRICS__PORT: '0',
    },
    stdio: 'ignore',
  });
  const deadline = started + 30_000;
  for (;;) {
    if (performance.now() > deadline) throw new Error('server did not answer within 30 s');
    try {
      const res = await fetch(`http://127.0.0.1:${port}/_matrix/client/versions`);
      if (res.ok) {
        await res.arrayBuffer();
        break;
      }
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return { ms: performance.now() - started, child };
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGTERM');
  await exited;
}

if (!existsSync(CLI)) throw new Error('dist/ is missing: run `npm run build` first (npm run bench does).');

const first: number[] = [];
const warm: number[] = [];
const idleRss: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const dir = mkdtempSync(join(tmpdir(), 'myelin-bench-'));
  const a = await startOnce(dir);
  first.push(a.ms);
  await stop(a.child);
  const b = await startOnce(dir);
  warm.push(b.ms);
  await new Promise((r) => setTimeout(r, 2000));
  idleRss.push(rssKiB(b.child.pid!) / 1024);
  await stop(b.child);
  rmSync(dir, { recursive: true, force: true });
  process.stderr.write(`run ${i + 1}/${RUNS}: first ${first[i]!.toFixed(0)} ms, warm ${warm[i]!.toFixed(0)} ms, idle RSS ${idleRss[i]!.toFixed(1)} MiB\n`);
}
report('startup', 'first start to first answer (new data dir), median', median(first), 'ms');
report('startup', 'start to first answer (existing data dir), median', median(warm), 'ms');
report('startup', 'idle RSS 2 s after start-up, median', median(idleRss), 'MiB');
