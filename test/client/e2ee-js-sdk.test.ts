/**
 * The real matrix-js-sdk with its Rust crypto stack (the wasm build of matrix-sdk-crypto, with
 * an in-memory crypto store) against a running server: encrypted rooms between several users
 * and devices, a late joiner, cross-signing, key backup and restore on a fresh device, and
 * to-device delivery across a server restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientEvent, createClient, type MatrixClient, type MatrixEvent } from 'matrix-js-sdk';
import type { Engine } from '../_util/server.js';
import { TestClient } from './_client.js';
import { startRestartable, type RestartableServer } from './_restartable.js';
import { quietJsSdk, until as waitUntil, startSyncing } from '../_util/js-sdk.js';

quietJsSdk();

const C = '/_matrix/client/v3';
const PW = 'correct horse battery';
const WAIT_MS = 30_000;

const until = <T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = WAIT_MS) =>
  waitUntil(what, fn, timeoutMs, 100);

interface Device {
  userId: string;
  deviceId: string;
  client: MatrixClient;
  http: TestClient;
  /** Wire contents of every to-device event this client received, to detect repeats. */
  toDevice: string[];
  /** While true, the client's requests fail as if the network were down (responses are dropped unread). */
  offline: boolean;
}

describe.each<Engine>(['sqlite', 'postgres'])('matrix-js-sdk Rust crypto on %s', (engine) => {
  let srv: RestartableServer;
  const devices: Device[] = [];
  let alice: Device;
  let bob: Device;
  let roomId: string;
  let firstEventId: string;

  async function startDevice(userId: string, accessToken: string, deviceId: string): Promise<Device> {
    const net = { offline: false };
    const fetchFn: typeof fetch = async (input, init) => {
      if (net.offline) throw new TypeError('network is down');
      const res = await fetch(input, init);
      if (net.offline) throw new TypeError('network is down');
      return res;
    };
    const client = createClient({ baseUrl: srv.url, accessToken, userId, deviceId, fetchFn });
    await client.initRustCrypto({ useIndexedDB: false });
    const d: Device = {
      userId,
      deviceId,
      client,
      http: new TestClient(srv.url, accessToken),
      toDevice: [],
      get offline() {
        return net.offline;
      },
      set offline(v: boolean) {
        net.offline = v;
      },
    };
    client.on(ClientEvent.ToDeviceEvent, (ev: MatrixEvent) => d.toDevice.push(`${ev.getType()} ${JSON.stringify(ev.getWireContent())}`));
    await startSyncing(client);
    devices.push(d);
    return d;
  }

  async function register(name: string): Promise<Device> {
    const http = new TestClient(srv.url);
    const reg = await http.register(name, PW);
    return startDevice(reg.user_id, reg.access_token, reg.device_id);
  }

  async function login(userId: string): Promise<Device> {
    const res = await new TestClient(srv.url).login(userId, PW);
    return startDevice(res.user_id, res.access_token, res.device_id);
  }

  /** Waits until `d` knows `userId`'s device `deviceId` (its crypto fetched their keys). */
  async function knowsDevice(d: Device, userId: string, deviceId: string): Promise<void> {
    await until(`${d.userId}/${d.deviceId} to know ${userId}/${deviceId}`, async () => {
      const map = await d.client.getCrypto()!.getUserDeviceInfo([userId], true);
      return map.get(userId)?.has(deviceId) ?? false;
    });
  }

  /** Waits for an event with this ID in the room on `d`, and for its decryption; returns the plaintext body. */
  async function decryptedBody(d: Device, eventId: string): Promise<string> {
    const ev = await until(`${d.deviceId} to receive ${eventId}`, () => d.client.getRoom(roomId)?.findEventById(eventId));
    return until(`${d.deviceId} to decrypt ${eventId}`, async () => {
      if (ev.isDecryptionFailure() || ev.getType() === 'm.room.encrypted') {
        await d.client.decryptEventIfNeeded(ev, { isRetry: true });
      }
      return ev.getType() === 'm.room.message' ? (ev.getContent().body as string) : undefined;
    });
  }

  async function send(d: Device, body: string): Promise<string> {
    const { event_id } = await d.client.sendTextMessage(roomId, body);
    return event_id;
  }

  beforeAll(async () => {
    srv = await startRestartable(engine, (app, listener) => {
      // The SDK will not start syncing without push rules; until the server serves them, an
      // empty rule set stands in.
      if (listener !== 'client' || app.hasRoute({ method: 'GET', url: `${C}/pushrules/` })) return;
      app.get(`${C}/pushrules/`, async () => ({ global: {} }));
    });
  }, 60_000);

  afterAll(async () => {
    for (const d of devices) d.client.stopClient();
    await srv?.close();
  });

  it('two users in an encrypted room read each other', async () => {
    alice = await register('alice');
    bob = await register('bob');
    const created = await alice.client.createRoom({
      invite: [bob.userId],
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    });
    roomId = created.room_id;
    await until('bob to be invited', () => bob.client.getRoom(roomId));
    await bob.client.joinRoom(roomId);
    await until('alice to see bob join', () => alice.client.getRoom(roomId)?.getMember(bob.userId)?.membership === 'join');
    await knowsDevice(alice, bob.userId, bob.deviceId);

    firstEventId = await send(alice, 'hello bob');
    const raw = await alice.http.get(`${C}/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(firstEventId)}`);
    expect(raw.body.type).toBe('m.room.encrypted');
    expect(JSON.stringify(raw.body)).not.toContain('hello bob');
    expect(await decryptedBody(bob, firstEventId)).toBe('hello bob');

    await knowsDevice(bob, alice.userId, alice.deviceId);
    const reply = await send(bob, 'hello alice');
    expect(await decryptedBody(alice, reply)).toBe('hello alice');
  }, 120_000);

  it('a new device of an existing user gets the keys of later messages', async () => {
    const bob2 = await login(bob.userId);
    await knowsDevice(alice, bob.userId, bob2.deviceId);
    const id = await send(alice, 'for both of bob’s devices');
    expect(await decryptedBody(bob2, id)).toBe('for both of bob’s devices');
    expect(await decryptedBody(bob, id)).toBe('for both of bob’s devices');
  }, 120_000);

  it('a late joiner reads what is sent after it joined, from everyone', async () => {
    const carol = await register('carol');
    await alice.client.invite(roomId, carol.userId);
    await until('carol to be invited', () => carol.client.getRoom(roomId));
    await carol.client.joinRoom(roomId);
    // Senders share the room key with the members their client knows: wait until both have
    // seen carol's join through sync, as a user's client would before typing.
    for (const d of [alice, bob]) {
      await until(`${d.userId} to see carol join`, () => d.client.getRoom(roomId)?.getMember(carol.userId)?.membership === 'join' || undefined);
    }
    await knowsDevice(alice, carol.userId, carol.deviceId);
    await knowsDevice(bob, carol.userId, carol.deviceId);
    const fromAlice = await send(alice, 'welcome carol');
    expect(await decryptedBody(carol, fromAlice)).toBe('welcome carol');
    const fromBob = await send(bob, 'hi carol, bob here');
    expect(await decryptedBody(carol, fromBob)).toBe('hi carol, bob here');
    await knowsDevice(carol, alice.userId, alice.deviceId);
    const fromCarol = await send(carol, 'thanks both');
    expect(await decryptedBody(alice, fromCarol)).toBe('thanks both');
    expect(await decryptedBody(bob, fromCarol)).toBe('thanks both');
  }, 120_000);

  it('bootstraps cross-signing and verifies another device by signing it', async () => {
    const crypto = alice.client.getCrypto()!;
    let uiaPrompts = 0;
    await crypto.bootstrapCrossSigning({
      authUploadDeviceSigningKeys: async (makeRequest) => {
        try {
          await makeRequest(null);
        } catch (e) {
          uiaPrompts++;
          const session = (e as { data?: { session?: string } }).data?.session;
          await makeRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: alice.userId }, password: PW, session });
        }
      },
    });
    expect(uiaPrompts).toBe(0);
    expect(await crypto.isCrossSigningReady()).toBe(true);
    // The device signs itself with the new self-signing key; the server hands the signature back on the next query.
    await until('alice’s own device to be cross-signing verified', async () => (await crypto.getDeviceVerificationStatus(alice.userId, alice.deviceId))?.crossSigningVerified);

    // The server now has alice's cross-signing keys; bob sees the master and self-signing keys only.
    const q = await bob.http.post(`${C}/keys/query`, { device_keys: { [alice.userId]: [] } });
    expect(Object.keys(q.body.master_keys)).toEqual([alice.userId]);
    expect(q.body.user_signing_keys).toEqual({});

    const alice2 = await login(alice.userId);
    await knowsDevice(alice, alice.userId, alice2.deviceId);
    expect((await crypto.getDeviceVerificationStatus(alice.userId, alice2.deviceId))?.crossSigningVerified).toBe(false);
    await crypto.crossSignDevice(alice2.deviceId);
    await until('alice2 to be cross-signing verified', async () => (await crypto.getDeviceVerificationStatus(alice.userId, alice2.deviceId))?.crossSigningVerified);
    // Bob's device sees alice2 signed by its owner.
    await until('bob to see alice2 signed by alice', async () => {
      const s = await bob.client.getCrypto()!.getDeviceVerificationStatus(alice.userId, alice2.deviceId);
      return s?.signedByOwner;
    });
  }, 120_000);

  it('backs up room keys on one device and restores them on a fresh one', async () => {
    const crypto = alice.client.getCrypto()!;
    await crypto.resetKeyBackup();
    const version = await until('an active backup', () => crypto.getActiveSessionBackupVersion().then((v) => v ?? undefined));
    await until('keys in the backup', async () => {
      const info = await alice.http.get(`${C}/room_keys/version/${version}`);
      return info.body.count >= 2;
    });
    const key = (await crypto.getSessionBackupPrivateKey())!;
    expect(key).toBeInstanceOf(Uint8Array);

    const fresh = await login(alice.userId);
    const fc = fresh.client.getCrypto()!;
    await fc.storeSessionBackupPrivateKey(key, version);
    const result = await fc.restoreKeyBackup();
    expect(result.imported).toBeGreaterThanOrEqual(2);
    expect(await decryptedBody(fresh, firstEventId)).toBe('hello bob');
  }, 120_000);

  it('to-device messages survive a server restart, delivered once', async () => {
    // Bob's first device loses its network while alice starts a new session: the room key
    // for it waits on the server, through a restart.
    bob.offline = true;
    await alice.client.getCrypto()!.forceDiscardSession(roomId);
    const id = await send(alice, 'sent while bob was away');
    const waiting = await srv.server.ctx.database.db
      .selectFrom('device_inbox')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('user_id', '=', bob.userId)
      .where('device_id', '=', bob.deviceId)
      .executeTakeFirstOrThrow();
    expect(Number(waiting.n)).toBeGreaterThan(0);
    await srv.restart();
    bob.offline = false;
    expect(await decryptedBody(bob, id)).toBe('sent while bob was away');
    // Everyone carries on after the restart, with another new session.
    await alice.client.getCrypto()!.forceDiscardSession(roomId);
    const after = await send(alice, 'after the restart');
    expect(await decryptedBody(bob, after)).toBe('after the restart');
    for (const d of devices) {
      expect(new Set(d.toDevice).size, `${d.userId}/${d.deviceId} received a to-device message twice`).toBe(d.toDevice.length);
    }
    expect(bob.toDevice.length).toBeGreaterThan(0);
    // Once acknowledged, nothing stays in bob's inbox.
    await until('bob to acknowledge his to-device messages', async () => {
      const left = await srv.server.ctx.database.db
        .selectFrom('device_inbox')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('user_id', '=', bob.userId)
        .where('device_id', '=', bob.deviceId)
        .executeTakeFirstOrThrow();
      return Number(left.n) === 0;
    });
  }, 180_000);
});
