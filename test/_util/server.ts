/**
 * Starts real Myelin servers for tests: a temp data directory, ports picked by the OS on
 * 127.0.0.1, SQLite by default or a fresh PostgreSQL database.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { inject } from 'vitest';
import { Myelin, type CreateOptions } from '../../src/app.js';
import { createTestDatabase, type TestDatabase } from './pg-database.js';

export type Engine = 'sqlite' | 'postgres';

export interface TestServer {
  server: Myelin;
  dataDir: string;
  /** Base URL of the client listener, e.g. http://127.0.0.1:40123 */
  clientUrl: string;
  federationUrl: string;
  logs: string[];
  /** Runs a trivial query on the server's database (fails once it is closed). */
  ctxDatabaseQuery(): Promise<unknown>;
  /** Stops the server and removes its data (and its PostgreSQL database). */
  close(): Promise<void>;
}

export function tempDir(prefix = 'myelin-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A pino destination that keeps log lines in memory (printed only when a test asks). */
export function memoryLog(lines: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
}

export async function databaseOverrides(engine: Engine): Promise<{ database: Record<string, unknown>; pg?: TestDatabase }> {
  if (engine === 'sqlite') return { database: { engine: 'sqlite' } };
  const pg = await createTestDatabase(inject('postgresUrl'));
  return { database: { engine: 'postgres', url: pg.url }, pg };
}

export interface StartOptions {
  engine?: Engine;
  serverName?: string;
  overrides?: Record<string, unknown>;
  dataDir?: string;
  extend?: CreateOptions['extend'];
}

export async function startServer(opts: StartOptions = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? tempDir();
  const logs: string[] = [];
  const db = await databaseOverrides(opts.engine ?? 'sqlite');
  const server = await Myelin.create({
    dataDir,
    env: {},
    logDestination: memoryLog(logs),
    extend: opts.extend,
    overrides: {
      server_name: opts.serverName ?? 'localhost',
      log_level: 'debug',
      database: db.database,
      listeners: {
        client: { bind: '127.0.0.1', port: 0 },
        federation: { bind: '127.0.0.1', port: 0 },
        metrics: { enabled: false },
      },
      ...opts.overrides,
    },
  });
  const urls = await server.start();
  return {
    server,
    dataDir,
    clientUrl: urls.client!,
    federationUrl: urls.federation!,
    logs,
    ctxDatabaseQuery: () => server.ctx.stores.serverMeta.get('server_name'),
    async close() {
      await server.stop();
      await db.pg?.drop();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
