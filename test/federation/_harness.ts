/**
 * Federation test harness: Myelin servers on 127.0.0.1 serving TLS with certificates from a
 * CA made by the test, each with its own DNS view (a static resolver).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Myelin, type CreateOptions } from '../../src/app.js';
import { staticResolver, type StaticDnsRecords } from '../../src/federation/dns.js';
import { encodeSigningKeyFile, generateSigningKey, type SigningKey } from '../../src/protocol/signing.js';
import { databaseOverrides, memoryLog, tempDir, type Engine } from '../_util/server.js';
import type { TestCa } from '../_util/test-ca.js';

export interface FedServer {
  name: string;
  server: Myelin;
  port: number;
  key: SigningKey;
  dns: StaticDnsRecords;
  logs: string[];
  close(): Promise<void>;
}

export interface FedServerOptions {
  name: string;
  engine: Engine;
  ca: TestCa;
  caFile: string;
  /** DNS records this server sees (kept live: add entries after start). */
  dns?: StaticDnsRecords;
  federation?: Record<string, unknown>;
  extend?: CreateOptions['extend'];
  /** Certificate names; default the server name. */
  certNames?: string[];
}

export async function startFedServer(opts: FedServerOptions): Promise<FedServer> {
  const dataDir = tempDir('myelin-fed-');
  mkdirSync(dataDir, { recursive: true });
  const key = generateSigningKey();
  writeFileSync(join(dataDir, 'signing.key'), encodeSigningKeyFile(key), { mode: 0o600 });
  const cert = opts.ca.issue({ dnsNames: opts.certNames ?? [opts.name], ips: ['127.0.0.1'] });
  writeFileSync(join(dataDir, 'fed.crt'), cert.certPem);
  writeFileSync(join(dataDir, 'fed.key'), cert.keyPem, { mode: 0o600 });
  const dns = opts.dns ?? { a: {}, srv: {} };
  const logs: string[] = [];
  const db = await databaseOverrides(opts.engine);
  const server = await Myelin.create({
    dataDir,
    env: {},
    logDestination: memoryLog(logs),
    extend: opts.extend,
    federation: { resolver: staticResolver(dns) },
    overrides: {
      server_name: opts.name,
      log_level: 'debug',
      database: db.database,
      listeners: {
        client: { bind: '127.0.0.1', port: 0 },
        federation: { bind: '127.0.0.1', port: 0, tls: { cert_file: 'fed.crt', key_file: 'fed.key' } },
        metrics: { enabled: false },
      },
      federation: { ca_files: [opts.caFile], use_system_ca: false, ...opts.federation },
    },
  });
  await server.start();
  const port = server.address('federation')!.port;
  return {
    name: opts.name,
    server,
    port,
    key,
    dns,
    logs,
    async close() {
      await server.stop();
      await db.pg?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Makes `server` reachable as `name` in `dns`: A record to 127.0.0.1 and a _matrix-fed SRV to its port. */
export function publish(dns: StaticDnsRecords, server: FedServer): void {
  dns.a ??= {};
  dns.srv ??= {};
  dns.a[server.name] = ['127.0.0.1'];
  dns.srv[`_matrix-fed._tcp.${server.name}`] = [{ name: server.name, port: server.port, priority: 10, weight: 5 }];
}
