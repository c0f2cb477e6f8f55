import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient, uiaPassword } from './_client.js';

const PW = 'correct horse battery';

describe.each(['sqlite', 'postgres'] as const)('accounts on %s', (engine) => {
  let srv: TestServer;
  let n = 0;
  const fresh = (prefix: string) => `${prefix}${++n}`;
  const client = (token?: string) => new TestClient(srv.clientUrl, token);

  beforeAll(async () => {
    srv = await startAccountsServer(engine);
  });
  afterAll(async () => {
    await srv?.close();
  });

  describe('registration', () => {
    it('offers m.login.dummy when open, then registers and logs in', async () => {
      const c = client();
      const first = await c.post('/_matrix/client/v3/register', { username: 'Alice1', password: PW });
      expect(first.status).toBe(401);
      expect(first.body.flows).toEqual([{ stages: ['m.login.dummy'] }]);
      expect(typeof first.body.session).toBe('string');
      expect(first.body.errcode).toBeUndefined();
      const done = await c.post('/_matrix/client/v3/register', {
        username: 'Alice1',
        password: PW,
        initial_device_display_name: 'Laptop',
        device_id: 'DEVICEA',
        auth: { type: 'm.login.dummy', session: first.body.session },
      });
      expect(done.status).toBe(200);
      expect(done.body.user_id).toBe('@alice1:localhost');
      expect(done.body.device_id).toBe('DEVICEA');
      expect(done.body.access_token).toMatch(/^mat_[A-Za-z0-9_-]{43}$/);
      const who = await client(done.body.access_token).get('/_matrix/client/v3/account/whoami');
      expect(who.body).toEqual({ user_id: '@alice1:localhost', device_id: 'DEVICEA', is_guest: false });
      const dev = await client(done.body.access_token).get('/_matrix/client/v3/devices/DEVICEA');
      expect(dev.body.display_name).toBe('Laptop');
      // The session is gone once used.
      const again = await c.post('/_matrix/client/v3/register', { username: 'alice1b', password: PW, auth: { type: 'm.login.dummy', session: first.body.session } });
      expect(again.status).toBe(400);
    });

    it('honours inhibit_login and generates a user name when none is given', async () => {
      const c = client();
      const res = await c.post('/_matrix/client/v3/register', { password: PW, inhibit_login: true, auth: { type: 'm.login.dummy' } });
      expect(res.status).toBe(200);
      expect(res.body.user_id).toMatch(/^@[0-9]+:localhost$/);
      expect(res.body.access_token).toBeUndefined();
      expect(res.body.device_id).toBeUndefined();
    });

    it('reports availability, taken names and invalid names', async () => {
      const c = client();
      const name = fresh('avail');
      expect((await c.get(`/_matrix/client/v3/register/available?username=${name}`)).body).toEqual({ available: true });
      await c.register(name);
      const taken = await c.get(`/_matrix/client/v3/register/available?username=${name.toUpperCase()}`);
      expect(taken.status).toBe(400);
      expect(taken.body.errcode).toBe('M_USER_IN_USE');
      const bad = await c.get('/_matrix/client/v3/register/available?username=' + encodeURIComponent('no spaces!'));
      expect(bad.status).toBe(400);
      expect(bad.body.errcode).toBe('M_INVALID_USERNAME');
      const reg = await c.post('/_matrix/client/v3/register', { username: name, password: PW, auth: { type: 'm.login.dummy' } }, { token: null });
      expect(reg.status).toBe(400);
      expect(reg.body.errcode).toBe('M_USER_IN_USE');
      const regBad = await c.post('/_matrix/client/v3/register', { username: 'ü', password: PW }, { token: null });
      expect(regBad.body.errcode).toBe('M_INVALID_USERNAME');
    });

    it('refuses guests and bad JSON types', async () => {
      const c = client();
      const g = await c.post('/_matrix/client/v3/register?kind=guest', {});
      expect(g.status).toBe(403);
      expect(g.body.errcode).toBe('M_FORBIDDEN');
      const bad = await c.post('/_matrix/client/v3/register', { username: 42 });
      expect(bad.status).toBe(400);
      expect(bad.body.errcode).toBe('M_BAD_JSON');
    });

    it('serves the r0 alias', async () => {
      const res = await client().post('/_matrix/client/r0/register', {});
      expect(res.status).toBe(401);
      expect(res.body.flows).toBeDefined();
    });
  });

  describe('login and tokens', () => {
    let name: string;
    beforeAll(async () => {
      name = fresh('bob');
      await client().register(name);
    });

    it('lists the login flows', async () => {
      const res = await client().get('/_matrix/client/v3/login');
      expect(res.body.flows.map((f: any) => f.type)).toEqual(['m.login.password', 'm.login.token']);
    });

    it('logs in by localpart, full user ID and the legacy user field', async () => {
      const c = client();
      const a = await c.login(name);
      expect(a.user_id).toBe(`@${name}:localhost`);
      const b = await c.login(`@${name}:localhost`);
      expect(b.user_id).toBe(`@${name}:localhost`);
      expect(b.device_id).not.toBe(a.device_id);
      const legacy = await c.post('/_matrix/client/v3/login', { type: 'm.login.password', user: name, password: PW });
      expect(legacy.status).toBe(200);
      expect(legacy.body.user_id).toBe(`@${name}:localhost`);
      expect(legacy.body.home_server).toBe('localhost');
    });

    it('rejects a wrong password, an unknown user and an unknown login type', async () => {
      const c = client();
      const wrong = await c.post('/_matrix/client/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: name }, password: 'nope' });
      expect(wrong.status).toBe(403);
      expect(wrong.body.errcode).toBe('M_FORBIDDEN');
      const unknown = await c.post('/_matrix/client/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'nobody-here' }, password: PW });
      expect(unknown.status).toBe(403);
      expect(unknown.body.errcode).toBe('M_FORBIDDEN');
      const other = await c.post('/_matrix/client/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: '@' + name + ':elsewhere.org' }, password: PW });
      expect(other.status).toBe(403);
      const type = await c.post('/_matrix/client/v3/login', { type: 'm.login.bogus' });
      expect(type.status).toBe(400);
      expect(type.body.errcode).toBe('M_UNKNOWN');
    });

    it('reuses a given device ID and revokes that device’s old token', async () => {
      const c = client();
      const a = await c.login(name, PW, { device_id: 'SAMEDEV' });
      const b = await c.login(name, PW, { device_id: 'SAMEDEV' });
      expect(b.device_id).toBe('SAMEDEV');
      expect((await client(a.access_token).get('/_matrix/client/v3/account/whoami')).status).toBe(401);
      expect((await client(b.access_token).get('/_matrix/client/v3/account/whoami')).status).toBe(200);
    });

    it('stores access tokens only as SHA-256 hashes', async () => {
      const s = await client().login(name);
      const rows = await srv.server.ctx.database.db.selectFrom('access_tokens').selectAll().execute();
      expect(rows.length).toBeGreaterThan(0);
      expect(JSON.stringify(rows)).not.toContain(s.access_token);
      const hash = createHash('sha256').update(s.access_token).digest('hex');
      const mine = rows.filter((r) => r.token_hash === hash);
      expect(mine).toHaveLength(1);
      expect(mine[0]!.device_id).toBe(s.device_id);
    });

    it('authenticates with the header or the access_token query parameter, and reports missing and unknown tokens', async () => {
      const s = await client().login(name);
      const q = await client().get(`/_matrix/client/v3/account/whoami?access_token=${s.access_token}`, { token: null });
      expect(q.body.user_id).toBe(`@${name}:localhost`);
      const missing = await client().get('/_matrix/client/v3/account/whoami');
      expect(missing.status).toBe(401);
      expect(missing.body.errcode).toBe('M_MISSING_TOKEN');
      const unknown = await client('mat_nonsense').get('/_matrix/client/v3/account/whoami');
      expect(unknown.status).toBe(401);
      expect(unknown.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });
      const basic = await client().req('GET', '/_matrix/client/v3/account/whoami', undefined, { headers: { authorization: 'Basic abc' } });
      expect(basic.body.errcode).toBe('M_MISSING_TOKEN');
    });

    it('refreshes: a refresh token is single use, and an expired access token is a soft logout', async () => {
      const c = client();
      const s = await c.login(name, PW, { refresh_token: true });
      expect(s.refresh_token).toMatch(/^matr_/);
      expect(s.expires_in_ms).toBe(300000);
      const r1 = await c.post('/_matrix/client/v3/refresh', { refresh_token: s.refresh_token });
      expect(r1.status).toBe(200);
      expect(r1.body.access_token).not.toBe(s.access_token);
      expect(r1.body.refresh_token).not.toBe(s.refresh_token);
      expect(r1.body.expires_in_ms).toBe(300000);
      const reuse = await c.post('/_matrix/client/v3/refresh', { refresh_token: s.refresh_token });
      expect(reuse.status).toBe(401);
      expect(reuse.body.errcode).toBe('M_UNKNOWN_TOKEN');
      expect((await client(s.access_token).get('/_matrix/client/v3/account/whoami')).status).toBe(401);
      const who = await client(r1.body.access_token).get('/_matrix/client/v3/account/whoami');
      expect(who.body.device_id).toBe(s.device_id);
      // Expire it.
      const hash = createHash('sha256').update(r1.body.access_token).digest('hex');
      await srv.server.ctx.database.db.updateTable('access_tokens').set({ expires_ts: Date.now() - 1000 }).where('token_hash', '=', hash).execute();
      srv.server.ctx.accounts.store.dropCachedTokens(); // written behind the store's back
      const expired = await client(r1.body.access_token).get('/_matrix/client/v3/account/whoami');
      expect(expired.status).toBe(401);
      expect(expired.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });
      const r2 = await c.post('/_matrix/client/v3/refresh', { refresh_token: r1.body.refresh_token });
      expect(r2.status).toBe(200);
      expect((await client(r2.body.access_token).get('/_matrix/client/v3/account/whoami')).status).toBe(200);
    });

    it('logs out one device, then all devices', async () => {
      const a = await client().login(name);
      const b = await client().login(name);
      const c = await client().login(name);
      expect((await client(a.access_token).post('/_matrix/client/v3/logout')).status).toBe(200);
      expect((await client(a.access_token).get('/_matrix/client/v3/account/whoami')).status).toBe(401);
      const devices = (await client(b.access_token).get('/_matrix/client/v3/devices')).body.devices.map((d: any) => d.device_id);
      expect(devices).not.toContain(a.device_id);
      expect(devices).toContain(c.device_id);
      expect((await client(b.access_token).post('/_matrix/client/v3/logout/all')).status).toBe(200);
      for (const t of [b, c]) expect((await client(t.access_token).get('/_matrix/client/v3/account/whoami')).status).toBe(401);
      const fresh = await client().login(name);
      expect((await client(fresh.access_token).get('/_matrix/client/v3/devices')).body.devices).toHaveLength(1);
    });

    it('issues a login token behind user-interactive auth, usable once for m.login.token', async () => {
      const s = await client().login(name);
      const c = client(s.access_token);
      const first = await c.post('/_matrix/client/v1/login/get_token', {});
      expect(first.status).toBe(401);
      expect(first.body.flows).toEqual([{ stages: ['m.login.password'] }]);
      const ok = await c.post('/_matrix/client/v1/login/get_token', { auth: uiaPassword(name, PW, first.body.session) });
      expect(ok.status).toBe(200);
      expect(ok.body.expires_in_ms).toBe(120000);
      const login = await client().post('/_matrix/client/v3/login', { type: 'm.login.token', token: ok.body.login_token });
      expect(login.status).toBe(200);
      expect(login.body.user_id).toBe(`@${name}:localhost`);
      const again = await client().post('/_matrix/client/v3/login', { type: 'm.login.token', token: ok.body.login_token });
      expect(again.status).toBe(403);
    });
  });

  describe('devices', () => {
    it('lists, renames and deletes devices with user-interactive auth', async () => {
      const name = fresh('carol');
      const c = client();
      await c.register(name);
      const other = await client().login(name, PW, { initial_device_display_name: 'Phone' });
      const list = await c.get('/_matrix/client/v3/devices');
      expect(list.body.devices).toHaveLength(2);
      const phone = list.body.devices.find((d: any) => d.device_id === other.device_id);
      expect(phone.display_name).toBe('Phone');
      expect(typeof phone.last_seen_ts).toBe('number');

      expect((await c.put(`/_matrix/client/v3/devices/${other.device_id}`, { display_name: 'Old phone' })).status).toBe(200);
      expect((await c.get(`/_matrix/client/v3/devices/${other.device_id}`)).body.display_name).toBe('Old phone');
      expect((await c.get('/_matrix/client/v3/devices/NOSUCH')).status).toBe(404);
      expect((await c.put('/_matrix/client/v3/devices/NOSUCH', { display_name: 'x' })).status).toBe(404);

      const first = await c.del(`/_matrix/client/v3/devices/${other.device_id}`, {});
      expect(first.status).toBe(401);
      expect(first.body.flows).toEqual([{ stages: ['m.login.password'] }]);
      expect(first.body.session).toBeTruthy();
      const wrong = await c.del(`/_matrix/client/v3/devices/${other.device_id}`, { auth: uiaPassword(name, 'bad', first.body.session) });
      expect(wrong.status).toBe(401);
      expect(wrong.body.errcode).toBe('M_FORBIDDEN');
      expect(wrong.body.session).toBe(first.body.session);
      const ok = await c.del(`/_matrix/client/v3/devices/${other.device_id}`, { auth: uiaPassword(name, PW, first.body.session) });
      expect(ok.status).toBe(200);
      expect((await client(other.access_token).get('/_matrix/client/v3/account/whoami')).status).toBe(401);
      expect((await c.get('/_matrix/client/v3/devices')).body.devices).toHaveLength(1);

      const x = await client().login(name);
      const y = await client().login(name);
      const bulk1 = await c.post('/_matrix/client/v3/delete_devices', { devices: [x.device_id, y.device_id] });
      expect(bulk1.status).toBe(401);
      const bulk2 = await c.post('/_matrix/client/v3/delete_devices', { devices: [x.device_id, y.device_id], auth: uiaPassword(name, PW, bulk1.body.session) });
      expect(bulk2.status).toBe(200);
      expect((await c.get('/_matrix/client/v3/devices')).body.devices).toHaveLength(1);
    });

    it('does not let a session for one user authorise another', async () => {
      const a = fresh('dave');
      const b = fresh('erin');
      const ca = client();
      const cb = client();
      await ca.register(a);
      await cb.register(b);
      const first = await ca.post('/_matrix/client/v3/delete_devices', { devices: [] });
      const steal = await cb.post('/_matrix/client/v3/delete_devices', { devices: [], auth: uiaPassword(b, PW, first.body.session) });
      expect(steal.status).toBe(403);
    });
  });

  describe('password and deactivation', () => {
    it('changing the password logs out the other devices', async () => {
      const name = fresh('frank');
      const c = client();
      await c.register(name);
      const other = await client().login(name);
      const first = await c.post('/_matrix/client/v3/account/password', { new_password: 'new secret' });
      expect(first.status).toBe(401);
      const ok = await c.post('/_matrix/client/v3/account/password', { new_password: 'new secret', auth: uiaPassword(name, PW, first.body.session) });
      expect(ok.status).toBe(200);
      expect((await c.get('/_matrix/client/v3/account/whoami')).status).toBe(200);
      expect((await client(other.access_token).get('/_matrix/client/v3/account/whoami')).status).toBe(401);
      const old = await client().post('/_matrix/client/v3/login', { type: 'm.login.password', user: name, password: PW });
      expect(old.status).toBe(403);
      await client().login(name, 'new secret');
    });

    it('keeps other devices with logout_devices: false', async () => {
      const name = fresh('grace');
      const c = client();
      await c.register(name);
      const other = await client().login(name);
      const first = await c.post('/_matrix/client/v3/account/password', { new_password: 'n2', logout_devices: false });
      await c.post('/_matrix/client/v3/account/password', { new_password: 'n2', logout_devices: false, auth: uiaPassword(name, PW, first.body.session) });
      expect((await client(other.access_token).get('/_matrix/client/v3/account/whoami')).status).toBe(200);
    });

    it('deactivates: tokens die, login fails, the name stays taken', async () => {
      const name = fresh('heidi');
      const c = client();
      await c.register(name);
      const first = await c.post('/_matrix/client/v3/account/deactivate', {});
      expect(first.status).toBe(401);
      const ok = await c.post('/_matrix/client/v3/account/deactivate', { auth: uiaPassword(name, PW, first.body.session) });
      expect(ok.status).toBe(200);
      expect(ok.body.id_server_unbind_result).toBe('no-support');
      expect((await c.get('/_matrix/client/v3/account/whoami')).status).toBe(401);
      const login = await client().post('/_matrix/client/v3/login', { type: 'm.login.password', user: name, password: PW });
      expect(login.status).toBe(403);
      expect(['M_USER_DEACTIVATED', 'M_FORBIDDEN']).toContain(login.body.errcode);
      expect((await client().get(`/_matrix/client/v3/register/available?username=${name}`)).body.errcode).toBe('M_USER_IN_USE');
      expect((await client().get(`/_matrix/client/v3/profile/@${name}:localhost`)).status).toBe(404);
    });
  });

  describe('profile, capabilities, filters', () => {
    it('gets and sets display name and avatar', async () => {
      const name = fresh('ivan');
      const c = client();
      await c.register(name);
      const uid = `@${name}:localhost`;
      expect((await c.get(`/_matrix/client/v3/profile/${uid}`)).body).toEqual({ displayname: name });
      const changed: unknown[] = [];
      srv.server.ctx.accounts.hooks.onProfileChanged.push((u, p) => void changed.push([u, p]));
      expect((await c.put(`/_matrix/client/v3/profile/${uid}/displayname`, { displayname: 'Ivan I.' })).status).toBe(200);
      expect((await c.put(`/_matrix/client/v3/profile/${uid}/avatar_url`, { avatar_url: 'mxc://localhost/abc' })).status).toBe(200);
      expect((await c.get(`/_matrix/client/v3/profile/${uid}`)).body).toEqual({ displayname: 'Ivan I.', avatar_url: 'mxc://localhost/abc' });
      expect((await client().get(`/_matrix/client/v3/profile/${uid}/displayname`)).body).toEqual({ displayname: 'Ivan I.' });
      expect(changed).toContainEqual([uid, { displayname: 'Ivan I.', avatar_url: 'mxc://localhost/abc' }]);
      const bad = await c.put(`/_matrix/client/v3/profile/${uid}/displayname`, { displayname: 5 });
      expect(bad.status).toBe(400);
      const missing = await c.put(`/_matrix/client/v3/profile/${uid}/displayname`, {});
      expect(missing.body.errcode).toBe('M_MISSING_PARAM');
      const notMine = await c.put('/_matrix/client/v3/profile/@someone:localhost/displayname', { displayname: 'x' });
      expect(notMine.status).toBe(403);
      expect((await c.get('/_matrix/client/v3/profile/@nobody:localhost')).status).toBe(404);
      expect((await c.put(`/_matrix/client/v3/profile/${uid}/m.tz`, { 'm.tz': 'Europe/Paris' })).status).toBe(200);
      expect((await c.get(`/_matrix/client/v3/profile/${uid}/m.tz`)).body).toEqual({ 'm.tz': 'Europe/Paris' });
      expect((await c.del(`/_matrix/client/v3/profile/${uid}/m.tz`)).status).toBe(200);
      expect((await c.get(`/_matrix/client/v3/profile/${uid}/m.tz`)).status).toBe(404);
      expect((await c.put(`/_matrix/client/v3/profile/${uid}/Bad-Key`, { 'Bad-Key': 1 })).body.errcode).toBe('M_INVALID_PARAM');
    });

    it('announces capabilities from the room-version table', async () => {
      const c = client();
      await c.register(fresh('judy'));
      const res = await c.get('/_matrix/client/v3/capabilities');
      const caps = res.body.capabilities;
      expect(caps['m.change_password']).toEqual({ enabled: true });
      expect(caps['m.room_versions'].default).toBe('12');
      expect(Object.keys(caps['m.room_versions'].available).sort((a, b) => Number(a) - Number(b))).toEqual(
        ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12'],
      );
      expect(caps['m.set_displayname']).toEqual({ enabled: true });
      expect(caps['m.set_avatar_url']).toEqual({ enabled: true });
      expect(caps['m.3pid_changes']).toEqual({ enabled: false });
      expect((await client().get('/_matrix/client/v3/capabilities')).status).toBe(401);
    });

    it('stores and returns filters', async () => {
      const name = fresh('ken');
      const c = client();
      await c.register(name);
      const uid = `@${name}:localhost`;
      const filter = { room: { timeline: { limit: 10, types: ['m.room.message'] }, include_leave: false }, event_fields: ['type', 'content.body'], event_format: 'client' };
      const created = await c.post(`/_matrix/client/v3/user/${uid}/filter`, filter);
      expect(created.status).toBe(200);
      expect(typeof created.body.filter_id).toBe('string');
      expect((await c.get(`/_matrix/client/v3/user/${uid}/filter/${created.body.filter_id}`)).body).toEqual(filter);
      expect((await c.get(`/_matrix/client/v3/user/${uid}/filter/999999`)).status).toBe(404);
      expect((await c.post(`/_matrix/client/v3/user/${uid}/filter`, { event_format: 'xml' })).body.errcode).toBe('M_BAD_JSON');
      expect((await c.post(`/_matrix/client/v3/user/@other:localhost/filter`, {})).status).toBe(403);
      const other = client();
      const otherName = fresh('lou');
      await other.register(otherName);
      const theirs = await other.get(`/_matrix/client/v3/user/@${otherName}:localhost/filter/${created.body.filter_id}`);
      expect(theirs.status).toBe(404);
    });
  });

  describe('account data, tags, presence, directory', () => {
    it('stores global and room account data with stream positions and notifications', async () => {
      const name = fresh('mia');
      const c = client();
      await c.register(name);
      const uid = `@${name}:localhost`;
      const seen: Array<[string, number, string | null]> = [];
      const listener = (u: string, p: number, r: string | null) => void seen.push([u, p, r]);
      srv.server.ctx.streams.on('account_data', listener);
      try {
        expect((await c.get(`/_matrix/client/v3/user/${uid}/account_data/org.example.x`)).status).toBe(404);
        expect((await c.put(`/_matrix/client/v3/user/${uid}/account_data/org.example.x`, { a: 1 })).status).toBe(200);
        expect((await c.put(`/_matrix/client/v3/user/${uid}/account_data/org.example.x`, { a: 2 })).status).toBe(200);
        expect((await c.get(`/_matrix/client/v3/user/${uid}/account_data/org.example.x`)).body).toEqual({ a: 2 });
        const room = '!abc:localhost';
        expect((await c.put(`/_matrix/client/v3/user/${uid}/rooms/${room}/account_data/org.example.y`, { b: true })).status).toBe(200);
        expect((await c.get(`/_matrix/client/v3/user/${uid}/rooms/${room}/account_data/org.example.y`)).body).toEqual({ b: true });
        expect((await c.get(`/_matrix/client/v3/user/${uid}/account_data/org.example.y`)).status).toBe(404);
        expect((await c.put(`/_matrix/client/v3/user/${uid}/rooms/not-a-room/account_data/x`, {})).body.errcode).toBe('M_INVALID_PARAM');
        const fr = await c.put(`/_matrix/client/v3/user/${uid}/account_data/m.fully_read`, { event_id: '$x' });
        expect(fr.status).toBe(405);
        expect(fr.body.errcode).toBe('M_BAD_JSON');
        expect((await c.put(`/_matrix/client/v3/user/@x:localhost/account_data/a`, {})).status).toBe(403);
        expect((await c.put(`/_matrix/client/v3/user/${uid}/account_data/a`, [1])).status).toBe(400);
      } finally {
        srv.server.ctx.streams.off('account_data', listener);
      }
      const mine = seen.filter(([u]) => u === uid);
      expect(mine.map(([, , r]) => r)).toEqual([null, null, '!abc:localhost']);
      expect(mine[1]![1]).toBeGreaterThan(mine[0]![1]);
      const since = await srv.server.ctx.userData.store.accountDataSince(uid, mine[0]![1]);
      expect(since.map((r) => r.type)).toEqual(['org.example.x', 'org.example.y']);
    });

    it('manages room tags as m.tag room account data', async () => {
      const name = fresh('ned');
      const c = client();
      await c.register(name);
      const base = `/_matrix/client/v3/user/@${name}:localhost/rooms/!r:localhost`;
      expect((await c.get(`${base}/tags`)).body).toEqual({ tags: {} });
      expect((await c.put(`${base}/tags/m.favourite`, { order: 0.25 })).status).toBe(200);
      expect((await c.put(`${base}/tags/u.work`, {})).status).toBe(200);
      expect((await c.get(`${base}/tags`)).body).toEqual({ tags: { 'm.favourite': { order: 0.25 }, 'u.work': {} } });
      expect((await c.get(`${base}/account_data/m.tag`)).body).toEqual({ tags: { 'm.favourite': { order: 0.25 }, 'u.work': {} } });
      expect((await c.put(`${base}/tags/bad`, { order: 'first' })).status).toBe(400);
      expect((await c.del(`${base}/tags/m.favourite`)).status).toBe(200);
      expect((await c.get(`${base}/tags`)).body).toEqual({ tags: { 'u.work': {} } });
    });

    it('sets and reads presence', async () => {
      const name = fresh('olga');
      const c = client();
      await c.register(name);
      const uid = `@${name}:localhost`;
      expect((await c.get(`/_matrix/client/v3/presence/${uid}/status`)).body).toEqual({ presence: 'offline' });
      const positions: number[] = [];
      const l = (u: string, p: number) => void (u === uid && positions.push(p));
      srv.server.ctx.streams.on('presence', l);
      expect((await c.put(`/_matrix/client/v3/presence/${uid}/status`, { presence: 'online', status_msg: 'here' })).status).toBe(200);
      srv.server.ctx.streams.off('presence', l);
      expect(positions).toHaveLength(1);
      const got = (await c.get(`/_matrix/client/v3/presence/${uid}/status`)).body;
      expect(got).toMatchObject({ presence: 'online', status_msg: 'here', currently_active: true });
      expect(got.last_active_ago).toBeGreaterThanOrEqual(0);
      expect((await c.put(`/_matrix/client/v3/presence/${uid}/status`, { presence: 'away' })).body.errcode).toBe('M_BAD_JSON');
      expect((await c.put('/_matrix/client/v3/presence/@x:localhost/status', { presence: 'online' })).status).toBe(403);
      expect((await c.get('/_matrix/client/v3/presence/@nobody:localhost/status')).status).toBe(404);
    });

    it('searches local users by ID and display name', async () => {
      const c = client();
      const name = fresh('zebra');
      await c.register(name);
      await c.put(`/_matrix/client/v3/profile/@${name}:localhost/displayname`, { displayname: 'Stripy Horse' });
      const other = client();
      await other.register(fresh('zebrafish'));
      const byId = await c.post('/_matrix/client/v3/user_directory/search', { search_term: 'ZEBRA' });
      expect(byId.body.results.map((r: any) => r.user_id)).toEqual(expect.arrayContaining([`@${name}:localhost`]));
      expect(byId.body.results.length).toBeGreaterThanOrEqual(2);
      const byName = await c.post('/_matrix/client/v3/user_directory/search', { search_term: 'stripy' });
      expect(byName.body).toEqual({ limited: false, results: [{ user_id: `@${name}:localhost`, display_name: 'Stripy Horse' }] });
      const limited = await c.post('/_matrix/client/v3/user_directory/search', { search_term: 'zebra', limit: 1 });
      expect(limited.body.limited).toBe(true);
      expect(limited.body.results).toHaveLength(1);
      const wild = await c.post('/_matrix/client/v3/user_directory/search', { search_term: '%' });
      expect(wild.body.results).toEqual([]);
    });
  });
});
