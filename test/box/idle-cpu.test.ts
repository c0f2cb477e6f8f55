/**
 * Small-board profile: an idle server uses (almost) no CPU. Starts the real `myelin start`
 * process, lets it settle, and reads its CPU time from /proc over 5 seconds of idleness.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../_util/server.js';

/** utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!existsSync('/proc/self/stat'))('idle CPU', () => {
  it('an idle server spends well under 2% of a core', async () => {
    const dir = tempDir();
    const child = spawn(
      process.execPath,
      ['--max-old-space-size=256', '--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts'), 'start', '--data-dir', dir],
      {
        env: {
          ...process.env,
          MYELIN_LISTENERS__CLIENT__BIND: '127.0.0.1',
          MYELIN_LISTENERS__CLIENT__PORT: '0',
          MYELIN_LISTENERS__FEDERATION__BIND: '127.0.0.1',
          MYELIN_LISTENERS__FEDERATION__PORT: '0',
          MYELIN_LISTENERS__METRICS__PORT: '0',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const l = JSON.parse(line);
          if (l.client && l.msg.includes('is running')) resolve(l.client as string);
        });
        child.on('exit', (code) => reject(new Error(`exited early with ${code}`)));
      });
      // A request and the stats page, so that lazily started parts have run once.
      expect((await fetch(`${url}/_matrix/client/versions`)).status).toBe(200);
      await (await fetch(`${url}/_myelin/stats`)).text();
      await sleep(3000); // start-up work (JIT, GC, first checkpoints) settles
      const before = cpuTicks(child.pid!);
      const started = Date.now();
      await sleep(5000);
      const ticks = cpuTicks(child.pid!) - before;
      const seconds = (Date.now() - started) / 1000;
      const cpuMs = ticks * 10;
      console.log(`idle CPU: ${cpuMs} ms over ${seconds.toFixed(1)} s (${((cpuMs / 10 / seconds) || 0).toFixed(2)}% of a core)`);
      expect(cpuMs).toBeLessThan(100);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
