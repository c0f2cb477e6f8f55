import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRegistrations, RegistrationError } from '../../src/appservice/index.js';
import { TestClient } from '../client/_client.js';
import { withholdEventAnnouncements } from '../_util/withhold-announcements.js';
import { eventually, FakeAppService, freePort, Homeserver, type Registration } from './_harness.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const AS_TOKEN = 'as-token-fake-network-0123456789';
const HS_TOKEN = 'hs-token-fake-network-0123456789';

function registration(url: string | null, extra: Partial<Registration> = {}): Registration {
  return {
    id: 'fakenet',
    url,
    as_token: AS_TOKEN,
    hs_token: HS_TOKEN,
    sender_localpart: 'fakenetbot',
    namespaces: {
      users: [{ regex: '@_fake_.*', exclusive: true }],
      aliases: [{ regex: '#_fake_.*', exclusive: true }],
      rooms: [],
    },
    rate_limited: false,
    protocols: ['fakenet'],
    receive_ephemeral: true,
    ...extra,
  };
}

describe('registration files', () => {
  const write = (docs: unknown[]) => {
    const dir = mkdtempSync(join(tmpdir(), 'myelin-asreg-'));
    return {
      dir,
      files: docs.map((d, i) => {
        writeFileSync(join(dir, `r${i}.yaml`), typeof d === 'string' ? d : JSON.stringify(d));
        return `r${i}.yaml`;
      }),
    };
  };
  it('accepts a valid registration with the unstable ephemeral key', () => {
    const { dir, files } = write([{ ...registration('http://127.0.0.1:9'), 'de.sorunome.msc2409.push_ephemeral': true }]);
    const [r] = loadRegistrations(files, dir, 'localhost');
    expect(r!.receiveEphemeral).toBe(true);
    expect(r!.rateLimited).toBe(false);
    expect(r!.namespaces.users[0]!.regex.test('@_fake_alice:localhost')).toBe(true);
    expect(r!.namespaces.users[0]!.regex.test('@alice:localhost')).toBe(false);
  });
  it.each([
    ['duplicate ids', [registration(null), registration(null, { as_token: 'other-a', hs_token: 'other-h', sender_localpart: 'x' })], /id "fakenet" is used by both/],
    ['duplicate as_token', [registration(null), registration(null, { id: 'b', hs_token: 'other-h', sender_localpart: 'x' })], /already used/],
    ['bad regex', [registration(null, { namespaces: { users: [{ regex: '@_fake_(', exclusive: true }] } })], /not a valid regular expression/],
    ['missing url', [{ ...registration(null), url: undefined }], /"url" is required/],
    ['bad sender', [registration(null, { sender_localpart: 'Bad Bot' })], /sender_localpart/],
    ['not YAML', ['id: [unclosed'], /not valid YAML/],
  ])('refuses %s with a clear error', (_name, docs, msg) => {
    const { dir, files } = write(docs as unknown[]);
    expect(() => loadRegistrations(files, dir, 'localhost')).toThrow(RegistrationError);
    expect(() => loadRegistrations(files, dir, 'localhost')).toThrow(msg);
  });
});

