/**
 * Every implemented client-server endpoint, called for real, with each success and error
 * response validated against the spec's OpenAPI definitions (test/fixtures/matrix-spec).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectMatchesSpec, findOperation, validatedOperations } from '../_util/openapi.js';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, uiaPassword } from './_client.js';
import { SpecClient } from './_spec-client.js';

const C = '/_matrix/client/v3';
const PW = 'correct horse battery';
const enc = encodeURIComponent;

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

  beforeAll(async () => {
    t = await startAccountsServer(engine);
    alice = new SpecClient(t.clientUrl);
    bob = new SpecClient(t.clientUrl);
    carol = new SpecClient(t.clientUrl);
    anon = new SpecClient(t.clientUrl);
    aliceId = (await alice.register('alice')).user_id;
    bobId = (await bob.register('bob')).user_id;
    carolId = (await carol.register('carol')).user_id;
  });
  afterAll(() => t?.close());

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

  it('covered every implemented family of operations', () => {
    const expected = [
      'GET /_matrix/client/versions',
      'GET /.well-known/matrix/client',
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
