/**
 * TURN credentials: the coturn shared-secret scheme (username "expiry:userId", password
 * base64 HMAC-SHA1), checked against openssl's HMAC, served by /voip/turnServer, and accepted
 * by a real coturn started on loopback (an allocation with them succeeds; tampered or expired
 * ones fail).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { turnCredentials } from '../../src/box/turn.js';
import { TestClient, TEST_OVERRIDES } from '../client/_client.js';
import { startServer, tempDir, type TestServer } from '../_util/server.js';
import { freePort } from './_sshd.js';
import { expectMatchesSpec } from '../_util/openapi.js';
import { requireProgram } from '../_util/require-program.js';

const SECRET = 'a-long-coturn-static-auth-secret';
const URIS = ['turn:127.0.0.1:3478?transport=udp', 'turns:turn.example.org:443?transport=tcp'];

function opensslHmac(secret: string, data: string): string {
  return execFileSync('openssl', ['dgst', '-sha1', '-hmac', secret, '-binary'], { input: data }).toString('base64');
}

describe('TURN credentials', () => {
  it('follow the shared-secret scheme coturn checks', () => {
    const now = Date.UTC(2026, 0, 1);
    const c = turnCredentials({ secret: SECRET, userId: '@alice:example.org', uris: URIS, lifetimeMs: 3600_000, nowMs: now });
    expect(c.username).toBe(`${now / 1000 + 3600}:@alice:example.org`);
    expect(c.password).toBe(opensslHmac(SECRET, c.username));
    expect(c.ttl).toBe(3600);
    expect(c.uris).toEqual(URIS);
  });

  describe('GET /voip/turnServer', () => {
    let t: TestServer;
    beforeAll(async () => {
      t = await startServer({ overrides: { ...TEST_OVERRIDES, turn_uris: URIS, turn_shared_secret: SECRET, turn_user_lifetime: '2h', turn_allow_guests: false } });
    });
    afterAll(() => t.close());

    it('gives a registered user time-limited credentials', async () => {
      const c = new TestClient(t.clientUrl);
      const reg = await c.register('bob');
      const before = Math.floor(Date.now() / 1000);
      for (const prefix of ['/_matrix/client/v3', '/_matrix/client/r0']) {
        const r = await c.get(`${prefix}/voip/turnServer`);
        expect(r.status).toBe(200);
        expectMatchesSpec('GET', `${prefix}/voip/turnServer`, 200, r.body);
        expect(Object.keys(r.body).sort()).toEqual(['password', 'ttl', 'uris', 'username']);
        const [expiry, ...rest] = (r.body.username as string).split(':');
        expect(rest.join(':')).toBe(reg.user_id);
        expect(Number(expiry)).toBeGreaterThanOrEqual(before + 7200);
        expect(Number(expiry)).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 7200);
        expect(r.body.password).toBe(opensslHmac(SECRET, r.body.username));
        expect(r.body.ttl).toBe(7200);
        expect(r.body.uris).toEqual(URIS);
      }
    });

    it('requires an access token', async () => {
      const r = await new TestClient(t.clientUrl).get('/_matrix/client/v3/voip/turnServer');
      expect(r.status).toBe(401);
      expect(r.body.errcode).toBe('M_MISSING_TOKEN');
    });

    it('answers {} without a TURN server configured', async () => {
      const bare = await startServer({ overrides: TEST_OVERRIDES });
      try {
        const c = new TestClient(bare.clientUrl);
        await c.register('carol');
        const r = await c.get('/_matrix/client/v3/voip/turnServer');
        expect(r.status).toBe(200);
        expect(r.body).toEqual({});
      } finally {
        await bare.close();
      }
    });
  });
});

const TURNSERVER = '/usr/bin/turnserver';
const UCLIENT = '/usr/bin/turnutils_uclient';

requireProgram(TURNSERVER, 'coturn');
requireProgram(UCLIENT, 'coturn');

describe('TURN credentials with a real coturn', () => {
  const dir = tempDir('myelin-coturn-');
  let turn: ChildProcess;
  let port: number;
  let log = '';

  beforeAll(async () => {
    port = await freePort();
    const relayBase = 49152 + Math.floor(Math.random() * 10000);
    turn = spawn(TURNSERVER, [
      '-n', '--listening-ip=127.0.0.1', `--listening-port=${port}`, '--relay-ip=127.0.0.1',
      '--use-auth-secret', `--static-auth-secret=${SECRET}`, '--realm=myelin.test',
      '--no-tls', '--no-dtls', '--no-cli', '--allow-loopback-peers',
      `--min-port=${relayBase}`, `--max-port=${relayBase + 200}`,
      '--log-file=stdout', '--simple-log', `--pidfile=${join(dir, 'turn.pid')}`, `--db=${join(dir, 'turndb')}`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    turn.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    turn.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const deadline = Date.now() + 15_000;
    while (!/Total (General|UDP|auth) servers|listener opened on/i.test(log)) {
      if (turn.exitCode !== null || Date.now() > deadline) throw new Error(`turnserver did not start: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 300));
  });

  afterAll(() => {
    turn?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  /** A TURN allocation plus a short relayed exchange (client to client through the relay). */
  function allocate(username: string, password: string): { ok: boolean; out: string } {
    const r = spawnSync(UCLIENT, ['-y', '-n', '2', '-m', '1', '-l', '100', '-u', username, '-w', password, '-p', String(port), '127.0.0.1'], {
      timeout: 30_000,
      encoding: 'utf8',
    });
    return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
  }

  it('allocates with credentials from /voip/turnServer, and refuses tampered or expired ones', async () => {
    const t = await startServer({ overrides: { ...TEST_OVERRIDES, turn_uris: [`turn:127.0.0.1:${port}?transport=udp`], turn_shared_secret: SECRET } });
    try {
      const c = new TestClient(t.clientUrl);
      await c.register('dave');
      const creds = (await c.get('/_matrix/client/v3/voip/turnServer')).body;
      const good = allocate(creds.username, creds.password);
      expect(good.ok, good.out).toBe(true);
      expect(good.out).toMatch(/Total lost packets 0/);

      const tampered = allocate(creds.username, Buffer.from('not the password').toString('base64'));
      expect(tampered.ok).toBe(false);

      const expired = turnCredentials({ secret: SECRET, userId: '@dave:localhost', uris: [], lifetimeMs: 60_000, nowMs: Date.now() - 3600_000 });
      const late = allocate(expired.username, expired.password);
      expect(late.ok).toBe(false);
    } finally {
      await t.close();
    }
  }, 120_000);
});
