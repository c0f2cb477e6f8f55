import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient, uiaPassword } from './_client.js';
import { curveKey, ed25519, makeCrossSigning, makeDevice, oneTimeKeys, sign, type TestDevice } from './_e2ee.js';
import { startRestartable } from './_restartable.js';

const C = '/_matrix/client/v3';
const PW = 'correct horse battery';

interface User {
  c: TestClient;
  userId: string;
  deviceId: string;
  dev: TestDevice;
  since?: string;
}

describe.each<Engine>(['sqlite', 'postgres'])('end-to-end encryption endpoints on %s', (engine) => {
  let t: TestServer;
  let n = 0;

  beforeAll(async () => {
    t = await startAccountsServer(engine);
  });
  afterAll(() => t?.close());

  async function user(name?: string): Promise<User> {
    const c = new TestClient(t.clientUrl);
    const reg = await c.register(name ?? `u${++n}x${Date.now() % 100000}`);
    return { c, userId: reg.user_id, deviceId: reg.device_id, dev: makeDevice(reg.user_id, reg.device_id) };
  }

  async function login(u: User): Promise<User> {
    const c = new TestClient(t.clientUrl);
    const res = await c.login(u.userId, PW);
    c.token = res.access_token;
    return { c, userId: u.userId, deviceId: res.device_id, dev: makeDevice(u.userId, res.device_id) };
  }

  async function upload(u: User, otks = 0) {
    const r = await u.c.post(`${C}/keys/upload`, { device_keys: u.dev.deviceKeys, one_time_keys: oneTimeKeys(u.dev, otks) });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body;
  }

  async function sync(u: User, since = u.since) {
    const r = await u.c.get(`${C}/sync?timeout=0${since ? `&since=${since}` : ''}`);
    expect(r.status).toBe(200);
    u.since = r.body.next_batch;
    return r.body;
  }

  async function shareRoom(a: User, b: User): Promise<string> {
    const room = (await a.c.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    expect((await b.c.post(`${C}/join/${encodeURIComponent(room)}`, {})).status).toBe(200);
    return room;
  }

  describe('/keys/upload, /keys/query, /keys/claim', () => {
    it('stores device keys, one-time keys and a fallback key and reports counts in the response and in sync', async () => {
      const a = await user();
      const fb = oneTimeKeys(a.dev, 1, 900, true);
      const r = await a.c.post(`${C}/keys/upload`, { device_keys: a.dev.deviceKeys, one_time_keys: oneTimeKeys(a.dev, 5), fallback_keys: fb });
      expect(r.status).toBe(200);
      expect(r.body.one_time_key_counts.signed_curve25519).toBe(5);
      const s = await sync(a);
      expect(s.device_one_time_keys_count.signed_curve25519).toBe(5);
      expect(s.device_unused_fallback_key_types).toEqual(['signed_curve25519']);

      await a.c.put(`${C}/devices/${a.deviceId}`, { display_name: 'Phone' });
      const q = await a.c.post(`${C}/keys/query`, { device_keys: { [a.userId]: [] } });
      expect(q.status).toBe(200);
      const got = q.body.device_keys[a.userId][a.deviceId];
      expect(got.keys).toEqual((a.dev.deviceKeys as any).keys);
      expect(got.signatures).toEqual((a.dev.deviceKeys as any).signatures);
      expect(got.unsigned).toEqual({ device_display_name: 'Phone' });
      // Asking for a device that does not exist leaves it out.
      const q2 = await a.c.post(`${C}/keys/query`, { device_keys: { [a.userId]: ['NOPE'] } });
      expect(q2.body.device_keys[a.userId]).toEqual({});

      // Uploading the same one-time key again is harmless; counts go up with new keys only.
      const again = await a.c.post(`${C}/keys/upload`, { one_time_keys: oneTimeKeys(a.dev, 2, 100) });
      expect(again.body.one_time_key_counts.signed_curve25519).toBe(7);
    });

    it('claims one-time keys once each, oldest upload first, then the fallback key (marked used, reused)', async () => {
      const a = await user();
      const b = await user();
      const first = oneTimeKeys(a.dev, 2, 0);
      await a.c.post(`${C}/keys/upload`, { device_keys: a.dev.deviceKeys, one_time_keys: first });
      const second = oneTimeKeys(a.dev, 1, 10);
      await a.c.post(`${C}/keys/upload`, { one_time_keys: second, fallback_keys: oneTimeKeys(a.dev, 1, 500, true) });
      const claimed: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await b.c.post(`${C}/keys/claim`, { one_time_keys: { [a.userId]: { [a.deviceId]: 'signed_curve25519' } } });
        expect(r.status).toBe(200);
        const keys = r.body.one_time_keys[a.userId][a.deviceId];
        claimed.push(...Object.keys(keys));
      }
      expect(new Set(claimed).size).toBe(3);
      expect(claimed.slice(0, 2).sort()).toEqual(Object.keys(first).sort());
      expect(claimed[2]).toBe(Object.keys(second)[0]);
      expect((await sync(a)).device_unused_fallback_key_types).toEqual(['signed_curve25519']);

      const f1 = await b.c.post(`${C}/keys/claim`, { one_time_keys: { [a.userId]: { [a.deviceId]: 'signed_curve25519' } } });
      const fk = f1.body.one_time_keys[a.userId][a.deviceId];
      expect(Object.keys(fk)).toEqual(['signed_curve25519:AAAA500']);
      expect(fk['signed_curve25519:AAAA500'].fallback).toBe(true);
      const f2 = await b.c.post(`${C}/keys/claim`, { one_time_keys: { [a.userId]: { [a.deviceId]: 'signed_curve25519' } } });
      expect(f2.body.one_time_keys[a.userId][a.deviceId]).toEqual(fk);
      const s = await sync(a);
      expect(s.device_unused_fallback_key_types).toEqual([]);
      expect(s.device_one_time_keys_count.signed_curve25519 ?? 0).toBe(0);
      // A new fallback key is unused again.
      await a.c.post(`${C}/keys/upload`, { fallback_keys: oneTimeKeys(a.dev, 1, 501, true) });
      expect((await sync(a)).device_unused_fallback_key_types).toEqual(['signed_curve25519']);
      // Unknown devices and algorithms return nothing.
      const none = await b.c.post(`${C}/keys/claim`, { one_time_keys: { [a.userId]: { NODEVICE: 'signed_curve25519' } } });
      expect(none.body.one_time_keys).toEqual({});
    });

    it('refuses bad uploads with the spec errors and stores nothing', async () => {
      const a = await user();
      const other = makeDevice(a.userId, 'SOMEOTHER');
      const wrongUser = makeDevice('@mallory:localhost', a.deviceId);
      const forged = { ...a.dev.deviceKeys, keys: { ...(a.dev.deviceKeys as any).keys, [`curve25519:${a.deviceId}`]: curveKey() } };
      const cases: Array<[unknown, number, string]> = [
        [{ device_keys: other.deviceKeys }, 400, 'M_BAD_JSON'],
        [{ device_keys: wrongUser.deviceKeys }, 400, 'M_BAD_JSON'],
        [{ device_keys: forged }, 400, 'M_INVALID_SIGNATURE'],
        [{ device_keys: { ...a.dev.deviceKeys, keys: { [`ed25519:${a.deviceId}`]: 'short' } } }, 400, 'M_BAD_JSON'],
        [{ device_keys: 'nope' }, 400, 'M_BAD_JSON'],
        // One-time keys signed by another device's key, or unsigned where a signature is needed.
        [{ device_keys: a.dev.deviceKeys, one_time_keys: oneTimeKeys(other, 1) }, 400, 'M_INVALID_SIGNATURE'],
        [{ device_keys: a.dev.deviceKeys, one_time_keys: { 'signed_curve25519:X': curveKey() } }, 400, 'M_BAD_JSON'],
        [{ device_keys: a.dev.deviceKeys, one_time_keys: { nocolon: { key: curveKey(), signatures: {} } } }, 400, 'M_BAD_JSON'],
        [{ device_keys: a.dev.deviceKeys, one_time_keys: oneTimeKeys(a.dev, 1001) }, 413, 'M_TOO_LARGE'],
        [{ device_keys: a.dev.deviceKeys, fallback_keys: { ...oneTimeKeys(a.dev, 1, 1, true), ...oneTimeKeys(a.dev, 1, 2, true) } }, 400, 'M_INVALID_PARAM'],
        [{ device_keys: { ...a.dev.deviceKeys, extra: 'x'.repeat(20_000) } }, 400, 'M_INVALID_SIGNATURE'],
      ];
      for (const [body, status, errcode] of cases) {
        const r = await a.c.post(`${C}/keys/upload`, body);
        expect(r.status, JSON.stringify(body).slice(0, 200)).toBe(status);
        expect(r.body.errcode).toBe(errcode);
      }
      // An oversized but correctly signed device key object.
      const big = sign({ ...(({ signatures: _s, ...rest }) => rest)(a.dev.deviceKeys as any), extra: 'x'.repeat(20_000) }, a.userId, a.dev.ed);
      const rb = await a.c.post(`${C}/keys/upload`, { device_keys: big });
      expect([rb.status, rb.body.errcode]).toEqual([413, 'M_TOO_LARGE']);
      // The old path with someone else's device ID.
      expect((await a.c.post(`${C}/keys/upload/SOMEOTHER`, { device_keys: other.deviceKeys })).status).toBe(403);

      const q = await a.c.post(`${C}/keys/query`, { device_keys: { [a.userId]: [] } });
      expect(q.body.device_keys[a.userId]).toEqual({});
      expect((await sync(a)).device_one_time_keys_count.signed_curve25519 ?? 0).toBe(0);

      // A one-time key ID reused with a different key is refused; the batch is not stored.
      await upload(a, 1);
      const dup = await a.c.post(`${C}/keys/upload`, { one_time_keys: { ...oneTimeKeys(a.dev, 1, 0), ...oneTimeKeys(a.dev, 1, 50) } });
      expect([dup.status, dup.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
      expect((await a.c.post(`${C}/keys/upload`, {})).body.one_time_key_counts.signed_curve25519).toBe(1);

      // Malformed requests to query and claim.
      expect((await a.c.post(`${C}/keys/query`, { device_keys: { [a.userId]: 'x' } })).body.errcode).toBe('M_BAD_JSON');
      expect((await a.c.post(`${C}/keys/query`, {})).body.errcode).toBe('M_BAD_JSON');
      expect((await a.c.post(`${C}/keys/claim`, { one_time_keys: { [a.userId]: { D: 1 } } })).body.errcode).toBe('M_BAD_JSON');
      expect((await a.c.post(`${C}/keys/query`, { device_keys: { [a.userId]: [] } }, { token: null })).status).toBe(401);
    });
  });

  describe('device lists', () => {
    it('tells room members about key uploads, new and deleted devices, joins and leaves, in sync and /keys/changes', async () => {
      const a = await user();
      const b = await user();
      const c = await user();
      await upload(a);
      await upload(b);
      const room = await shareRoom(a, b);
      const s0 = await sync(a);
      expect(s0.device_lists).toEqual({ changed: [], left: [] });
      const from = a.since!;

      // b logs in a new device and uploads its keys.
      const b2 = await login(b);
      await upload(b2);
      const s1 = await sync(a);
      expect(s1.device_lists.changed).toContain(b.userId);
      // c shares no room with a: its changes are not a's business.
      await upload(c);
      expect((await sync(a)).device_lists.changed).not.toContain(c.userId);
      const ch = await a.c.get(`${C}/keys/changes?from=${from}&to=${a.since}`);
      expect(ch.status).toBe(200);
      expect(ch.body.changed).toContain(b.userId);
      expect(ch.body.changed).not.toContain(c.userId);

      // b's own first device hears about its other device too.
      await sync(b);
      const b3 = await login(b);
      await upload(b3);
      expect((await sync(b)).device_lists.changed).toContain(b.userId);

      // c joins the room: a must fetch c's devices; c must fetch everyone's.
      await sync(c);
      await c.c.post(`${C}/join/${encodeURIComponent(room)}`, {});
      expect((await sync(a)).device_lists.changed).toContain(c.userId);
      const sc = await sync(c);
      expect(sc.device_lists.changed).toEqual(expect.arrayContaining([a.userId, b.userId]));

      // Deleting a device is a change.
      await sync(a);
      const del = await b.c.post(`${C}/delete_devices`, { devices: [b3.deviceId], auth: uiaPassword(b.userId, PW) });
      if (del.status === 401) {
        const r = await b.c.post(`${C}/delete_devices`, { devices: [b3.deviceId], auth: uiaPassword(b.userId, PW, del.body.session) });
        expect(r.status).toBe(200);
      } else expect(del.status).toBe(200);
      await expect.poll(async () => (await sync(a)).device_lists.changed, { timeout: 5000 }).toContain(b.userId);
      const gone = await a.c.post(`${C}/keys/query`, { device_keys: { [b.userId]: [] } });
      expect(Object.keys(gone.body.device_keys[b.userId]).sort()).toEqual([b.deviceId, b2.deviceId].sort());

      // b leaves: a no longer shares a room with b.
      await b.c.post(`${C}/rooms/${encodeURIComponent(room)}/leave`, {});
      const sl = await sync(a);
      expect(sl.device_lists.left).toEqual([b.userId]);
      expect(sl.device_lists.changed).not.toContain(b.userId);
      // c leaves: c stops tracking a and b.
      await sync(c);
      await c.c.post(`${C}/rooms/${encodeURIComponent(room)}/leave`, {});
      expect((await sync(c)).device_lists.left).toEqual([a.userId]);
    });

    it('wakes a long-polling sync when a room member uploads new keys', async () => {
      const a = await user();
      const b = await user();
      await shareRoom(a, b);
      await sync(a);
      const started = Date.now();
      const pending = a.c.get(`${C}/sync?timeout=20000&since=${a.since}`);
      await new Promise((r) => setTimeout(r, 300));
      await upload(b);
      const r = await pending;
      expect(r.body.device_lists.changed).toContain(b.userId);
      expect(Date.now() - started).toBeLessThan(15000);
    });
  });

  describe('cross-signing', () => {
    it('uploads keys (first time without UIA, replacement with UIA), checks signatures and shows keys per the visibility rules', async () => {
      const a = await user();
      const b = await user();
      await upload(a);
      await shareRoom(a, b);
      const cs = makeCrossSigning(a.userId);

      // Bad uploads first: nothing stored.
      const badSsk = sign({ user_id: a.userId, usage: ['self_signing'], keys: { [cs.selfSigning.key.keyId]: cs.selfSigning.pub } }, a.userId, ed25519());
      let r = await a.c.post(`${C}/keys/device_signing/upload`, { master_key: cs.body.master_key, self_signing_key: badSsk });
      expect([r.status, r.body.errcode]).toEqual([400, 'M_INVALID_SIGNATURE']);
      r = await a.c.post(`${C}/keys/device_signing/upload`, { self_signing_key: cs.body.self_signing_key });
      expect([r.status, r.body.errcode]).toEqual([400, 'M_MISSING_PARAM']);
      r = await a.c.post(`${C}/keys/device_signing/upload`, { master_key: { ...cs.body.master_key, user_id: b.userId } });
      expect([r.status, r.body.errcode]).toEqual([400, 'M_BAD_JSON']);
      r = await a.c.post(`${C}/keys/device_signing/upload`, { master_key: { ...cs.body.master_key, usage: ['self_signing'] } });
      expect([r.status, r.body.errcode]).toEqual([400, 'M_BAD_JSON']);
      expect((await b.c.post(`${C}/keys/query`, { device_keys: { [a.userId]: [] } })).body.master_keys).toEqual({});

      await sync(b);
      r = await a.c.post(`${C}/keys/device_signing/upload`, cs.body);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect((await sync(b)).device_lists.changed).toContain(a.userId);
      // The same keys again: idempotent, no UIA.
      expect((await a.c.post(`${C}/keys/device_signing/upload`, cs.body)).status).toBe(200);

      const mine = await a.c.post(`${C}/keys/query`, { device_keys: { [a.userId]: [] } });
      expect(mine.body.master_keys[a.userId].keys).toEqual(cs.body.master_key.keys);
      expect(mine.body.self_signing_keys[a.userId]).toEqual(cs.body.self_signing_key);
      expect(mine.body.user_signing_keys[a.userId]).toEqual(cs.body.user_signing_key);
      const theirs = await b.c.post(`${C}/keys/query`, { device_keys: { [a.userId]: [] } });
      expect(theirs.body.master_keys[a.userId].keys).toEqual(cs.body.master_key.keys);
      expect(theirs.body.self_signing_keys[a.userId]).toEqual(cs.body.self_signing_key);
      expect(theirs.body.user_signing_keys[a.userId]).toBeUndefined();

      // Replacing keys needs the password.
      const cs2 = makeCrossSigning(a.userId);
      r = await a.c.post(`${C}/keys/device_signing/upload`, cs2.body);
      expect(r.status).toBe(401);
      expect(r.body.flows).toEqual([{ stages: ['m.login.password'] }]);
      const wrong = await a.c.post(`${C}/keys/device_signing/upload`, { ...cs2.body, auth: { ...uiaPassword(a.userId, 'wrong'), session: r.body.session } });
      expect([wrong.status, wrong.body.errcode]).toEqual([401, 'M_FORBIDDEN']);
      expect((await a.c.post(`${C}/keys/query`, { device_keys: { [a.userId]: [] } })).body.master_keys[a.userId].keys).toEqual(cs.body.master_key.keys);
      const ok = await a.c.post(`${C}/keys/device_signing/upload`, { ...cs2.body, auth: uiaPassword(a.userId, PW, r.body.session) });
      expect(ok.status, JSON.stringify(ok.body)).toBe(200);
      expect((await a.c.post(`${C}/keys/query`, { device_keys: { [a.userId]: [] } })).body.master_keys[a.userId].keys).toEqual(cs2.body.master_key.keys);
    });

    it('accepts valid signatures, reports per-key failures, and keeps user-signing signatures private', async () => {
      const a = await user();
      const b = await user();
      await upload(a);
      await upload(b);
      await shareRoom(a, b);
      const csa = makeCrossSigning(a.userId);
      const csb = makeCrossSigning(b.userId);
      expect((await a.c.post(`${C}/keys/device_signing/upload`, csa.body)).status).toBe(200);
      expect((await b.c.post(`${C}/keys/device_signing/upload`, csb.body)).status).toBe(200);

      await sync(b);
      // a signs its device with its self-signing key, and its master key with its device.
      const deviceSigned = sign(a.dev.deviceKeys, a.userId, csa.selfSigning);
      const masterSigned = sign(csa.body.master_key, a.userId, a.dev.ed);
      // A forged signature, an unknown device, and a tampered object.
      const forged = sign(a.dev.deviceKeys, a.userId, ed25519(csa.selfSigning.pub));
      const tampered = sign({ ...(a.dev.deviceKeys as any), algorithms: ['x'] }, a.userId, csa.selfSigning);
      let r = await a.c.post(`${C}/keys/signatures/upload`, { [a.userId]: { [a.deviceId]: deviceSigned, [csa.master.pub]: masterSigned, NODEVICE: deviceSigned } });
      expect(r.status).toBe(200);
      expect(Object.keys(r.body.failures[a.userId] ?? {})).toEqual(['NODEVICE']);
      expect(r.body.failures[a.userId].NODEVICE.errcode).toBe('M_NOT_FOUND');
      r = await a.c.post(`${C}/keys/signatures/upload`, { [a.userId]: { [a.deviceId]: forged } });
      expect(r.body.failures[a.userId][a.deviceId].errcode).toBe('M_INVALID_SIGNATURE');
      r = await a.c.post(`${C}/keys/signatures/upload`, { [a.userId]: { [a.deviceId]: tampered } });
      expect(r.body.failures[a.userId][a.deviceId].errcode).toBe('M_BAD_JSON');

      const seenByB = await b.c.post(`${C}/keys/query`, { device_keys: { [a.userId]: [] } });
      expect(seenByB.body.device_keys[a.userId][a.deviceId].signatures[a.userId][csa.selfSigning.key.keyId]).toBe(deviceSigned.signatures[a.userId][csa.selfSigning.key.keyId]);
      expect(seenByB.body.master_keys[a.userId].signatures[a.userId][`ed25519:${a.deviceId}`]).toBeDefined();
      expect((await sync(b)).device_lists.changed).toContain(a.userId);

      // a signs b's master key with its user-signing key: a sees it, b does not.
      const bMasterSigned = sign(csb.body.master_key, a.userId, csa.userSigning);
      r = await a.c.post(`${C}/keys/signatures/upload`, { [b.userId]: { [csb.master.pub]: bMasterSigned } });
      expect(r.body.failures).toEqual({});
      const aView = await a.c.post(`${C}/keys/query`, { device_keys: { [b.userId]: [] } });
      expect(aView.body.master_keys[b.userId].signatures[a.userId][csa.userSigning.key.keyId]).toBeDefined();
      const bView = await b.c.post(`${C}/keys/query`, { device_keys: { [b.userId]: [] } });
      expect(bView.body.master_keys[b.userId].signatures[a.userId]).toBeUndefined();
      // Signing b's master key with the wrong key fails.
      r = await a.c.post(`${C}/keys/signatures/upload`, { [b.userId]: { [csb.master.pub]: sign(csb.body.master_key, a.userId, ed25519(csa.userSigning.pub)) } });
      expect(r.body.failures[b.userId][csb.master.pub].errcode).toBe('M_INVALID_SIGNATURE');
    });
  });

  describe('server-side key backup', () => {
    const algorithm = 'm.megolm_backup.v1.curve25519-aes-sha2';
    const data = (fmi: number, fwd: number, verified: boolean, tag = 'x') => ({
      first_message_index: fmi,
      forwarded_count: fwd,
      is_verified: verified,
      session_data: { ephemeral: tag, ciphertext: tag, mac: tag },
    });

    it('creates, reads, updates and deletes versions and keys at every granularity', async () => {
      const a = await user();
      expect((await a.c.get(`${C}/room_keys/version`)).body.errcode).toBe('M_NOT_FOUND');
      const v1 = await a.c.post(`${C}/room_keys/version`, { algorithm, auth_data: { public_key: 'pk1' } });
      expect(v1.status).toBe(200);
      const version = v1.body.version as string;
      let info = (await a.c.get(`${C}/room_keys/version`)).body;
      expect(info).toMatchObject({ algorithm, auth_data: { public_key: 'pk1' }, count: 0, version });
      const etag0 = info.etag;

      let r = await a.c.put(`${C}/room_keys/keys?version=${version}`, { rooms: { '!r1:localhost': { sessions: { s1: data(5, 0, false), s2: data(0, 0, false) } } } });
      expect(r.status).toBe(200);
      expect(r.body.count).toBe(2);
      expect(r.body.etag).not.toBe(etag0);
      r = await a.c.put(`${C}/room_keys/keys/${encodeURIComponent('!r2:localhost')}?version=${version}`, { sessions: { s3: data(0, 0, false) } });
      expect(r.body.count).toBe(3);
      r = await a.c.put(`${C}/room_keys/keys/${encodeURIComponent('!r2:localhost')}/s4?version=${version}`, data(1, 1, true));
      expect(r.body.count).toBe(4);

      // Replacement: better keys replace, worse ones are ignored (etag unchanged).
      const etag1 = r.body.etag;
      const s1 = () => a.c.get(`${C}/room_keys/keys/${encodeURIComponent('!r1:localhost')}/s1?version=${version}`);
      r = await a.c.put(`${C}/room_keys/keys/${encodeURIComponent('!r1:localhost')}/s1?version=${version}`, data(9, 0, false, 'worse'));
      expect(r.body.etag).toBe(etag1);
      expect((await s1()).body.session_data.mac).toBe('x');
      await a.c.put(`${C}/room_keys/keys/${encodeURIComponent('!r1:localhost')}/s1?version=${version}`, data(2, 3, false, 'lower-index'));
      expect((await s1()).body.session_data.mac).toBe('lower-index');
      await a.c.put(`${C}/room_keys/keys/${encodeURIComponent('!r1:localhost')}/s1?version=${version}`, data(2, 1, false, 'fewer-forwards'));
      expect((await s1()).body.session_data.mac).toBe('fewer-forwards');
      await a.c.put(`${C}/room_keys/keys/${encodeURIComponent('!r1:localhost')}/s1?version=${version}`, data(50, 9, true, 'verified'));
      expect((await s1()).body).toEqual(data(50, 9, true, 'verified'));
      await a.c.put(`${C}/room_keys/keys/${encodeURIComponent('!r1:localhost')}/s1?version=${version}`, data(0, 0, false, 'unverified'));
      expect((await s1()).body.session_data.mac).toBe('verified');

      const all = await a.c.get(`${C}/room_keys/keys?version=${version}`);
      expect(Object.keys(all.body.rooms).sort()).toEqual(['!r1:localhost', '!r2:localhost']);
      expect(Object.keys(all.body.rooms['!r2:localhost'].sessions).sort()).toEqual(['s3', 's4']);
      const room = await a.c.get(`${C}/room_keys/keys/${encodeURIComponent('!r2:localhost')}?version=${version}`);
      expect(Object.keys(room.body.sessions).sort()).toEqual(['s3', 's4']);
      expect((await a.c.get(`${C}/room_keys/keys/${encodeURIComponent('!none:localhost')}?version=${version}`)).body).toEqual({ sessions: {} });
      expect((await a.c.get(`${C}/room_keys/keys/${encodeURIComponent('!none:localhost')}/x?version=${version}`)).body.errcode).toBe('M_NOT_FOUND');

      // Another user sees nothing of it.
      const b = await user();
      expect((await b.c.get(`${C}/room_keys/version`)).status).toBe(404);
      expect((await b.c.get(`${C}/room_keys/keys?version=${version}`)).status).toBe(404);

      // Deleting at each granularity.
      r = await a.c.del(`${C}/room_keys/keys/${encodeURIComponent('!r2:localhost')}/s4?version=${version}`);
      expect(r.body.count).toBe(3);
      r = await a.c.del(`${C}/room_keys/keys/${encodeURIComponent('!r2:localhost')}?version=${version}`);
      expect(r.body.count).toBe(2);
      r = await a.c.del(`${C}/room_keys/keys?version=${version}`);
      expect(r.body.count).toBe(0);
      info = (await a.c.get(`${C}/room_keys/version/${version}`)).body;
      expect(info.count).toBe(0);

      // Updating: only auth_data changes; the algorithm and version must match.
      expect((await a.c.put(`${C}/room_keys/version/${version}`, { algorithm, auth_data: { public_key: 'pk1b' } })).status).toBe(200);
      expect((await a.c.get(`${C}/room_keys/version/${version}`)).body.auth_data).toEqual({ public_key: 'pk1b' });
      expect((await a.c.put(`${C}/room_keys/version/${version}`, { algorithm: 'other.algorithm', auth_data: {} })).body.errcode).toBe('M_INVALID_PARAM');
      expect((await a.c.put(`${C}/room_keys/version/${version}`, { algorithm, auth_data: { public_key: 'x' }, version: '999' })).body.errcode).toBe('M_INVALID_PARAM');
      expect((await a.c.put(`${C}/room_keys/version/999`, { algorithm, auth_data: { public_key: 'x' } })).status).toBe(404);

      // A new version makes the old one read-only for keys.
      const v2 = (await a.c.post(`${C}/room_keys/version`, { algorithm, auth_data: { public_key: 'pk2' } })).body.version as string;
      expect(v2).not.toBe(version);
      r = await a.c.put(`${C}/room_keys/keys/${encodeURIComponent('!r1:localhost')}/s1?version=${version}`, data(0, 0, false));
      expect([r.status, r.body.errcode, r.body.current_version]).toEqual([403, 'M_WRONG_ROOM_KEYS_VERSION', v2]);
      expect((await a.c.get(`${C}/room_keys/version`)).body.version).toBe(v2);

      // Delete the version; deleting it again succeeds; unknown versions are 404.
      expect((await a.c.del(`${C}/room_keys/version/${v2}`)).status).toBe(200);
      expect((await a.c.del(`${C}/room_keys/version/${v2}`)).status).toBe(200);
      expect((await a.c.del(`${C}/room_keys/version/12345`)).status).toBe(404);
      expect((await a.c.get(`${C}/room_keys/version/${v2}`)).status).toBe(404);
      expect((await a.c.get(`${C}/room_keys/version`)).body.version).toBe(version);
    });

    it('refuses malformed backup data without storing any of it', async () => {
      const a = await user();
      expect((await a.c.post(`${C}/room_keys/version`, { algorithm, auth_data: 'x' })).body.errcode).toBe('M_BAD_JSON');
      expect((await a.c.post(`${C}/room_keys/version`, { algorithm, auth_data: {} })).body.errcode).toBe('M_BAD_JSON');
      const version = (await a.c.post(`${C}/room_keys/version`, { algorithm, auth_data: { public_key: 'pk' } })).body.version;
      const bad = [
        { rooms: { '!r:localhost': { sessions: { ok: data(0, 0, false), bad: { ...data(0, 0, false), is_verified: 'yes' } } } } },
        { rooms: { '!r:localhost': { sessions: { bad: { ...data(0, 0, false), first_message_index: -1 } } } } },
        { rooms: { '!r:localhost': { sessions: { bad: { ...data(0, 0, false), session_data: 'x' } } } } },
        { rooms: { '!r:localhost': 'x' } },
        { rooms: 5 },
      ];
      for (const body of bad) {
        const r = await a.c.put(`${C}/room_keys/keys?version=${version}`, body);
        expect([r.status, r.body.errcode]).toEqual([400, 'M_BAD_JSON']);
      }
      expect((await a.c.get(`${C}/room_keys/version`)).body.count).toBe(0);
      expect((await a.c.put(`${C}/room_keys/keys`, { rooms: {} })).body.errcode).toBe('M_MISSING_PARAM');
    });
  });

  describe('send-to-device', () => {
    it('delivers to one device or all (*), once per transaction, until acknowledged', async () => {
      const a = await user();
      const b = await user();
      const b2 = await login(b);
      await sync(b);
      await sync(b2);

      let r = await a.c.put(`${C}/sendToDevice/m.test/txn1`, { messages: { [b.userId]: { [b.deviceId]: { n: 1 } } } });
      expect(r.status).toBe(200);
      // Retrying the same transaction does not send again.
      r = await a.c.put(`${C}/sendToDevice/m.test/txn1`, { messages: { [b.userId]: { [b.deviceId]: { n: 1 } } } });
      expect(r.status).toBe(200);
      await a.c.put(`${C}/sendToDevice/m.test/txn2`, { messages: { [b.userId]: { '*': { n: 2 } } } });

      const prev = b.since;
      const s1 = await sync(b);
      expect(s1.to_device.events).toEqual([
        { sender: a.userId, type: 'm.test', content: { n: 1 } },
        { sender: a.userId, type: 'm.test', content: { n: 2 } },
      ]);
      // The same token again (the response was lost): the same messages again.
      const retry = await sync(b, prev);
      expect(retry.to_device.events).toHaveLength(2);
      // The next token acknowledges them: never delivered again.
      expect((await sync(b)).to_device.events).toEqual([]);
      expect((await sync(b)).to_device.events).toEqual([]);
      expect((await sync(b2)).to_device.events).toEqual([{ sender: a.userId, type: 'm.test', content: { n: 2 } }]);

      // Bad input.
      expect((await a.c.put(`${C}/sendToDevice/m.test/t3`, { messages: { [b.userId]: { [b.deviceId]: 'x' } } })).body.errcode).toBe('M_BAD_JSON');
      expect((await a.c.put(`${C}/sendToDevice/m.test/t3`, {})).body.errcode).toBe('M_BAD_JSON');
      expect((await a.c.put(`${C}/sendToDevice/m.test/t3`, { messages: { notauser: {} } })).body.errcode).toBe('M_INVALID_PARAM');
      expect((await sync(b)).to_device.events).toEqual([]);
    });

    it('wakes the recipient and pages large queues 100 at a time without losing or repeating any', async () => {
      const a = await user();
      const b = await user();
      await sync(b);
      const pending = b.c.get(`${C}/sync?timeout=20000&since=${b.since}`);
      await new Promise((r) => setTimeout(r, 300));
      await a.c.put(`${C}/sendToDevice/m.wake/w1`, { messages: { [b.userId]: { [b.deviceId]: { hi: true } } } });
      const woke = await pending;
      expect(woke.body.to_device.events).toEqual([{ sender: a.userId, type: 'm.wake', content: { hi: true } }]);
      b.since = woke.body.next_batch;

      for (let i = 0; i < 250; i++) {
        await a.c.put(`${C}/sendToDevice/m.batch/b${i}`, { messages: { [b.userId]: { [b.deviceId]: { i } } } });
      }
      const got: number[] = [];
      const sizes: number[] = [];
      for (let k = 0; k < 5; k++) {
        const s = await sync(b);
        sizes.push(s.to_device.events.length);
        got.push(...s.to_device.events.map((e: any) => e.content.i));
      }
      expect(sizes).toEqual([100, 100, 50, 0, 0]);
      expect(got).toEqual(Array.from({ length: 250 }, (_, i) => i));
    });

    it('deleting a device removes its keys and pending messages', async () => {
      const a = await user();
      const a2 = await login(a);
      await upload(a2, 3);
      await a.c.put(`${C}/sendToDevice/m.test/x1`, { messages: { [a.userId]: { [a2.deviceId]: { n: 1 } } } });
      let del = await a.c.del(`${C}/devices/${a2.deviceId}`, {});
      expect(del.status).toBe(401);
      del = await a.c.del(`${C}/devices/${a2.deviceId}`, { auth: uiaPassword(a.userId, PW, del.body.session) });
      expect(del.status).toBe(200);
      await expect
        .poll(async () => Object.keys((await a.c.post(`${C}/keys/query`, { device_keys: { [a.userId]: [] } })).body.device_keys[a.userId]), { timeout: 5000 })
        .toEqual([]);
      const claim = await a.c.post(`${C}/keys/claim`, { one_time_keys: { [a.userId]: { [a2.deviceId]: 'signed_curve25519' } } });
      expect(claim.body.one_time_keys).toEqual({});
    });
  });
});

describe.each<Engine>(['sqlite', 'postgres'])('to-device messages across a restart on %s', (engine) => {
  it('keeps undelivered and unacknowledged messages, and never repeats acknowledged ones', async () => {
    const srv = await startRestartable(engine);
    try {
      const a = new TestClient(srv.url);
      const b = new TestClient(srv.url);
      await a.register('alice');
      const breg = await b.register('bob');
      const s0 = await b.get(`${C}/sync?timeout=0`);
      await a.put(`${C}/sendToDevice/m.test/1`, { messages: { [breg.user_id]: { [breg.device_id]: { n: 1 } } } });
      const s1 = await b.get(`${C}/sync?timeout=0&since=${s0.body.next_batch}`);
      expect(s1.body.to_device.events.map((e: any) => e.content.n)).toEqual([1]);
      await a.put(`${C}/sendToDevice/m.test/2`, { messages: { [breg.user_id]: { [breg.device_id]: { n: 2 } } } });

      await srv.restart();

      // The same transaction ID after the restart is still a duplicate.
      await a.put(`${C}/sendToDevice/m.test/2`, { messages: { [breg.user_id]: { [breg.device_id]: { n: 2 } } } });
      // Syncing with the token that delivered n=1 acknowledges it; n=2 is delivered once.
      const s2 = await b.get(`${C}/sync?timeout=0&since=${s1.body.next_batch}`);
      expect(s2.body.to_device.events.map((e: any) => e.content.n)).toEqual([2]);
      const s3 = await b.get(`${C}/sync?timeout=0&since=${s2.body.next_batch}`);
      expect(s3.body.to_device.events).toEqual([]);
      await a.put(`${C}/sendToDevice/m.test/3`, { messages: { [breg.user_id]: { [breg.device_id]: { n: 3 } } } });

      await srv.restart();
      const s4 = await b.get(`${C}/sync?timeout=0&since=${s3.body.next_batch}`);
      expect(s4.body.to_device.events.map((e: any) => e.content.n)).toEqual([3]);
      const s5 = await b.get(`${C}/sync?timeout=0&since=${s4.body.next_batch}`);
      expect(s5.body.to_device.events).toEqual([]);
    } finally {
      await srv.close();
    }
  });
});
