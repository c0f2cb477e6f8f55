import { X509Certificate } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, statfsSync } from 'node:fs';
import { createServer } from 'node:net';
import { totalmem } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { dataDirPaths, readSigningKey } from '../config/first-run.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { connectDatabase, describeDatabase } from '../storage/db.js';
import { migrationStatus } from '../storage/migrate.js';
import { runNetworkChecks, type NetworkCheckOptions } from './doctor-network.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a warning or failure. */
  fix?: string;
}

export interface DoctorOptions {
  dataDir: string;
  configPath?: string;
  env?: NodeJS.ProcessEnv;
  /** Values applied over the file and the environment (as for `Myelin.create`). */
  overrides?: Record<string, unknown>;
  /** Also look at the server from outside (DNS, well-known, TLS, published keys, relay). */
  network?: boolean;
  networkOptions?: NetworkCheckOptions;
}

const GiB = 1024 ** 3;

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => res(true)));
  });
}

function certificateCheck(name: string, file: string): Check {
  try {
    const cert = new X509Certificate(readFileSync(file));
    const days = Math.floor((Date.parse(cert.validTo) - Date.now()) / 86_400_000);
    if (days < 0) return { name, status: 'fail', detail: `${file} expired on ${cert.validTo}`, fix: 'renew the certificate' };
    if (days < 14) return { name, status: 'warn', detail: `${file} expires in ${days} days`, fix: 'renew the certificate soon' };
    return { name, status: 'ok', detail: `${file}: ${cert.subject.replace(/\n/g, ', ')}, valid for ${days} more days` };
  } catch (err) {
    return { name, status: 'fail', detail: `cannot read ${file}: ${(err as Error).message}`, fix: 'check the path and permissions' };
  }
}

/**
 * Checks a data directory without changing it: Node.js, configuration, disk, signing key,
 * database (schema version, owner), memory, ports, certificates and the tunnel's files; with
 * `network`, also DNS, the well-known documents, federation discovery, TLS and the published
 * signing key as another server sees them, and the tunnel's relay.
 */
export async function runDoctor(opts: DoctorOptions): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);
  const major = Number(process.versions.node.split('.')[0]);
  add(
    major >= 22
      ? { name: 'node', status: 'ok', detail: `Node.js ${process.version}` }
      : {
          name: 'node',
          status: major >= 20 ? 'warn' : 'fail',
          detail: `Node.js ${process.version}`,
          fix: major >= 20 ? 'Node.js 20 is past its end of life: install Node.js 22 or 24 LTS' : 'install Node.js 22 or 24 LTS',
        },
  );

  const paths = dataDirPaths(opts.dataDir, opts.configPath);
  if (!existsSync(paths.configPath)) {
    add({ name: 'config', status: 'fail', detail: `${paths.configPath} does not exist`, fix: 'run "myelin init --server-name <name>" or "myelin start" once' });
    return checks;
  }
  let config: Config;
  try {
    config = loadConfig({ dataDir: paths.dataDir, configPath: paths.configPath, env: opts.env ?? process.env, overrides: opts.overrides });
    add({ name: 'config', status: 'ok', detail: `${paths.configPath} is valid; server_name ${config.server_name}` });
  } catch (err) {
    add({ name: 'config', status: 'fail', detail: (err as Error).message, fix: `edit ${paths.configPath}` });
    return checks;
  }

  try {
    accessSync(config.data_dir, constants.W_OK);
    const fs = statfsSync(config.data_dir);
    const free = fs.bavail * fs.bsize;
    const detail = `${config.data_dir} is writable; ${(free / GiB).toFixed(1)} GiB free`;
    if (free < 100 * 1024 ** 2) add({ name: 'disk', status: 'fail', detail, fix: 'free disk space: the database and media need room to grow' });
    else if (free < GiB) add({ name: 'disk', status: 'warn', detail, fix: 'less than 1 GiB free: plan for more space' });
    else add({ name: 'disk', status: 'ok', detail });
  } catch (err) {
    add({ name: 'disk', status: 'fail', detail: `${config.data_dir}: ${(err as Error).message}`, fix: 'make the data directory writable by the user running Myelin' });
  }

  try {
    const key = readSigningKey(paths.signingKeyPath);
    add({ name: 'signing key', status: 'ok', detail: `${key.keyId} in ${paths.signingKeyPath}` });
  } catch (err) {
    add({ name: 'signing key', status: 'fail', detail: (err as Error).message, fix: 'restore the key from a backup: other servers know it' });
  }

  await checkDatabase(config, add);

  const ram = totalmem();
  add(
    ram < 900 * 1024 ** 2
      ? { name: 'memory', status: 'warn', detail: `${(ram / GiB).toFixed(2)} GiB of RAM`, fix: 'below 1 GiB: run with node --max-old-space-size=256 --max-semi-space-size=4' }
      : { name: 'memory', status: 'ok', detail: `${(ram / GiB).toFixed(1)} GiB of RAM` },
  );

  for (const name of ['client', 'federation', 'metrics'] as const) {
    const l = config.listeners[name];
    if (!l.enabled || l.port === 0) continue;
    const free = await portFree(l.bind, l.port);
    add(
      free
        ? { name: `port ${name}`, status: 'ok', detail: `${l.bind}:${l.port} is free` }
        : { name: `port ${name}`, status: 'warn', detail: `${l.bind}:${l.port} is in use`, fix: 'fine if Myelin is running; otherwise another program holds the port' },
    );
    const tls = (l as { tls?: { cert_file?: string } }).tls;
    if (tls?.cert_file) {
      const file = isAbsolute(tls.cert_file) ? tls.cert_file : resolve(config.data_dir, tls.cert_file);
      add(certificateCheck(`certificate ${name}`, file));
    }
  }

  const box = config as Config & {
    acme?: { enabled: boolean };
    tunnel?: { enabled: boolean; host: string; private_key_file: string; host_key?: string; accept_unknown_host_key: boolean };
  };
  if (box.acme?.enabled) {
    const cert = join(config.data_dir, 'acme', 'certificate.pem');
    add(existsSync(cert) ? certificateCheck('certificate acme', cert) : { name: 'certificate acme', status: 'warn', detail: 'no certificate issued yet', fix: 'start Myelin with the HTTP-01 port reachable from the internet' });
  }
  if (box.tunnel?.enabled) {
    const t = box.tunnel;
    const keyFile = isAbsolute(t.private_key_file) ? t.private_key_file : resolve(config.data_dir, t.private_key_file);
    if (!t.host) add({ name: 'tunnel', status: 'fail', detail: 'tunnel.host is empty', fix: 'set tunnel.host to the relay' });
    else if (!existsSync(keyFile)) add({ name: 'tunnel', status: 'fail', detail: `private key ${keyFile} is missing`, fix: 'ssh-keygen -t ed25519 -f ' + keyFile + ' and add the .pub to the relay (docs/tunnel.md)' });
    else if (!t.host_key) {
      add({
        name: 'tunnel',
        status: t.accept_unknown_host_key ? 'warn' : 'fail',
        detail: `relay ${t.host} has no pinned host key`,
        fix: "set tunnel.host_key to the relay's SHA256 fingerprint (ssh-keyscan <relay> | ssh-keygen -lf -)",
      });
    } else add({ name: 'tunnel', status: 'ok', detail: `relay ${t.host}, key ${keyFile}, host key pinned` });
  }
  if (opts.network) {
    try {
      checks.push(...(await runNetworkChecks(config, readSigningKey(paths.signingKeyPath), opts.networkOptions)));
    } catch (err) {
      add({ name: 'network', status: 'fail', detail: (err as Error).message });
    }
  }
  return checks;
}

