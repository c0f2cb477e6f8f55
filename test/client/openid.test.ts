/**
 * OpenID tokens: POST /user/{userId}/openid/request_token on the client listener, exchanged
 * through GET /_matrix/federation/v1/openid/userinfo on the federation listener (not signed
 * with X-Matrix: third parties call it with the token alone).
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenIdService, OPENID_TOKEN_LIFETIME_MS } from '../../src/services/accounts/openid.js';
import { OpenIdStore } from '../../src/storage/stores/openid.js';
import type { Myelin } from '../../src/app.js';
import type { TestServer } from '../_util/server.js';
import { startRestartable } from './_restartable.js';
import { SpecClient } from './_spec-client.js';
import { startAccountsServer, uiaPassword } from './_client.js';

const PW = 'correct horse battery';
const enc = encodeURIComponent;
const requestPath = (userId: string) => `/_matrix/client/v3/user/${enc(userId)}/openid/request_token`;
const userinfoPath = (token: string) => `/_matrix/federation/v1/openid/userinfo?access_token=${enc(token)}`;

function tokenRows(server: Myelin) {
  return server.ctx.database.db.selectFrom('openid_tokens').selectAll();
}

describe.each(['sqlite', 'postgres'] as const)('OpenID tokens on %s', (engine) => {
  let srv: TestServer;
  let n = 0;
  const fresh = (prefix: string) => `${prefix}${++n}`;
  /** Calls the federation listener without any authentication, as a widget or integration manager would. */
  const federation = () => new SpecClient(srv.federationUrl);

  async function user(prefix: string): Promise<{ c: SpecClient; userId: string; name: string }> {
    const c = new SpecClient(srv.clientUrl);
    const name = fresh(prefix);
    const reg = await c.register(name, PW);
    return { c, userId: reg.user_id, name };
  }

  beforeAll(async () => {
    srv = await startAccountsServer(engine);
  });
  afterAll(async () => {
    await srv?.close();
  });

  it('issues a token for the caller, which userinfo exchanges for the user ID', async () => {
    const { c, userId } = await user('alice');
    const res = await c.post(requestPath(userId), {});
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ access_token: expect.any(String), token_type: 'Bearer', matrix_server_name: 'localhost', expires_in: 3600 });
    expect(res.body.access_token.length).toBeGreaterThanOrEqual(32);
    // Each request gives a new token.
    const second = await c.post(requestPath(userId), {});
    expect(second.body.access_token).not.toBe(res.body.access_token);

    const info = await federation().get(userinfoPath(res.body.access_token), { token: null });
    expect(info).toEqual({ status: 200, body: { sub: userId } });
    expect((await federation().get(userinfoPath(second.body.access_token), { token: null })).body).toEqual({ sub: userId });
    // The token can be exchanged more than once while it is valid.
    expect((await federation().get(userinfoPath(res.body.access_token), { token: null })).body).toEqual({ sub: userId });
  });

  it('stores only the hash of the token, with its expiry', async () => {
    const { c, userId } = await user('hashed');
    const before = Date.now();
    const token = (await c.post(requestPath(userId), {})).body.access_token as string;
    const rows = await tokenRows(srv.server).where('user_id', '=', userId).execute();
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row.token_hash).toBe(createHash('sha256').update(token).digest('hex'));
    expect(JSON.stringify(rows)).not.toContain(token);
    expect(Number(row.expires_ts)).toBeGreaterThanOrEqual(before + OPENID_TOKEN_LIFETIME_MS);
    expect(Number(row.expires_ts)).toBeLessThanOrEqual(Date.now() + OPENID_TOKEN_LIFETIME_MS);
  });

  it('is not a client access token', async () => {
    const { c, userId } = await user('notaccess');
    const token = (await c.post(requestPath(userId), {})).body.access_token as string;
    const whoami = await c.get('/_matrix/client/v3/account/whoami', { token });
    expect(whoami.status).toBe(401);
    expect(whoami.body.errcode).toBe('M_UNKNOWN_TOKEN');
    // Nor can it ask for another OpenID token.
    expect((await c.post(requestPath(userId), {}, { token })).status).toBe(401);
    // And a client access token is not an OpenID token.
    const asOpenId = await federation().get(userinfoPath(c.token!), { token: null });
    expect(asOpenId.status).toBe(401);
    expect(asOpenId.body.errcode).toBe('M_UNKNOWN_TOKEN');
  });

  it('refuses a token for another user (403) and changes nothing', async () => {
    const { c, userId } = await user('mallory');
    const other = await user('victim');
    const res = await c.post(requestPath(other.userId), {});
    expect(res.status).toBe(403);
    expect(res.body.errcode).toBe('M_FORBIDDEN');
    // A remote user or a malformed ID is not the caller either.
    expect((await c.post(requestPath('@someone:elsewhere.example'), {})).status).toBe(403);
    expect((await c.post(requestPath('not-a-user-id'), {})).status).toBe(403);
    expect(await tokenRows(srv.server).where('user_id', 'in', [userId, other.userId]).execute()).toEqual([]);
  });

  it('requires authentication (401)', async () => {
    const { c, userId } = await user('anon');
    const missing = await c.post(requestPath(userId), {}, { token: null });
    expect(missing.status).toBe(401);
    expect(missing.body.errcode).toBe('M_MISSING_TOKEN');
    const unknown = await c.post(requestPath(userId), {}, { token: 'mat_nonsense' });
    expect(unknown.status).toBe(401);
    expect(unknown.body.errcode).toBe('M_UNKNOWN_TOKEN');
    expect(await tokenRows(srv.server).where('user_id', '=', userId).execute()).toEqual([]);
  });

  it('rejects a body that is not a JSON object', async () => {
    const { c, userId } = await user('badbody');
    const res = await c.post(requestPath(userId), ['not', 'an', 'object']);
    expect(res.status).toBe(400);
    expect(res.body.errcode).toBe('M_BAD_JSON');
    expect(await tokenRows(srv.server).where('user_id', '=', userId).execute()).toEqual([]);
  });

  it('answers 401 M_UNKNOWN_TOKEN for an unknown token and 400 M_MISSING_PARAM without one', async () => {
    for (const token of ['garbage', 'x'.repeat(43), '%00\u00e9\u{1F600}']) {
      const res = await federation().get(userinfoPath(token), { token: null });
      expect(res.status).toBe(401);
      expect(res.body.errcode).toBe('M_UNKNOWN_TOKEN');
    }
    for (const path of ['/_matrix/federation/v1/openid/userinfo', '/_matrix/federation/v1/openid/userinfo?access_token=']) {
      const res = await federation().get(path, { token: null });
      expect(res.status).toBe(400);
      expect(res.body.errcode).toBe('M_MISSING_PARAM');
    }
  });

  it('refuses an expired token and removes it', async () => {
    const { c, userId } = await user('expired');
    const token = (await c.post(requestPath(userId), {})).body.access_token as string;
    const hash = createHash('sha256').update(token).digest('hex');
    // Its hour is up.
    await srv.server.ctx.database.db.updateTable('openid_tokens').set({ expires_ts: Date.now() - 1 }).where('token_hash', '=', hash).execute();
    const res = await federation().get(userinfoPath(token), { token: null });
    expect(res.status).toBe(401);
    expect(res.body.errcode).toBe('M_UNKNOWN_TOKEN');
    expect(await tokenRows(srv.server).where('token_hash', '=', hash).execute()).toEqual([]);
  });

  it('expires tokens after their lifetime and sweeps expired ones when new ones are issued', async () => {
    const { c, userId } = await user('sweep');
    const token = (await c.post(requestPath(userId), {})).body.access_token as string;
    const store = new OpenIdStore(srv.server.ctx.database);
    const at = (ms: number) => new OpenIdService(store, srv.server.ctx.accounts, 'localhost', srv.server.ctx.log, { now: () => Date.now() + ms });
    // Just before the end of its lifetime it is valid, at the end it is not.
    expect(await at(OPENID_TOKEN_LIFETIME_MS - 60_000).userIdOf(token)).toBe(userId);
    const later = at(OPENID_TOKEN_LIFETIME_MS + 1000);
    await expect(later.userIdOf(token)).rejects.toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', status: 401 });
    expect((await federation().get(userinfoPath(token), { token: null })).status).toBe(401);

    // Expired tokens of everyone are swept when a token is issued, the valid ones kept.
    const other = await user('sweep');
    const kept = (await other.c.post(requestPath(other.userId), {})).body.access_token as string;
    await c.post(requestPath(userId), {});
    await c.post(requestPath(userId), {});
    expect(await tokenRows(srv.server).where('user_id', 'in', [userId, other.userId]).execute()).toHaveLength(3);
    const issued = await later.issue(userId);
    const left = await tokenRows(srv.server).where('user_id', 'in', [userId, other.userId]).execute();
    expect(left.map((r) => r.token_hash)).toEqual([createHash('sha256').update(issued.access_token).digest('hex')]);
    await expect(at(0).userIdOf(kept)).rejects.toMatchObject({ errcode: 'M_UNKNOWN_TOKEN' });
    expect((await federation().get(userinfoPath(issued.access_token), { token: null })).body).toEqual({ sub: userId });
  });

  it("stops answering for a deactivated account's tokens", async () => {
    const { c, userId, name } = await user('gone');
    const token = (await c.post(requestPath(userId), {})).body.access_token as string;
    expect((await federation().get(userinfoPath(token), { token: null })).status).toBe(200);
    const first = await c.post('/_matrix/client/v3/account/deactivate', {});
    expect((await c.post('/_matrix/client/v3/account/deactivate', { auth: uiaPassword(name, PW, first.body.session) })).status).toBe(200);
    const res = await federation().get(userinfoPath(token), { token: null });
    expect(res.status).toBe(401);
    expect(res.body.errcode).toBe('M_UNKNOWN_TOKEN');
    await expect.poll(async () => (await tokenRows(srv.server).where('user_id', '=', userId).execute()).length).toBe(0);
  });
});

describe.each(['sqlite', 'postgres'] as const)('OpenID tokens across a restart on %s', (engine) => {
  it('keeps a token valid after the server restarts', async () => {
    const listeners = { client: { bind: '127.0.0.1', port: 0 }, federation: { bind: '127.0.0.1', port: 0 }, metrics: { enabled: false } };
    const rs = await startRestartable(engine, undefined, { listeners });
    try {
      const federationUrl = () => `http://127.0.0.1:${rs.server.address('federation')!.port}`;
      const c = new SpecClient(rs.url);
      const { user_id: userId } = await c.register('restart', PW);
      const token = (await c.post(requestPath(userId), {})).body.access_token as string;
      expect((await new SpecClient(federationUrl()).get(userinfoPath(token), { token: null })).body).toEqual({ sub: userId });
      await rs.restart();
      const res = await new SpecClient(federationUrl()).get(userinfoPath(token), { token: null });
      expect(res).toEqual({ status: 200, body: { sub: userId } });
    } finally {
      await rs.close();
    }
  });
});
