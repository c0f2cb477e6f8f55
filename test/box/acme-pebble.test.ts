/**
 * ACME against a real Pebble CA on loopback: HTTP-01 answered by the client listener, the
 * certificate stored in the data directory and served by the federation listener, then renewed
 * (and swapped in without a restart) when it is due. Names resolve through pebble-challtestsrv's
 * mock DNS on 127.0.0.1, never the system resolver.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, tempDir } from '../_util/server.js';
import { freePort } from './_sshd.js';
import { requireProgram } from '../_util/require-program.js';

const PEBBLE = '/usr/bin/pebble';
const CHALLTESTSRV = '/usr/bin/pebble-challtestsrv';
const DOMAIN = 'box.myelin.test';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startProc(cmd: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<{ proc: ChildProcess; out: () => string }> {
  const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if (ready.test(out)) {
        clearInterval(t);
        resolve({ proc, out: () => out });
      } else if (proc.exitCode !== null) {
        clearInterval(t);
        reject(new Error(`${cmd} exited: ${out}`));
      }
    }, 50);
  });
}

/** The certificate a TLS listener presents for a name, verified against `ca`. */
function servedCertificate(port: number, servername: string, ca: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername, ca }, () => {
      const cert = s.getPeerCertificate();
      s.end();
      resolve(cert);
    });
    s.once('error', reject);
  });
}

requireProgram(PEBBLE, 'pebble');
requireProgram(CHALLTESTSRV, 'pebble');

describe('ACME with a real Pebble', () => {
  const dir = tempDir('myelin-pebble-');
  const procs: ChildProcess[] = [];
  let directoryUrl: string;
  let managementUrl: string;
  let clientPort: number;
  let tlsCa: string;

  beforeAll(async () => {
    // Pebble's own HTTPS certificate, trusted by Myelin through acme.ca_file.
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=pebble', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', join(dir, 'pebble.key'), '-out', join(dir, 'pebble.pem'),
    ], { stdio: 'ignore' });
    tlsCa = readFileSync(join(dir, 'pebble.pem'), 'utf8');
    const [dnsPort, dnsMgmt, acmePort, mgmtPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    clientPort = await freePort();
    const dns = await startProc(
      CHALLTESTSRV,
      ['-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${dnsMgmt}`, '-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''],
      /Starting challenge servers|Answering/i,
    );
    procs.push(dns.proc);
    writeFileSync(
      join(dir, 'pebble.json'),
      JSON.stringify({
        pebble: {
          listenAddress: `127.0.0.1:${acmePort}`,
          managementListenAddress: `127.0.0.1:${mgmtPort}`,
          certificate: join(dir, 'pebble.pem'),
          privateKey: join(dir, 'pebble.key'),
          httpPort: clientPort,
          tlsPort: await freePort(),
          ocspResponderURL: '',
          externalAccountBindingRequired: false,
        },
      }),
    );
    const pebble = await startProc(PEBBLE, ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`], /Listening on/, {
      PEBBLE_VA_NOSLEEP: '1',
      PEBBLE_WFE_NONCEREJECT: '0',
      PEBBLE_AUTHZREUSE: '0',
    });
    procs.push(pebble.proc);
    directoryUrl = `https://127.0.0.1:${acmePort}/dir`;
    managementUrl = `https://127.0.0.1:${mgmtPort}`;
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) p.kill('SIGTERM');
    await sleep(200);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Pebble's (per-run) root CA, which signs the certificates it issues. */
  async function pebbleRoot(): Promise<string> {
    const { Agent, request } = await import('node:https');
    return new Promise((resolve, reject) => {
      request(`${managementUrl}/roots/0`, { agent: new Agent({ ca: tlsCa }) }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(body));
      })
        .on('error', reject)
        .end();
    });
  }

  const acmeOverrides = (renewBeforeDays: number) => ({
    listeners: {
      client: { bind: '127.0.0.1', port: clientPort },
      federation: { bind: '127.0.0.1', port: 0 },
      metrics: { enabled: false },
    },
    acme: {
      enabled: true,
      directory_url: directoryUrl,
      terms_of_service_agreed: true,
      email: 'admin@myelin.test',
      domains: [DOMAIN],
      listeners: ['federation'],
      renew_before_days: renewBeforeDays,
      ca_file: join(dir, 'pebble.pem'),
    },
  });

  it('issues a certificate over HTTP-01, serves it on the federation listener, and renews it when due', async () => {
    const dataDir = tempDir();
    try {
      // 1. First start: no certificate yet; one is issued and served.
      let t = await startServer({ dataDir, overrides: acmeOverrides(30) });
      const acme = () => t.server.ctx.box.acme!;
      const deadline = Date.now() + 60_000;
      while (acme().status().issued < 1) {
        if (acme().status().lastError) throw new Error(`ACME failed: ${acme().status().lastError}\n${t.logs.join('\n')}`);
        if (Date.now() > deadline) throw new Error(`no certificate: ${t.logs.join('\n')}`);
        await sleep(100);
      }
      expect(t.federationUrl.startsWith('https://')).toBe(true);
      const root = await pebbleRoot();
      const fedPort = Number(new URL(t.federationUrl).port);
      const first = await servedCertificate(fedPort, DOMAIN, root);
      expect(first.subjectaltname).toContain(`DNS:${DOMAIN}`);
      expect(first.serialNumber).toBe(acme().status().serial);
      expect(existsSync(join(dataDir, 'acme', 'certificate.pem'))).toBe(true);
      expect(existsSync(join(dataDir, 'acme', 'certificate.key'))).toBe(true);
      expect(existsSync(join(dataDir, 'acme', 'account.key'))).toBe(true);
      // The federation API answers over that TLS connection.
      const { request, Agent } = await import('node:https');
      const status = await new Promise<number>((resolve, reject) =>
        request(
          { host: '127.0.0.1', port: fedPort, servername: DOMAIN, path: '/_matrix/federation/v1/version', agent: new Agent({ ca: root, servername: DOMAIN }) },
          (res) => {
            res.resume();
            resolve(res.statusCode!);
          },
        )
          .on('error', reject)
          .end(),
      );
      expect(status).toBe(200);
      expect(t.logs.some((l) => l.includes('acme: certificate issued'))).toBe(true);
      await t.close();

      // 2. Restart: the stored certificate is not due (30 days before expiry): served at once, none issued.
      t = await startServer({ dataDir, overrides: acmeOverrides(30) });
      await sleep(1000);
      expect(acme().status().issued).toBe(0);
      expect(acme().status().nextCheckAt).toBeGreaterThan(Date.now() + 3600_000);
      const again = await servedCertificate(Number(new URL(t.federationUrl).port), DOMAIN, root);
      expect(again.serialNumber).toBe(first.serialNumber);
      await t.close();

      // 3. Renewal window wider than the certificate's life: due now; renewed and swapped in live.
      t = await startServer({ dataDir, overrides: acmeOverrides(3650) });
      const port3 = Number(new URL(t.federationUrl).port);
      const deadline3 = Date.now() + 60_000;
      while (acme().status().issued < 1) {
        if (Date.now() > deadline3) throw new Error(`not renewed: ${t.logs.join('\n')}`);
        await sleep(100);
      }
      const renewed = await servedCertificate(port3, DOMAIN, root);
      expect(renewed.serialNumber).not.toBe(first.serialNumber);
      expect(renewed.serialNumber).toBe(acme().status().serial);
      expect(readFileSync(join(dataDir, 'acme', 'certificate.pem'), 'utf8')).not.toBe('');
      await t.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});