async function checkDatabase(config: Config, add: (c: Check) => void): Promise<void> {
  const where = describeDatabase(config.database);
  if (config.database.engine === 'sqlite' && !existsSync(config.database.path)) {
    add({ name: 'database', status: 'warn', detail: `${where} does not exist yet`, fix: 'the first "myelin start" creates it' });
    return;
  }
  let db: Kysely<unknown> | undefined;
  try {
    db = (await connectDatabase(config.database)) as Kysely<unknown>;
    const status = await migrationStatus(db);
    if (status.unknown.length) {
      add({ name: 'database', status: 'fail', detail: `${where} has migrations this Myelin does not know: ${status.unknown.join(', ')}`, fix: 'upgrade Myelin, or restore a backup made with this version' });
      return;
    }
    const owner = await sql<{ value: string }>`select value from server_meta where key = 'server_name'`
      .execute(db)
      .then((r) => r.rows[0]?.value)
      .catch(() => undefined);
    if (owner !== undefined && owner !== config.server_name) {
      add({ name: 'database', status: 'fail', detail: `${where} belongs to server_name "${owner}", the configuration says "${config.server_name}"`, fix: `set server_name back to "${owner}"` });
      return;
    }
    add(
      status.pending.length
        ? { name: 'database', status: 'ok', detail: `${where}: ${status.applied.length} migrations applied, ${status.pending.length} to apply at the next start` }
        : { name: 'database', status: 'ok', detail: `${where}: schema up to date (${status.applied.length} migrations)` },
    );
  } catch (err) {
    add({ name: 'database', status: 'fail', detail: `${where}: ${(err as Error).message}`, fix: 'check database.url / database.path and that the database server runs' });
  } finally {
    await db?.destroy().catch(() => {});
  }
}

/** Renders checks as lines for a terminal; returns the exit code (1 if anything failed). */
export function formatChecks(checks: Check[], out: (line: string) => void): number {
  const mark: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' };
  for (const c of checks) {
    out(`${mark[c.status]} ${c.name.padEnd(20)} ${c.detail}\n`);
    if (c.fix && c.status !== 'ok') out(`     ${''.padEnd(20)} → ${c.fix}\n`);
  }
  const failed = checks.filter((c) => c.status === 'fail').length;
  const warned = checks.filter((c) => c.status === 'warn').length;
  out(`\n${failed ? `${failed} problem(s) to fix` : 'no problems found'}${warned ? `, ${warned} warning(s)` : ''}.\n`);
  return failed ? 1 : 0;
}
