/**
 * A Myelin server in the benchmark's own process, on SQLite in a temp data directory, with the
 * limits that would get in a load's way lifted. `MYELIN_BENCH_DIST=1` runs the built server
 * (dist/, for CPU profiles with its line numbers) instead of the sources.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Myelin } from '../../src/app.js';

export interface BenchServer {
  server: Myelin;
  /** The client API's base URL. */
  base: string;
  /** Stops the server and removes its data directory. */
  close(): Promise<void>;
}

export async function startInProcessServer(name: string): Promise<BenchServer> {
  const { Myelin: M } = (await import(process.env.MYELIN_BENCH_DIST === '1' ? '../../dist/app.js' : '../../src/app.js')) as { Myelin: typeof Myelin };
  const dataDir = mkdtempSync(join(tmpdir(), `myelin-bench-${name}-`));
  const server = await M.create({
    dataDir,
    env: {},
    logDestination: new Writable({ write: (_c, _e, cb) => cb() }),
    overrides: {
      server_name: 'localhost',
      log_level: 'warn',
      registration: 'open',
      password_hashing: { scrypt_log_n: 12 },
      rate_limits: { login: { per_second: 1000, burst: 1000 }, registration: { per_second: 1000, burst: 1000 }, message: { per_second: 100000, burst: 100000 } },
      listeners: { client: { bind: '127.0.0.1', port: 0 }, federation: { bind: '127.0.0.1', port: 0 }, metrics: { enabled: false } },
    },
  });
  const base = (await server.start()).client!;
  return {
    server,
    base,
    async close() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A JSON request to the client API (fetch): the parsed body; throws unless 200 or 401 (UIA). */
export function jsonCaller(base: string) {
  return async (method: string, path: string, token: string | undefined, body?: unknown): Promise<any> => {
    const res = await fetch(base + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (res.status !== 200 && res.status !== 401) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
}
