import { execFile } from 'node:child_process';
import { rmSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { Myelin } from '../../src/app.js';
import { runDoctor } from '../../src/cli/doctor.js';
import { MIGRATION_TABLE } from '../../src/storage/migrate.js';
import { memoryLog, tempDir } from '../_util/server.js';
import { createFederation, type Federation } from '../_util/federation.js';
import { staticResolver } from '../../src/federation/dns.js';
import { encodeSigningKeyFile, generateSigningKey } from '../../src/protocol/signing.js';

const run = promisify(execFile);
const CLI = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts')];
const dirs: string[] = [];
const servers: Server[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  for (const s of servers.splice(0)) s.close();
});

async function freshDataDir(): Promise<string> {
  const dir = tempDir();
  dirs.push(dir);
  const s = await Myelin.create({
    dataDir: dir,
    env: {},
    logDestination: memoryLog([]),
    overrides: { server_name: 'doc.example', listeners: { client: { bind: '127.0.0.1', port: 0 }, federation: { bind: '127.0.0.1', port: 0 }, metrics: { enabled: false } } },
  });
  await s.stop();
  return dir;
}

const byName = (checks: Awaited<ReturnType<typeof runDoctor>>, name: string) => checks.find((c) => c.name === name);

describe('myelin doctor', () => {
  it('finds nothing wrong with a fresh data directory, and changes nothing', async () => {
    const dir = await freshDataDir();
    const before = readFileSync(join(dir, 'myelin.db'));
    const checks = await runDoctor({ dataDir: dir, env: {} });
    expect(checks.filter((c) => c.status === 'fail')).toEqual([]);
    expect(byName(checks, 'config')?.detail).toContain('server_name doc.example');
    expect(byName(checks, 'signing key')?.status).toBe('ok');
    expect(byName(checks, 'database')?.detail).toContain('schema up to date');
    expect(byName(checks, 'disk')?.status).not.toBe('fail');
    expect(readFileSync(join(dir, 'myelin.db')).equals(before)).toBe(true);
  });

  it('reports a bad configuration key with the fix, and exits 1 from the CLI', async () => {
    const dir = await freshDataDir();
    const cfg = join(dir, 'myelin.yaml');
    writeFileSync(cfg, readFileSync(cfg, 'utf8') + '\nregistration: sometimes\n'.replace('registration', 'registratio'));
    const checks = await runDoctor({ dataDir: dir, env: {} });
    expect(byName(checks, 'config')?.status).toBe('fail');
    expect(byName(checks, 'config')?.detail).toContain('registratio');
    const err = await run(process.execPath, [...CLI, 'doctor', '--offline', '--data-dir', dir]).catch((e: unknown) => e as { code: number; stdout: string });
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stdout: string }).stdout).toMatch(/FAIL config/);
  });

  it('flags a database written by a newer Myelin and a port already taken', async () => {
    const dir = await freshDataDir();
    const s = await Myelin.create({ dataDir: dir, env: {}, logDestination: memoryLog([]) });
    await sql`insert into ${sql.table(MIGRATION_TABLE)} (name, timestamp) values ('9999-future', '2030-01-01')`.execute(s.ctx.database.db);
    await s.stop();
    const blocker = createServer();
    servers.push(blocker);
    const port = await new Promise<number>((r) => blocker.listen(0, '127.0.0.1', () => r((blocker.address() as { port: number }).port)));
    const checks = await runDoctor({ dataDir: dir, env: { MYELIN_LISTENERS__CLIENT__BIND: '127.0.0.1', MYELIN_LISTENERS__CLIENT__PORT: String(port) } });
    expect(byName(checks, 'database')?.status).toBe('fail');
    expect(byName(checks, 'database')?.detail).toContain('9999-future');
    expect(byName(checks, 'port client')).toMatchObject({ status: 'warn', detail: `127.0.0.1:${port} is in use` });
  });

  it('says what to do when there is no data directory yet', async () => {
    const dir = join(tempDir(), 'nothing-here');
    dirs.push(dir);
    const checks = await runDoctor({ dataDir: dir, env: {} });
    expect(byName(checks, 'config')).toMatchObject({ status: 'fail' });
    expect(byName(checks, 'config')?.fix).toContain('myelin init');
  });
});

describe('myelin doctor, looking from outside', () => {
  let fed: Federation | undefined;
  afterEach(async () => {
    await fed?.close();
    fed = undefined;
  });

  it('follows discovery to the server over TLS and finds its own signing key published', async () => {
    fed = await createFederation('sqlite');
    const a = await fed.add('doctor.test');
    const dataDir = a.server!.config.data_dir;
    const env = { MYELIN_LISTENERS__CLIENT__PORT: '0', MYELIN_LISTENERS__FEDERATION__PORT: '0' };
    const trust = { federation: { ca_files: a.server!.config.federation.ca_files, use_system_ca: false } };
    const checks = await runDoctor({ dataDir, env, overrides: trust, network: true, networkOptions: { resolver: staticResolver(fed.dns), timeoutMs: 3000 } });
    const get = (n: string) => checks.find((c) => c.name === n);
    expect(get('dns')).toMatchObject({ status: 'ok', detail: 'doctor.test → 127.0.0.1' });
    expect(get('federation discovery')?.status).toBe('ok');
    expect(get('federation discovery')?.detail).toContain('(srv)');
    expect(get('federation keys'), JSON.stringify(get('federation keys'))).toMatchObject({ status: 'ok' });
    expect(get('federation keys')?.detail).toContain(a.server!.ctx.signingKey.keyId);
    // Nothing serves https://doctor.test/ here: reported as a warning with what to do.
    expect(get('well-known server')?.status).toBe('warn');
    expect(get('well-known client')?.status).toBe('warn');
  });

  it('notices a certificate for another name, a different published key, and a name that leads nowhere', async () => {
    fed = await createFederation('sqlite');
    const a = await fed.add('one.test');
    await fed.add('two.test');
    const dataDir = a.server!.config.data_dir;
    const trust = { federation: { ca_files: a.server!.config.federation.ca_files, use_system_ca: false } };
    const doctor = () => runDoctor({ dataDir, env: {}, overrides: trust, network: true, networkOptions: { resolver: staticResolver(fed!.dns), timeoutMs: 3000 } });
    const keysOf = (checks: Awaited<ReturnType<typeof runDoctor>>) => checks.find((c) => c.name === 'federation keys');

    // one.test's SRV record sends other servers to two.test, whose certificate is not for one.test.
    const srv = fed.dns.srv!['_matrix-fed._tcp.one.test']!;
    fed.dns.srv!['_matrix-fed._tcp.one.test'] = fed.dns.srv!['_matrix-fed._tcp.two.test']!;
    const wrongCert = keysOf(await doctor());
    expect(wrongCert?.status).toBe('fail');
    expect(wrongCert?.fix).toContain('certificate for one.test');
    fed.dns.srv!['_matrix-fed._tcp.one.test'] = srv;

    // The data directory's key is not the key the server at that name publishes.
    writeFileSync(join(dataDir, 'signing.key'), encodeSigningKeyFile(generateSigningKey()));
    const otherKey = keysOf(await doctor());
    expect(otherKey?.status).toBe('fail');
    expect(otherKey?.fix).toContain('points at another server');

    delete fed.dns.srv!['_matrix-fed._tcp.one.test'];
    delete fed.dns.a!['one.test'];
    const lost = await doctor();
    expect(lost.find((c) => c.name === 'dns')?.status).toBe('warn');
    expect(keysOf(lost)?.status).toBe('fail');
  });
});
