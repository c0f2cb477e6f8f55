/** A Myelin server that a test can stop and start again on the same data directory and database. */
import { rmSync } from 'node:fs';
import { Myelin, type CreateOptions } from '../../src/app.js';
import { databaseOverrides, memoryLog, tempDir, type Engine } from '../_util/server.js';
import { TEST_OVERRIDES } from './_client.js';

export interface RestartableServer {
  readonly url: string;
  readonly server: Myelin;
  /** Log lines of every run so far. */
  readonly logs: string[];
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startRestartable(engine: Engine, extend?: CreateOptions['extend'], overrides: Record<string, unknown> = {}): Promise<RestartableServer> {
  const dataDir = tempDir();
  const db = await databaseOverrides(engine);
  const logs: string[] = [];
  const boot = async (port: number) => {
    const server = await Myelin.create({
      dataDir,
      env: {},
      logDestination: memoryLog(logs),
      extend,
      overrides: {
        ...TEST_OVERRIDES,
        server_name: 'localhost',
        log_level: 'info',
        database: db.database,
        listeners: { client: { bind: '127.0.0.1', port }, federation: { enabled: false }, metrics: { enabled: false } },
        ...overrides,
      },
    });
    const urls = await server.start();
    return { server, url: urls.client! };
  };
  let cur = await boot(0);
  const port = Number(new URL(cur.url).port);
  return {
    get url() {
      return cur.url;
    },
    get server() {
      return cur.server;
    },
    logs,
    async restart() {
      await cur.server.stop();
      // Same port, so clients keep their base URL.
      cur = await boot(port);
    },
    async close() {
      await cur.server.stop();
      await db.pg?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
