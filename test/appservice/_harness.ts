/** Helpers for application-service tests: a Myelin whose database survives restarts, registrations, fake services. */
import { writeFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Myelin } from '../../src/app.js';
import { TEST_OVERRIDES } from '../client/_client.js';
import { databaseOverrides, memoryLog, tempDir, type Engine } from '../_util/server.js';

export interface Registration {
  id: string;
  url: string | null;
  as_token: string;
  hs_token: string;
  sender_localpart: string;
  namespaces: Record<string, Array<{ regex: string; exclusive: boolean }>>;
  [k: string]: unknown;
}

/** A port nobody listens on right now (for services started later, or never). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** One Myelin data directory and database, started and restarted at will. */
export class Homeserver {
  server: Myelin | undefined;
  url = '';
  readonly logs: string[] = [];
  private constructor(
    readonly dataDir: string,
    private readonly db: Awaited<ReturnType<typeof databaseOverrides>>,
    private readonly overrides: Record<string, unknown>,
  ) {}

  static async create(engine: Engine, registrations: Registration[], overrides: Record<string, unknown> = {}): Promise<Homeserver> {
    const dataDir = tempDir('myelin-as-');
    const files = registrations.map((r, i) => {
      const f = `registration-${i}.yaml`;
      writeFileSync(join(dataDir, f), stringify(r));
      return f;
    });
    const db = await databaseOverrides(engine);
    return new Homeserver(dataDir, db, {
      ...TEST_OVERRIDES,
      app_services: files,
      app_service_delivery: { retry_initial_ms: 100, retry_max_ms: 500, request_timeout_ms: 5000 },
      ...overrides,
    });
  }

  async start(): Promise<string> {
    this.server = await Myelin.create({
      dataDir: this.dataDir,
      env: {},
      logDestination: memoryLog(this.logs),
      overrides: {
        server_name: 'localhost',
        log_level: 'debug',
        database: this.db.database,
        listeners: { client: { bind: '127.0.0.1', port: 0 }, federation: { enabled: false }, metrics: { enabled: false } },
        ...this.overrides,
      },
    });
    const urls = await this.server.start();
    this.url = urls.client!;
    return this.url;
  }

  async stop(): Promise<void> {
    await this.server?.stop();
    this.server = undefined;
  }

  async destroy(): Promise<void> {
    await this.stop();
    await this.db.pg?.drop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export interface FakeRequest {
  method: string;
  path: string;
  auth: string | undefined;
  body: any;
}

/** A minimal application service: records requests, answers through `handler` (200 {} by default). */
export class FakeAppService {
  readonly requests: FakeRequest[] = [];
  handler: (r: FakeRequest) => { status: number; body: unknown } = () => ({ status: 200, body: {} });
  private server: Server | undefined;

  constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let data = '';
      req.on('data', (c) => (data += c));
      req.on('end', () => {
        const r: FakeRequest = { method: req.method!, path: req.url!, auth: req.headers.authorization, body: data ? JSON.parse(data) : undefined };
        this.requests.push(r);
        const out = this.handler(r);
        res.writeHead(out.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(out.body));
      });
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r));
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = undefined;
  }

  transactions(): FakeRequest[] {
    return this.requests.filter((r) => r.method === 'PUT' && r.path.startsWith('/_matrix/app/v1/transactions/'));
  }
}

/** Polls `check` until it returns true (or a value), failing after `ms`. */
export async function eventually<T>(check: () => T | Promise<T>, ms = 15000, what = 'condition'): Promise<Exclude<T, false | null | undefined | 0 | ''>> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as Exclude<T, false | null | undefined | 0 | ''>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
