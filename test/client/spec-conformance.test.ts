/**
 * Every implemented client-server endpoint, called for real, with each success and error
 * response validated against the spec's OpenAPI definitions (test/fixtures/matrix-spec).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { registeredRoutes } from '../../src/api/http.js';
import { FakeAppService, freePort } from '../appservice/_harness.js';
import { testImage } from '../media/_media.js';
import { expectMatchesSpec, findOperation, operationOfRoute, validatedOperations, validatedStatuses } from '../_util/openapi.js';
import { startServer, tempDir, type Engine, type TestServer } from '../_util/server.js';
import { TEST_OVERRIDES, uiaPassword } from './_client.js';
import { makeCrossSigning, makeDevice, oneTimeKeys, sign } from './_e2ee.js';
import { SpecClient } from './_spec-client.js';

const C = '/_matrix/client/v3';
const V1 = '/_matrix/client/v1';
const AS_TOKEN = 'as-token-spec-network-0123456789';
const HS_TOKEN = 'hs-token-spec-network-0123456789';

/**
 * Routes of the client listener that no operation of the spec describes, each with why it
 * exists. Every other registered route must have had a response validated against the spec.
 */
const NOT_IN_SPEC: Array<[RegExp, string]> = [
  [/^\/health$/, 'liveness probe for service managers and load balancers'],
  [/^\/_myelin\//, "Myelin's own pages (statistics)"],
  [/^\/_synapse\//, 'Synapse-compatible administration API (shared-secret registration, media administration)'],
  [/^\/\.well-known\//, 'server discovery documents (checked by the discovery test when the spec defines one)'],
  [/^\/_matrix\/media\/v1\/(download|thumbnail|config|preview_url|upload)/, 'pre-v3 unauthenticated media paths still requested by old clients'],
  [/^\/_matrix\/media\/v3\/create$/, 'POST /create under v3 as some clients send it (the spec defines it under v1 only)'],
  [/^\/_matrix\/client\/unstable\//, 'unstable endpoints of proposals not yet in the spec (MSC3814 dehydrated devices, …), tested in their own files'],
  [/^\/_matrix\/client\/(v3|r0)\/keys\/upload\/:deviceId$/, 'the deprecated device-ID form of /keys/upload (same handler as /keys/upload)'],
];
const PW = 'correct horse battery';
const enc = encodeURIComponent;

/** Operations whose error answers cannot be provoked here (each with why). */
const NO_ERROR_PATH: Array<[RegExp, string]> = [
  [/^GET \/_matrix\/client\/versions$/, 'public, static: the spec documents no error'],
  [/^GET \/\.well-known\/matrix\/(client|server)$/, 'public, static documents'],
  [/^GET \/\.well-known\/matrix\/support$/, 'public document, served when configured (its 404 is checked in test/integration/http.test.ts)'],
  [/^GET \/_matrix\/client\/v3\/login$/, 'public list of login flows'],
];
/** Operations whose success cannot be reached here (each with why). */
const NO_SUCCESS_PATH: Array<[RegExp, string]> = [
  [/^POST \/_matrix\/client\/v3\/register\/(email|msisdn)\/requestToken$/, 'registration through e-mail or phone verification is not offered (M_THREEPID_DENIED)'],
  [/^POST \/_matrix\/client\/v3\/account\/3pid\/(email|msisdn)\/requestToken$/, 'third-party identifiers cannot be added (M_THREEPID_MEDIUM_NOT_SUPPORTED)'],
  [/^POST \/_matrix\/client\/v3\/account\/password\/(email|msisdn)\/requestToken$/, 'no account has a third-party identifier to reset its password with (M_THREEPID_NOT_FOUND)'],
  [/^POST \/_matrix\/client\/v3\/account\/3pid(\/add|\/delete)?$/, 'third-party identifier changes are off (capability m.3pid_changes): 400 M_FORBIDDEN'],
  [/^POST \/_matrix\/client\/v3\/account\/3pid\/bind$/, 'identifiers are not bound through identity servers (M_SERVER_NOT_TRUSTED)'],
  [/^GET \/_matrix\/client\/v1\/auth_metadata$/, 'the OAuth 2.0 API is not offered: its discovery answers 404 M_UNRECOGNIZED, as the spec says'],
];

describe('OpenAPI helper', () => {
  it('finds operations by template and by concrete path, preferring literal segments', () => {
    expect(findOperation('GET', '/_matrix/client/v3/rooms/{roomId}/messages').operationId).toBe('getRoomEvents');
    expect(findOperation('GET', `/_matrix/client/r0/rooms/${enc('!a:b')}/messages?dir=b`).operationId).toBe('getRoomEvents');
    expect(findOperation('GET', `${C}/rooms/${enc('!a:b')}/state/m.room.name/`).operationId).toBe('getRoomStateWithKey');
    expect(findOperation('GET', `${C}/rooms/${enc('!a:b')}/state`).operationId).toBe('getRoomState');
    expect(findOperation('GET', `${C}/rooms/x/joined_members`).operationId).toBe('getJoinedMembersByRoom');
    expect(() => findOperation('GET', `${C}/no/such/thing`)).toThrow(/no operation/);
  });

  it('rejects bodies that break the schema and accepts ones that follow it', () => {
    expect(() => expectMatchesSpec('GET', `${C}/account/whoami`, 200, { user_id: '@a:b', device_id: 'D' })).not.toThrow();
    expect(() => expectMatchesSpec('GET', `${C}/account/whoami`, 200, { device_id: 'D' })).toThrow(/required/);
    expect(() => expectMatchesSpec('GET', `${C}/account/whoami`, 200, { user_id: 'not-a-user' })).toThrow(/pattern|format/);
    expect(() => expectMatchesSpec('GET', `${C}/joined_rooms`, 200, { joined_rooms: ['!r:x'] })).not.toThrow();
    expect(() => expectMatchesSpec('GET', `${C}/joined_rooms`, 200, { joined_rooms: [3] })).toThrow();
    // Errors must carry errcode, whether or not the operation lists the status.
    expect(() => expectMatchesSpec('GET', `${C}/joined_rooms`, 401, { errcode: 'M_MISSING_TOKEN', error: 'x' })).not.toThrow();
    expect(() => expectMatchesSpec('GET', `${C}/joined_rooms`, 418, { error: 'x' })).toThrow(/errcode/);
    expect(() => expectMatchesSpec('GET', `${C}/joined_rooms`, 201, {})).toThrow(/does not document/);
    // $refs into event schemas are followed: a timeline event without event_id is refused.
    const msg = { chunk: [{ type: 'm.room.message', content: {}, sender: '@a:b', origin_server_ts: 1, room_id: '!r:b' }], start: 't1' };
    expect(() => expectMatchesSpec('GET', `${C}/rooms/{roomId}/messages`, 200, msg)).toThrow(/event_id/);
    const sync = (ev: object) => ({
      next_batch: 's1',
      rooms: { join: { '!r:b': { timeline: { events: [ev], limited: false, prev_batch: 't0' } } } },
    });
    const good = { type: 'm.room.message', content: {}, sender: '@a:b', origin_server_ts: 1, event_id: '$e' };
    expect(() => expectMatchesSpec('GET', `${C}/sync`, 200, sync(good))).not.toThrow();
    expect(() => expectMatchesSpec('GET', `${C}/sync`, 200, sync({ ...good, sender: 'nobody' }))).toThrow(/sender/);
    expect(() => expectMatchesSpec('GET', `${C}/sync`, 200, { rooms: {} })).toThrow(/next_batch/);
  });
});

describe.each<Engine>(['sqlite', 'postgres'])('client API responses match the spec on %s', (engine) => {
  let t: TestServer;
  let alice: SpecClient;
  let bob: SpecClient;
  let carol: SpecClient;
  let anon: SpecClient;
  let aliceId: string;
  let bobId: string;
  let carolId: string;
  let dataDir: string;
  let fakeAs: FakeAppService;
  let page: Server;
  let pageUrl: string;

  beforeAll(async () => {
    // Operations validated by this engine's scenarios only.
    validatedOperations.clear();
    validatedStatuses.clear();
    fakeAs = new FakeAppService(await freePort());
    fakeAs.handler = (r) => {
      if (r.path.startsWith('/_matrix/app/v1/thirdparty/protocol/specnet')) {
        return { status: 200, body: { user_fields: ['nick'], location_fields: ['channel'], icon: 'mxc://localhost/icon', field_types: { nick: { regexp: '.*', placeholder: 'nick' }, channel: { regexp: '.*', placeholder: '#c' } }, instances: [{ desc: 'Spec', network_id: 'main', fields: {} }] } };
      }
      if (r.path.startsWith('/_matrix/app/v1/thirdparty/location')) return { status: 200, body: [{ alias: '#_spec_general:localhost', protocol: 'specnet', fields: { channel: 'general' } }] };
      if (r.path.startsWith('/_matrix/app/v1/thirdparty/user')) return { status: 200, body: [{ userid: '@_spec_bob:localhost', protocol: 'specnet', fields: { nick: 'bob' } }] };
      return { status: 200, body: {} };
    };
    await fakeAs.start();
    page = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end('<html><head><title>Page</title><meta property="og:title" content="Spec page"><meta property="og:description" content="About"></head></html>');
    });
    await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
    pageUrl = `http://127.0.0.1:${(page.address() as AddressInfo).port}/og`;
    dataDir = tempDir();
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(
      join(dataDir, 'specnet.yaml'),
      stringify({
        id: 'specnet',
        url: fakeAs.url,
        as_token: AS_TOKEN,
        hs_token: HS_TOKEN,
        sender_localpart: 'specnetbot',
        namespaces: { users: [{ regex: '@_spec_.*', exclusive: true }], aliases: [{ regex: '#_spec_.*', exclusive: true }], rooms: [] },
        rate_limited: false,
        protocols: ['specnet'],
      }),
    );
    t = await startServer({
      engine,
      dataDir,
      overrides: {
        ...TEST_OVERRIDES,
        app_services: ['specnet.yaml'],
        turn_uris: ['turn:turn.example.org:3478?transport=udp'],
        turn_shared_secret: 'a shared secret',
        well_known: { support: { contacts: [{ matrix_id: '@admin:localhost', role: 'm.role.admin' }, { email_address: 'security@example.org', role: 'm.role.security' }], support_page: 'https://example.org/help' } },
        push: { allow_private_gateways: true, allow_http_gateways: true },
        // Legacy unauthenticated downloads are exercised too.
        media: { freeze_unauthenticated: false, url_preview: { enabled: true, ip_whitelist: ['127.0.0.1/32'] } },
      },
    });
    alice = new SpecClient(t.clientUrl);
    bob = new SpecClient(t.clientUrl);
    carol = new SpecClient(t.clientUrl);
    anon = new SpecClient(t.clientUrl);
    aliceId = (await alice.register('alice')).user_id;
    bobId = (await bob.register('bob')).user_id;
    carolId = (await carol.register('carol')).user_id;
  });
  afterAll(async () => {
    await t?.close();
    await fakeAs?.stop();
    await new Promise((r) => page?.close(r));
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('discovery: versions, well-known, capabilities, login flows', async () => {
    const v = await anon.get('/_matrix/client/versions');
    expect(v.status).toBe(200);
    expect(v.body.versions.length).toBeGreaterThan(0);
    expect((await anon.get('/.well-known/matrix/client')).status).toBe(200);
    expect((await anon.get(`${C}/login`)).status).toBe(200);
    expect((await alice.get(`${C}/capabilities`)).status).toBe(200);
    expect((await anon.get(`${C}/capabilities`)).status).toBe(401);
  });

  it('accounts: register, availability, login, whoami, logout, password, devices', async () => {
    const c = new SpecClient(t.clientUrl);
    const flows = await c.post(`${C}/register`, { username: 'dave', password: PW });
    expect(flows.status).toBe(401);
    const reg = await c.post(`${C}/register`, { username: 'dave', password: PW, auth: { type: 'm.login.dummy', session: flows.body.session } });
    expect(reg.status).toBe(200);
    c.token = reg.body.access_token;
    expect((await anon.get(`${C}/register/available?username=dave`)).status).toBe(400);
    expect((await anon.get(`${C}/register/available?username=nobody-yet`)).body.available).toBe(true);
    expect((await anon.post(`${C}/register`, { username: 'dave', password: PW, auth: { type: 'm.login.dummy' } })).body.errcode).toBe('M_USER_IN_USE');

    const login = await anon.post(`${C}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'dave' }, password: PW, refresh_token: true });
    expect(login.status).toBe(200);
    const bad = await anon.post(`${C}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'dave' }, password: 'wrong' });
    expect(bad.status).toBe(403);
    const refreshed = await anon.post(`${C}/refresh`, { refresh_token: login.body.refresh_token });
    expect(refreshed.status).toBe(200);
    expect((await anon.post(`${C}/refresh`, { refresh_token: 'nope' })).status).toBe(401);

    const d = new SpecClient(t.clientUrl, refreshed.body.access_token);
    const who = await d.get(`${C}/account/whoami`);
    expect(who.body.user_id).toBe('@dave:localhost');
    expect((await anon.get(`${C}/account/whoami`, { token: 'bogus' })).status).toBe(401);

    const devices = await c.get(`${C}/devices`);
    expect(devices.body.devices.length).toBe(2);
    expect((await c.get(`${C}/devices/${enc(who.body.device_id)}`)).status).toBe(200);
    expect((await c.get(`${C}/devices/NOPE`)).status).toBe(404);
    expect((await c.put(`${C}/devices/${enc(who.body.device_id)}`, { display_name: 'Phone' })).status).toBe(200);
    const del1 = await c.del(`${C}/devices/${enc(who.body.device_id)}`, {});
    expect(del1.status).toBe(401);
    expect((await c.del(`${C}/devices/${enc(who.body.device_id)}`, { auth: uiaPassword('dave', PW, del1.body.session) })).status).toBe(200);
    const login2 = await anon.post(`${C}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'dave' }, password: PW });
    const del2 = await c.post(`${C}/delete_devices`, { devices: [login2.body.device_id] });
    expect(del2.status).toBe(401);
    expect((await c.post(`${C}/delete_devices`, { devices: [login2.body.device_id], auth: uiaPassword('dave', PW, del2.body.session) })).status).toBe(200);

    expect((await c.get(`${C}/account/3pid`)).status).toBe(200);
    const pw1 = await c.post(`${C}/account/password`, { new_password: 'another one' });
    expect(pw1.status).toBe(401);
    expect((await c.post(`${C}/account/password`, { new_password: 'another one', logout_devices: false, auth: uiaPassword('dave', PW, pw1.body.session) })).status).toBe(200);

    const login3 = await anon.post(`${C}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'dave' }, password: 'another one' });
    const e = new SpecClient(t.clientUrl, login3.body.access_token);
    expect((await e.post(`${C}/logout`, {})).status).toBe(200);
    expect((await e.get(`${C}/account/whoami`)).body.errcode).toBe('M_UNKNOWN_TOKEN');
    expect((await c.post(`${C}/logout/all`, {})).status).toBe(200);

    const eve = new SpecClient(t.clientUrl);
    await eve.register('eve');
    const deact = await eve.post(`${C}/account/deactivate`, {});
    expect(deact.status).toBe(401);
    expect((await eve.post(`${C}/account/deactivate`, { auth: uiaPassword('eve', PW, deact.body.session) })).status).toBe(200);
  });

  it('profile, filters, account data, tags, presence, user directory', async () => {
    expect((await alice.put(`${C}/profile/${enc(aliceId)}/displayname`, { displayname: 'Alice' })).status).toBe(200);
    expect((await alice.put(`${C}/profile/${enc(aliceId)}/avatar_url`, { avatar_url: 'mxc://localhost/abc' })).status).toBe(200);
    expect((await bob.get(`${C}/profile/${enc(aliceId)}`)).body.displayname).toBe('Alice');
    expect((await bob.get(`${C}/profile/${enc(aliceId)}/displayname`)).body).toEqual({ displayname: 'Alice' });
    expect((await bob.get(`${C}/profile/${enc('@ghost:localhost')}`)).status).toBe(404);
    expect((await bob.put(`${C}/profile/${enc(aliceId)}/displayname`, { displayname: 'Mallory' })).status).toBe(403);

    const f = await alice.post(`${C}/user/${enc(aliceId)}/filter`, { room: { timeline: { limit: 5 } } });
    expect(f.status).toBe(200);
    expect((await alice.get(`${C}/user/${enc(aliceId)}/filter/${f.body.filter_id}`)).body.room.timeline.limit).toBe(5);
    expect((await alice.get(`${C}/user/${enc(aliceId)}/filter/99999`)).status).toBe(404);
    expect((await bob.get(`${C}/user/${enc(aliceId)}/filter/${f.body.filter_id}`)).status).toBe(403);

    expect((await alice.put(`${C}/user/${enc(aliceId)}/account_data/org.example.x`, { a: 1 })).status).toBe(200);
    expect((await alice.get(`${C}/user/${enc(aliceId)}/account_data/org.example.x`)).body).toEqual({ a: 1 });
    expect((await alice.get(`${C}/user/${enc(aliceId)}/account_data/org.example.none`)).status).toBe(404);
    expect((await bob.get(`${C}/user/${enc(aliceId)}/account_data/org.example.x`)).status).toBe(403);

    const room = (await alice.post(`${C}/createRoom`, {})).body.room_id as string;
    const rd = `${C}/user/${enc(aliceId)}/rooms/${enc(room)}`;
    expect((await alice.put(`${rd}/account_data/org.example.y`, { b: 2 })).status).toBe(200);
    expect((await alice.get(`${rd}/account_data/org.example.y`)).body).toEqual({ b: 2 });
    expect((await alice.put(`${rd}/tags/u.work`, { order: 0.5 })).status).toBe(200);
    expect((await alice.get(`${rd}/tags`)).body.tags).toEqual({ 'u.work': { order: 0.5 } });
    expect((await alice.del(`${rd}/tags/u.work`)).status).toBe(200);

    expect((await alice.put(`${C}/presence/${enc(aliceId)}/status`, { presence: 'online', status_msg: 'hi' })).status).toBe(200);
    expect((await alice.get(`${C}/presence/${enc(aliceId)}/status`)).body.presence).toBe('online');
    expect((await bob.put(`${C}/presence/${enc(aliceId)}/status`, { presence: 'online' })).status).toBe(403);

    const dir = await bob.post(`${C}/user_directory/search`, { search_term: 'ali', limit: 5 });
    expect(dir.status).toBe(200);
    expect(typeof dir.body.limited).toBe('boolean');
  });

  it('rooms: create, membership, state, send, redact, read, directory', async () => {
    const alias = `spec-${engine}`;
    const created = await alice.post(`${C}/createRoom`, {
      preset: 'public_chat',
      name: 'Spec room',
      topic: 'OpenAPI',
      room_alias_name: alias,
      visibility: 'public',
    });
    expect(created.status).toBe(200);
    const roomId = created.body.room_id as string;
    const rid = enc(roomId);
    expect((await alice.post(`${C}/createRoom`, { room_alias_name: alias })).body.errcode).toBe('M_ROOM_IN_USE');
    expect((await alice.post(`${C}/createRoom`, { room_version: '999' })).body.errcode).toBe('M_UNSUPPORTED_ROOM_VERSION');

    // Directory.
    const fullAlias = `#${alias}:localhost`;
    expect((await bob.get(`${C}/directory/room/${enc(fullAlias)}`)).body.room_id).toBe(roomId);
    expect((await bob.get(`${C}/directory/room/${enc('#missing:localhost')}`)).status).toBe(404);
    expect((await alice.put(`${C}/directory/room/${enc(`#${alias}-2:localhost`)}`, { room_id: roomId })).status).toBe(200);
    expect((await alice.put(`${C}/directory/room/${enc(`#${alias}-2:localhost`)}`, { room_id: roomId })).status).toBe(409);
    expect((await alice.get(`${C}/rooms/${rid}/aliases`)).body.aliases).toContain(`#${alias}-2:localhost`);
    expect((await alice.del(`${C}/directory/room/${enc(`#${alias}-2:localhost`)}`)).status).toBe(200);
    expect((await anon.get(`${C}/directory/list/room/${rid}`)).body.visibility).toBe('public');
    expect((await bob.put(`${C}/directory/list/room/${rid}`, { visibility: 'private' })).status).toBe(403);
    expect((await alice.put(`${C}/directory/list/room/${rid}`, { visibility: 'public' })).status).toBe(200);
    const pub = await anon.get(`${C}/publicRooms?limit=10`);
    expect(pub.body.chunk.map((r: any) => r.room_id)).toContain(roomId);
    expect((await bob.post(`${C}/publicRooms`, { limit: 10, filter: { generic_search_term: 'Spec' } })).body.chunk.length).toBeGreaterThan(0);

    // Membership.
    expect((await bob.post(`${C}/join/${enc(fullAlias)}`, {})).body.room_id).toBe(roomId);
    expect((await carol.post(`${C}/rooms/${rid}/join`, {})).status).toBe(200);
    expect((await carol.post(`${C}/rooms/${rid}/leave`, {})).status).toBe(200);
    expect((await alice.post(`${C}/rooms/${rid}/invite`, { user_id: carolId })).status).toBe(200);
    expect((await bob.post(`${C}/rooms/${rid}/invite`, { user_id: '@nobody:localhost' })).status).toBe(403);
    expect((await carol.post(`${C}/rooms/${rid}/join`, {})).status).toBe(200);
    expect((await bob.post(`${C}/rooms/${rid}/kick`, { user_id: carolId })).status).toBe(403);
    expect((await alice.post(`${C}/rooms/${rid}/kick`, { user_id: carolId, reason: 'test' })).status).toBe(200);
    expect((await alice.post(`${C}/rooms/${rid}/ban`, { user_id: carolId })).status).toBe(200);
    expect((await carol.post(`${C}/rooms/${rid}/join`, {})).status).toBe(403);
    expect((await alice.post(`${C}/rooms/${rid}/unban`, { user_id: carolId })).status).toBe(200);
    expect((await carol.post(`${C}/rooms/${rid}/forget`, {})).status).toBe(200);
    expect((await carol.post(`${C}/rooms/${enc('!nope:localhost')}/join`, {})).status).toBe(404);

    const knockRoom = (await alice.post(`${C}/createRoom`, { preset: 'private_chat', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] })).body.room_id;
    expect((await carol.post(`${C}/knock/${enc(knockRoom)}`, { reason: 'let me in' })).body.room_id).toBe(knockRoom);
    expect((await carol.post(`${C}/knock/${rid}`, {})).status).toBe(403);
    expect((await bob.get(`${C}/joined_rooms`)).body.joined_rooms).toContain(roomId);

    // State.
    expect((await alice.put(`${C}/rooms/${rid}/state/m.room.topic`, { topic: 'Changed' })).status).toBe(200);
    expect((await alice.put(`${C}/rooms/${rid}/state/org.example.thing/key`, { v: 1 })).status).toBe(200);
    expect((await bob.put(`${C}/rooms/${rid}/state/m.room.power_levels`, { users: {} })).status).toBe(403);
    expect((await bob.get(`${C}/rooms/${rid}/state/m.room.topic`)).body.topic).toBe('Changed');
    expect((await bob.get(`${C}/rooms/${rid}/state/m.room.topic/?format=event`)).status).toBe(200);
    expect((await bob.get(`${C}/rooms/${rid}/state/org.example.thing/key`)).body).toEqual({ v: 1 });
    expect((await bob.get(`${C}/rooms/${rid}/state/m.room.avatar`)).status).toBe(404);
    expect((await bob.get(`${C}/rooms/${rid}/state`)).body.length).toBeGreaterThan(5);
    expect((await carol.get(`${C}/rooms/${rid}/state`)).status).toBe(403);

    // Messages.
    const sent: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await alice.put(`${C}/rooms/${rid}/send/m.room.message/m${i}`, { msgtype: 'm.text', body: `message ${i}` });
      expect(r.status).toBe(200);
      sent.push(r.body.event_id);
    }
    expect((await carol.put(`${C}/rooms/${rid}/send/m.room.message/x`, { msgtype: 'm.text', body: 'no' })).status).toBe(403);
    const red = await alice.put(`${C}/rooms/${rid}/redact/${enc(sent[0]!)}/r0`, { reason: 'oops' });
    expect(red.status).toBe(200);
    expect((await bob.put(`${C}/rooms/${rid}/redact/${enc(sent[1]!)}/r1`, {})).status).toBe(403);

    const ev = await bob.get(`${C}/rooms/${rid}/event/${enc(sent[3]!)}`);
    expect(ev.body.content.body).toBe('message 3');
    expect((await bob.get(`${C}/rooms/${rid}/event/${enc('$missing')}`)).status).toBe(404);
    const redacted = await bob.get(`${C}/rooms/${rid}/event/${enc(sent[0]!)}`);
    expect(redacted.body.unsigned.redacted_because.event_id).toBe(red.body.event_id);

    const ctxRes = await bob.get(`${C}/rooms/${rid}/context/${enc(sent[5]!)}?limit=4`);
    expect(ctxRes.body.event.event_id).toBe(sent[5]);
    expect(ctxRes.body.events_before.length).toBe(2);
    expect((await bob.get(`${C}/rooms/${rid}/context/${enc('$missing')}`)).status).toBe(404);

    const members = await bob.get(`${C}/rooms/${rid}/members`);
    expect(members.body.chunk.length).toBeGreaterThanOrEqual(3);
    expect((await bob.get(`${C}/rooms/${rid}/members?membership=join`)).body.chunk.length).toBe(2);
    expect(Object.keys((await bob.get(`${C}/rooms/${rid}/joined_members`)).body.joined).sort()).toEqual([aliceId, bobId].sort());

    const back = await bob.get(`${C}/rooms/${rid}/messages?dir=b&limit=5`);
    expect(back.body.chunk.length).toBe(5);
    const fwd = await bob.get(`${C}/rooms/${rid}/messages?dir=f&limit=5&from=${back.body.end}`);
    expect(fwd.status).toBe(200);
    const lazy = await bob.get(`${C}/rooms/${rid}/messages?dir=b&limit=3&filter=${enc(JSON.stringify({ lazy_load_members: true }))}`);
    expect(lazy.body.state.length).toBeGreaterThan(0);
    expect((await bob.get(`${C}/rooms/${rid}/messages?dir=x`)).status).toBe(400);
    expect((await carol.get(`${C}/rooms/${enc(knockRoom)}/messages?dir=b`)).status).toBe(403);
  });

  it('sync: initial, incremental, invite, leave and knock sections, full_state', async () => {
    const s0 = await bob.get(`${C}/sync?timeout=0`);
    expect(s0.status).toBe(200);
    const priv = (await alice.post(`${C}/createRoom`, { preset: 'private_chat', name: 'Secret', invite: [bobId], is_direct: true })).body.room_id as string;
    const s1 = await bob.get(`${C}/sync?since=${s0.body.next_batch}&timeout=0`);
    expect(s1.body.rooms.invite[priv].invite_state.events.length).toBeGreaterThan(0);

    await bob.post(`${C}/rooms/${enc(priv)}/join`, {});
    await alice.put(`${C}/rooms/${enc(priv)}/send/m.room.message/s1`, { msgtype: 'm.text', body: 'psst' });
    const s2 = await bob.get(`${C}/sync?since=${s1.body.next_batch}&timeout=0`);
    expect(s2.body.rooms.join[priv].timeline.events.some((e: any) => e.content.body === 'psst')).toBe(true);

    await alice.post(`${C}/rooms/${enc(priv)}/kick`, { user_id: bobId });
    const s3 = await bob.get(`${C}/sync?since=${s2.body.next_batch}&timeout=0`);
    expect(s3.body.rooms.leave[priv]).toBeDefined();

    const withLeave = await bob.get(`${C}/sync?timeout=0&filter=${enc(JSON.stringify({ room: { include_leave: true, timeline: { limit: 3 } } }))}`);
    expect(withLeave.body.rooms.leave[priv]).toBeDefined();
    expect((await bob.get(`${C}/sync?since=${s3.body.next_batch}&full_state=true&timeout=0`)).status).toBe(200);
    const f = await bob.post(`${C}/user/${enc(bobId)}/filter`, { room: { state: { lazy_load_members: true }, timeline: { limit: 2 } } });
    expect((await bob.get(`${C}/sync?filter=${f.body.filter_id}&timeout=0`)).status).toBe(200);

    const knockRoom = (await alice.post(`${C}/createRoom`, { initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] })).body.room_id as string;
    const k0 = await carol.get(`${C}/sync?timeout=0`);
    await carol.post(`${C}/knock/${enc(knockRoom)}`, {});
    const k1 = await carol.get(`${C}/sync?since=${k0.body.next_batch}&timeout=0`);
    expect(k1.body.rooms.knock[knockRoom].knock_state.events.length).toBeGreaterThan(0);

    expect((await bob.get(`${C}/sync?since=garbage`)).status).toBe(400);
    expect((await anon.get(`${C}/sync`)).status).toBe(401);
  });

  it('discovery and account extras: server well-known, login tokens, profile fields, 3PIDs, registration tokens, TURN', async () => {
    const wk = await anon.get('/.well-known/matrix/server');
    expect([200, 404]).toContain(wk.status);

    const gt1 = await alice.post(`${V1}/login/get_token`, {});
    expect(gt1.status).toBe(401);
    const gt = await alice.post(`${V1}/login/get_token`, { auth: uiaPassword('alice', PW, gt1.body.session) });
    expect(gt.status).toBe(200);
    expect((await anon.post(`${V1}/login/get_token`, {})).status).toBe(401);
    const viaToken = await anon.post(`${C}/login`, { type: 'm.login.token', token: gt.body.login_token });
    expect(viaToken.body.user_id).toBe(aliceId);
    expect((await anon.post(`${C}/login`, { type: 'm.login.token', token: gt.body.login_token })).status).toBe(403);

    // Profile fields other than displayname and avatar_url.
    const field = `${C}/profile/${enc(aliceId)}/m.tz`;
    expect((await alice.put(field, { 'm.tz': 'Europe/Paris' })).status).toBe(200);
    expect((await bob.get(field)).body).toEqual({ 'm.tz': 'Europe/Paris' });
    expect((await bob.put(field, { 'm.tz': 'UTC' })).status).toBe(403);
    expect((await alice.del(field)).status).toBe(200);
    expect((await bob.get(field)).status).toBe(404);
    expect((await alice.put(`${C}/profile/${enc(aliceId)}/org.example.mismatch`, { other: 1 })).status).toBe(400);

    expect((await alice.get(`${C}/account/3pid`)).body.threepids).toEqual([]);
    expect((await anon.get(`${C}/account/3pid`)).status).toBe(401);
    expect((await anon.post(`${C}/register/email/requestToken`, { client_secret: 'cs', email: 'a@example.org', send_attempt: 1 })).status).toBe(403);
    expect((await anon.post(`${C}/register/msisdn/requestToken`, { client_secret: 'cs', country: 'FR', phone_number: '600000000', send_attempt: 1 })).status).toBe(403);
    // Registration is open here: registration tokens are not used.
    expect((await anon.get(`${V1}/register/m.login.registration_token/validity?token=abc`)).status).toBe(403);

    // Third-party identifiers: none can be used to reset a password, added, bound or removed.
    expect((await anon.post(`${C}/account/password/email/requestToken`, { client_secret: 'cs', email: 'a@example.org', send_attempt: 1 })).body.errcode).toBe('M_THREEPID_NOT_FOUND');
    expect((await anon.post(`${C}/account/password/msisdn/requestToken`, { client_secret: 'cs', country: 'FR', phone_number: '600000000', send_attempt: 1 })).body.errcode).toBe('M_THREEPID_NOT_FOUND');
    expect((await anon.post(`${C}/account/password/email/requestToken`, { email: 'a@example.org' })).status).toBe(400);
    for (const [path, body] of [
      ['/account/3pid', { three_pid_creds: { client_secret: 'cs', id_server: 'id.example.org', id_access_token: 't', sid: 's' } }],
      ['/account/3pid/add', { client_secret: 'cs', sid: 's' }],
      ['/account/3pid/delete', { medium: 'email', address: 'a@example.org' }],
    ] as const) {
      const r = await alice.post(`${C}${path}`, body);
      expect([r.status, r.body.errcode]).toEqual([400, 'M_FORBIDDEN']);
      expect((await anon.post(`${C}${path}`, body)).status).toBe(401);
    }
    const bind = await alice.post(`${C}/account/3pid/bind`, { client_secret: 'cs', id_server: 'id.example.org', id_access_token: 't', sid: 's' });
    expect([bind.status, bind.body.errcode]).toEqual([400, 'M_SERVER_NOT_TRUSTED']);
    expect((await alice.post(`${C}/account/3pid/unbind`, { medium: 'email', address: 'a@example.org' })).body).toEqual({ id_server_unbind_result: 'no-support' });
    expect((await alice.post(`${C}/account/3pid/unbind`, { medium: 'fax', address: 'x' })).status).toBe(400);
    expect((await alice.post(`${C}/account/3pid/delete`, { medium: 'email' })).status).toBe(400);
    expect((await alice.get(`${C}/account/3pid`)).body.threepids).toEqual([]);

    // Who to contact about the server.
    const support = await anon.get('/.well-known/matrix/support');
    expect(support.body).toEqual({
      contacts: [{ matrix_id: '@admin:localhost', role: 'm.role.admin' }, { email_address: 'security@example.org', role: 'm.role.security' }],
      support_page: 'https://example.org/help',
    });

    // OpenID tokens, for widgets and integration managers.
    const openid = await alice.post(`${C}/user/${enc(aliceId)}/openid/request_token`, {});
    expect(openid.body).toMatchObject({ token_type: 'Bearer', matrix_server_name: 'localhost', expires_in: 3600 });
    expect((await bob.post(`${C}/user/${enc(aliceId)}/openid/request_token`, {})).status).toBe(403);

    // whois: one's own devices; another user's only for an administrator.
    const own = await alice.get(`${C}/admin/whois/${enc(aliceId)}`);
    expect(own.body.user_id).toBe(aliceId);
    const devices = (await alice.get(`${C}/devices`)).body.devices as Array<{ device_id: string; last_seen_ip?: string; last_seen_ts?: number }>;
    expect(Object.keys(own.body.devices).sort()).toEqual(devices.map((d) => d.device_id).sort());
    const current = (await alice.get(`${C}/account/whoami`)).body.device_id as string;
    const conn = own.body.devices[current].sessions[0].connections[0];
    expect(conn.ip).toMatch(/127\.0\.0\.1/);
    expect(conn.last_seen).toBeGreaterThan(Date.now() - 3_600_000);
    // The user agent of a session's last request is shown with it.
    const ua = 'SpecTest/1.0 (conformance)';
    const login = await anon.post(`${C}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: PW });
    const phone = new SpecClient(t.clientUrl, login.body.access_token);
    expect((await phone.req('GET', `${C}/account/whoami`, undefined, { headers: { 'user-agent': ua } })).status).toBe(200);
    const seen = (await alice.get(`${C}/admin/whois/${enc(aliceId)}`)).body.devices[login.body.device_id].sessions[0].connections[0];
    expect(seen.user_agent).toBe(ua);
    expect((await phone.get(`${C}/devices/${enc(login.body.device_id)}`)).body.last_seen_user_agent).toBe(ua);
    expect((await phone.post(`${C}/logout`, {})).status).toBe(200);
    expect((await bob.get(`${C}/admin/whois/${enc(aliceId)}`)).body.errcode).toBe('M_FORBIDDEN');
    expect((await bob.get(`${C}/admin/whois/${enc('@nobody:localhost')}`)).status).toBe(403);
    expect((await anon.get(`${C}/admin/whois/${enc(aliceId)}`)).status).toBe(401);

    const turn = await alice.get(`${C}/voip/turnServer`);
    expect(turn.body.uris).toEqual(['turn:turn.example.org:3478?transport=udp']);
    expect((await anon.get(`${C}/voip/turnServer`)).status).toBe(401);
  });

  it('registration token validity on a server that requires tokens', async () => {
    const s = await startServer({ engine, overrides: { ...TEST_OVERRIDES, registration: 'token' } });
    try {
      const c = new SpecClient(s.clientUrl);
      expect((await c.get(`${V1}/register/m.login.registration_token/validity?token=nope`)).body).toEqual({ valid: false });
      expect((await c.get(`${V1}/register/m.login.registration_token/validity`)).status).toBe(400);
    } finally {
      await s.close();
    }
  });

  it('error answers of accounts, per-user data, directory and membership endpoints', async () => {
    const who = (await alice.get(`${C}/account/whoami`)).body;
    const room = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', room_alias_name: `errors-${engine}` })).body.room_id as string;
    const rid = enc(room);
    const rd = `${C}/user/${enc(aliceId)}/rooms/${rid}`;
    const statuses = {
      devices: (await anon.get(`${C}/devices`)).status,
      putDevice: (await alice.put(`${C}/devices/NOSUCHDEVICE`, { display_name: 'x' })).status,
      logout: (await anon.post(`${C}/logout`, {})).status,
      logoutAll: (await anon.post(`${C}/logout/all`, {})).status,
      filter: (await bob.post(`${C}/user/${enc(aliceId)}/filter`, {})).status,
      accountData: (await bob.put(`${C}/user/${enc(aliceId)}/account_data/org.example.x`, {})).status,
      roomAccountData: (await bob.put(`${rd}/account_data/org.example.x`, {})).status,
      roomAccountDataMissing: (await alice.get(`${rd}/account_data/org.example.none`)).status,
      putTag: (await bob.put(`${rd}/tags/u.x`, {})).status,
      getTags: (await bob.get(`${rd}/tags`)).status,
      delTag: (await bob.del(`${rd}/tags/u.x`)).status,
      presence: (await alice.get(`${C}/presence/${enc('@ghost:localhost')}/status`)).status,
      userDirectory: (await anon.post(`${C}/user_directory/search`, { search_term: 'a' })).status,
      aliases: (await carol.get(`${C}/rooms/${rid}/aliases`)).status,
      delAlias: (await alice.del(`${C}/directory/room/${enc('#missing:localhost')}`)).status,
      visibility: (await anon.get(`${C}/directory/list/room/${enc('!nope:localhost')}`)).status,
      joinAlias: (await bob.post(`${C}/join/${enc('#missing:localhost')}`, {})).status,
      leave: (await bob.post(`${C}/rooms/${enc('!nope:localhost')}/leave`, {})).status,
      ban: (await bob.post(`${C}/rooms/${rid}/ban`, { user_id: aliceId })).status,
      unban: (await bob.post(`${C}/rooms/${rid}/unban`, { user_id: aliceId })).status,
      forget: (await anon.post(`${C}/rooms/${rid}/forget`, {})).status,
      joinedRooms: (await anon.get(`${C}/joined_rooms`)).status,
      joinedMembers: (await carol.get(`${C}/rooms/${rid}/joined_members`)).status,
      delProfile: (await bob.del(`${C}/profile/${enc(aliceId)}/m.tz`)).status,
      pushrules: (await anon.get(`${C}/pushrules/`)).status,
      pushrulesGlobal: (await anon.get(`${C}/pushrules/global/`)).status,
      protocols: (await anon.get(`${C}/thirdparty/protocols`)).status,
    };
    expect(statuses).toEqual({
      devices: 401, putDevice: 404, logout: 401, logoutAll: 401, filter: 403, accountData: 403, roomAccountData: 403,
      roomAccountDataMissing: 404, putTag: 403, getTags: 403, delTag: 403, presence: 404, userDirectory: 401, aliases: 403,
      delAlias: 404, visibility: 404, joinAlias: 404, leave: 403, ban: 403, unban: 403, forget: 401, joinedRooms: 401,
      joinedMembers: 403, delProfile: 403, pushrules: 401, pushrulesGlobal: 401, protocols: 401,
    });
    expect(who.user_id).toBe(aliceId);

    // Invites by e-mail address go through the identity server the client names (an IP literal
    // here: no DNS). One on a private address is refused and changes nothing; createRoom still
    // makes the room (successes: test/client/third-party-invites.test.ts).
    const threepid = { id_server: '127.0.0.1:1', id_access_token: 'token', medium: 'email', address: 'someone@example.org' };
    const own = (await alice.post(`${C}/createRoom`, {})).body.room_id as string;
    const stateBefore = (await alice.get(`${C}/rooms/${enc(own)}/state`)).body.length;
    const byEmail = await alice.post(`${C}/rooms/${enc(own)}/invite`, threepid);
    expect([byEmail.status, byEmail.body.errcode]).toEqual([400, 'M_SERVER_NOT_TRUSTED']);
    expect((await alice.get(`${C}/rooms/${enc(own)}/state`)).body.length).toBe(stateBefore);
    expect((await alice.post(`${C}/rooms/${enc(own)}/invite`, {})).status).toBe(400);
    const created = await alice.post(`${C}/createRoom`, { name: 'With e-mail invitees', invite_3pid: [threepid] });
    expect(created.status).toBe(200);
    const createdState = (await alice.get(`${C}/rooms/${enc(created.body.room_id)}/state`)).body as Array<{ type: string }>;
    expect(createdState.filter((e) => e.type === 'm.room.third_party_invite')).toEqual([]);
  });

  it('transaction IDs are scoped to the request path (room, event type, endpoint)', async () => {
    const r1 = (await alice.post(`${C}/createRoom`, {})).body.room_id as string;
    const r2 = (await alice.post(`${C}/createRoom`, {})).body.room_id as string;
    const a = await alice.put(`${C}/rooms/${enc(r1)}/send/m.room.message/same-txn`, { msgtype: 'm.text', body: 'one' });
    // A retransmission (same path) answers with the same event.
    expect((await alice.put(`${C}/rooms/${enc(r1)}/send/m.room.message/same-txn`, { msgtype: 'm.text', body: 'one' })).body.event_id).toBe(a.body.event_id);
    const b = await alice.put(`${C}/rooms/${enc(r2)}/send/m.room.message/same-txn`, { msgtype: 'm.text', body: 'two' });
    const c = await alice.put(`${C}/rooms/${enc(r1)}/send/org.example.other/same-txn`, { v: 1 });
    const d = await alice.put(`${C}/rooms/${enc(r1)}/redact/${enc(a.body.event_id)}/same-txn`, {});
    const ids = [a, b, c, d].map((r) => r.body.event_id);
    expect(new Set(ids).size).toBe(4);
    expect((await alice.get(`${C}/rooms/${enc(r2)}/event/${enc(b.body.event_id)}`)).body.content.body).toBe('two');
    expect((await alice.get(`${C}/rooms/${enc(r1)}/event/${enc(d.body.event_id)}`)).body.type).toBe('m.room.redaction');
    expect((await alice.put(`${C}/rooms/${enc(r1)}/redact/${enc(a.body.event_id)}/same-txn`, {})).body.event_id).toBe(d.body.event_id);
  });

  it('typing, receipts and read markers', async () => {
    const room = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const rid = enc(room);
    await bob.post(`${C}/rooms/${rid}/join`, {});
    const ev = (await alice.put(`${C}/rooms/${rid}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hi' })).body.event_id as string;
    expect((await alice.put(`${C}/rooms/${rid}/typing/${enc(aliceId)}`, { typing: true, timeout: 5000 })).status).toBe(200);
    expect((await alice.put(`${C}/rooms/${rid}/typing/${enc(bobId)}`, { typing: true })).status).toBe(403);
    expect((await bob.post(`${C}/rooms/${rid}/receipt/m.read/${enc(ev)}`, {})).status).toBe(200);
    expect((await bob.post(`${C}/rooms/${rid}/receipt/m.read/${enc(ev)}`, { thread_id: 'main' })).status).toBe(200);
    expect((await bob.post(`${C}/rooms/${rid}/receipt/m.nonsense/${enc(ev)}`, {})).status).toBe(400);
    expect((await carol.post(`${C}/rooms/${rid}/receipt/m.read/${enc(ev)}`, {})).status).toBe(403);
    expect((await bob.post(`${C}/rooms/${rid}/read_markers`, { 'm.fully_read': ev, 'm.read': ev, 'm.read.private': ev })).status).toBe(200);
    expect((await bob.post(`${C}/rooms/${rid}/read_markers`, { 'm.fully_read': '$missing' })).status).toBeGreaterThanOrEqual(400);
    const synced = await bob.get(`${C}/sync?timeout=0`);
    expect(synced.body.rooms.join[room].ephemeral.events.some((e: any) => e.type === 'm.receipt')).toBe(true);
  });

  it('push rules in every form, pushers and notifications', async () => {
    const all = await alice.get(`${C}/pushrules/`);
    expect(all.body.global.override.length).toBeGreaterThan(0);
    expect((await alice.get(`${C}/pushrules/global/`)).body.underride.length).toBeGreaterThan(0);
    const rule = `${C}/pushrules/global/content/spec-rule`;
    expect((await alice.put(rule, { pattern: 'cake*', actions: ['notify'] })).status).toBe(200);
    expect((await alice.put(`${C}/pushrules/global/room/${enc('!nope:localhost')}?before=spec-rule`, { actions: ['notify'] })).status).toBeGreaterThanOrEqual(400);
    expect((await alice.get(rule)).body.pattern).toBe('cake*');
    expect((await alice.get(`${C}/pushrules/global/content/missing`)).status).toBe(404);
    expect((await alice.put(`${C}/pushrules/global/content/bad`, { actions: ['notify'] })).status).toBe(400);
    expect((await alice.get(`${rule}/enabled`)).body).toEqual({ enabled: true });
    expect((await alice.put(`${rule}/enabled`, { enabled: false })).status).toBe(200);
    expect((await alice.get(`${C}/pushrules/global/content/missing/enabled`)).status).toBe(404);
    expect((await alice.put(`${C}/pushrules/global/content/missing/enabled`, { enabled: true })).status).toBe(404);
    expect((await alice.get(`${rule}/actions`)).body).toEqual({ actions: ['notify'] });
    expect((await alice.put(`${rule}/actions`, { actions: ['notify', { set_tweak: 'highlight' }] })).status).toBe(200);
    expect((await alice.get(`${C}/pushrules/global/content/missing/actions`)).status).toBe(404);
    expect((await alice.put(`${C}/pushrules/global/content/missing/actions`, { actions: [] })).status).toBe(404);
    expect((await alice.del(rule)).status).toBe(200);
    expect((await alice.del(rule)).status).toBe(404);

    const pusher = { kind: 'http', app_id: 'org.example.app', pushkey: 'spec-key', app_display_name: 'Example', device_display_name: 'Phone', lang: 'en', data: { url: 'http://127.0.0.1:9/_matrix/push/v1/notify', format: 'event_id_only' } };
    expect((await alice.post(`${C}/pushers/set`, pusher)).status).toBe(200);
    expect((await alice.post(`${C}/pushers/set`, { ...pusher, data: {} })).status).toBe(400);
    const pushers = await alice.get(`${C}/pushers`);
    expect(pushers.body.pushers.map((p: any) => p.pushkey)).toEqual(['spec-key']);
    expect((await anon.get(`${C}/pushers`)).status).toBe(401);
    expect((await alice.post(`${C}/pushers/set`, { ...pusher, kind: null })).status).toBe(200);

    const room = (await bob.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    await alice.post(`${C}/rooms/${enc(room)}/join`, {});
    await bob.put(`${C}/rooms/${enc(room)}/send/m.room.message/n1`, { msgtype: 'm.text', body: 'Alice: look' });
    const notifs = await alice.get(`${C}/notifications?limit=5`);
    expect(notifs.body.notifications.length).toBeGreaterThan(0);
    expect((await alice.get(`${C}/notifications?only=highlight`)).status).toBe(200);
    expect((await alice.get(`${C}/notifications?from=not-a-token`)).status).toBe(400);
  });

  it('relations, threads, timestamp_to_event, search, members filters and state forms', async () => {
    const room = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'Threads' })).body.room_id as string;
    const rid = enc(room);
    await bob.post(`${C}/rooms/${rid}/join`, {});
    const root = (await alice.put(`${C}/rooms/${rid}/send/m.room.message/r0`, { msgtype: 'm.text', body: 'root of the thread' })).body.event_id as string;
    for (let i = 0; i < 3; i++) {
      await bob.put(`${C}/rooms/${rid}/send/m.room.message/r${i + 1}`, { msgtype: 'm.text', body: `reply ${i}`, 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
    }
    await bob.put(`${C}/rooms/${rid}/send/m.reaction/x1`, { 'm.relates_to': { rel_type: 'm.annotation', event_id: root, key: '👍' } });
    const rel = await alice.get(`${V1}/rooms/${rid}/relations/${enc(root)}?limit=2`);
    expect(rel.body.chunk.length).toBe(2);
    expect((await alice.get(`${V1}/rooms/${rid}/relations/${enc(root)}?from=${enc(rel.body.next_batch)}`)).status).toBe(200);
    expect((await alice.get(`${V1}/rooms/${rid}/relations/${enc(root)}/m.thread?recurse=true`)).body.chunk.length).toBe(3);
    expect((await alice.get(`${V1}/rooms/${rid}/relations/${enc(root)}/m.annotation/m.reaction`)).body.chunk.length).toBe(1);
    expect((await carol.get(`${V1}/rooms/${rid}/relations/${enc(root)}`)).status).toBe(403);
    expect((await alice.get(`${V1}/rooms/${rid}/relations/${enc('$missing')}/m.thread`)).status).toBe(404);
    expect((await alice.get(`${V1}/rooms/${rid}/relations/${enc('$missing')}/m.annotation/m.reaction`)).status).toBe(404);

    const threads = await alice.get(`${V1}/rooms/${rid}/threads`);
    expect(threads.body.chunk[0].event_id).toBe(root);
    expect((await alice.get(`${V1}/rooms/${rid}/threads?include=bogus`)).status).toBe(400);

    const first = (await alice.get(`${C}/rooms/${rid}/event/${enc(root)}`)).body;
    const ts = await alice.get(`${V1}/rooms/${rid}/timestamp_to_event?ts=${first.origin_server_ts}&dir=f`);
    expect(ts.body.event_id).toMatch(/^\$/);
    expect((await alice.get(`${V1}/rooms/${rid}/timestamp_to_event?ts=1&dir=x`)).status).toBe(400);
    expect((await alice.get(`${V1}/rooms/${rid}/timestamp_to_event?ts=${Date.now() + 3_600_000}&dir=f`)).status).toBe(404);

    const search = await bob.post(`${C}/search`, { search_categories: { room_events: { search_term: 'reply', order_by: 'recent', event_context: { before_limit: 1, after_limit: 1, include_profile: true }, groupings: { group_by: [{ key: 'room_id' }] }, include_state: true } } });
    expect(search.body.search_categories.room_events.count).toBe(3);
    const ranked = await bob.post(`${C}/search`, { search_categories: { room_events: { search_term: 'reply', filter: { limit: 1 } } } });
    expect(ranked.body.search_categories.room_events.next_batch).toBeDefined();
    expect((await bob.post(`${C}/search?next_batch=${enc(ranked.body.search_categories.room_events.next_batch)}`, { search_categories: { room_events: { search_term: 'reply', filter: { limit: 1 } } } })).status).toBe(200);
    expect((await bob.post(`${C}/search`, { search_categories: {} })).status).toBe(200);
    expect((await bob.post(`${C}/search`, {})).status).toBe(400);

    const sync = await bob.get(`${C}/sync?timeout=0`);
    await carol.post(`${C}/rooms/${rid}/join`, {});
    await carol.post(`${C}/rooms/${rid}/leave`, {});
    const members = await bob.get(`${C}/rooms/${rid}/members?not_membership=leave`);
    expect(members.body.chunk.every((e: any) => e.content.membership !== 'leave')).toBe(true);
    expect((await bob.get(`${C}/rooms/${rid}/members?membership=leave`)).body.chunk.length).toBe(1);
    expect((await bob.get(`${C}/rooms/${rid}/members?at=${enc(sync.body.next_batch)}`)).body.chunk.length).toBe(2);
    expect((await bob.get(`${C}/rooms/${rid}/members?membership=bogus`)).status).toBe(400);
    expect((await carol.get(`${C}/rooms/${rid}/members`)).status).toBe(403);

    // State without a state key, with and without the trailing slash, as content and as event.
    expect((await alice.put(`${C}/rooms/${rid}/state/m.room.name`, { name: 'Renamed' })).status).toBe(200);
    expect((await alice.put(`${C}/rooms/${rid}/state/m.room.name/`, { name: 'Renamed again' })).status).toBe(200);
    expect((await bob.get(`${C}/rooms/${rid}/state/m.room.name/`)).body).toEqual({ name: 'Renamed again' });
    expect((await bob.get(`${C}/rooms/${rid}/state/m.room.name?format=event`)).body.type).toBe('m.room.name');
    expect((await bob.get(`${C}/rooms/${rid}/state/m.room.member/${enc(aliceId)}`)).body.membership).toBe('join');
    expect((await bob.get(`${C}/rooms/${rid}/state/m.room.member/${enc('@nobody:localhost')}`)).status).toBe(404);
    expect((await carol.put(`${C}/rooms/${rid}/state/m.room.name`, { name: 'Nope' })).status).toBe(403);
    expect((await carol.get(`${C}/rooms/${enc('!nope:localhost')}/state/m.room.name`)).status).toBe(404);
  });

  it('space hierarchy', async () => {
    const space = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'Space', creation_content: { type: 'm.space' } })).body.room_id as string;
    const child = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'Child' })).body.room_id as string;
    expect((await alice.put(`${C}/rooms/${enc(space)}/state/m.space.child/${enc(child)}`, { via: ['localhost'] })).status).toBe(200);
    const h = await bob.get(`${V1}/rooms/${enc(space)}/hierarchy?limit=1`);
    expect(h.body.rooms[0].room_id).toBe(space);
    if (h.body.next_batch) expect((await bob.get(`${V1}/rooms/${enc(space)}/hierarchy?from=${enc(h.body.next_batch)}`)).status).toBe(200);
    expect((await bob.get(`${V1}/rooms/${enc(space)}/hierarchy?max_depth=0&suggested_only=true`)).status).toBe(200);
    expect((await bob.get(`${V1}/rooms/${enc(space)}/hierarchy?limit=x`)).status).toBe(400);
    expect((await bob.get(`${V1}/rooms/${enc(space)}/hierarchy?from=garbage`)).status).toBe(400);
  });

  it('reports, room upgrades and knocking', async () => {
    const room = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const rid = enc(room);
    await bob.post(`${C}/rooms/${rid}/join`, {});
    const ev = (await alice.put(`${C}/rooms/${rid}/send/m.room.message/bad`, { msgtype: 'm.text', body: 'spam' })).body.event_id as string;
    expect((await bob.post(`${C}/rooms/${rid}/report/${enc(ev)}`, { reason: 'spam', score: -100 })).status).toBe(200);
    expect((await bob.post(`${C}/rooms/${rid}/report/${enc('$missing')}`, { reason: 'spam' })).status).toBe(404);
    expect((await bob.post(`${C}/rooms/${rid}/report`, { reason: 'bad room' })).status).toBe(200);
    expect((await bob.post(`${C}/rooms/${enc('!nope:localhost')}/report`, { reason: 'x' })).status).toBe(404);
    expect((await bob.post(`${C}/users/${enc(aliceId)}/report`, { reason: 'rude' })).status).toBe(200);
    expect((await bob.post(`${C}/users/${enc('@ghost:localhost')}/report`, { reason: 'x' })).status).toBe(404);

    expect((await bob.post(`${C}/rooms/${rid}/upgrade`, { new_version: '11' })).status).toBe(403);
    expect((await alice.post(`${C}/rooms/${rid}/upgrade`, { new_version: '999' })).status).toBe(400);
    const up = await alice.post(`${C}/rooms/${rid}/upgrade`, { new_version: '11' });
    expect(up.body.replacement_room).toMatch(/^!/);

    const knockRoom = (await alice.post(`${C}/createRoom`, { initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] })).body.room_id as string;
    expect((await carol.post(`${C}/knock/${enc(knockRoom)}?via=localhost`, {})).body.room_id).toBe(knockRoom);
    expect((await carol.post(`${C}/knock/${enc('#nowhere:localhost')}`, {})).status).toBe(404);
  });

  it('end-to-end encryption: device keys, one-time keys, cross-signing, signatures, to-device, key backup', async () => {
    const who = (await alice.get(`${C}/account/whoami`)).body;
    const dev = makeDevice(aliceId, who.device_id);
    const up = await alice.post(`${C}/keys/upload`, { device_keys: dev.deviceKeys, one_time_keys: oneTimeKeys(dev, 3), fallback_keys: oneTimeKeys(dev, 1, 10, true) });
    expect(up.body.one_time_key_counts.signed_curve25519).toBe(3);
    expect((await alice.post(`${C}/keys/upload`, { device_keys: { ...dev.deviceKeys, user_id: bobId } })).status).toBe(400);

    const sync0 = await bob.get(`${C}/sync?timeout=0`);
    const q = await bob.post(`${C}/keys/query`, { device_keys: { [aliceId]: [] }, timeout: 1000 });
    expect(q.body.device_keys[aliceId][who.device_id].keys).toBeDefined();
    expect((await bob.post(`${C}/keys/query`, { device_keys: 'all' })).status).toBe(400);
    const claim = await bob.post(`${C}/keys/claim`, { one_time_keys: { [aliceId]: { [who.device_id]: 'signed_curve25519' } } });
    expect(Object.keys(claim.body.one_time_keys[aliceId][who.device_id])).toHaveLength(1);
    expect((await bob.post(`${C}/keys/claim`, {})).status).toBe(400);

    const cs = makeCrossSigning(aliceId);
    const csUp = await alice.post(`${C}/keys/device_signing/upload`, cs.body);
    if (csUp.status === 401) {
      expect((await alice.post(`${C}/keys/device_signing/upload`, { ...cs.body, auth: uiaPassword('alice', PW, csUp.body.session) })).status).toBe(200);
    } else {
      expect(csUp.status).toBe(200);
    }
    expect((await alice.post(`${C}/keys/device_signing/upload`, { master_key: { user_id: bobId, usage: ['master'], keys: {} } })).status).toBeGreaterThanOrEqual(400);
    const signedDevice = sign(dev.deviceKeys as Record<string, unknown>, aliceId, cs.selfSigning);
    const sigs = await alice.post(`${C}/keys/signatures/upload`, { [aliceId]: { [who.device_id]: signedDevice } });
    expect(sigs.body.failures ?? {}).toEqual({});
    const badSig = await alice.post(`${C}/keys/signatures/upload`, { [aliceId]: { NOSUCHDEVICE: signedDevice } });
    expect(Object.keys(badSig.body.failures ?? {}).length).toBeGreaterThan(0);
    expect((await alice.post(`${C}/keys/signatures/upload`, [])).status).toBe(400);

    const room = (await alice.post(`${C}/createRoom`, { invite: [bobId] })).body.room_id as string;
    await bob.post(`${C}/rooms/${enc(room)}/join`, {});
    const sync1 = await bob.get(`${C}/sync?timeout=0`);
    const changes = await bob.get(`${C}/keys/changes?from=${enc(sync0.body.next_batch)}&to=${enc(sync1.body.next_batch)}`);
    expect(changes.status).toBe(200);
    expect((await bob.get(`${C}/keys/changes?from=garbage&to=garbage`)).status).toBe(400);

    expect((await alice.put(`${C}/sendToDevice/m.room_key_request/td1`, { messages: { [bobId]: { '*': { action: 'request_cancellation', request_id: 'r1', requesting_device_id: who.device_id } } } })).status).toBe(200);
    expect((await alice.put(`${C}/sendToDevice/m.room_key_request/td2`, { messages: 'nope' })).status).toBe(400);

    const algorithm = 'm.megolm_backup.v1.curve25519-aes-sha2';
    expect((await alice.get(`${C}/room_keys/version`)).status).toBe(404);
    const v = (await alice.post(`${C}/room_keys/version`, { algorithm, auth_data: { public_key: 'pk' } })).body.version as string;
    expect((await alice.post(`${C}/room_keys/version`, { auth_data: {} })).status).toBe(400);
    expect((await alice.get(`${C}/room_keys/version`)).body.version).toBe(v);
    expect((await alice.get(`${C}/room_keys/version/${v}`)).body.algorithm).toBe(algorithm);
    expect((await alice.get(`${C}/room_keys/version/9999`)).status).toBe(404);
    expect((await alice.put(`${C}/room_keys/version/${v}`, { algorithm, auth_data: { public_key: 'pk2' }, version: v })).status).toBe(200);
    expect((await alice.put(`${C}/room_keys/version/9999`, { algorithm, auth_data: { public_key: 'pk2' } })).status).toBe(404);
    const data = (i: number) => ({ first_message_index: i, forwarded_count: 0, is_verified: false, session_data: { ephemeral: 'e', ciphertext: 'c', mac: 'm' } });
    const r1 = enc('!r1:localhost');
    expect((await alice.put(`${C}/room_keys/keys?version=${v}`, { rooms: { '!r1:localhost': { sessions: { s1: data(1) } } } })).body.count).toBe(1);
    expect((await alice.put(`${C}/room_keys/keys/${r1}?version=${v}`, { sessions: { s2: data(0) } })).body.count).toBe(2);
    expect((await alice.put(`${C}/room_keys/keys/${r1}/s3?version=${v}`, data(0))).body.count).toBe(3);
    // Not the current version: 403 M_WRONG_ROOM_KEYS_VERSION with current_version.
    expect((await alice.put(`${C}/room_keys/keys?version=9999`, { rooms: {} })).body.current_version).toBe(v);
    expect((await alice.put(`${C}/room_keys/keys/${r1}?version=9999`, { sessions: {} })).status).toBe(403);
    expect((await alice.put(`${C}/room_keys/keys/${r1}/s3?version=9999`, data(0))).status).toBe(403);
    expect(Object.keys((await alice.get(`${C}/room_keys/keys?version=${v}`)).body.rooms)).toEqual(['!r1:localhost']);
    expect(Object.keys((await alice.get(`${C}/room_keys/keys/${r1}?version=${v}`)).body.sessions).length).toBe(3);
    expect((await alice.get(`${C}/room_keys/keys/${r1}/s1?version=${v}`)).body.first_message_index).toBe(1);
    expect((await alice.get(`${C}/room_keys/keys?version=9999`)).status).toBe(404);
    expect((await alice.get(`${C}/room_keys/keys/${r1}?version=9999`)).status).toBe(404);
    expect((await alice.get(`${C}/room_keys/keys/${r1}/nope?version=${v}`)).status).toBe(404);
    expect((await alice.del(`${C}/room_keys/keys/${r1}/s1?version=${v}`)).body.count).toBe(2);
    expect((await alice.del(`${C}/room_keys/keys/${r1}?version=${v}`)).body.count).toBe(0);
    expect((await alice.del(`${C}/room_keys/keys?version=${v}`)).body.count).toBe(0);
    expect((await alice.del(`${C}/room_keys/keys?version=9999`)).status).toBe(404);
    expect((await alice.del(`${C}/room_keys/keys/${r1}?version=9999`)).status).toBe(404);
    expect((await alice.del(`${C}/room_keys/keys/${r1}/s1?version=9999`)).status).toBe(404);
    expect((await alice.del(`${C}/room_keys/version/${v}`)).status).toBe(200);
    expect((await alice.del(`${C}/room_keys/version/9999`)).status).toBe(404);
  });

  it('media: config, upload, create, download, thumbnail and URL previews (authenticated and legacy)', async () => {
    const M = '/_matrix/media/v3';
    const png = await testImage('png', 96, 64);
    expect((await alice.raw('GET', `${V1}/media/config`)).body['m.upload.size']).toBeGreaterThan(0);
    expect((await anon.raw('GET', `${V1}/media/config`)).status).toBe(401);
    expect((await alice.raw('GET', `${M}/config`)).status).toBe(200);
    expect((await anon.raw('GET', `${M}/config`)).status).toBe(401);

    const upRes = await alice.raw('POST', `${M}/upload?filename=pic.png`, { body: png, headers: { 'content-type': 'image/png' } });
    const [, serverName, mediaId] = /^mxc:\/\/([^/]+)\/(.+)$/.exec(upRes.body.content_uri)!;
    expect(serverName).toBe('localhost');
    expect((await anon.raw('POST', `${M}/upload`, { body: png })).status).toBe(401);

    const created = await alice.raw('POST', '/_matrix/media/v1/create');
    expect(created.body.content_uri).toMatch(/^mxc:\/\//);
    expect((await anon.raw('POST', '/_matrix/media/v1/create')).status).toBe(401);
    const createdId = created.body.content_uri.split('/').pop();
    expect((await bob.raw('PUT', `${M}/upload/localhost/${createdId}`, { body: 'x', headers: { 'content-type': 'text/plain' } })).status).toBe(403);
    expect((await alice.raw('PUT', `${M}/upload/localhost/${createdId}`, { body: 'hello', headers: { 'content-type': 'text/plain' } })).status).toBe(200);
    expect((await alice.raw('PUT', `${M}/upload/localhost/${createdId}`, { body: 'again', headers: { 'content-type': 'text/plain' } })).status).toBe(409);
    expect((await alice.raw('PUT', `${M}/upload/localhost/unknownid`, { body: 'x', headers: { 'content-type': 'text/plain' } })).status).toBe(404);

    for (const base of [`${V1}/media`, M]) {
      const dl = await bob.raw('GET', `${base}/download/${serverName}/${mediaId}`);
      expect(dl.bytes.equals(png)).toBe(true);
      expect((await bob.raw('GET', `${base}/download/${serverName}/${mediaId}/other.png`)).status).toBe(200);
      expect((await bob.raw('GET', `${base}/download/${serverName}/nosuchmedia`)).status).toBe(404);
      expect((await bob.raw('GET', `${base}/download/${serverName}/nosuchmedia/name.png`)).status).toBe(404);
      const th = await bob.raw('GET', `${base}/thumbnail/${serverName}/${mediaId}?width=32&height=32&method=scale`);
      expect(th.status).toBe(200);
      expect((await bob.raw('GET', `${base}/thumbnail/${serverName}/${mediaId}?width=32&height=32&method=wobble`)).status).toBe(400);
      expect((await bob.raw('GET', `${base}/thumbnail/${serverName}/nosuchmedia?width=32&height=32`)).status).toBe(404);
      const pv = await bob.raw('GET', `${base}/preview_url?url=${enc(pageUrl)}`);
      expect(pv.body['og:title']).toBe('Spec page');
      expect((await bob.raw('GET', `${base}/preview_url?url=${enc('http://10.0.0.1/')}`)).status).toBeGreaterThanOrEqual(400);
    }
    expect((await anon.raw('GET', `${V1}/media/download/${serverName}/${mediaId}`)).status).toBe(401);
  });

  it('application services: ping, third-party lookups, network room directories', async () => {
    const as = new SpecClient(t.clientUrl, AS_TOKEN);
    const ping = await as.post(`${V1}/appservice/specnet/ping`, { transaction_id: 'spec' });
    expect(typeof ping.body.duration_ms).toBe('number');
    // Another service's ID, or a user's token (not a service's): 403 M_FORBIDDEN; no token: 401.
    expect((await as.post(`${V1}/appservice/othernet/ping`, {})).status).toBe(403);
    expect((await alice.post(`${V1}/appservice/specnet/ping`, {})).body.errcode).toBe('M_FORBIDDEN');
    expect((await anon.post(`${V1}/appservice/specnet/ping`, {})).status).toBe(401);
    expect((await anon.post(`${V1}/appservice/specnet/ping`, {}, { token: 'not-a-token' })).body.errcode).toBe('M_UNKNOWN_TOKEN');
    const previous = fakeAs.handler;
    fakeAs.handler = (r) => (r.path === '/_matrix/app/v1/ping' ? { status: 500, body: { errcode: 'M_UNKNOWN' } } : previous(r));
    const bad = await as.post(`${V1}/appservice/specnet/ping`, {});
    expect(bad.status).toBe(502);
    fakeAs.handler = previous;

    const protocols = await alice.get(`${C}/thirdparty/protocols`);
    expect(protocols.body.specnet.instances[0].instance_id).toBe('specnet|main');
    expect((await alice.get(`${C}/thirdparty/protocol/specnet`)).body.location_fields).toEqual(['channel']);
    expect((await alice.get(`${C}/thirdparty/protocol/nothing`)).status).toBe(404);
    expect((await alice.get(`${C}/thirdparty/location/specnet?channel=general`)).body[0].alias).toBe('#_spec_general:localhost');
    expect((await alice.get(`${C}/thirdparty/location/nothing`)).status).toBe(404);
    expect((await alice.get(`${C}/thirdparty/location?alias=${enc('#_spec_general:localhost')}`)).body.length).toBe(1);
    expect((await anon.get(`${C}/thirdparty/location?alias=${enc('#_spec_general:localhost')}`)).status).toBe(401);
    expect((await alice.get(`${C}/thirdparty/user/specnet?nick=bob`)).body[0].userid).toBe('@_spec_bob:localhost');
    expect((await alice.get(`${C}/thirdparty/user/nothing`)).status).toBe(404);
    expect((await alice.get(`${C}/thirdparty/user?userid=${enc('@_spec_bob:localhost')}`)).body.length).toBe(1);
    expect((await anon.get(`${C}/thirdparty/user?userid=x`)).status).toBe(401);

    const bridged = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'Bridged' })).body.room_id as string;
    expect((await alice.put(`${C}/directory/list/appservice/main/${enc(bridged)}`, { visibility: 'public' })).status).toBe(403);
    expect((await as.put(`${C}/directory/list/appservice/main/${enc(bridged)}`, { visibility: 'public' })).status).toBe(200);
    const net = await alice.post(`${C}/publicRooms`, { third_party_instance_id: 'specnet|main', limit: 5 });
    expect(net.body.chunk.map((c: any) => c.room_id)).toEqual([bridged]);
    const everything = await alice.post(`${C}/publicRooms`, { include_all_networks: true, limit: 1 });
    expect(everything.body.next_batch).toBeDefined();
    expect((await alice.post(`${C}/publicRooms`, { include_all_networks: true, limit: 1, since: everything.body.next_batch })).status).toBe(200);
    expect((await alice.post(`${C}/publicRooms`, { filter: { room_types: [null, 'm.space'] } })).status).toBe(200);
    expect((await alice.post(`${C}/publicRooms`, { since: 'garbage' })).status).toBe(400);
    expect((await anon.get(`${C}/publicRooms?since=garbage`)).status).toBe(400);
  });

  it('spec v1.13–v1.19: room summary, mutual rooms, account moderation, redaction through /send, invite blocking, appservice devices', async () => {
    const pub = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'Summary' })).body.room_id as string;
    const priv = (await alice.post(`${C}/createRoom`, {})).body.room_id as string;
    expect((await anon.get(`${V1}/room_summary/${enc(pub)}`)).body.room_id).toBe(pub);
    expect((await alice.get(`${V1}/room_summary/${enc(priv)}?via=localhost`)).body.membership).toBe('join');
    expect((await bob.get(`${V1}/room_summary/${enc(priv)}`)).status).toBe(404);
    for (const medium of ['email', 'msisdn']) {
      const body = medium === 'email' ? { client_secret: 'secret', email: 'a@example.org', send_attempt: 1 } : { client_secret: 'secret', country: 'GB', phone_number: '07700900000', send_attempt: 1 };
      expect((await alice.post(`${C}/account/3pid/${medium}/requestToken`, body)).body.errcode).toBe('M_THREEPID_MEDIUM_NOT_SUPPORTED');
    }
    // No OAuth 2.0 API: its discovery answers 404 M_UNRECOGNIZED.
    expect((await anon.get(`${V1}/auth_metadata`)).body.errcode).toBe('M_UNRECOGNIZED');

    await bob.post(`${C}/join/${enc(pub)}`, {});
    expect((await alice.get(`${V1}/mutual_rooms?user_id=${enc(bobId)}`)).body.joined).toContain(pub);
    expect((await alice.get(`${V1}/mutual_rooms?user_id=${enc(aliceId)}`)).status).toBe(400);

    const sa = await bob.get(`${C}/sync?use_state_after=true`);
    expect(sa.body.rooms.join[pub].state_after.events.length).toBeGreaterThan(0);
    const target = (await alice.put(`${C}/rooms/${enc(pub)}/send/m.room.message/pre-redact`, { msgtype: 'm.text', body: 'x' })).body.event_id as string;
    expect((await alice.put(`${C}/rooms/${enc(pub)}/send/m.room.redaction/redact-by-send`, { redacts: target })).status).toBe(200);

    const mod = new SpecClient(t.clientUrl);
    const modId = (await mod.register('moderator')).user_id as string;
    await t.server.ctx.accounts.setAdmin(modId, true);
    for (const [kind, field] of [['suspend', 'suspended'], ['lock', 'locked']] as const) {
      expect((await mod.put(`${V1}/admin/${kind}/${enc(carolId)}`, { [field]: true })).body[field]).toBe(true);
      expect((await mod.get(`${V1}/admin/${kind}/${enc(carolId)}`)).body[field]).toBe(true);
      expect((await mod.put(`${V1}/admin/${kind}/${enc(carolId)}`, { [field]: false })).status).toBe(200);
      expect((await bob.get(`${V1}/admin/${kind}/${enc(carolId)}`)).status).toBe(403);
      expect((await bob.put(`${V1}/admin/${kind}/${enc(carolId)}`, { [field]: true })).status).toBe(403);
      expect((await mod.get(`${V1}/admin/${kind}/${enc('@x:elsewhere.example')}`)).status).toBe(400);
    }
    expect(Object.keys((await mod.get(`${C}/admin/whois/${enc(carolId)}`)).body.devices).length).toBeGreaterThan(0);
    expect((await mod.get(`${C}/admin/whois/${enc('@nobody:localhost')}`)).status).toBe(404);
    expect((await mod.get(`${C}/admin/whois/${enc('@x:elsewhere.example')}`)).status).toBe(404);

    expect((await carol.put(`${C}/user/${enc(carolId)}/account_data/m.invite_permission_config`, { default_action: 'block' })).status).toBe(200);
    expect((await alice.post(`${C}/rooms/${enc(priv)}/invite`, { user_id: carolId })).body.errcode).toBe('M_INVITE_BLOCKED');
    expect((await carol.put(`${C}/user/${enc(carolId)}/account_data/m.invite_permission_config`, {})).status).toBe(200);

    const as = new SpecClient(t.clientUrl, AS_TOKEN);
    const asUser = (await as.post(`${C}/register`, { type: 'm.login.application_service', username: '_spec_devices', inhibit_login: true })).body.user_id as string;
    expect((await as.put(`${C}/devices/ASDEV?user_id=${enc(asUser)}`, { display_name: 'Bridge' })).status).toBe(201);
    expect((await as.del(`${C}/devices/ASDEV?user_id=${enc(asUser)}`, {})).status).toBe(200);
  });

  it('room previews: initialSync, the room event stream and /events/{eventId}', async () => {
    const { room_id: open } = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: 'world_readable' } }] })).body;
    const said = (await alice.put(`${C}/rooms/${enc(open)}/send/m.room.message/peek1`, { msgtype: 'm.text', body: 'to lurkers' })).body.event_id;
    const snap = await carol.get(`${C}/rooms/${enc(open)}/initialSync`);
    expect(snap.status).toBe(200);
    const { room_id: closed } = (await alice.post(`${C}/createRoom`, { preset: 'private_chat' })).body;
    expect((await carol.get(`${C}/rooms/${enc(closed)}/initialSync`)).status).toBe(403);
    expect((await carol.get(`${C}/events?room_id=${enc(open)}&from=${enc(snap.body.messages.end)}&timeout=0`)).status).toBe(200);
    expect((await carol.get(`${C}/events?room_id=${enc(closed)}&timeout=0`)).status).toBe(403);
    expect((await carol.get(`${C}/events/${enc(said)}`)).status).toBe(200);
    expect((await carol.get(`${C}/events/${enc('$nothing:localhost')}`)).status).toBe(404);
  });

  it('every route of the client listener had a response validated against the spec', async () => {
    const app = await t.server.app('client');
    const missing: string[] = [];
    const unknown: string[] = [];
    for (const { method, url } of registeredRoutes(app)) {
      if (method === 'HEAD') continue;
      if (NOT_IN_SPEC.some(([re]) => re.test(url))) continue;
      const op = operationOfRoute(method, url);
      if (!op) unknown.push(`${method} ${url}`);
      else if (!validatedOperations.has(`${op.method} ${op.template}`)) missing.push(`${op.method} ${op.template}`);
    }
    // A route the spec does not describe must be listed (with its reason) in NOT_IN_SPEC.
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

  it('covered every implemented family of operations', () => {
    const expected = [
      'GET /_matrix/client/versions',
      'GET /.well-known/matrix/client',
      'GET /.well-known/matrix/support',
      'GET /_matrix/client/v3/admin/whois/{userId}',
      'POST /_matrix/client/v3/user/{userId}/openid/request_token',
      'POST /_matrix/client/v3/account/3pid/unbind',
      'POST /_matrix/client/v3/register',
      'GET /_matrix/client/v3/register/available',
      'POST /_matrix/client/v3/login',
      'POST /_matrix/client/v3/logout',
      'POST /_matrix/client/v3/logout/all',
      'POST /_matrix/client/v3/refresh',
      'GET /_matrix/client/v3/account/whoami',
      'POST /_matrix/client/v3/account/password',
      'POST /_matrix/client/v3/account/deactivate',
      'GET /_matrix/client/v3/devices',
      'POST /_matrix/client/v3/delete_devices',
      'GET /_matrix/client/v3/capabilities',
      'GET /_matrix/client/v3/profile/{userId}',
      'POST /_matrix/client/v3/user/{userId}/filter',
      'PUT /_matrix/client/v3/user/{userId}/account_data/{type}',
      'PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}',
      'PUT /_matrix/client/v3/presence/{userId}/status',
      'POST /_matrix/client/v3/user_directory/search',
      'POST /_matrix/client/v3/createRoom',
      'POST /_matrix/client/v3/join/{roomIdOrAlias}',
      'POST /_matrix/client/v3/rooms/{roomId}/join',
      'POST /_matrix/client/v3/rooms/{roomId}/invite',
      'POST /_matrix/client/v3/rooms/{roomId}/leave',
      'POST /_matrix/client/v3/rooms/{roomId}/kick',
      'POST /_matrix/client/v3/rooms/{roomId}/ban',
      'POST /_matrix/client/v3/rooms/{roomId}/unban',
      'POST /_matrix/client/v3/rooms/{roomId}/forget',
      'POST /_matrix/client/v3/knock/{roomIdOrAlias}',
      'PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}',
      'PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}',
      'PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}',
      'GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}',
      'GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}',
      'GET /_matrix/client/v3/rooms/{roomId}/members',
      'GET /_matrix/client/v3/rooms/{roomId}/joined_members',
      'GET /_matrix/client/v3/joined_rooms',
      'GET /_matrix/client/v3/rooms/{roomId}/messages',
      'GET /_matrix/client/v3/rooms/{roomId}/state',
      'GET /_matrix/client/v3/directory/room/{roomAlias}',
      'GET /_matrix/client/v3/rooms/{roomId}/aliases',
      'PUT /_matrix/client/v3/directory/list/room/{roomId}',
      'GET /_matrix/client/v3/publicRooms',
      'POST /_matrix/client/v3/publicRooms',
      'GET /_matrix/client/v3/sync',
    ];
    expect(expected.filter((op) => !validatedOperations.has(op))).toEqual([]);
  });
});
