/**
 * The federation API as served by Myelin, validated against the spec's server-server OpenAPI
 * definitions: every response one server's signed federation client receives from another
 * (direct calls here, and the requests the servers make for joins, invites, knocks, leaves,
 * transactions and backfill) is checked, and every route of the federation listener must have
 * had a response validated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registeredRoutes } from '../../src/api/http.js';
import { FederationHttpError } from '../../src/federation/errors.js';
import type { FederationClient } from '../../src/federation/client.js';
import { multipartBoundary } from '../../src/media/multipart.js';
import { encodeBase64 } from '../../src/protocol/base64.js';
import { generateSigningKey, signJson } from '../../src/protocol/signing.js';
import { expectContentTypeMatchesSpec, expectMatchesSpec, operationOfRoute, validatedOperations, validatedStatuses } from '../_util/openapi.js';
import { createFederation, eventually, type FedMember, type Federation } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import type { TestClient } from '../client/_client.js';
import { makeDevice, oneTimeKeys } from '../client/_e2ee.js';

const C = '/_matrix/client/v3';
const F = '/_matrix/federation/v1';
const enc = encodeURIComponent;

/**
 * Routes of the federation listener no operation of the server-server spec describes, with why
 * they exist. Every other registered route must have had a response validated.
 */
const NOT_IN_SPEC: Array<[RegExp, string]> = [
  [/^\/health$/, 'liveness probe'],
  [/^\/\.well-known\/matrix\/(client|support)$/, 'client discovery and support contacts, served on every listener (validated by the client-server suite)'],
  [/^\/_matrix\/media\/(v1|r0)\//, 'pre-v3 media paths older servers fetch remote media from'],
  [/^\/_matrix\/key\/v2\/server\/:keyId$/, 'the key ID form of /key/v2/server, removed from the spec, still requested by older servers'],
  [/^\/_matrix\/federation\/v1\/send_(join|leave)\//, 'v1 send_join/send_leave, removed from the spec in favour of v2, still used by older servers'],
];

/** Operations whose error answers cannot be provoked here (each with why). */
const NO_ERROR_PATH: Array<[RegExp, string]> = [
  [/^GET \/_matrix\/key\/v2\/server$/, 'public, unsigned: the spec documents no error'],
  [/^GET \/_matrix\/key\/v2\/query\/\{serverName\}$/, 'a notary answers with the keys it has, possibly none'],
  [/^GET \/_matrix\/federation\/v1\/version$/, 'public: the spec documents no error'],
  [/^GET \/\.well-known\/matrix\/server$/, 'static document'],
];
/** Operations whose success cannot be reached here (each with why). */
const NO_SUCCESS_PATH: Array<[RegExp, string]> = [
  [/^PUT \/_matrix\/federation\/v1\/invite\//, 'Myelin sends v2 invites; a successful v1 invite is driven and validated in invite-v1.test.ts'],
];

/** Wraps a server's federation client so that every answer it receives is validated. */
function validateAnswers(m: FedMember, failures: string[]): void {
  const client = m.server!.ctx.federation.client as any;
  const check = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      failures.push(`${m.name}: ${(err as Error).message}`);
    }
  };
  const request = client.request.bind(client);
  client.request = async (destination: string, method: any, path: string, body?: any, options?: any) => {
    try {
      const res = await request(destination, method, path, body, options);
      check(() => expectMatchesSpec(method, path, 200, res));
      return res;
    } catch (err) {
      if (err instanceof FederationHttpError) check(() => expectMatchesSpec(method, path, err.status, err.body));
      throw err;
    }
  };
  const getStream = client.getStream.bind(client);
  client.getStream = async (destination: string, path: string, options?: any) => {
    try {
      const res = await getStream(destination, path, options);
      const type = res.headers['content-type'];
      check(() => expectContentTypeMatchesSpec('GET', path, res.status, Array.isArray(type) ? type[0]! : (type ?? null)));
      return res;
    } catch (err) {
      if (err instanceof FederationHttpError) check(() => expectMatchesSpec('GET', path, err.status, err.body));
      throw err;
    }
  };
  // JSON answers read as streams (send_join): validated whole, then handed over as a new stream.
  const requestStream = client.requestStream.bind(client);
  client.requestStream = async (destination: string, method: any, path: string, body?: any, options?: any) => {
    if (options?.accept !== undefined) return requestStream(destination, method, path, body, options);
    try {
      const res = await requestStream(destination, method, path, body, options);
      const whole = await readAll(res.body);
      check(() => expectMatchesSpec(method, path, res.status, JSON.parse(whole.toString('utf8'))));
      return { ...res, body: Readable.from([whole]) };
    } catch (err) {
      if (err instanceof FederationHttpError) check(() => expectMatchesSpec(method, path, err.status, err.body));
      throw err;
    }
  };
}

/** The status of a federation request: 200, or the error's status. */
async function statusOf(p: Promise<unknown>): Promise<number> {
  return p.then(
    () => 200,
    (err: unknown) => {
      if (err instanceof FederationHttpError) return err.status;
      throw err;
    },
  );
}

async function readAll(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks);
}

