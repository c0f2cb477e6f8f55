/**
 * Dehydrated devices (MSC3814): the endpoints with hand-built keys (validation, batching of the
 * parked device's to-device messages, replacement, deletion), then the whole flow with
 * matrix-js-sdk's Rust crypto: a user parks a device, logs out everywhere, a message is sent
 * while no client of hers runs, and a new login rehydrates the device and reads it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type MatrixClient } from 'matrix-js-sdk';
import type { Engine, TestServer } from '../_util/server.js';
import { quietJsSdk, until, startSyncing } from '../_util/js-sdk.js';
import { startAccountsServer, TestClient, uiaPassword } from './_client.js';
import { makeDevice, oneTimeKeys, sign, type TestDevice } from './_e2ee.js';

quietJsSdk();

const C = '/_matrix/client/v3';
const D = '/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device';
const PW = 'correct horse battery';
const enc = encodeURIComponent;

describe.each<Engine>(['sqlite', 'postgres'])('dehydrated devices on %s', (engine) => {
  let t: TestServer;
  let n = 0;

  beforeAll(async () => {
    t = await startAccountsServer(engine);
  });
  afterAll(() => t?.close());

  async function user(): Promise<{ c: TestClient; userId: string; deviceId: string }> {
    const c = new TestClient(t.clientUrl);
    const reg = await c.register(`dh${++n}x${Date.now() % 100000}`);
    return { c, userId: reg.user_id, deviceId: reg.device_id };
  }

  function parked(userId: string, deviceId: string): { dev: TestDevice; body: Record<string, unknown> } {
    const dev = makeDevice(userId, deviceId);
    const deviceKeys = sign({ ...stripSig(dev.deviceKeys), dehydrated: true }, userId, dev.ed);
    const fallback = sign({ key: dev.curve, fallback: true }, userId, dev.ed);
    return {
      dev,
      body: {
        device_id: deviceId,
        device_data: { algorithm: 'm.dehydration.v2', device_pickle: 'opaque-to-the-server', nonce: 'bm9uY2U' },
        initial_device_display_name: 'Dehydrated device',
        device_keys: deviceKeys,
        one_time_keys: oneTimeKeys(dev, 3),
        fallback_keys: { 'signed_curve25519:FB': fallback },
      },
    };
  }

  async function deviceIds(c: TestClient): Promise<string[]> {
    const r = await c.get(`${C}/devices`);
    expect(r.status).toBe(200);
    return (r.body.devices as Array<{ device_id: string }>).map((d) => d.device_id).sort();
  }

  it('is advertised, and answers M_NOT_FOUND / M_FORBIDDEN while the user has none', async () => {
    const v = await new TestClient(t.clientUrl).get('/_matrix/client/versions');
    expect(v.body.unstable_features['org.matrix.msc3814']).toBe(true);
    const u = await user();
    for (const r of [await u.c.get(D), await u.c.del(D)]) {
      expect(r.status).toBe(404);
      expect(r.body.errcode).toBe('M_NOT_FOUND');
    }
    const ev = await u.c.post(`${D}/SOMEDEVICE/events`, {});
    expect(ev.status).toBe(403);
    expect(ev.body.errcode).toBe('M_FORBIDDEN');
    expect((await u.c.get(D, { token: null })).body.errcode).toBe('M_MISSING_TOKEN');
  });

  it('refuses malformed uploads and stores nothing', async () => {
    const u = await user();
    const good = parked(u.userId, 'PARKED1').body;
    const otherDevice = makeDevice(u.userId, 'PARKED1');
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ ...good, device_id: undefined }, 400, 'M_BAD_JSON'],
      [{ ...good, device_id: 42 }, 400, 'M_BAD_JSON'],
      [{ ...good, device_data: 'x' }, 400, 'M_BAD_JSON'],
      [{ ...good, device_data: { nonce: 'x' } }, 400, 'M_BAD_JSON'],
      [{ ...good, device_keys: undefined }, 400, 'M_MISSING_PARAM'],
      [{ ...good, initial_device_display_name: 7 }, 400, 'M_BAD_JSON'],
      [{ ...good, device_data: { algorithm: 'm.dehydration.v2', pad: 'x'.repeat(70_000) } }, 413, 'M_TOO_LARGE'],
      // Keys signed by another key than the device's own.
      [{ ...good, device_keys: sign(stripSig(good.device_keys as Record<string, unknown>), u.userId, otherDevice.ed) }, 400, 'M_INVALID_SIGNATURE'],
      // Keys of another device than the one named (as /keys/upload answers).
      [{ ...good, device_id: 'PARKED2' }, 400, 'M_BAD_JSON'],
      // The ID of one of the user's real devices.
      [{ ...parked(u.userId, u.deviceId).body }, 400, 'M_INVALID_PARAM'],
    ];
    for (const [body, status, errcode] of cases) {
      const r = await u.c.put(D, body);
      expect([r.status, r.body.errcode], JSON.stringify(body).slice(0, 200)).toEqual([status, errcode]);
    }
    expect((await u.c.get(D)).status).toBe(404);
    expect(await deviceIds(u.c)).toEqual([u.deviceId]);
    const q = await u.c.post(`${C}/keys/query`, { device_keys: { [u.userId]: [] } });
    expect(Object.keys(q.body.device_keys[u.userId] ?? {})).toEqual([]);
  });

  it('parks a device whose keys others see, and pages through its to-device messages without deleting them', async () => {
    const alice = await user();
    const bob = await user();
    const { body } = parked(alice.userId, 'ALICEPARKED');
    const put = await alice.c.put(D, body);
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body).toEqual({ device_id: 'ALICEPARKED' });

    const got = await alice.c.get(D);
    expect(got.status).toBe(200);
    expect(got.body).toEqual({ device_id: 'ALICEPARKED', device_data: body.device_data });
    expect(await deviceIds(alice.c)).toEqual([alice.deviceId, 'ALICEPARKED'].sort());

    // Others see it, flagged, with keys to claim.
    const q = await bob.c.post(`${C}/keys/query`, { device_keys: { [alice.userId]: [] } });
    expect(q.body.device_keys[alice.userId].ALICEPARKED.dehydrated).toBe(true);
    const claim = await bob.c.post(`${C}/keys/claim`, { one_time_keys: { [alice.userId]: { ALICEPARKED: 'signed_curve25519' } } });
    expect(Object.keys(claim.body.one_time_keys[alice.userId].ALICEPARKED)).toHaveLength(1);

    // 150 messages: one batch of 100, then 50, then the empty batch that marks the end.
    for (let i = 0; i < 150; i++) {
      const target = i % 2 === 0 ? 'ALICEPARKED' : '*';
      const r = await bob.c.put(`${C}/sendToDevice/m.room_key_test/t${i}`, { messages: { [alice.userId]: { [target]: { i } } } });
      expect(r.status).toBe(200);
    }
    const seen: number[] = [];
    let next: string | undefined;
    const sizes: number[] = [];
    for (let round = 0; round < 5; round++) {
      const r = await alice.c.post(`${D}/ALICEPARKED/events`, next === undefined ? {} : { next_batch: next });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(typeof r.body.next_batch).toBe('string');
      sizes.push(r.body.events.length);
      for (const e of r.body.events) {
        expect(e.sender).toBe(bob.userId);
        expect(e.type).toBe('m.room_key_test');
        seen.push(e.content.i);
      }
      next = r.body.next_batch;
      if (r.body.events.length === 0) break;
    }
    expect(sizes).toEqual([100, 50, 0]);
    expect(seen).toEqual(Array.from({ length: 150 }, (_, i) => i));
    // Reading did not delete: starting over returns the first batch again.
    const again = await alice.c.post(`${D}/ALICEPARKED/events`);
    expect(again.body.events).toHaveLength(100);
    expect(again.body.events[0].content.i).toBe(0);

    const bad = await alice.c.post(`${D}/ALICEPARKED/events`, { next_batch: 'not-a-token' });
    expect([bad.status, bad.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
    const other = await bob.c.post(`${D}/ALICEPARKED/events`, {});
    expect([other.status, other.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
  });

  it('a new upload replaces the parked device, and deleting it removes device, keys and messages', async () => {
    const alice = await user();
    const bob = await user();
    expect((await alice.c.put(D, parked(alice.userId, 'OLDPARKED').body)).status).toBe(200);
    await bob.c.put(`${C}/sendToDevice/m.test/r1`, { messages: { [alice.userId]: { OLDPARKED: { x: 1 } } } });

    const newer = parked(alice.userId, 'NEWPARKED');
    const replaced = await alice.c.put(D, newer.body);
    expect(replaced.status).toBe(200);
    expect((await alice.c.get(D)).body.device_id).toBe('NEWPARKED');
    expect(await deviceIds(alice.c)).toEqual([alice.deviceId, 'NEWPARKED'].sort());
    expect((await alice.c.post(`${D}/OLDPARKED/events`, {})).status).toBe(403);
    await until(
      'the replaced device to leave the key list',
      async () => {
        const q = await bob.c.post(`${C}/keys/query`, { device_keys: { [alice.userId]: [] } });
        const ids = Object.keys(q.body.device_keys[alice.userId] ?? {});
        return !ids.includes('OLDPARKED') && ids.includes('NEWPARKED');
      },
      10_000,
    );

    // Uploading the same device again keeps it (and its messages).
    await bob.c.put(`${C}/sendToDevice/m.test/r2`, { messages: { [alice.userId]: { NEWPARKED: { x: 2 } } } });
    const same = await alice.c.put(D, { ...newer.body, device_data: { algorithm: 'm.dehydration.v2', v: 2 } });
    expect(same.status, JSON.stringify(same.body)).toBe(200);
    expect((await alice.c.get(D)).body.device_data).toEqual({ algorithm: 'm.dehydration.v2', v: 2 });
    expect((await alice.c.post(`${D}/NEWPARKED/events`, {})).body.events).toHaveLength(1);

    const del = await alice.c.del(D);
    expect(del.status).toBe(200);
    expect(del.body).toEqual({ device_id: 'NEWPARKED' });
    expect((await alice.c.get(D)).status).toBe(404);
    expect(await deviceIds(alice.c)).toEqual([alice.deviceId]);
    await until('the deleted devices’ messages to go', async () => {
      const r = await t.server.ctx.database.db
        .selectFrom('device_inbox')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('user_id', '=', alice.userId)
        .where('device_id', 'in', ['OLDPARKED', 'NEWPARKED'])
        .executeTakeFirstOrThrow();
      return Number(r.n) === 0;
    }, 10_000);

    // Deleting it as an ordinary device (with UIA) forgets it as the dehydrated device too.
    expect((await alice.c.put(D, parked(alice.userId, 'THIRD').body)).status).toBe(200);
    const first = await alice.c.del(`${C}/devices/THIRD`, {});
    expect(first.status).toBe(401);
    const done = await alice.c.del(`${C}/devices/THIRD`, { auth: uiaPassword(alice.userId, PW, first.body.session) });
    expect(done.status).toBe(200);
    expect((await alice.c.get(D)).status).toBe(404);
  });

  describe('with matrix-js-sdk and its Rust crypto', () => {
    const clients: MatrixClient[] = [];
    afterAll(() => {
      for (const c of clients) c.stopClient();
    });

    async function start(userId: string, accessToken: string, deviceId: string, ssssKey: { current?: Uint8Array }): Promise<MatrixClient> {
      const client = createClient({
        baseUrl: t.clientUrl,
        accessToken,
        userId,
        deviceId,
        cryptoCallbacks: { getSecretStorageKey: async ({ keys }) => (ssssKey.current ? [Object.keys(keys)[0]!, ssssKey.current] : null) },
      });
      await client.initRustCrypto({ useIndexedDB: false });
      await startSyncing(client);
      clients.push(client);
      return client;
    }

    it('a message sent while the user had no client is read after rehydrating on a new login', async () => {
      const ssss: { current?: Uint8Array } = {};
      const aliceHttp = new TestClient(t.clientUrl);
      const aliceReg = await aliceHttp.register(`dhalice${Date.now() % 100000}`);
      const alice = await start(aliceReg.user_id, aliceReg.access_token, aliceReg.device_id, ssss);
      const crypto = alice.getCrypto()!;
      expect(await crypto.isDehydrationSupported()).toBe(true);

      await crypto.bootstrapCrossSigning({
        authUploadDeviceSigningKeys: async (makeRequest) => {
          try {
            await makeRequest(null);
          } catch (e) {
            const session = (e as { data?: { session?: string } }).data?.session;
            await makeRequest(uiaPassword(aliceReg.user_id, PW, session));
          }
        },
      });
      const recovery = await crypto.createRecoveryKeyFromPassphrase();
      ssss.current = recovery.privateKey;
      await crypto.bootstrapSecretStorage({
        createSecretStorageKey: async () => recovery,
        setupNewSecretStorage: true,
      });
      await crypto.startDehydration({ createNewKey: true });
      const parkedDevice = await until('a dehydrated device on the server', async () => {
        const r = await aliceHttp.get(D);
        return r.status === 200 ? (r.body.device_id as string) : undefined;
      }, 30_000);

      const bobHttp = new TestClient(t.clientUrl);
      const bobReg = await bobHttp.register(`dhbob${Date.now() % 100000}`);
      const bob = await start(bobReg.user_id, bobReg.access_token, bobReg.device_id, {});
      const { room_id: roomId } = await bob.createRoom({
        invite: [aliceReg.user_id],
        initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
      });
      await until('alice to be invited', () => alice.getRoom(roomId), 30_000);
      await alice.joinRoom(roomId);
      await until('bob to see alice join', () => bob.getRoom(roomId)?.getMember(aliceReg.user_id)?.membership === 'join', 30_000);

      // Alice's only client goes away for good (its device and its keys with it).
      alice.stopClient();
      const gone = await aliceHttp.del(`${C}/devices/${enc(aliceReg.device_id)}`, {});
      await aliceHttp.del(`${C}/devices/${enc(aliceReg.device_id)}`, { auth: uiaPassword(aliceReg.user_id, PW, gone.body.session) });
      // The new login below; its token also serves the checks over plain HTTP from here on.
      const login = await new TestClient(t.clientUrl).login(aliceReg.user_id, PW);
      const aliceNow = new TestClient(t.clientUrl, login.access_token);

      // Bob sends while alice has no client: only the parked device can receive the room key.
      await until('bob to know alice’s parked device', async () => {
        const devices = await bob.getCrypto()!.getUserDeviceInfo([aliceReg.user_id], true);
        const ids = [...(devices.get(aliceReg.user_id)?.keys() ?? [])];
        return ids.includes(parkedDevice) && !ids.includes(aliceReg.device_id);
      }, 30_000);
      const { event_id: eventId } = await bob.sendTextMessage(roomId, 'sent while alice was away');
      await until('the room key to reach the parked device', async () => {
        const r = await aliceNow.post(`${D}/${enc(parkedDevice)}/events`, {});
        return r.status === 200 && r.body.events.length > 0;
      }, 30_000);

      // A new login rehydrates the parked device and decrypts the message.
      const alice2 = await start(aliceReg.user_id, login.access_token, login.device_id, ssss);
      const crypto2 = alice2.getCrypto()!;
      // Its own cross-signing keys (public, from the server) must be known before the private
      // ones are taken from secret storage.
      await crypto2.getUserDeviceInfo([aliceReg.user_id], true);
      await until('alice2 to know her cross-signing identity', async () => (await crypto2.getCrossSigningStatus()).publicKeysOnDevice || undefined, 30_000);
      await crypto2.bootstrapCrossSigning({});
      // No other device of alice's exists and there is no key backup: only the room key the
      // parked device received can decrypt the message.
      await crypto2.startDehydration();
      const ev = await until('alice2 to see bob’s message', () => alice2.getRoom(roomId)?.findEventById(eventId), 30_000);
      const body = await until('alice2 to decrypt it', async () => {
        if (ev.isDecryptionFailure() || ev.getType() === 'm.room.encrypted') await alice2.decryptEventIfNeeded(ev, { isRetry: true });
        return ev.getType() === 'm.room.message' ? (ev.getContent().body as string) : undefined;
      }, 30_000);
      expect(body).toBe('sent while alice was away');
      // Rehydration parked a fresh device in place of the used one.
      const now = await aliceNow.get(D);
      expect(now.status).toBe(200);
      expect(now.body.device_id).not.toBe(parkedDevice);
    }, 180_000);
  });
});

function stripSig(o: Record<string, unknown>): Record<string, unknown> {
  const { signatures: _s, ...rest } = o;
  return rest;
}
