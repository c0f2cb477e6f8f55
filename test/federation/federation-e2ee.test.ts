/**
 * End-to-end encryption across two servers with the real matrix-js-sdk and its Rust crypto:
 * remote /keys/query and /keys/claim, device-list updates over federation, room keys sent as
 * to-device messages between servers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type MatrixClient } from 'matrix-js-sdk';
import { TestClient } from '../client/_client.js';
import { createFederation, type Federation, type FedMember } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';
import { quietJsSdk, until as waitUntil, startSyncing } from '../_util/js-sdk.js';

quietJsSdk();

const C = '/_matrix/client/v3';
const PW = 'correct horse battery';
const WAIT_MS = 40_000;

const until = <T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = WAIT_MS) =>
  waitUntil(what, fn, timeoutMs, 150);

interface Device {
  userId: string;
  deviceId: string;
  client: MatrixClient;
  http: TestClient;
}

describe.each<Engine>(['sqlite', 'postgres'])('E2EE across servers with matrix-js-sdk on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  const devices: Device[] = [];
  let alice: Device;
  let bob: Device;
  let roomId: string;
  let bob2: Device;

  async function startDevice(m: FedMember, userId: string, accessToken: string, deviceId: string): Promise<Device> {
    const client = createClient({ baseUrl: m.clientUrl, accessToken, userId, deviceId });
    await client.initRustCrypto({ useIndexedDB: false });
    await startSyncing(client);
    const d = { userId, deviceId, client, http: new TestClient(m.clientUrl, accessToken) };
    devices.push(d);
    return d;
  }

  async function register(m: FedMember, name: string): Promise<Device> {
    const reg = await m.client().register(name, PW);
    return startDevice(m, reg.user_id, reg.access_token, reg.device_id);
  }

  async function knowsDevice(d: Device, userId: string, deviceId: string): Promise<void> {
    await until(`${d.userId}/${d.deviceId} to know ${userId}/${deviceId}`, async () => {
      const map = await d.client.getCrypto()!.getUserDeviceInfo([userId], true);
      return map.get(userId)?.has(deviceId) ?? false;
    });
  }

  async function decryptedBody(d: Device, eventId: string): Promise<string> {
    const ev = await until(`${d.deviceId} to receive ${eventId}`, () => d.client.getRoom(roomId)?.findEventById(eventId));
    return until(`${d.deviceId} to decrypt ${eventId}`, async () => {
      if (ev.isDecryptionFailure() || ev.getType() === 'm.room.encrypted') await d.client.decryptEventIfNeeded(ev, { isRetry: true });
      return ev.getType() === 'm.room.message' ? (ev.getContent().body as string) : undefined;
    });
  }

  beforeAll(async () => {
    fed = await createFederation(engine);
    a = await fed.add('a.test');
    b = await fed.add('b.test');
  }, 60_000);

  afterAll(async () => {
    for (const d of devices) d.client.stopClient();
    await fed?.close();
  });

  it('users of two servers read each other in an encrypted room', async () => {
    alice = await register(a, 'alice');
    bob = await register(b, 'bob');
    const created = await alice.client.createRoom({
      invite: [bob.userId],
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    });
    roomId = created.room_id;
    await until('bob to be invited', () => bob.client.getRoom(roomId));
    await bob.client.joinRoom(roomId);
    await until('alice to see bob join', () => alice.client.getRoom(roomId)?.getMember(bob.userId)?.membership === 'join');
    await knowsDevice(alice, bob.userId, bob.deviceId);
    await until('alice’s client to see the room encrypted', () => alice.client.getCrypto()!.isEncryptionEnabledInRoom(roomId));
    await until('bob’s client to see the room encrypted', () => bob.client.getCrypto()!.isEncryptionEnabledInRoom(roomId));

    // A holds Bob's device list now, kept up to date from B.
    const cached = await a.server!.ctx.federationRooms.devices.store.getRemote(bob.userId);
    expect(Object.keys(cached?.list.devices ?? {})).toEqual([bob.deviceId]);

    const { event_id: first } = await alice.client.sendTextMessage(roomId, 'hello bob, from a.test');
    const raw = await alice.http.get(`${C}/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(first)}`);
    expect(raw.body.type).toBe('m.room.encrypted');
    expect(await decryptedBody(bob, first)).toBe('hello bob, from a.test');

    await knowsDevice(bob, alice.userId, alice.deviceId);
    const { event_id: reply } = await bob.client.sendTextMessage(roomId, 'hello alice, from b.test');
    expect(await decryptedBody(alice, reply)).toBe('hello alice, from b.test');
  }, 180_000);

  it('a new device on one server is announced to the other and gets the keys', async () => {
    const login = await b.client().login(bob.userId, PW);
    bob2 = await startDevice(b, login.user_id, login.access_token, login.device_id);
    // The device-list update travels as an EDU; Alice's client learns of it through /sync.
    await knowsDevice(alice, bob.userId, bob2.deviceId);
    const cached = await a.server!.ctx.federationRooms.devices.store.getRemote(bob.userId);
    expect(Object.keys(cached?.list.devices ?? {}).sort()).toEqual([bob.deviceId, bob2.deviceId].sort());
    const { event_id } = await alice.client.sendTextMessage(roomId, 'for both of bob’s devices');
    expect(await decryptedBody(bob2, event_id)).toBe('for both of bob’s devices');
    expect(await decryptedBody(bob, event_id)).toBe('for both of bob’s devices');
  }, 180_000);

  it('a deleted device disappears from the other server’s answers; unreachable servers are failures', async () => {
    // Logging out deletes the device; B announces it with `deleted`.
    bob2.client.stopClient();
    const out = await bob2.http.post(`${C}/logout`, {});
    expect(out.status).toBe(200);
    await until('A to drop the deleted device', async () => {
      const cached = await a.server!.ctx.federationRooms.devices.store.getRemote(bob.userId);
      return cached && Object.keys(cached.list.devices).join() === bob.deviceId;
    });
    const seen = await alice.http.post(`${C}/keys/query`, { device_keys: { [bob.userId]: [] } });
    expect(Object.keys(seen.body.device_keys[bob.userId])).toEqual([bob.deviceId]);

    const q = await alice.http.post(`${C}/keys/query`, { device_keys: { '@nobody:unreachable.test': [] }, timeout: 2000 });
    expect(q.status).toBe(200);
    expect(q.body.failures['unreachable.test']).toBeDefined();
    const c = await alice.http.post(`${C}/keys/claim`, { one_time_keys: { '@nobody:unreachable.test': { DEV: 'signed_curve25519' } } });
    expect(c.status).toBe(200);
    expect(c.body.failures['unreachable.test']).toBeDefined();
  }, 120_000);
});
