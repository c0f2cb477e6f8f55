import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { startServer, tempDir } from '../_util/server.js';

describe('graceful shutdown', () => {
  it('finishes in-flight requests, refuses new ones, then closes the database', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inFlight = new Promise<void>((r) => (entered = r));
    const t = await startServer({
      extend(app, listener) {
        if (listener === 'client')
          app.get('/_test/slow', async () => {
            entered();
            await gate;
            return { done: true };
          });
      },
    });
    const slow = fetch(`${t.clientUrl}/_test/slow`).then((r) => r.json());
    await inFlight;
    const stopping = t.server.stop();
    // New connections are refused while the in-flight request runs.
    await new Promise((r) => setTimeout(r, 100));
    await expect(fetch(`${t.clientUrl}/health`)).rejects.toThrow();
    release();
    expect(await slow).toEqual({ done: true });
    await stopping;
    // The database is closed: using it fails.
    await expect(t.ctxDatabaseQuery()).rejects.toThrow();
    expect(t.logs.some((l) => JSON.parse(l).msg === 'stopped')).toBe(true);
    await t.close();
  });

  it('cuts requests that outlive shutdown_timeout_ms', async () => {
    const t = await startServer({
      overrides: { shutdown_timeout_ms: 300 },
      extend(app, listener) {
        if (listener === 'client') app.get('/_test/hang', () => new Promise(() => {}));
      },
    });
    const hung = fetch(`${t.clientUrl}/_test/hang`).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await t.server.stop();
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(5000);
    expect(await hung).toBeInstanceOf(Error);
    await t.close();
  });

  it('the myelin process exits cleanly on SIGTERM and on SIGINT', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const dir = tempDir();
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts'), 'start', '--data-dir', dir],
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
      const lines: any[] = [];
      const running = new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const l = JSON.parse(line);
          lines.push(l);
          if (l.client && l.msg.includes('is running')) resolve(l.client as string);
        });
        child.on('exit', (code) => reject(new Error(`exited early with ${code}`)));
      });
      const url = await running;
      expect((await fetch(`${url}/_matrix/client/versions`)).status).toBe(200);
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      child.kill(signal);
      expect(await exited).toBe(0);
      expect(lines.some((l) => l.msg === 'stopped')).toBe(true);
      // WAL is checkpointed and removed when the last connection closes cleanly.
      expect(existsSync(join(dir, 'myelin.db-wal'))).toBe(false);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
