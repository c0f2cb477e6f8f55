/**
 * Third-party invites across two servers: A's user invites an e-mail address, the identity
 * server binds it to a user of B and calls B's /3pid/onbind, B asks A with
 * /exchange_third_party_invite, A checks the identity server's signature (and its key's
 * validity) and sends the invite, which B's user accepts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FederationHttpError } from '../../src/federation/errors.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { generateSigningKey } from '../../src/protocol/signing.js';
import { eventually, registerOn, twoServers, type TwoServers } from '../_util/federation.js';
import { ID_TOKEN, startIdentityServer, type FakeIdentityServer } from '../_util/identity-server.js';
import type { Engine } from '../_util/server.js';

const C = '/_matrix/client/v3';
const F = '/_matrix/federation/v1';
const enc = encodeURIComponent;

describe.each<Engine>(['sqlite', 'postgres'])('third-party invites over federation on %s', (engine) => {
  let s: TwoServers;
  let is: FakeIdentityServer;

  beforeAll(async () => {
    // The test's identity server is on 127.0.0.1.
    const identity = { identity: { allow_private_servers: true } };
    s = await twoServers(engine, { a: identity, b: identity });
    is = await startIdentityServer(s.fed);
  }, 60_000);

  afterAll(async () => {
    await is?.close();
    await s?.fed.close();
  });

  /** A room on A with a stored invitation for `address`; returns the room and the token. */
  const invitedRoom = async (address: string, createExtra: Record<string, unknown> = {}) => {
    const roomId = (await s.alice.post(`${C}/createRoom`, { name: `For ${address}`, ...createExtra })).body.room_id as string;
    const res = await s.alice.post(`${C}/rooms/${enc(roomId)}/invite`, { id_server: is.idServer, id_access_token: ID_TOKEN, medium: 'email', address });
    expect(res.status).toBe(200);
    return { roomId, token: is.invites.at(-1)!.token };
  };
  const bound = (mxid: string, address: string, roomId: string, signed: unknown) => ({
    medium: 'email',
    address,
    mxid,
    invites: [{ medium: 'email', address, mxid, room_id: roomId, sender: '@alice:a.test', signed }],
  });

  it('B exchanges the invitation through A, and its user joins', async () => {
    const { roomId, token } = await invitedRoom('bob@example.org');
    const res = await is.onBind(s.b, bound('@bob:b.test', 'bob@example.org', roomId, is.sign('@bob:b.test', token, '@alice:a.test')));
    expect([res.status, res.body]).toEqual([200, {}]);
    // The invite reached B (through /v2/invite) and shows in bob's sync.
    await eventually(async () => Object.keys((await s.bob.get(`${C}/sync?timeout=0`)).body.rooms?.invite ?? {}).includes(roomId), 20_000, 'invite on B');
    const onA = (await s.alice.get(`${C}/rooms/${enc(roomId)}/state/m.room.member/${enc('@bob:b.test')}`)).body;
    expect(onA.membership).toBe('invite');
    expect(onA.third_party_invite.signed.token).toBe(token);
    expect(onA.third_party_invite.display_name).toBe('b...@e...');
    expect((await s.bob.post(`${C}/join/${enc(roomId)}`, {})).status).toBe(200);
    await eventually(async () => (await s.alice.get(`${C}/rooms/${enc(roomId)}/state/m.room.member/${enc('@bob:b.test')}`)).body.membership === 'join', 20_000, 'join on A');
  });

  it('exchanges for a user of B when B is already in the room', async () => {
    const { roomId, token } = await invitedRoom('dave@example.org', { preset: 'public_chat' });
    expect((await s.bob.post(`${C}/join/${enc(roomId)}?via=a.test`, {})).status).toBe(200);
    const dave = await registerOn(s.b, 'dave');
    const res = await is.onBind(s.b, bound('@dave:b.test', 'dave@example.org', roomId, is.sign('@dave:b.test', token, '@alice:a.test')));
    expect(res.status).toBe(200);
    await eventually(async () => Object.keys((await dave.get(`${C}/sync?timeout=0`)).body.rooms?.invite ?? {}).includes(roomId), 20_000, 'invite for dave');
    expect((await dave.post(`${C}/rooms/${enc(roomId)}/join`, {})).status).toBe(200);
  });

  it('A refuses exchanges whose signature, user or sender do not hold', async () => {
    const { roomId, token } = await invitedRoom('erin@example.org');
    await registerOn(s.b, 'erin');
    const fromB = s.b.server!.ctx.federation.client;
    const exchange = (body: Record<string, unknown>) =>
      fromB.put('a.test', `${F}/exchange_third_party_invite/${enc(roomId)}`, body as JsonObject).then(
        () => 200,
        (err) => (err instanceof FederationHttpError ? err.status : Promise.reject(err)),
      );
    const event = (stateKey: string, signed: unknown, sender = '@alice:a.test') => ({
      type: 'm.room.member',
      room_id: roomId,
      sender,
      state_key: stateKey,
      content: { membership: 'invite', third_party_invite: { display_name: 'e...', signed } },
    });
    // Signed by a key that is not the identity server's.
    expect(await exchange(event('@erin:b.test', is.sign('@erin:b.test', token, '@alice:a.test', generateSigningKey('0'))))).toBe(403);
    // For a user of another server than the one asking.
    expect(await exchange(event('@alice2:a.test', is.sign('@alice2:a.test', token, '@alice:a.test')))).toBe(403);
    // A sender who is not a user of A.
    expect(await exchange(event('@erin:b.test', is.sign('@erin:b.test', token, '@alice:a.test'), '@bob:b.test'))).toBe(403);
    // An unknown token.
    expect(await exchange(event('@erin:b.test', is.sign('@erin:b.test', 'no-such-token', '@alice:a.test')))).toBe(403);
    expect((await s.alice.get(`${C}/rooms/${enc(roomId)}/state/m.room.member/${enc('@erin:b.test')}`)).status).toBe(404);
    // The same refusal reaches the identity server through B's onbind.
    const res = await is.onBind(s.b, bound('@erin:b.test', 'erin@example.org', roomId, is.sign('@erin:b.test', token, '@alice:a.test', generateSigningKey('0'))));
    expect([res.status, res.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    expect(await exchange(event('@erin:b.test', is.sign('@erin:b.test', token, '@alice:a.test')))).toBe(200);
  });
});
