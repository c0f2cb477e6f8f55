/**
 * Start-up time to the first answered request, CPU spent until then, and idle RSS after
 * start-up, of the built server (`dist/`) on its embedded default (SQLite). Median of 5 runs
 * each (the range is printed on stderr), in two variants: plain `node dist/cli/main.js start`
 * (as `npm start` runs it), and with the Node flags of the shipped systemd unit
 * (deploy/systemd/myelin.service), read from its ExecStart line.
 *
 * CPU time (user + system, from /proc) is the steadier figure on a shared machine: wall time
 * also counts the time the process waited for a core.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, report } from '../report.js';

const RUNS = 5;
const CLI = join(import.meta.dirname, '../../dist/cli/main.js');
const UNIT = join(import.meta.dirname, '../../deploy/systemd/myelin.service');
const TICK_MS = 10; // /proc/<pid>/stat counts in clock ticks of 1/100 s (USER_HZ on Linux)

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

/** User + system CPU of a process so far, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS; // utime, stime (fields 14, 15)
}

/** The Node flags of the systemd unit's ExecStart (`--max-old-space-size=…` and the like). */
function unitNodeFlags(): string[] {
  const exec = /^ExecStart=\S+\s+(.*)$/m.exec(readFileSync(UNIT, 'utf8'));
  if (!exec) throw new Error(`no ExecStart line in ${UNIT}`);
  const args = exec[1]!.split(/\s+/);
  const script = args.findIndex((a) => !a.startsWith('-'));
  return args.slice(0, script); // what comes before dist/cli/main.js
}

async function startOnce(dataDir: string, nodeFlags: string[]): Promise<{ ms: number; cpu: number; child: ChildProcess }> {
  const port = await freePort();
  const fedPort = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [...nodeFlags, CLI, 'start', '--data-dir', dataDir], {
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
  return { ms: performance.now() - started, cpu: cpuMs(child.pid!), child };
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGTERM');
  await exited;
}

function range(values: number[], digits = 0): string {
  return `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;
}

if (!existsSync(CLI)) throw new Error('dist/ is missing: run `npm run build` first (npm run bench does).');

const variants: Array<{ label: string; flags: string[] }> = [
  { label: 'plain', flags: [] },
  { label: 'unit flags', flags: unitNodeFlags() },
];
for (const { label, flags } of variants) {
  const first: number[] = [];
  const firstCpu: number[] = [];
  const warm: number[] = [];
  const warmCpu: number[] = [];
  const idleRss: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'myelin-bench-'));
    const a = await startOnce(dir, flags);
    first.push(a.ms);
    firstCpu.push(a.cpu);
    await stop(a.child);
    const b = await startOnce(dir, flags);
    warm.push(b.ms);
    warmCpu.push(b.cpu);
    await new Promise((r) => setTimeout(r, 2000));
    idleRss.push(rssKiB(b.child.pid!) / 1024);
    await stop(b.child);
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(
      `${label} run ${i + 1}/${RUNS}: first ${first[i]!.toFixed(0)} ms (CPU ${firstCpu[i]} ms), ` +
        `existing ${warm[i]!.toFixed(0)} ms (CPU ${warmCpu[i]} ms), idle RSS ${idleRss[i]!.toFixed(1)} MiB\n`,
    );
  }
  process.stderr.write(
    `${label} [${flags.join(' ')}] ranges: first ${range(first)} ms (CPU ${range(firstCpu)}), existing ${range(warm)} ms ` +
      `(CPU ${range(warmCpu)}), idle RSS ${range(idleRss, 1)} MiB\n`,
  );
  const suffix = flags.length ? `, ${label}` : '';
  report('startup', `first start to first answer (new data dir)${suffix}`, median(first), 'ms');
  report('startup', `  CPU until then${suffix}`, median(firstCpu), 'ms');
  report('startup', `start to first answer (existing data dir)${suffix}`, median(warm), 'ms');
  report('startup', `  CPU until then${suffix}`, median(warmCpu), 'ms');
  report('startup', `idle RSS 2 s after start-up${suffix}`, median(idleRss), 'MiB');
}
