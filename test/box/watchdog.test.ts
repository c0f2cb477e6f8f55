/**
 * The connectivity watchdog: the recovery command runs after the configured outage and not
 * before, at most once per period, never while connectivity is there; and end to end inside a
 * running server, probing a TCP target that goes away.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectivityWatchdog, tcpProbe } from '../../src/box/watchdog.js';
import { startServer, tempDir, type TestServer } from '../_util/server.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const runs = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0);

describe('ConnectivityWatchdog', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('runs the recovery command after the outage, not before, and once per period', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const marker = join(dir, 'recovered');
    let now = 1_000_000;
    let reachable = true;
    const w = new ConnectivityWatchdog({
      probe: async () => reachable,
      checkIntervalMs: 1000,
      outageMs: 60_000,
      command: `echo ran >> '${marker}'`,
      periodMs: 300_000,
      timeoutMs: 10_000,
      log: silent,
      now: () => now,
    });
    const tick = async (advanceMs: number) => {
      now += advanceMs;
      await w.check();
    };

    await tick(0);
    expect(w.status().reachable).toBe(true);
    reachable = false;
    await tick(1000); // outage starts
    expect(w.status().downSince).toBe(now);
    await tick(30_000);
    await tick(29_999); // 59.999 s without connectivity: not yet
    expect(runs(marker)).toBe(0);
    await tick(1); // 60 s
    expect(runs(marker)).toBe(1);
    expect(w.status()).toMatchObject({ recoveries: 1, lastRecoveryResult: 'exit 0' });
    // The outage goes on: nothing more until a period has passed since the last recovery.
    for (let i = 0; i < 29; i++) await tick(10_000);
    expect(runs(marker)).toBe(1);
    await tick(10_000); // 300 s after the recovery
    expect(runs(marker)).toBe(2);
    // Connectivity back: the outage ends; a short one later does not recover.
    reachable = true;
    await tick(1000);
    expect(w.status().downSince).toBeUndefined();
    reachable = false;
    await tick(1000);
    await tick(59_000);
    expect(runs(marker)).toBe(2);
    // A full outage again, but within the period of the last recovery: still waits for the period.
    await tick(1000);
    expect(runs(marker)).toBe(2);
    await tick(300_000);
    expect(runs(marker)).toBe(3);
  });

  it('probes on its own timer and kills a recovery command that hangs', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const marker = join(dir, 'recovered');
    const w = new ConnectivityWatchdog({
      probe: async () => false,
      checkIntervalMs: 50,
      outageMs: 300,
      command: `echo ran >> '${marker}'; sleep 30`,
      periodMs: 60_000,
      timeoutMs: 500,
      log: silent,
    });
    w.start();
    await sleep(150);
    expect(runs(marker)).toBe(0);
    const deadline = Date.now() + 10_000;
    while (w.status().lastRecoveryResult === undefined && Date.now() < deadline) await sleep(50);
    await w.stop();
    expect(runs(marker)).toBe(1);
    expect(w.status().lastRecoveryResult).toBe('killed by SIGKILL');
  });

  it('tcpProbe tells an open port from a closed one', async () => {
    const srv = createServer((s) => s.end());
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    expect(await tcpProbe('127.0.0.1', port, 2000)).toBe(true);
    await new Promise((r) => srv.close(r));
    expect(await tcpProbe('127.0.0.1', port, 2000)).toBe(false);
  });
});

describe('watchdog in a running server', () => {
  let t: TestServer | undefined;
  let target: Server | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
    target?.close();
  });

  it('runs recovery_command once the target has been unreachable for outage_ms', async () => {
    target = createServer((s) => s.end());
    await new Promise<void>((r) => target!.listen(0, '127.0.0.1', () => r()));
    const port = (target.address() as { port: number }).port;
    const dir = tempDir();
    const marker = join(dir, 'recovered');
    try {
      t = await startServer({
        overrides: {
          watchdog: {
            enabled: true,
            target: `127.0.0.1:${port}`,
            check_interval_ms: 100,
            outage_ms: 1500,
            recovery_command: `echo ran >> '${marker}'`,
            recovery_period_ms: 600_000,
          },
        },
      });
      await sleep(800);
      expect(t.server.ctx.box.watchdogStatus()?.reachable).toBe(true);
      expect(runs(marker)).toBe(0);
      await new Promise((r) => target!.close(r));
      target = undefined;
      const lostAt = Date.now();
      await sleep(1000);
      expect(runs(marker)).toBe(0); // not before outage_ms
      const deadline = Date.now() + 15_000;
      while (runs(marker) === 0 && Date.now() < deadline) await sleep(50);
      expect(runs(marker)).toBe(1);
      expect(Date.now() - lostAt).toBeGreaterThanOrEqual(1500);
      await sleep(800);
      expect(runs(marker)).toBe(1); // once per period
      expect(t.logs.some((l) => l.includes('running the recovery command'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
