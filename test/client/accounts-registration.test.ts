import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseOverrides, startServer, tempDir, type TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const PW = 'correct horse battery';
const run = promisify(execFile);
const CLI = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts')];

async function registerWithToken(c: TestClient, username: string, token: string) {
  const first = await c.post('/_matrix/client/v3/register', { username, password: PW });
  expect(first.status).toBe(401);
  return c.post('/_matrix/client/v3/register', { username, password: PW, auth: { type: 'm.login.registration_token', token, session: first.body.session } });
}

describe.each(['sqlite', 'postgres'] as const)('registration modes on %s', (engine) => {
  describe('token registration', () => {
    let srv: TestServer;
    beforeAll(async () => {
      srv = await startAccountsServer(engine, { registration: 'token' });
    });
    afterAll(async () => {
      await srv?.close();
    });

    it('offers m.login.registration_token and accepts a valid token until it is used up', async () => {
      const accounts = srv.server.ctx.accounts;
      const tok = await accounts.createRegistrationToken({ usesAllowed: 1 });
      const c = new TestClient(srv.clientUrl);
      const validity = (t: string) => c.get(`/_matrix/client/v1/register/m.login.registration_token/validity?token=${encodeURIComponent(t)}`);
      expect((await validity(tok.token)).body).toEqual({ valid: true });
      expect((await validity('unknown-token')).body).toEqual({ valid: false });

      const first = await c.post('/_matrix/client/v3/register', { username: 'tok1', password: PW });
      expect(first.body.flows).toEqual([{ stages: ['m.login.registration_token'] }]);
      const dummy = await c.post('/_matrix/client/v3/register', { username: 'tok1', password: PW, auth: { type: 'm.login.dummy', session: first.body.session } });
      expect(dummy.status).toBe(401);
      expect(dummy.body.errcode).toBeDefined();

      const ok = await registerWithToken(c, 'tok1', tok.token);
      expect(ok.status).toBe(200);
      expect(ok.body.user_id).toBe('@tok1:localhost');
      const row = (await accounts.listRegistrationTokens()).find((r) => r.token === tok.token)!;
      expect(row).toMatchObject({ completed: 1, pending: 0 });
      expect((await validity(tok.token)).body).toEqual({ valid: false });

      const usedUp = await registerWithToken(c, 'tok2', tok.token);
      expect(usedUp.status).toBe(401);
      expect(usedUp.body.errcode).toBe('M_FORBIDDEN');
      expect(usedUp.body.completed).toEqual([]);
    });

    it('holds a use while a session is pending and releases it when the session expires', async () => {
      const accounts = srv.server.ctx.accounts;
      const tok = await accounts.createRegistrationToken({ usesAllowed: 1, token: 'pending-one' });
      // A flow with a second stage left open keeps the session (and the token's use) pending.
      const req = {
        purpose: 'test',
        flows: [['m.login.registration_token', 'm.login.dummy']],
        checkers: { 'm.login.registration_token': accounts.registrationTokenStage() },
      };
      const err = await accounts.uia.check({ type: 'm.login.registration_token', token: tok.token }, req).catch((e: unknown) => e);
      expect((err as { status: number }).status).toBe(401);
      expect((err as { toJSON(): any }).toJSON().completed).toEqual(['m.login.registration_token']);
      expect((await accounts.listRegistrationTokens()).find((r) => r.token === tok.token)).toMatchObject({ pending: 1, completed: 0 });
      expect(await accounts.registrationTokenValid(tok.token)).toBe(false);
      const c = new TestClient(srv.clientUrl);
      expect((await registerWithToken(c, 'pend1', tok.token)).body.errcode).toBe('M_FORBIDDEN');
      // Age the session past its lifetime: the sweep releases the pending use.
      await srv.server.ctx.database.db.updateTable('uia_sessions').set({ created_ts: 0 }).where('purpose', '=', 'test').execute();
      await accounts.uia.sweep(true);
      expect((await accounts.listRegistrationTokens()).find((r) => r.token === tok.token)).toMatchObject({ pending: 0, completed: 0 });
      expect((await registerWithToken(c, 'pend1', tok.token)).status).toBe(200);
    });

    it('rejects expired tokens', async () => {
      const accounts = srv.server.ctx.accounts;
      const tok = await accounts.createRegistrationToken({ expiryTime: Date.now() - 1000 });
      const c = new TestClient(srv.clientUrl);
      expect((await c.get(`/_matrix/client/v1/register/m.login.registration_token/validity?token=${tok.token}`)).body).toEqual({ valid: false });
      const res = await registerWithToken(c, 'tok3', tok.token);
      expect(res.status).toBe(401);
      expect(res.body.errcode).toBe('M_FORBIDDEN');
      const unlimited = await accounts.createRegistrationToken({ expiryTime: Date.now() + 60_000 });
      expect((await registerWithToken(c, 'tok4', unlimited.token)).status).toBe(200);
      expect((await registerWithToken(c, 'tok5', unlimited.token)).status).toBe(200);
    });
  });

  describe('closed registration, shared secret and rate limits', () => {
    let srv: TestServer;
    const secret = 'a-very-secret-shared-secret';
    beforeAll(async () => {
      srv = await startAccountsServer(engine, {
        registration: 'closed',
        registration_shared_secret: secret,
        rate_limits: { login: { per_second: 0.1, burst: 3 }, registration: { per_second: 1000, burst: 1000 } },
      });
    });
    afterAll(async () => {
      await srv?.close();
    });

    it('refuses registration when closed', async () => {
      const c = new TestClient(srv.clientUrl);
      const res = await c.post('/_matrix/client/v3/register', { username: 'x', password: PW });
      expect(res.status).toBe(403);
      expect(res.body.errcode).toBe('M_FORBIDDEN');
      const validity = await c.get('/_matrix/client/v1/register/m.login.registration_token/validity?token=abc');
      expect(validity.status).toBe(403);
    });

    it('registers through the shared secret with a correct MAC only, once per nonce', async () => {
      const c = new TestClient(srv.clientUrl);
      const mac = (nonce: string, user: string, pw: string, admin: boolean) =>
        createHmac('sha1', secret).update(`${nonce}\0${user}\0${pw}\0${admin ? 'admin' : 'notadmin'}`).digest('hex');
      const n1 = (await c.get('/_synapse/admin/v1/register')).body.nonce;
      expect(typeof n1).toBe('string');
      const wrong = await c.post('/_synapse/admin/v1/register', { nonce: n1, username: 'root', password: PW, admin: true, mac: mac(n1, 'root', PW, false) });
      expect(wrong.status).toBe(403);
      expect(wrong.body.errcode).toBe('M_FORBIDDEN');
      const reused = await c.post('/_synapse/admin/v1/register', { nonce: n1, username: 'root', password: PW, admin: true, mac: mac(n1, 'root', PW, true) });
      expect(reused.status).toBe(400);
      const n2 = (await c.get('/_synapse/admin/v1/register')).body.nonce;
      const ok = await c.post('/_synapse/admin/v1/register', { nonce: n2, username: 'root', password: PW, admin: true, mac: mac(n2, 'root', PW, true) });
      expect(ok.status).toBe(200);
      expect(ok.body.user_id).toBe('@root:localhost');
      const user = await srv.server.ctx.accounts.getUser('@root:localhost');
      expect(user?.is_admin).toBe(1);
      const who = await new TestClient(srv.clientUrl, ok.body.access_token).get('/_matrix/client/v3/account/whoami');
      expect(who.body.user_id).toBe('@root:localhost');
    });

    it('rate-limits logins with M_LIMIT_EXCEEDED and retry_after_ms', async () => {
      const c = new TestClient(srv.clientUrl);
      const attempt = () => c.post('/_matrix/client/v3/login', { type: 'm.login.password', user: 'nobody', password: 'x' });
      const statuses: number[] = [];
      let limited: any;
      for (let i = 0; i < 5; i++) {
        const r = await attempt();
        statuses.push(r.status);
        if (r.status === 429) limited = r.body;
      }
      expect(statuses.slice(0, 3)).toEqual([403, 403, 403]);
      expect(statuses.slice(3)).toEqual([429, 429]);
      expect(limited.errcode).toBe('M_LIMIT_EXCEEDED');
      expect(limited.retry_after_ms).toBeGreaterThan(0);
      expect(limited.retry_after_ms).toBeLessThanOrEqual(10_000);
    });
  });

  describe('command line', () => {
    it('register-user and registration-token work on the data directory', async () => {
      const dir = tempDir();
      const db = await databaseOverrides(engine);
      try {
        writeFileSync(
          join(dir, 'myelin.yaml'),
          `server_name: cli.test\nregistration: token\npassword_hashing:\n  scrypt_log_n: 12\nlog_level: warn\n` +
            (engine === 'postgres' ? `database:\n  engine: postgres\n  url: ${JSON.stringify(db.database.url)}\n` : ''),
        );
        const env: NodeJS.ProcessEnv = { ...process.env };
        delete env.MYELIN_DATA_DIR;
        delete env.MYELIN_CONFIG;
        const cli = (...args: string[]) => run(process.execPath, [...CLI, ...args, '--data-dir', dir], { env });

        const created = await cli('register-user', 'Admin', '--password', 'pw-1', '--admin');
        expect(created.stdout).toContain('@admin:cli.test');
        const generated = await cli('register-user', 'bob');
        const pw = /Password: (\S+)/.exec(generated.stdout)?.[1];
        expect(pw).toBeTruthy();
        await expect(cli('register-user', 'bob', '--password', 'x')).rejects.toMatchObject({ stderr: expect.stringContaining('M_USER_IN_USE') });

        const tok = (await cli('registration-token', 'create', '--uses', '2', '--expires-in', '7d')).stdout.trim();
        expect(tok).toMatch(/^[A-Za-z0-9._~-]{1,64}$/);
        await cli('registration-token', 'create', '--token', 'named-token');
        const list = (await cli('registration-token', 'list')).stdout;
        expect(list).toContain(`${tok}\tuses_allowed=2\tcompleted=0\tpending=0`);
        expect(list).toContain('named-token\tuses_allowed=unlimited');
        expect((await cli('registration-token', 'delete', 'named-token')).stdout).toContain('Deleted named-token');
        expect((await cli('registration-token', 'list')).stdout).not.toContain('named-token');
        await expect(cli('registration-token', 'create', '--expires-in', 'soon')).rejects.toMatchObject({ code: 1 });

        // The server sees what the CLI wrote.
        const srv = await startServer({ dataDir: dir, engine: 'sqlite', serverName: 'cli.test', overrides: engine === 'postgres' ? { database: db.database } : {} });
        try {
          const c = new TestClient(srv.clientUrl);
          const admin = await c.login('admin', 'pw-1');
          expect(admin.user_id).toBe('@admin:cli.test');
          expect((await c.login('@bob:cli.test', pw)).user_id).toBe('@bob:cli.test');
          expect((await srv.server.ctx.accounts.getUser('@admin:cli.test'))?.is_admin).toBe(1);
          expect(await srv.server.ctx.accounts.registrationTokenValid(tok)).toBe(true);
        } finally {
          await srv.server.stop();
        }
      } finally {
        await db.pg?.drop();
      }
    });
  });
});
