/**
 * An unwatched server costs nearly nothing: a Myelin process started by the test, left idle,
 * uses almost no CPU; the stats sampler runs only while an SSE client is connected.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../_util/server.js';

const ROOT = join(import.meta.dirname, '../..');
const CLK_TCK = 100;

/** utime + stime of a process, in milliseconds (Linux /proc). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(process.platform !== 'linux')('idle cost', () => {
  let child: ChildProcess;
  let dir: string;
  let clientUrl = '';
  let metricsUrl = '';
  let out = '';

  beforeAll(async () => {
    dir = tempDir('myelin-idle-');
    child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'start', '--data-dir', dir], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        MYELIN_SERVER_NAME: 'localhost',
        MYELIN_LOG_LEVEL: 'info',
        MYELIN_LISTENERS__CLIENT__BIND: '127.0.0.1',
        MYELIN_LISTENERS__CLIENT__PORT: '0',
        MYELIN_LISTENERS__FEDERATION__ENABLED: 'false',
        MYELIN_LISTENERS__METRICS__PORT: '0',
        MYELIN_STATS__INTERVAL_MS: '250',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const end = Date.now() + 60_000;
    while ((!clientUrl || !metricsUrl) && Date.now() < end) {
      clientUrl = /client API listening on (http:\/\/[^"\s]+)/.exec(out)?.[1] ?? '';
      metricsUrl = /metrics endpoint listening on (http:\/\/[^"\s]+)/.exec(out)?.[1] ?? '';
      await sleep(100);
    }
    if (!clientUrl || !metricsUrl) throw new Error(`server did not start:\n${out}`);
  }, 90_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('uses almost no CPU while nobody watches, more while the stats page is open, and stops after', async () => {
    // Settle after start-up (JIT, first-run files), then measure a quiet period. Start-up runs
    // longer on a busy machine: wait (bounded) until a second passes with almost no CPU.
    await sleep(2000);
    for (let i = 0; i < 20; i++) {
      const before = cpuMs(child.pid!);
      await sleep(1000);
      if (cpuMs(child.pid!) - before <= 20) break;
    }
    const idleWindow = 4000;
    const a = cpuMs(child.pid!);
    await sleep(idleWindow);
    const idle = cpuMs(child.pid!) - a;

    // A watcher: the sampler ticks every 250 ms.
    const ac = new AbortController();
    const res = await fetch(`${clientUrl}/_myelin/stats/events`, { signal: ac.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let samples = 0;
    const b = cpuMs(child.pid!);
    const readUntil = Date.now() + idleWindow;
    while (Date.now() < readUntil) {
      const { value, done } = await reader.read();
      if (done) break;
      samples += (Buffer.from(value).toString().match(/event: sample/g) ?? []).length;
    }
    const watched = cpuMs(child.pid!) - b;
    ac.abort();
    expect(samples).toBeGreaterThanOrEqual(8);

    // Once the last client left, the process is quiet again.
    await sleep(1000);
    const c = cpuMs(child.pid!);
    await sleep(idleWindow);
    const after = cpuMs(child.pid!) - c;

    console.log(`CPU over ${idleWindow} ms: idle ${idle} ms, watched ${watched} ms (${samples} samples), after ${after} ms`);
    expect(idle).toBeLessThanOrEqual(60);
    expect(after).toBeLessThanOrEqual(60);
  });

  it('answers a scrape and goes quiet again (metrics are computed on scrape)', async () => {
    const text = await (await fetch(`${metricsUrl}/metrics`)).text();
    expect(text).toContain('myelin_build_info');
    await sleep(500);
    const a = cpuMs(child.pid!);
    await sleep(3000);
    expect(cpuMs(child.pid!) - a).toBeLessThanOrEqual(60);
  });
});
