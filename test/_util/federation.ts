/**
 * A federation of Myelin servers on 127.0.0.1 for tests: each has its own data directory,
 * database, signing key and TLS certificate from a CA made by the test, and a static DNS view in
 * which every member is published (A record and _matrix-fed SRV to its federation port).
 * Servers can be stopped and started again on the same data (their new port is republished).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Myelin, type CreateOptions } from '../../src/app.js';
import { staticResolver, type StaticDnsRecords } from '../../src/federation/dns.js';
import { encodeSigningKeyFile, generateSigningKey } from '../../src/protocol/signing.js';
import { TEST_OVERRIDES, TestClient } from '../client/_client.js';
import { databaseOverrides, memoryLog, tempDir, type Engine } from './server.js';
import { createTestCa, type TestCa } from './test-ca.js';

export interface FedMember {
  name: string;
  server: Myelin | undefined;
  clientUrl: string;
  logs: string[];
  running: boolean;
  /** A client of this server (new TestClient each call). */
  client(token?: string): TestClient;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface Federation {
  ca: TestCa;
  members: FedMember[];
  dns: StaticDnsRecords;
  /** Starts a member; `options.extend` adds routes to its listeners (fake endpoints of tests). */
  add(name: string, extra?: Record<string, unknown>, options?: { extend?: CreateOptions['extend'] }): Promise<FedMember>;
  close(): Promise<void>;
}

export async function createFederation(engine: Engine): Promise<Federation> {
  const ca = createTestCa();
  const caDir = tempDir('myelin-fedca-');
  const caFile = join(caDir, 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const dns: StaticDnsRecords = { a: {}, srv: {} };
  const members: FedMember[] = [];
  const cleanups: Array<() => Promise<void>> = [];

  const add = async (name: string, extra: Record<string, unknown> = {}, options: { extend?: CreateOptions['extend'] } = {}): Promise<FedMember> => {
    const dataDir = tempDir('myelin-fed-');
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, 'signing.key'), encodeSigningKeyFile(generateSigningKey()), { mode: 0o600 });
    const cert = ca.issue({ dnsNames: [name], ips: ['127.0.0.1'] });
    writeFileSync(join(dataDir, 'fed.crt'), cert.certPem);
    writeFileSync(join(dataDir, 'fed.key'), cert.keyPem, { mode: 0o600 });
    const db = await databaseOverrides(engine);
    const logs: string[] = [];
    let fedPort = 0;
    let clientPort = 0;
    const member: FedMember = {
      name,
      server: undefined,
      clientUrl: '',
      logs,
      running: false,
      client: (token?: string) => new TestClient(member.clientUrl, token),
      async start() {
        const server = await Myelin.create({
          dataDir,
          env: {},
          logDestination: memoryLog(logs),
          extend: options.extend,
          federation: { resolver: staticResolver(dns), senderBackoff: { baseMs: 200, maxMs: 2000 } },
          overrides: {
            ...TEST_OVERRIDES,
            server_name: name,
            log_level: 'debug',
            database: db.database,
            listeners: {
              client: { bind: '127.0.0.1', port: clientPort },
              federation: { bind: '127.0.0.1', port: fedPort, tls: { cert_file: 'fed.crt', key_file: 'fed.key' } },
              metrics: { enabled: false },
            },
            federation: { ca_files: [caFile], use_system_ca: false },
            ...extra,
          },
        });
        const urls = await server.start();
        member.server = server;
        member.clientUrl = urls.client!;
        clientPort = server.address('client')!.port;
        fedPort = server.address('federation')!.port;
        dns.a![name] = ['127.0.0.1'];
        dns.srv![`_matrix-fed._tcp.${name}`] = [{ name, port: fedPort, priority: 10, weight: 5 }];
        member.running = true;
      },
      async stop() {
        if (!member.running) return;
        member.running = false;
        await member.server!.stop();
      },
    };
    await member.start();
    members.push(member);
    cleanups.push(async () => {
      await member.stop();
      await db.pg?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });
    return member;
  };

  return {
    ca,
    members,
    dns,
    add,
    async close() {
      for (const c of cleanups) await c().catch(() => undefined);
      rmSync(caDir, { recursive: true, force: true });
    },
  };
}

/** Polls `fn` until it returns a truthy value (or throws after `ms`). */
export async function eventually<T>(fn: () => Promise<T | undefined | false | null>, ms = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The timeline of a room as a user sees it through /messages (newest last). */
export async function roomMessages(c: TestClient, roomId: string, limit = 100): Promise<any[]> {
  const res = await c.get(`/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=${limit}`);
  if (res.status !== 200) throw new Error(`messages: ${res.status} ${JSON.stringify(res.body)}`);
  return [...res.body.chunk].reverse();
}

/**
 * Every event of a room through /messages, paginating backwards `limit` at a time (oldest
 * first), with the `end` token of each page that had one (`pages` of them).
 */
export async function paginateAll(c: TestClient, roomId: string, limit: number): Promise<{ events: any[]; tokens: string[]; pages: number }> {
  const out: any[] = [];
  const tokens: string[] = [];
  let from: string | undefined;
  for (let page = 0; page < 200; page++) {
    const q = `dir=b&limit=${limit}${from ? `&from=${encodeURIComponent(from)}` : ''}`;
    const res = await c.get(`/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?${q}`);
    if (res.status !== 200) throw new Error(`messages: ${res.status} ${JSON.stringify(res.body)}`);
    out.push(...res.body.chunk);
    if (!res.body.end) break;
    from = res.body.end as string;
    tokens.push(from);
  }
  return { events: out.reverse(), tokens, pages: tokens.length };
}

export function bodies(events: any[]): string[] {
  return events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);
}

/** Registers `name` (with the test password) on a member and returns its logged-in client. */
export async function registerOn(m: FedMember, name: string): Promise<TestClient> {
  const c = m.client();
  await c.register(name);
  return c;
}

export interface TwoServers {
  fed: Federation;
  a: FedMember;
  b: FedMember;
  /** @alice:a.test */
  alice: TestClient;
  /** @bob:b.test */
  bob: TestClient;
}

/** How most federation tests begin: servers a.test and b.test, alice registered on A and bob on B. */
export async function twoServers(engine: Engine, extra: { a?: Record<string, unknown>; b?: Record<string, unknown> } = {}): Promise<TwoServers> {
  const fed = await createFederation(engine);
  const a = await fed.add('a.test', extra.a);
  const b = await fed.add('b.test', extra.b);
  return { fed, a, b, alice: await registerOn(a, 'alice'), bob: await registerOn(b, 'bob') };
}