describe.each<Engine>(['sqlite', 'postgres'])('federation API responses match the spec on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  let fromB: FederationClient;
  let alice: TestClient;
  let bob: TestClient;
  let aliceDevice: string;
  let roomId: string;
  const failures: string[] = [];

  beforeAll(async () => {
    validatedOperations.clear();
    validatedStatuses.clear();
    fed = await createFederation(engine);
    // Legacy unauthenticated downloads are served for media uploaded from now on.
    a = await fed.add('a.test', { media: { freeze_unauthenticated: false } });
    b = await fed.add('b.test');
    validateAnswers(a, failures);
    validateAnswers(b, failures);
    fromB = b.server!.ctx.federation.client;
    alice = a.client();
    const reg = await alice.register('alice');
    aliceDevice = reg.device_id;
    bob = b.client();
    await bob.register('bob');
    await alice.put(`${C}/profile/${enc('@alice:a.test')}/displayname`, { displayname: 'Alice' });
    roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'Fed spec', room_alias_name: 'fedspec', visibility: 'public' })).body.room_id;
    for (let i = 0; i < 5; i++) await alice.put(`${C}/rooms/${enc(roomId)}/send/m.room.message/pre${i}`, { msgtype: 'm.text', body: `before ${i}` });
  }, 60_000);

  afterAll(async () => {
    await fed?.close();
  });

  it('server keys, notary queries and version', async () => {
    const keys = await fromB.get<any>('a.test', '/_matrix/key/v2/server', { signed: false });
    expect(keys.server_name).toBe('a.test');
    const q = await fromB.post<any>('a.test', '/_matrix/key/v2/query', { server_keys: { 'a.test': {} } });
    expect(q.server_keys[0].server_name).toBe('a.test');
    expect((await fromB.get<any>('a.test', '/_matrix/key/v2/query/a.test')).server_keys.length).toBe(1);
    expect(await statusOf(fromB.post('a.test', '/_matrix/key/v2/query', { server_keys: 'all' } as any))).toBe(400);
    expect((await fromB.get<any>('a.test', `${F}/version`)).server.name).toBe('Myelin');

    // The server's well-known document, over the federation listener's TLS.
    const port = a.server!.address('federation')!.port;
    const wk = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/.well-known/matrix/server', servername: 'a.test', ca: fed.ca.certPem }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end();
    });
    expectMatchesSpec('GET', '/.well-known/matrix/server', wk.status, JSON.parse(wk.body));
  });

  it('joins, state, events, backfill, missing events and transactions', async () => {
    // B's user joins A's room: make_join and v2 send_join, validated as B receives them.
    expect((await bob.post(`${C}/join/${enc('#fedspec:a.test')}`, {})).status).toBe(200);
    await bob.put(`${C}/rooms/${enc(roomId)}/send/m.room.message/fromb`, { msgtype: 'm.text', body: 'hello from B' });
    await eventually(async () => (await alice.get(`${C}/rooms/${enc(roomId)}/messages?dir=b&limit=5`)).body.chunk.some((e: any) => e.content.body === 'hello from B'), 20_000, 'B message on A');

    const latest = (await alice.get(`${C}/rooms/${enc(roomId)}/messages?dir=b&limit=1`)).body.chunk[0].event_id as string;
    const r = enc(roomId);
    const ids = await fromB.get<any>('a.test', `${F}/state_ids/${r}`, { query: { event_id: latest } });
    expect(ids.pdu_ids.length).toBeGreaterThan(3);
    expect((await fromB.get<any>('a.test', `${F}/state/${r}`, { query: { event_id: latest } })).pdus.length).toBe(ids.pdu_ids.length);
    expect(await statusOf(fromB.get('a.test', `${F}/state_ids/${r}`, { query: { event_id: '$missing' } }))).toBe(404);
    expect(await statusOf(fromB.get('a.test', `${F}/state/${enc('!nope:a.test')}`, { query: { event_id: latest } }))).toBeGreaterThanOrEqual(400);
    expect((await fromB.get<any>('a.test', `${F}/event/${enc(latest)}`)).pdus.length).toBe(1);
    expect(await statusOf(fromB.get('a.test', `${F}/event/${enc('$missing')}`))).toBe(404);
    expect((await fromB.get<any>('a.test', `${F}/event_auth/${r}/${enc(latest)}`)).auth_chain.length).toBeGreaterThan(0);
    expect(await statusOf(fromB.get('a.test', `${F}/event_auth/${r}/${enc('$missing')}`))).toBe(404);
    const back = await fromB.get<any>('a.test', `${F}/backfill/${r}`, { query: { v: latest, limit: 5 } });
    expect(back.pdus.length).toBe(5);
    expect(await statusOf(fromB.get('a.test', `${F}/backfill/${r}`, { query: { limit: 5 } }))).toBe(400);
    const missing = await fromB.post<any>('a.test', `${F}/get_missing_events/${r}`, { earliest_events: [], latest_events: [latest], limit: 3 });
    expect(missing.events.length).toBe(3);
    expect(await statusOf(fromB.post('a.test', `${F}/get_missing_events/${r}`, { latest_events: 'x' } as any))).toBe(400);

    const made = await fromB.get<any>('a.test', `${F}/make_join/${r}/${enc('@other:b.test')}`, { query: { ver: ['10', '11', '12'] } });
    expect(made.event.type).toBe('m.room.member');
    expect(await statusOf(fromB.get('a.test', `${F}/make_join/${r}/${enc('@other:b.test')}`, { query: { ver: ['1'] } }))).toBe(400);
    expect(await statusOf(fromB.get('a.test', `${F}/make_join/${r}/${enc('@someone:a.test')}`, { query: { ver: ['12'] } }))).toBe(403);
    expect((await fromB.get<any>('a.test', `${F}/make_leave/${r}/${enc('@bob:b.test')}`)).event.content.membership).toBe('leave');
    expect(await statusOf(fromB.get('a.test', `${F}/make_leave/${r}/${enc('@someone:a.test')}`))).toBe(403);

    const byTs = await fromB.get<any>('a.test', `${F}/timestamp_to_event/${r}`, { query: { ts: Date.now(), dir: 'b' } });
    expect(typeof byTs.event_id).toBe('string');
    expect(await statusOf(fromB.get('a.test', `${F}/timestamp_to_event/${r}`, { query: { ts: Date.now() + 3_600_000, dir: 'f' } }))).toBe(404);

    const txn = await fromB.put<any>('a.test', `${F}/send/spec-${Date.now()}`, { origin: 'b.test', origin_server_ts: Date.now(), pdus: [], edus: [] });
    expect(txn.pdus).toEqual({});
    expect(await statusOf(fromB.put('a.test', `${F}/send/spec-bad`, { origin: 'b.test', pdus: 'x' } as any))).toBe(400);
  }, 60_000);

  it('invites, knocks and leaves', async () => {
    // A invites a user of B: v2 invite, validated as A receives B's answer.
    const carol = b.client();
    await carol.register('carol');
    const priv = (await alice.post(`${C}/createRoom`, { preset: 'private_chat', invite: ['@carol:b.test'] })).body.room_id as string;
    await eventually(async () => (await carol.get(`${C}/sync?timeout=0`)).body.rooms?.invite?.[priv], 20_000, 'invite on B');
    expect((await carol.post(`${C}/rooms/${enc(priv)}/join`, {})).status).toBe(200);
    // Leaving over federation: make_leave and v2 send_leave.
    expect((await carol.post(`${C}/rooms/${enc(priv)}/leave`, {})).status).toBe(200);

    // Rejecting an invite to a room B is not in: make_leave and v2 send_leave.
    const other = (await alice.post(`${C}/createRoom`, { preset: 'private_chat', invite: ['@carol:b.test'] })).body.room_id as string;
    await eventually(async () => (await carol.get(`${C}/sync?timeout=0`)).body.rooms?.invite?.[other], 20_000, 'second invite on B');
    expect((await carol.post(`${C}/rooms/${enc(other)}/leave`, {})).status).toBe(200);

    const knockRoom = (await alice.post(`${C}/createRoom`, { initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] })).body.room_id as string;
    expect((await carol.post(`${C}/knock/${enc(knockRoom)}?via=a.test`, { reason: 'please' })).status).toBe(200);
    expect(await statusOf(fromB.get('a.test', `${F}/make_knock/${enc(roomId)}/${enc('@dave:b.test')}`, { query: { ver: ['12', '11', '10'] } }))).toBe(403);
    expect(await statusOf(fromB.put('a.test', `${F}/send_knock/${enc(knockRoom)}/${enc('$bogus')}`, {}))).toBe(400);
    expect(await statusOf(fromB.put('a.test', `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc('$bogus')}`, {}))).toBe(400);
    expect(await statusOf(fromB.put('a.test', `/_matrix/federation/v2/send_leave/${enc(roomId)}/${enc('$bogus')}`, {}))).toBe(400);
    expect(await statusOf(fromB.put('a.test', `/_matrix/federation/v2/invite/${enc(roomId)}/${enc('$bogus')}`, {}))).toBe(400);
    // v1 invites are for rooms of version 1 and 2 only.
    expect(await statusOf(fromB.put('a.test', `${F}/invite/${enc(roomId)}/${enc('$bogus')}`, {}))).toBe(400);
  }, 60_000);

  it('queries, public rooms, devices and keys', async () => {
    const dir = await fromB.get<any>('a.test', `${F}/query/directory`, { query: { room_alias: '#fedspec:a.test' } });
    expect(dir.room_id).toBe(roomId);
    expect(await statusOf(fromB.get('a.test', `${F}/query/directory`, { query: { room_alias: '#missing:a.test' } }))).toBe(404);
    expect((await fromB.get<any>('a.test', `${F}/query/profile`, { query: { user_id: '@alice:a.test' } })).displayname).toBe('Alice');
    expect((await fromB.get<any>('a.test', `${F}/query/profile`, { query: { user_id: '@alice:a.test', field: 'displayname' } })).displayname).toBe('Alice');
    expect(await statusOf(fromB.get('a.test', `${F}/query/profile`, { query: { user_id: '@ghost:a.test' } }))).toBe(404);

    const pub = await fromB.get<any>('a.test', `${F}/publicRooms`, { query: { limit: 10 } });
    expect(pub.chunk.map((c: any) => c.room_id)).toContain(roomId);
    expect((await fromB.post<any>('a.test', `${F}/publicRooms`, { limit: 10, filter: { generic_search_term: 'Fed' } })).chunk.length).toBe(1);
    expect(await statusOf(fromB.get('a.test', `${F}/publicRooms`, { query: { since: 'garbage' } }))).toBe(400);
    expect(await statusOf(fromB.post('a.test', `${F}/publicRooms`, { since: 'garbage' }))).toBe(400);

    // A device without keys is not listed (each listed device carries its keys).
    expect((await fromB.get<any>('a.test', `${F}/user/devices/${enc('@alice:a.test')}`)).devices).toEqual([]);
    const dev = makeDevice('@alice:a.test', aliceDevice);
    expect((await alice.post(`${C}/keys/upload`, { device_keys: dev.deviceKeys, one_time_keys: oneTimeKeys(dev, 2) })).status).toBe(200);
    const devices = await fromB.get<any>('a.test', `${F}/user/devices/${enc('@alice:a.test')}`);
    expect(devices.devices.map((d: any) => [d.device_id, d.keys.device_id])).toEqual([[aliceDevice, aliceDevice]]);
    expect(await statusOf(fromB.get('a.test', `${F}/user/devices/${enc('@bob:b.test')}`))).toBeGreaterThanOrEqual(400);
    const keys = await fromB.post<any>('a.test', `${F}/user/keys/query`, { device_keys: { '@alice:a.test': [] } });
    expect(keys.device_keys['@alice:a.test']).toBeDefined();
    expect(await statusOf(fromB.post('a.test', `${F}/user/keys/query`, { device_keys: 'all' } as any))).toBe(400);
    const claimed = await fromB.post<any>('a.test', `${F}/user/keys/claim`, { one_time_keys: { '@alice:a.test': { [aliceDevice]: 'signed_curve25519' } } });
    expect(claimed.one_time_keys).toBeDefined();
    expect(await statusOf(fromB.post('a.test', `${F}/user/keys/claim`, {}))).toBe(400);

    // OpenID: a token alice got from her server tells another server who she is.
    const openid = (await alice.post(`${C}/user/${enc('@alice:a.test')}/openid/request_token`, {})).body;
    expect(openid.matrix_server_name).toBe('a.test');
    expect((await fromB.get<any>('a.test', `${F}/openid/userinfo`, { signed: false, query: { access_token: openid.access_token } })).sub).toBe('@alice:a.test');
    expect(await statusOf(fromB.get('a.test', `${F}/openid/userinfo`, { signed: false, query: { access_token: 'not-a-token' } }))).toBe(401);
  });

  it('space hierarchy', async () => {
    const space = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'Space', creation_content: { type: 'm.space' } })).body.room_id as string;
    await alice.put(`${C}/rooms/${enc(space)}/state/m.space.child/${enc(roomId)}`, { via: ['a.test'] });
    const h = await fromB.get<any>('a.test', `${F}/hierarchy/${enc(space)}`, { query: { suggested_only: false } });
    expect(h.room.room_id).toBe(space);
    expect(h.children.map((c: any) => c.room_id)).toContain(roomId);
    expect(await statusOf(fromB.get('a.test', `${F}/hierarchy/${enc('!nope:a.test')}`))).toBe(404);
  });

  it('media: multipart downloads and thumbnails, and the legacy path', async () => {
    const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000' + '1f15c4890000000d49444154789c6360000002000154a24f5b0000000049454e44ae426082', 'hex');
    const up = await fetch(`${a.clientUrl}/_matrix/media/v3/upload`, { method: 'POST', headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'image/png' }, body: png });
    const mediaId = ((await up.json()) as any).content_uri.split('/').pop() as string;

    const res = await fromB.getStream('a.test', `${F}/media/download/${mediaId}`);
    const boundary = multipartBoundary(res.headers['content-type'] as string);
    expect(boundary).toBeDefined();
    const parts = (await readAll(res.body)).toString('latin1').split(`--${boundary}`);
    // Preamble, two parts, closing delimiter: the first part is JSON metadata, the second the file.
    expect(parts).toHaveLength(4);
    const [metaHead, metaBody] = parts[1]!.split('\r\n\r\n');
    expect(metaHead!.toLowerCase()).toContain('content-type: application/json');
    expect(JSON.parse(metaBody!.trim())).toEqual({});
    expect(parts[2]!.split('\r\n\r\n')[0]!.toLowerCase()).toMatch(/content-type: image\/png/);
    expect(parts[3]!.startsWith('--')).toBe(true);
    expect(await statusOf(fromB.getStream('a.test', `${F}/media/download/nosuchmedia`))).toBe(404);

    const thumb = await fromB.getStream('a.test', `${F}/media/thumbnail/${mediaId}`, { query: { width: 1, height: 1, method: 'scale' } });
    expect(multipartBoundary(thumb.headers['content-type'] as string)).toBeDefined();
    await readAll(thumb.body);
    expect(await statusOf(fromB.getStream('a.test', `${F}/media/thumbnail/${mediaId}`, { query: { width: 1, height: 1, method: 'wobble' } }))).toBe(400);

    const legacy = await fromB.getStream('a.test', `/_matrix/media/v3/download/a.test/${mediaId}`);
    expect((await readAll(legacy.body)).equals(png)).toBe(true);
    expect(await statusOf(fromB.getStream('a.test', '/_matrix/media/v3/download/a.test/nosuchmedia'))).toBe(404);
    expect(await statusOf(fromB.getStream('a.test', `/_matrix/media/v3/download/a.test/${mediaId}/x.png`))).toBe(200);
    expect(await statusOf(fromB.getStream('a.test', '/_matrix/media/v3/download/a.test/nosuchmedia/x.png'))).toBe(404);
    const lt = await fromB.getStream('a.test', `/_matrix/media/v3/thumbnail/a.test/${mediaId}`, { query: { width: 1, height: 1 } });
    await readAll(lt.body);
    expect(await statusOf(fromB.getStream('a.test', `/_matrix/media/v3/thumbnail/a.test/${mediaId}`, { query: { width: 1, height: 1, method: 'wobble' } }))).toBe(400);
  });

  it('third-party invites: 3pid/onbind and exchange_third_party_invite', async () => {
    // The identity server's key is set in the room directly (no key validity URL in public_keys:
    // valid indefinitely); the identity server round trips are in third-party-invites.test.ts.
    const isKey = generateSigningKey('0');
    const pk = encodeBase64(isKey.publicKey);
    const room = (await alice.post(`${C}/createRoom`, { name: 'Third-party invites' })).body.room_id as string;
    const token = 'spec-token';
    const tpi = { display_name: 'c...@e...', key_validity_url: 'https://id.example.org/_matrix/identity/v2/pubkey/isvalid', public_key: pk, public_keys: [{ public_key: pk }] };
    expect((await alice.put(`${C}/rooms/${enc(room)}/state/m.room.third_party_invite/${token}`, tpi)).status).toBe(200);
    const signed = (mxid: string, key = isKey) => signJson({ mxid, token, sender: '@alice:a.test' }, 'id.example.org', key);
    const onbind = (mxid: string, key = isKey) =>
      fromB.put('a.test', `${F}/3pid/onbind`, {
        medium: 'email',
        address: 'c@example.org',
        mxid,
        invites: [{ medium: 'email', address: 'c@example.org', mxid, room_id: room, sender: '@alice:a.test', signed: signed(mxid, key) }],
      }, { signed: false });
    await a.client().register('carol3p');
    expect(await statusOf(onbind('@carol3p:a.test', generateSigningKey('0')))).toBe(403);
    expect(await statusOf(onbind('@carol3p:a.test'))).toBe(200);
    await b.client().register('dave3p');
    const exchange = (key = isKey) =>
      fromB.put('a.test', `${F}/exchange_third_party_invite/${enc(room)}`, {
        type: 'm.room.member',
        room_id: room,
        sender: '@alice:a.test',
        state_key: '@dave3p:b.test',
        content: { membership: 'invite', third_party_invite: { display_name: 'c...@e...', signed: signed('@dave3p:b.test', key) } },
      });
    expect(await statusOf(exchange(generateSigningKey('0')))).toBe(403);
    expect(await statusOf(exchange())).toBe(200);
    expect((await alice.get(`${C}/rooms/${enc(room)}/state/m.room.member/${enc('@dave3p:b.test')}`)).body.membership).toBe('invite');
  });

  it('every answer received matched the spec, and every route of the federation listener was validated', async () => {
    expect(failures).toEqual([]);
    const app = await a.server!.app('federation');
    const missing: string[] = [];
    const unknown: string[] = [];
    for (const { method, url } of registeredRoutes(app)) {
      if (method === 'HEAD' || NOT_IN_SPEC.some(([re]) => re.test(url))) continue;
      const op = operationOfRoute(method, url);
      if (!op) unknown.push(`${method} ${url}`);
      else if (!validatedOperations.has(`${op.method} ${op.template}`)) missing.push(`${op.method} ${op.template}`);
    }
    expect(unknown).toEqual([]);
    expect([...new Set(missing)]).toEqual([]);
    // Each operation answered at least once with success and once with an error.
    const incomplete: string[] = [];
    for (const [op, statuses] of validatedStatuses) {
      const ok = [...statuses].some((s) => s < 300);
      const failed = [...statuses].some((s) => s >= 400);
      if (!ok && !NO_SUCCESS_PATH.some(([re]) => re.test(op))) incomplete.push(`${op}: no success`);
      if (!failed && !NO_ERROR_PATH.some(([re]) => re.test(op))) incomplete.push(`${op}: no error`);
    }
    expect(incomplete).toEqual([]);
  });
});