describe.each(['sqlite', 'postgres'] as const)('application service API (%s)', (engine) => {
  let hs: Homeserver;
  let fake: FakeAppService;
  let as: TestClient;
  let alice: TestClient;

  beforeAll(async () => {
    fake = new FakeAppService(await freePort());
    await fake.start();
    hs = await Homeserver.create(engine, [
      registration(fake.url),
      {
        id: 'nourl',
        url: null,
        as_token: 'as-token-no-url-000000000000000',
        hs_token: 'hs-token-no-url-000000000000000',
        sender_localpart: 'nourlbot',
        namespaces: { users: [{ regex: '@nourl_.*', exclusive: false }] },
      },
    ]);
    await hs.start();
    as = new TestClient(hs.url, AS_TOKEN);
    alice = new TestClient(hs.url);
    await alice.register('alice');
  }, 60000);
  afterAll(async () => {
    await hs?.destroy();
    await fake?.stop();
  });

  it('authenticates the as_token as the sender and refuses bad tokens', async () => {
    expect((await as.get('/_matrix/client/v3/account/whoami')).body.user_id).toBe('@fakenetbot:localhost');
    const bad = await as.get('/_matrix/client/v3/account/whoami', { token: 'nope' });
    expect([bad.status, bad.body.errcode]).toEqual([401, 'M_UNKNOWN_TOKEN']);
    const reg = await as.post('/_matrix/client/v3/register', { type: 'm.login.application_service', username: '_fake_x' }, { token: 'wrong' });
    expect([reg.status, reg.body.errcode]).toEqual([401, 'M_UNKNOWN_TOKEN']);
    const none = await as.post('/_matrix/client/v3/register', { type: 'm.login.application_service', username: '_fake_x' }, { token: null });
    expect([none.status, none.body.errcode]).toEqual([401, 'M_MISSING_TOKEN']);
  });

  it('registers namespaced users without user-interactive auth, and enforces namespaces', async () => {
    const r = await as.post('/_matrix/client/v3/register', { type: 'm.login.application_service', username: '_fake_bob', inhibit_login: true });
    expect(r.status).toBe(200);
    expect(r.body.user_id).toBe('@_fake_bob:localhost');
    expect(r.body.access_token).toBeUndefined();
    const outside = await as.post('/_matrix/client/v3/register', { type: 'm.login.application_service', username: 'carol' });
    expect([outside.status, outside.body.errcode]).toEqual([400, 'M_EXCLUSIVE']);
    // Ordinary users cannot take names in the exclusive namespace.
    const human = await new TestClient(hs.url).post('/_matrix/client/v3/register', { username: '_fake_mallory', password: 'pw pw pw pw' });
    expect([human.status, human.body.errcode]).toEqual([400, 'M_EXCLUSIVE']);
    const avail = await new TestClient(hs.url).get('/_matrix/client/v3/register/available?username=_fake_mallory');
    expect([avail.status, avail.body.errcode]).toEqual([400, 'M_EXCLUSIVE']);
    // Identity assertion.
    const who = await as.get('/_matrix/client/v3/account/whoami?user_id=' + encodeURIComponent('@_fake_bob:localhost'));
    expect(who.body.user_id).toBe('@_fake_bob:localhost');
    const notMine = await as.get('/_matrix/client/v3/account/whoami?user_id=' + encodeURIComponent('@alice:localhost'));
    expect([notMine.status, notMine.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    const unregistered = await as.get('/_matrix/client/v3/account/whoami?user_id=' + encodeURIComponent('@_fake_nobody:localhost'));
    expect([unregistered.status, unregistered.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
  });

  it('logs in with m.login.application_service and masquerades as a device of the user', async () => {
    const login = await as.post('/_matrix/client/v3/login', {
      type: 'm.login.application_service',
      identifier: { type: 'm.id.user', user: '_fake_bob' },
      device_id: 'BOBDEVICE',
    });
    expect(login.status).toBe(200);
    expect(login.body.user_id).toBe('@_fake_bob:localhost');
    const outside = await as.post('/_matrix/client/v3/login', { type: 'm.login.application_service', identifier: { type: 'm.id.user', user: 'alice' } });
    expect([outside.status, outside.body.errcode]).toEqual([400, 'M_EXCLUSIVE']);
    const noToken = await as.post('/_matrix/client/v3/login', { type: 'm.login.application_service', identifier: { type: 'm.id.user', user: '_fake_bob' } }, { token: null });
    expect([noToken.status, noToken.body.errcode]).toEqual([401, 'M_MISSING_TOKEN']);
    const q = (d: string) => `/_matrix/client/v3/account/whoami?user_id=${encodeURIComponent('@_fake_bob:localhost')}&device_id=${d}`;
    const who = await as.get(q('BOBDEVICE'));
    expect(who.body).toMatchObject({ user_id: '@_fake_bob:localhost', device_id: 'BOBDEVICE' });
    const unknownDevice = await as.get(q('NOTADEVICE'));
    expect([unknownDevice.status, unknownDevice.body.errcode]).toEqual([400, 'M_UNKNOWN_DEVICE']);
  });

  it('keeps exclusive aliases for the service and massages timestamps of its events only', async () => {
    const room = (await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' })).body.room_id as string;
    const taken = await alice.put(`/_matrix/client/v3/directory/room/${encodeURIComponent('#_fake_chan:localhost')}`, { room_id: room });
    expect([taken.status, taken.body.errcode]).toEqual([400, 'M_EXCLUSIVE']);
    const viaCreate = await alice.post('/_matrix/client/v3/createRoom', { room_alias_name: '_fake_other' });
    expect([viaCreate.status, viaCreate.body.errcode]).toEqual([400, 'M_EXCLUSIVE']);
    expect((await as.put(`/_matrix/client/v3/directory/room/${encodeURIComponent('#_fake_chan:localhost')}`, { room_id: room })).status).toBe(200);
    const outside = await as.put(`/_matrix/client/v3/directory/room/${encodeURIComponent('#general:localhost')}`, { room_id: room });
    expect([outside.status, outside.body.errcode]).toEqual([400, 'M_EXCLUSIVE']);

    const bob = `user_id=${encodeURIComponent('@_fake_bob:localhost')}`;
    expect((await as.post(`/_matrix/client/v3/join/${encodeURIComponent(room)}?${bob}`, {})).status).toBe(200);
    const sent = await as.put(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/t1?${bob}&ts=1234567890`, { msgtype: 'm.text', body: 'old' });
    expect(sent.status).toBe(200);
    const ev = await alice.get(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/event/${encodeURIComponent(sent.body.event_id)}`);
    expect(ev.body.origin_server_ts).toBe(1234567890);
    expect(ev.body.sender).toBe('@_fake_bob:localhost');
    const state = await as.put(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/state/org.example.bridge/x?ts=42`, { a: 1 });
    // The bot is not joined: refused by the auth rules, but the ts was accepted as a parameter.
    expect(state.status).toBe(403);
    const bad = await as.put(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/t2?${bob}&ts=soon`, { msgtype: 'm.text', body: 'x' });
    expect([bad.status, bad.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
    const human = await alice.put(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/t3?ts=5`, { msgtype: 'm.text', body: 'now' });
    const hev = await alice.get(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/event/${encodeURIComponent(human.body.event_id)}`);
    expect(hev.body.origin_server_ts).toBeGreaterThan(1_600_000_000_000);
  });

  it('pushes transactions with the hs_token, then pings, third-party lookups and network directories', async () => {
    const room = (await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', invite: ['@_fake_bob:localhost'] })).body.room_id as string;
    const txns = await eventually(() => {
      const t = fake.transactions().filter((r) => r.body.events.some((e: any) => e.room_id === room && e.state_key === '@_fake_bob:localhost'));
      return t.length > 0 && t;
    });
    expect(txns[0]!.auth).toBe(`Bearer ${HS_TOKEN}`);
    const invite = txns[0]!.body.events.find((e: any) => e.state_key === '@_fake_bob:localhost');
    expect(invite).toMatchObject({ type: 'm.room.member', content: { membership: 'invite' }, room_id: room });
    // Events of rooms without namespaced users are not sent.
    const lonely = (await alice.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
    await alice.put(`/_matrix/client/v3/rooms/${encodeURIComponent(lonely)}/send/m.room.message/l1`, { msgtype: 'm.text', body: 'private' });
    await eventually(() => fake.transactions().some((r) => r.body.events.some((e: any) => e.room_id === room)));
    expect(fake.transactions().some((r) => r.body.events.some((e: any) => e.room_id === lonely))).toBe(false);

    fake.handler = (r) => (r.path === '/_matrix/app/v1/ping' ? { status: 200, body: {} } : { status: 200, body: {} });
    const ping = await as.post('/_matrix/client/v1/appservice/fakenet/ping', { transaction_id: 'meow' });
    expect(ping.status).toBe(200);
    expect(typeof ping.body.duration_ms).toBe('number');
    expect(fake.requests.find((r) => r.path === '/_matrix/app/v1/ping')!.body).toEqual({ transaction_id: 'meow' });
    const otherId = await as.post('/_matrix/client/v1/appservice/nourl/ping', {});
    expect([otherId.status, otherId.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    const noUrl = await new TestClient(hs.url, 'as-token-no-url-000000000000000').post('/_matrix/client/v1/appservice/nourl/ping', {});
    expect([noUrl.status, noUrl.body.errcode]).toEqual([400, 'M_URL_NOT_SET']);
    fake.handler = (r) => (r.path === '/_matrix/app/v1/ping' ? { status: 403, body: { errcode: 'M_FORBIDDEN' } } : { status: 200, body: {} });
    const badStatus = await as.post('/_matrix/client/v1/appservice/fakenet/ping', {});
    expect(badStatus.status).toBe(502);
    expect(badStatus.body).toMatchObject({ errcode: 'M_BAD_STATUS', status: 403 });
    expect(JSON.parse(badStatus.body.body)).toEqual({ errcode: 'M_FORBIDDEN' });

    fake.handler = (r) => {
      if (r.path.startsWith('/_matrix/app/v1/thirdparty/protocol/fakenet')) {
        return { status: 200, body: { user_fields: ['nick'], location_fields: ['channel'], icon: 'mxc://x/y', field_types: {}, instances: [{ desc: 'Fake', network_id: 'main', fields: {} }] } };
      }
      if (r.path.startsWith('/_matrix/app/v1/thirdparty/location/fakenet')) return { status: 200, body: [{ alias: '#_fake_general:localhost', protocol: 'fakenet', fields: { channel: 'general' } }] };
      return { status: 200, body: {} };
    };
    const protocols = await alice.get('/_matrix/client/v3/thirdparty/protocols');
    expect(protocols.body.fakenet.instances[0]).toMatchObject({ network_id: 'main', instance_id: 'fakenet|main' });
    const loc = await alice.get('/_matrix/client/v3/thirdparty/location/fakenet?channel=general');
    expect(loc.body).toEqual([{ alias: '#_fake_general:localhost', protocol: 'fakenet', fields: { channel: 'general' } }]);
    expect(fake.requests.some((r) => r.path === '/_matrix/app/v1/thirdparty/location/fakenet?channel=general')).toBe(true);
    expect((await alice.get('/_matrix/client/v3/thirdparty/protocol/nothing')).status).toBe(404);

    const bridged = (await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'bridged' })).body.room_id as string;
    const notAs = await alice.put(`/_matrix/client/v3/directory/list/appservice/main/${encodeURIComponent(bridged)}`, { visibility: 'public' });
    expect(notAs.status).toBe(403);
    expect((await as.put(`/_matrix/client/v3/directory/list/appservice/main/${encodeURIComponent(bridged)}`, { visibility: 'public' })).status).toBe(200);
    const net = await alice.post('/_matrix/client/v3/publicRooms', { third_party_instance_id: 'fakenet|main' });
    expect(net.body.chunk.map((c: any) => c.room_id)).toEqual([bridged]);
    const main = await alice.post('/_matrix/client/v3/publicRooms', {});
    expect(main.body.chunk.map((c: any) => c.room_id)).not.toContain(bridged);
    const all = await alice.post('/_matrix/client/v3/publicRooms', { include_all_networks: true });
    expect(all.body.chunk.map((c: any) => c.room_id)).toContain(bridged);
  });

  it('scans events only up to the announced position (a commit is announced once on disk)', async () => {
    const ctx = hs.server!.ctx;
    // A room with a joined user of the service: every event of it concerns the service.
    expect((await as.post('/_matrix/client/v3/register', { type: 'm.login.application_service', username: '_fake_carol', inhibit_login: true })).status).toBe(200);
    const room = (await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' })).body.room_id as string;
    const joined = await as.post(`/_matrix/client/v3/join/${encodeURIComponent(room)}?user_id=${encodeURIComponent('@_fake_carol:localhost')}`, {});
    expect(joined.status).toBe(200);
    await eventually(() => fake.transactions().some((r) => r.body.events.some((e: any) => e.room_id === room && e.state_key === '@_fake_carol:localhost')));
    const withheld = withholdEventAnnouncements(ctx.notifier);
    const send = async (txn: string, body: string) => {
      const res = await alice.put(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/${txn}`, { msgtype: 'm.text', body });
      expect(res.status).toBe(200);
      return res.body.event_id as string;
    };
    const delivered = (id: string) => fake.transactions().some((r) => r.body.events.some((e: any) => e.event_id === id));
    try {
      const first = await send('ann1', 'announced first');
      const second = await send('ann2', 'announced later');
      const [c1, c2] = withheld.held.map((h) => h.change);
      expect([c1?.eventId, c2?.eventId]).toEqual([first, second]);
      withheld.release();
      await eventually(() => delivered(first));
      // The scan went up to the first event and not past it, though the second is committed.
      await eventually(() => ctx.appservices.status('fakenet')!.position >= c1!.position);
      expect(ctx.appservices.status('fakenet')!.position).toBeLessThan(c2!.position);
      expect(delivered(second)).toBe(false);
    } finally {
      withheld.restore();
    }
    await eventually(() => fake.transactions().some((r) => r.body.events.some((e: any) => e.content?.body === 'announced later')));
  });

  it('retries an unreachable service with backoff and the same transaction ID, losing nothing', async () => {
    const room = (await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' })).body.room_id as string;
    // The service's user joins: from then on every event of the room concerns the service.
    expect((await as.post(`/_matrix/client/v3/join/${encodeURIComponent(room)}?user_id=${encodeURIComponent('@_fake_bob:localhost')}`, {})).status).toBe(200);
    await eventually(() => fake.transactions().some((r) => r.body.events.some((e: any) => e.room_id === room && e.type === 'm.room.member')));
    fake.handler = (r) => (r.path.startsWith('/_matrix/app/v1/transactions/') ? { status: 500, body: { errcode: 'M_UNKNOWN' } } : { status: 200, body: {} });
    const before = fake.transactions().length;
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) {
      sent.push((await alice.put(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/u${i}`, { msgtype: 'm.text', body: `m${i}` })).body.event_id);
    }
    await new Promise((r) => setTimeout(r, 2500));
    const failed = fake.transactions().slice(before);
    // Backoff (100 ms doubling to 500 ms, with jitter) bounds the attempts: no busy loop.
    expect(failed.length).toBeGreaterThanOrEqual(3);
    expect(failed.length).toBeLessThan(20);
    // Every retry repeats the same transaction with the same content.
    const ids = new Set(failed.map((r) => r.path));
    expect(ids.size).toBe(1);
    expect(new Set(failed.map((r) => JSON.stringify(r.body))).size).toBe(1);
    const st = hs.server!.ctx.appservices.status('fakenet')!;
    expect(st.failures).toBeGreaterThanOrEqual(3);

    fake.handler = () => ({ status: 200, body: {} });
    const got = await eventually(() => {
      const ev = fake
        .transactions()
        .slice(before)
        .flatMap((r) => r.body.events)
        .filter((e: any) => e.type === 'm.room.message' && e.room_id === room);
      const unique = new Set(ev.map((e: any) => e.event_id));
      return sent.every((id) => unique.has(id)) && unique;
    });
    expect([...got]).toEqual(sent);
    expect(hs.server!.ctx.appservices.status('fakenet')!.failures).toBe(0);
  });

  it('pushes typing notifications and read receipts of rooms it is interested in as ephemeral data', async () => {
    fake.handler = () => ({ status: 200, body: {} });
    const room = (await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' })).body.room_id as string;
    expect((await as.post(`/_matrix/client/v3/join/${encodeURIComponent(room)}?user_id=${encodeURIComponent('@_fake_bob:localhost')}`, {})).status).toBe(200);
    const typing = await alice.put(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/typing/${encodeURIComponent('@alice:localhost')}`, { typing: true, timeout: 10000 });
    expect(typing.status).toBe(200);
    const edu = await eventually(() =>
      fake.transactions().flatMap((r) => r.body.ephemeral ?? []).find((e: any) => e.type === 'm.typing' && e.room_id === room && e.content.user_ids.includes('@alice:localhost')),
    );
    expect(edu.content.user_ids).toEqual(['@alice:localhost']);
    const withEdu = fake.transactions().find((r) => (r.body.ephemeral ?? []).includes(edu))!;
    expect(withEdu.body['de.sorunome.msc2409.ephemeral']).toEqual(withEdu.body.ephemeral);
    const msg = (await alice.put(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/e1`, { msgtype: 'm.text', body: 'read me' })).body.event_id;
    expect((await as.post(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/receipt/m.read/${encodeURIComponent(msg)}?user_id=${encodeURIComponent('@_fake_bob:localhost')}`, {})).status).toBe(200);
    const receipt = await eventually(() => fake.transactions().flatMap((r) => r.body.ephemeral ?? []).find((e: any) => e.type === 'm.receipt' && e.room_id === room));
    expect(Object.keys(receipt.content[msg]['m.read'])).toEqual(['@_fake_bob:localhost']);
  });

  it('passes to-device messages for its users when it receives ephemeral data', async () => {
    fake.handler = () => ({ status: 200, body: {} });
    // A namespaced user with a device, made by the service (registration, then login).
    await as.post('/_matrix/client/v3/register', { type: 'm.login.application_service', username: '_fake_td', inhibit_login: true });
    const login = await as.post('/_matrix/client/v3/login', {
      type: 'm.login.application_service',
      identifier: { type: 'm.id.user', user: '@_fake_td:localhost' },
      device_id: 'BRIDGEDEV',
    });
    expect(login.status).toBe(200);
    const sent = await alice.put('/_matrix/client/v3/sendToDevice/m.test.ping/td1', {
      messages: { '@_fake_td:localhost': { BRIDGEDEV: { hello: 'bridge' } } },
    });
    expect(sent.status).toBe(200);
    const msg = await eventually(() =>
      fake.transactions().flatMap((r) => r.body['de.sorunome.msc2409.to_device'] ?? []).find((m: any) => m.type === 'm.test.ping'),
    );
    expect(msg).toMatchObject({
      type: 'm.test.ping',
      sender: '@alice:localhost',
      to_user_id: '@_fake_td:localhost',
      to_device_id: 'BRIDGEDEV',
      content: { hello: 'bridge' },
    });
    // The same transaction ID again delivers nothing new.
    await alice.put('/_matrix/client/v3/sendToDevice/m.test.ping/td1', { messages: { '@_fake_td:localhost': { BRIDGEDEV: { hello: 'bridge' } } } });
    await new Promise((r) => setTimeout(r, 500));
    expect(fake.transactions().flatMap((r) => r.body['de.sorunome.msc2409.to_device'] ?? []).filter((m: any) => m.type === 'm.test.ping')).toHaveLength(1);
  });

  it('asks the service about unknown users and aliases in its namespaces', async () => {
    fake.handler = (r) => {
      if (r.path === `/_matrix/app/v1/users/${encodeURIComponent('@_fake_queried:localhost')}`) {
        // The service creates the user before answering.
        void 0;
        return { status: 200, body: {} };
      }
      if (r.path.startsWith('/_matrix/app/v1/rooms/')) return { status: 404, body: { errcode: 'M_NOT_FOUND' } };
      return { status: 200, body: {} };
    };
    const missing = await alice.get(`/_matrix/client/v3/directory/room/${encodeURIComponent('#_fake_nowhere:localhost')}`);
    expect(missing.status).toBe(404);
    expect(fake.requests.some((r) => r.path === `/_matrix/app/v1/rooms/${encodeURIComponent('#_fake_nowhere:localhost')}`)).toBe(true);
    const profile = await alice.get(`/_matrix/client/v3/profile/${encodeURIComponent('@_fake_queried:localhost')}`);
    expect(profile.status).toBe(404);
    expect(fake.requests.some((r) => r.path === `/_matrix/app/v1/users/${encodeURIComponent('@_fake_queried:localhost')}`)).toBe(true);
    // Users outside every namespace are not asked about.
    const n = fake.requests.length;
    await alice.get(`/_matrix/client/v3/profile/${encodeURIComponent('@stranger:localhost')}`);
    expect(fake.requests.slice(n).some((r) => r.path.startsWith('/_matrix/app/v1/users/'))).toBe(false);
  });
});
