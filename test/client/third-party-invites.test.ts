/**
 * Third-party invites on one server: inviting by e-mail address through an identity server
 * (bound addresses get an ordinary invite, unbound ones an m.room.third_party_invite), the
 * identity server's /3pid/onbind turning the invitation into an invite the user can accept,
 * createRoom's invite_3pid, and the refusals (identity server failures, users who may not
 * invite, signatures that do not match).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/protocol/signing.js';
import { createFederation, type FedMember, type Federation } from '../_util/federation.js';
import { ID_TOKEN, startIdentityServer, type FakeIdentityServer } from '../_util/identity-server.js';
import type { Engine } from '../_util/server.js';
import { SpecClient } from './_spec-client.js';

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;

describe.each<Engine>(['sqlite', 'postgres'])('third-party invites on %s', (engine) => {
  let fed: Federation;
  let hs: FedMember;
  let is: FakeIdentityServer;
  let alice: SpecClient;
  let bob: SpecClient;
  let carol: SpecClient;
  let dave: SpecClient;

  const target = (address: string, extra: Record<string, unknown> = {}) => ({ id_server: is.idServer, id_access_token: ID_TOKEN, medium: 'email', address, ...extra });
  const roomState = async (c: SpecClient, roomId: string) => (await c.get(`${C}/rooms/${enc(roomId)}/state`)).body as any[];
  const tpiEvents = async (roomId: string) => (await roomState(alice, roomId)).filter((e) => e.type === 'm.room.third_party_invite');
  const membership = async (roomId: string, userId: string) => {
    const res = await alice.get(`${C}/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`);
    return res.status === 200 ? res.body : undefined;
  };

  beforeAll(async () => {
    fed = await createFederation(engine);
    // The test's identity server is on 127.0.0.1.
    hs = await fed.add('hs.test', { identity: { allow_private_servers: true } });
    is = await startIdentityServer(fed);
    const client = async (name: string) => {
      const c = new SpecClient(hs.clientUrl);
      await c.register(name);
      return c;
    };
    alice = await client('alice');
    bob = await client('bob');
    carol = await client('carol');
    dave = await client('dave');
    await alice.put(`${C}/profile/${enc('@alice:hs.test')}/displayname`, { displayname: 'Alice' });
    is.bindings.set('bob@example.org', '@bob:hs.test');
  }, 60_000);

  afterAll(async () => {
    await is?.close();
    await fed?.close();
  });

  it('does not contact identity servers on private addresses unless allowed', async () => {
    const strict = await fed.add('strict.test');
    const eve = new SpecClient(strict.clientUrl);
    await eve.register('eve');
    const roomId = (await eve.post(`${C}/createRoom`, {})).body.room_id as string;
    const before = (await eve.get(`${C}/rooms/${enc(roomId)}/state`)).body.length;
    is.requests.length = 0;
    for (const idServer of [is.idServer, '127.0.0.1:1', '[::1]:1']) {
      const res = await eve.post(`${C}/rooms/${enc(roomId)}/invite`, { id_server: idServer, id_access_token: ID_TOKEN, medium: 'email', address: 'someone@example.org' });
      expect([res.status, res.body.errcode]).toEqual([400, 'M_SERVER_NOT_TRUSTED']);
    }
    expect(is.requests).toEqual([]);
    expect((await eve.get(`${C}/rooms/${enc(roomId)}/state`)).body.length).toBe(before);
  });

  it('limits how often a user invites by e-mail address (each invite asks the identity server)', async () => {
    const limited = await fed.add('limited.test', { identity: { allow_private_servers: true }, rate_limits: { third_party_invite: { per_second: 0.001, burst: 2 } } });
    const frank = new SpecClient(limited.clientUrl);
    await frank.register('frank');
    const roomId = (await frank.post(`${C}/createRoom`, {})).body.room_id as string;
    is.requests.length = 0;
    for (const n of [1, 2]) expect((await frank.post(`${C}/rooms/${enc(roomId)}/invite`, target(`limit${n}@example.org`))).status).toBe(200);
    const asked = is.requests.length;
    const third = await frank.post(`${C}/rooms/${enc(roomId)}/invite`, target('limit3@example.org'));
    expect([third.status, third.body.errcode]).toEqual([429, 'M_LIMIT_EXCEEDED']);
    expect(third.body.retry_after_ms).toBeGreaterThan(0);
    expect(is.requests.length).toBe(asked);
  });

  it('invites the user an address is bound to with an ordinary invite', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { name: 'Bound' })).body.room_id as string;
    is.requests.length = 0;
    // The address is canonicalised (case-folded) before it is hashed.
    const res = await alice.post(`${C}/rooms/${enc(roomId)}/invite`, target('Bob@Example.ORG'));
    expect(res.status).toBe(200);
    expect((await membership(roomId, '@bob:hs.test'))?.membership).toBe('invite');
    expect(is.requests.map((r) => r.path)).toEqual(['/_matrix/identity/v2/hash_details', '/_matrix/identity/v2/lookup']);
    expect(is.requests.every((r) => r.authorization === `Bearer ${ID_TOKEN}`)).toBe(true);
    expect(is.requests[1]!.body.algorithm).toBe('sha256');
    expect(await tpiEvents(roomId)).toEqual([]);
    expect((await bob.post(`${C}/join/${enc(roomId)}`, {})).status).toBe(200);
  });

  it('stores an invitation for an unbound address and sends m.room.third_party_invite with the identity server keys', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { name: 'Unbound', preset: 'private_chat' })).body.room_id as string;
    const res = await alice.post(`${C}/rooms/${enc(roomId)}/invite`, target('carol@example.org'));
    expect(res.status).toBe(200);
    const stored = is.invites.at(-1)!;
    expect(stored.body).toMatchObject({
      medium: 'email',
      address: 'carol@example.org',
      room_id: roomId,
      sender: '@alice:hs.test',
      room_name: 'Unbound',
      room_join_rules: 'invite',
      sender_display_name: 'Alice',
    });
    const tpi = await alice.get(`${C}/rooms/${enc(roomId)}/state/m.room.third_party_invite/${enc(stored.token)}`);
    expect(tpi.status).toBe(200);
    expect(tpi.body.public_key).toBe(is.publicKey);
    expect(tpi.body.key_validity_url).toBe(`https://${is.idServer}/_matrix/identity/v2/pubkey/isvalid`);
    expect(tpi.body.public_keys.map((k: any) => k.public_key)).toContain(is.publicKey);
    expect(tpi.body.display_name).toBe('c...@e...');
    expect(JSON.stringify(tpi.body)).not.toContain('carol@example.org');
  });

  it('turns the invitation into an invite when the identity server reports the address bound (onbind), and the user joins', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { name: 'Onbind', preset: 'private_chat' })).body.room_id as string;
    expect((await alice.post(`${C}/rooms/${enc(roomId)}/invite`, target('carol@example.org'))).status).toBe(200);
    const { token } = is.invites.at(-1)!;
    const invite = { medium: 'email', address: 'carol@example.org', mxid: '@carol:hs.test', room_id: roomId, sender: '@alice:hs.test' };

    // A signature by a key that is not the room's: refused, nothing sent.
    const forged = await is.onBind(hs, { medium: 'email', address: 'carol@example.org', mxid: '@carol:hs.test', invites: [{ ...invite, signed: is.sign('@carol:hs.test', token, '@alice:hs.test', generateSigningKey('0')) }] });
    expect([forged.status, forged.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    expect(await membership(roomId, '@carol:hs.test')).toBeUndefined();
    // An invitation for someone else than the bound user: refused.
    const other = await is.onBind(hs, { medium: 'email', address: 'carol@example.org', mxid: '@carol:hs.test', invites: [{ ...invite, signed: is.sign('@dave:hs.test', token, '@alice:hs.test') }] });
    expect(other.status).toBe(403);
    // Not a user of this server.
    const stranger = await is.onBind(hs, { medium: 'email', address: 'x@example.org', mxid: '@nobody:hs.test', invites: [] });
    expect(stranger.status).toBe(403);

    const res = await is.onBind(hs, { medium: 'email', address: 'carol@example.org', mxid: '@carol:hs.test', invites: [{ ...invite, signed: is.sign('@carol:hs.test', token, '@alice:hs.test') }] });
    expect([res.status, res.body]).toEqual([200, {}]);
    const member = await membership(roomId, '@carol:hs.test');
    expect(member.membership).toBe('invite');
    expect(member.third_party_invite.display_name).toBe('c...@e...');
    expect(member.third_party_invite.signed.token).toBe(token);
    // The key was checked at its key validity URL.
    expect(is.requests.some((r) => r.path.startsWith('/_matrix/identity/v2/pubkey/isvalid?public_key='))).toBe(true);
    const sync = await carol.get(`${C}/sync?timeout=0`);
    expect(Object.keys(sync.body.rooms?.invite ?? {})).toContain(roomId);
    expect((await carol.post(`${C}/rooms/${enc(roomId)}/join`, {})).status).toBe(200);
    expect((await membership(roomId, '@carol:hs.test')).membership).toBe('join');
  });

  it('refuses an onbind whose identity server key has been revoked', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { name: 'Revoked', preset: 'private_chat' })).body.room_id as string;
    expect((await alice.post(`${C}/rooms/${enc(roomId)}/invite`, target('dave@example.org'))).status).toBe(200);
    const { token } = is.invites.at(-1)!;
    is.revoked.add(is.publicKey);
    try {
      const res = await is.onBind(hs, {
        medium: 'email',
        address: 'dave@example.org',
        mxid: '@dave:hs.test',
        invites: [{ medium: 'email', address: 'dave@example.org', mxid: '@dave:hs.test', room_id: roomId, sender: '@alice:hs.test', signed: is.sign('@dave:hs.test', token, '@alice:hs.test') }],
      });
      expect([res.status, res.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
      expect(res.body.error).toMatch(/no longer valid/);
    } finally {
      is.revoked.clear();
    }
    expect(await membership(roomId, '@dave:hs.test')).toBeUndefined();
  });

  it('createRoom with invite_3pid invites bound and unbound addresses once the room exists', async () => {
    const created = await alice.post(`${C}/createRoom`, { name: 'Created', invite_3pid: [target('bob@example.org'), target('erin@example.org')] });
    expect(created.status).toBe(200);
    const roomId = created.body.room_id as string;
    expect((await membership(roomId, '@bob:hs.test'))?.membership).toBe('invite');
    const tpis = await tpiEvents(roomId);
    expect(tpis).toHaveLength(1);
    expect(tpis[0].state_key).toBe(is.invites.at(-1)!.token);
    // An identity server that cannot be reached does not fail createRoom.
    const unreachable = await alice.post(`${C}/createRoom`, { name: 'Unreachable IS', invite_3pid: [{ ...target('erin@example.org'), id_server: 'id.test:1' }] });
    expect(unreachable.status).toBe(200);
    expect(await tpiEvents(unreachable.body.room_id)).toEqual([]);
    // Entries must have the invite_3pid fields.
    expect((await alice.post(`${C}/createRoom`, { invite_3pid: [{ medium: 'email' }] })).status).toBe(400);
  });

  it('answers identity server failures with a clear error and changes nothing', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { name: 'Failures' })).body.room_id as string;
    const before = (await roomState(alice, roomId)).length;

    const unreachable = await alice.post(`${C}/rooms/${enc(roomId)}/invite`, { ...target('erin@example.org'), id_server: 'id.test:1' });
    expect([unreachable.status, unreachable.body.errcode]).toEqual([502, 'M_CONNECTION_FAILED']);
    expect(unreachable.body.error).toMatch(/id\.test:1/);
    const unknownHost = await alice.post(`${C}/rooms/${enc(roomId)}/invite`, { ...target('erin@example.org'), id_server: 'nowhere.test' });
    expect([unknownHost.status, unknownHost.body.errcode]).toEqual([502, 'M_CONNECTION_FAILED']);

    const badToken = await alice.post(`${C}/rooms/${enc(roomId)}/invite`, target('erin@example.org', { id_access_token: 'wrong' }));
    expect([badToken.status, badToken.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    expect(badToken.body.error).toMatch(/identity server .* refused the hash_details request: 401/);

    is.failures.set('/_matrix/identity/v2/store-invite', [400, { errcode: 'M_UNRECOGNIZED', error: 'no invites today' }]);
    try {
      const refused = await alice.post(`${C}/rooms/${enc(roomId)}/invite`, target('erin@example.org'));
      expect([refused.status, refused.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
      expect(refused.body.error).toMatch(/store-invite.*no invites today/);
    } finally {
      is.failures.clear();
    }
    is.failures.set('/_matrix/identity/v2/lookup', [500, { errcode: 'M_UNKNOWN', error: 'broken' }]);
    try {
      const broken = await alice.post(`${C}/rooms/${enc(roomId)}/invite`, target('erin@example.org'));
      expect([broken.status, broken.body.errcode]).toEqual([502, 'M_UNKNOWN']);
    } finally {
      is.failures.clear();
    }
    expect((await alice.post(`${C}/rooms/${enc(roomId)}/invite`, { ...target('erin@example.org'), id_server: 'bad host!' })).status).toBe(400);
    expect((await alice.post(`${C}/rooms/${enc(roomId)}/invite`, target('not-an-address'))).status).toBe(400);
    expect((await roomState(alice, roomId)).length).toBe(before);
  });

  it('refuses third-party invites from non-members and members without the invite power, before asking the identity server', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { name: 'Moderated', preset: 'public_chat' })).body.room_id as string;
    expect((await dave.post(`${C}/join/${enc(roomId)}`, {})).status).toBe(200);
    is.requests.length = 0;
    const outsider = await carol.post(`${C}/rooms/${enc(roomId)}/invite`, target('erin@example.org'));
    expect([outsider.status, outsider.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    // public_chat: inviting needs power level 50.
    const unprivileged = await dave.post(`${C}/rooms/${enc(roomId)}/invite`, target('erin@example.org'));
    expect([unprivileged.status, unprivileged.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    expect((await carol.post(`${C}/rooms/${enc('!nowhere:hs.test')}/invite`, target('erin@example.org'))).status).toBe(404);
    expect(is.requests).toEqual([]);
    expect(await tpiEvents(roomId)).toEqual([]);
  });
});
