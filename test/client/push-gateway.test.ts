/**
 * Delivery of notifications to a real push gateway (on 127.0.0.1, per the push gateway API),
 * both engines: content, tweaks and priority per the default rules, event_id_only, the sender
 * and muted rooms not pushed, retries with backoff, restarts, rejected pushkeys, badge updates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';
import { TestPushGateway } from './_push-gateway.js';
import { startRestartable, type RestartableServer } from './_restartable.js';

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;

/** Polls an async condition until it holds (or fails after `ms`). */
async function eventually(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const PUSH = {
  push: { allow_private_gateways: true, allow_http_gateways: true, retry_initial_ms: 100, retry_max_ms: 400, badge_interval_ms: 0 },
};

describe.each<Engine>(['sqlite', 'postgres'])('push gateway delivery on %s', (engine) => {
  let s: RestartableServer;
  let gw: TestPushGateway;
  let alice: TestClient;
  let n = 0;

  const pusher = (pushkey: string, data: Record<string, unknown> = {}) => ({
    kind: 'http',
    app_id: 'org.example.app',
    pushkey,
    app_display_name: 'Example',
    device_display_name: 'Phone',
    lang: 'en',
    data: { url: gw.url, ...data },
  });

  /** A new user with a pusher (pushkey `<name>-key`), joined to a new room of alice's. */
  async function setup(name: string, opts: { pusherData?: Record<string, unknown>; roomName?: string } = {}) {
    const c = new TestClient(s.url);
    await c.register(`${name}${++n}`);
    const userId = `@${name}${n}:localhost`;
    const pushkey = `${name}${n}-key`;
    expect((await c.post(`${C}/pushers/set`, pusher(pushkey, opts.pusherData))).status).toBe(200);
    const initial_state = opts.roomName ? [{ type: 'm.room.name', state_key: '', content: { name: opts.roomName } }] : [];
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', initial_state })).body.room_id as string;
    expect((await c.post(`${C}/join/${enc(roomId)}`, {})).status).toBe(200);
    return { c, userId, pushkey, roomId };
  }

  let txn = 0;
  const say = async (who: TestClient, roomId: string, content: Record<string, unknown>) => {
    const res = await who.put(`${C}/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, content);
    expect(res.status).toBe(200);
    return res.body.event_id as string;
  };

  beforeAll(async () => {
    gw = await new TestPushGateway().start();
    s = await startRestartable(engine, undefined, PUSH);
    alice = new TestClient(s.url);
    await alice.register('alice');
    await alice.put(`${C}/profile/${enc('@alice:localhost')}/displayname`, { displayname: 'Alice A' });
    // Alice has a pusher too: her own events must never reach it.
    expect((await alice.post(`${C}/pushers/set`, pusher('alice-key'))).status).toBe(200);
  });
  afterAll(async () => {
    await s?.close();
    await gw?.close();
  });

  it('pushes a message with the event fields, counts and the device; never to the sender', async () => {
    const { c: bob, userId: bobId, pushkey, roomId } = await setup('bob', { pusherData: { format: 'full', extra: 7 }, roomName: 'Pushy' });
    const before = Math.floor(Date.now() / 1000);
    const eventId = await say(alice, roomId, { msgtype: 'm.text', body: 'hello bob' });
    const [n1] = await gw.until(() => gw.forKey(pushkey).length >= 1 && gw.forKey(pushkey));
    expect(n1).toMatchObject({
      event_id: eventId,
      room_id: roomId,
      type: 'm.room.message',
      sender: '@alice:localhost',
      sender_display_name: 'Alice A',
      room_name: 'Pushy',
      prio: 'high',
      content: { msgtype: 'm.text', body: 'hello bob' },
      counts: { unread: 1 },
    });
    expect(n1.devices).toHaveLength(1);
    const d = n1.devices[0];
    // A two-member room: .m.rule.room_one_to_one (notify, sound default, highlight false).
    expect(d).toEqual({ app_id: 'org.example.app', pushkey, pushkey_ts: d.pushkey_ts, data: { format: 'full', extra: 7 }, tweaks: { sound: 'default' } });
    expect(d.pushkey_ts).toBeGreaterThanOrEqual(before - 120);
    expect(d.pushkey_ts).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));

    // Bob answers: alice is pushed, bob (the sender) is not.
    const reply = await say(bob, roomId, { msgtype: 'm.text', body: 'hi alice' });
    await gw.until(() => gw.forKey('alice-key').some((x) => x.event_id === reply));
    expect(gw.forKey(pushkey).map((x) => x.event_id)).not.toContain(reply);
    expect(gw.forKey('alice-key').map((x) => x.event_id)).not.toContain(eventId);
    expect(gw.received.filter((r) => r.n.sender === bobId && r.n.devices[0].pushkey === pushkey)).toEqual([]);
  });

  it('a mention sets the highlight tweak (default rule .m.rule.is_user_mention)', async () => {
    const { c: carol, userId, pushkey, roomId } = await setup('carol');
    // A third member, so the one-to-one rule no longer applies to plain messages.
    const dan = new TestClient(s.url);
    await dan.register(`dan${++n}`);
    await dan.post(`${C}/join/${enc(roomId)}`, {});
    const plain = await say(alice, roomId, { msgtype: 'm.text', body: 'plain' });
    const mention = await say(alice, roomId, { msgtype: 'm.text', body: 'look', 'm.mentions': { user_ids: [userId] } });
    const got = await gw.until(() => gw.forKey(pushkey).length >= 2 && gw.forKey(pushkey));
    expect(got.map((x) => x.event_id)).toEqual([plain, mention]);
    expect(got[0].devices[0].tweaks).toEqual({});
    expect(got[1].devices[0].tweaks).toEqual({ sound: 'default', highlight: true });
    expect(got[1].prio).toBe('high');
    expect(got[1].counts).toEqual({ unread: 2 });
    void carol;
  });

  it('event_id_only pushers get only the event and room IDs, counts and devices', async () => {
    const { pushkey, roomId } = await setup('erin', { pusherData: { format: 'event_id_only' }, roomName: 'Secret' });
    const eventId = await say(alice, roomId, { msgtype: 'm.text', body: 'do not leak me' });
    const [got] = await gw.until(() => gw.forKey(pushkey).length >= 1 && gw.forKey(pushkey));
    expect(Object.keys(got).sort()).toEqual(['counts', 'devices', 'event_id', 'prio', 'room_id']);
    expect(got).toMatchObject({ event_id: eventId, room_id: roomId, counts: { unread: 1 } });
    expect(got.devices[0].data).toEqual({ format: 'event_id_only' });
    expect(JSON.stringify(got)).not.toContain('do not leak me');
  });

  it('a muted room (override rule without notify) is not pushed', async () => {
    const { c: fay, pushkey, roomId } = await setup('fay');
    const other = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    expect((await fay.post(`${C}/join/${enc(other)}`, {})).status).toBe(200);
    const mute = { conditions: [{ kind: 'event_match', key: 'room_id', pattern: roomId }], actions: ['dont_notify'] };
    expect((await fay.put(`${C}/pushrules/global/override/mute-${enc(roomId)}`, mute)).status).toBe(200);
    const muted = await say(alice, roomId, { msgtype: 'm.text', body: 'muted' });
    const marker = await say(alice, other, { msgtype: 'm.text', body: 'marker' });
    // Notifications of one pusher go out in order: once the marker is there, the muted one never will be.
    await gw.until(() => gw.forKey(pushkey).some((x) => x.event_id === marker));
    expect(gw.forKey(pushkey).map((x) => x.event_id)).not.toContain(muted);
    expect(gw.forKey(pushkey).map((x) => x.event_id)).toEqual([marker]);
  });

  it('retries with backoff while the gateway fails, then delivers once', async () => {
    const { userId, pushkey, roomId } = await setup('gus');
    gw.failing = true;
    const eventId = await say(alice, roomId, { msgtype: 'm.text', body: 'are you there?' });
    const attempts = () => gw.received.filter((r) => !r.accepted && r.n.event_id === eventId);
    await gw.until(() => attempts().length >= 3, 20_000, 'three failed attempts');
    const times = attempts().map((r) => r.at);
    // Backoff: waits between attempts (100 ms doubling to 400 ms, with jitter down to half).
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(40);
    const row = await s.server.ctx.database.db.selectFrom('pushers').select(['failing_since']).where('user_id', '=', userId).executeTakeFirstOrThrow();
    expect(row.failing_since).not.toBeNull();
    gw.failing = false;
    await gw.until(() => gw.forKey(pushkey).some((x) => x.event_id === eventId));
    // The gateway sees the request before the server records the success.
    const db = s.server.ctx.database.db;
    await eventually(async () => (await db.selectFrom('pushers').select(['failing_since']).where('user_id', '=', userId).executeTakeFirstOrThrow()).failing_since === null, 'failing_since cleared');
    expect(gw.forKey(pushkey).filter((x) => x.event_id === eventId)).toHaveLength(1);
  });

  it('a restart in between loses nothing: undelivered notifications go out after it', async () => {
    const { pushkey, roomId } = await setup('hal');
    gw.failing = true;
    const e1 = await say(alice, roomId, { msgtype: 'm.text', body: 'one' });
    await gw.until(() => gw.received.some((r) => !r.accepted && r.n.event_id === e1), 20_000, 'a failed attempt');
    await s.restart();
    const e2 = await say(alice, roomId, { msgtype: 'm.text', body: 'two' });
    gw.failing = false;
    const got = await gw.until(() => gw.forKey(pushkey).length >= 2 && gw.forKey(pushkey));
    expect(got.map((x) => x.event_id)).toEqual([e1, e2]);

    // Sent while the server is down for the gateway (stopped before delivering), delivered at start-up.
    gw.failing = true;
    const e3 = await say(alice, roomId, { msgtype: 'm.text', body: 'three' });
    await gw.until(() => gw.received.some((r) => !r.accepted && r.n.event_id === e3), 20_000, 'a failed attempt');
    await s.server.stop();
    gw.failing = false;
    await s.restart();
    await gw.until(() => gw.forKey(pushkey).some((x) => x.event_id === e3));
    expect(gw.forKey(pushkey).map((x) => x.event_id)).toEqual([e1, e2, e3]);
  });

  it('a pushkey the gateway rejects loses its pusher', async () => {
    const { c: ivy, pushkey, roomId } = await setup('ivy');
    gw.rejectKeys.add(pushkey);
    const eventId = await say(alice, roomId, { msgtype: 'm.text', body: 'bye' });
    await gw.until(() => gw.received.some((r) => r.n.event_id === eventId && r.n.devices[0].pushkey === pushkey));
    const end = Date.now() + 10_000;
    while ((await ivy.get(`${C}/pushers`)).body.pushers.length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect((await ivy.get(`${C}/pushers`)).body.pushers).toEqual([]);
    const next = await say(alice, roomId, { msgtype: 'm.text', body: 'anyone?' });
    // Nothing more for that pushkey (alice's own pusher is not notified for her events; use a marker user).
    const { pushkey: markerKey, roomId: markerRoom } = await setup('ivymarker');
    const marker = await say(alice, markerRoom, { msgtype: 'm.text', body: 'marker' });
    await gw.until(() => gw.forKey(markerKey).some((x) => x.event_id === marker));
    expect(gw.received.some((r) => r.n.event_id === next)).toBe(false);
  });

  it('a message to a room with more pushers than deliver at once reaches every one', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const keys: string[] = [];
    for (let i = 0; i < 12; i++) {
      const c = new TestClient(s.url);
      await c.register(`many${++n}`);
      keys.push(`many${n}-key`);
      expect((await c.post(`${C}/pushers/set`, pusher(`many${n}-key`))).status).toBe(200);
      expect((await c.post(`${C}/join/${enc(roomId)}`, {})).status).toBe(200);
    }
    const eventId = await say(alice, roomId, { msgtype: 'm.text', body: 'everyone' });
    await gw.until(() => keys.every((k) => gw.forKey(k).some((x) => x.event_id === eventId)));
    for (const k of keys) expect(gw.forKey(k).filter((x) => x.event_id === eventId)).toHaveLength(1);
  });

  it('an invite is pushed to the invitee, who is its target', async () => {
    const kim = new TestClient(s.url);
    await kim.register(`kim${++n}`);
    const kimId = `@kim${n}:localhost`;
    expect((await kim.post(`${C}/pushers/set`, pusher(`kim${n}-key`))).status).toBe(200);
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'private_chat', name: 'Invite only' })).body.room_id as string;
    expect((await alice.post(`${C}/rooms/${enc(roomId)}/invite`, { user_id: kimId })).status).toBe(200);
    const [got] = await gw.until(() => gw.forKey(`kim${n}-key`).length >= 1 && gw.forKey(`kim${n}-key`));
    expect(got).toMatchObject({ type: 'm.room.member', room_id: roomId, sender: '@alice:localhost', user_is_target: true, room_name: 'Invite only', content: { membership: 'invite' } });
    expect(got.devices[0].tweaks).toEqual({ sound: 'default' });
  });

  it('a read receipt sends a counts-only badge update', async () => {
    const { c: jo, pushkey, roomId } = await setup('jo');
    await say(alice, roomId, { msgtype: 'm.text', body: 'one' });
    const last = await say(alice, roomId, { msgtype: 'm.text', body: 'two' });
    await gw.until(() => gw.forKey(pushkey).some((x) => x.event_id === last));
    expect(gw.forKey(pushkey).find((x) => x.event_id === last).counts).toEqual({ unread: 2 });
    expect((await jo.post(`${C}/rooms/${enc(roomId)}/receipt/m.read/${enc(last)}`, {})).status).toBe(200);
    const badge = await gw.until(() => gw.forKey(pushkey).find((x) => x.event_id === undefined));
    expect(badge.counts).toEqual({ unread: 0 });
    expect(badge.devices).toEqual([{ app_id: 'org.example.app', pushkey, pushkey_ts: badge.devices[0].pushkey_ts, data: {}, tweaks: {} }]);
    expect(badge.type).toBeUndefined();
    expect(badge.room_id).toBeUndefined();
  });
});

describe.each<Engine>(['sqlite', 'postgres'])('push retries are bounded on %s', (engine) => {
  let s: TestServer;
  let gw: TestPushGateway;

  beforeAll(async () => {
    gw = await new TestPushGateway().start();
    s = await startAccountsServer(engine, {
      push: { allow_private_gateways: true, allow_http_gateways: true, retry_initial_ms: 100, retry_max_ms: 200, max_retry_duration_ms: 1000 },
    });
  });
  afterAll(async () => {
    await s?.close();
    await gw?.close();
  });

  it('gives up on a notification once the gateway has failed for max_retry_duration_ms, and delivers again after', async () => {
    const alice = new TestClient(s.clientUrl);
    const bob = new TestClient(s.clientUrl);
    await alice.register('alice');
    await bob.register('bob');
    const pusher = { kind: 'http', app_id: 'org.example.app', pushkey: 'bob-key', app_display_name: 'A', device_display_name: 'D', lang: 'en', data: { url: gw.url } };
    expect((await bob.post(`${C}/pushers/set`, pusher)).status).toBe(200);
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    await bob.post(`${C}/join/${enc(roomId)}`, {});

    gw.failing = true;
    const lost = (await alice.put(`${C}/rooms/${enc(roomId)}/send/m.room.message/1`, { msgtype: 'm.text', body: 'lost' })).body.event_id;
    await gw.until(() => s.logs.some((l) => l.includes('giving up on a notification') && l.includes(lost)), 20_000, 'the give-up log line');
    const attempts = gw.received.filter((r) => r.n.event_id === lost);
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts.at(-1)!.at - attempts[0]!.at).toBeGreaterThanOrEqual(500);
    const attemptsAtGiveUp = attempts.length;

    gw.failing = false;
    const next = (await alice.put(`${C}/rooms/${enc(roomId)}/send/m.room.message/2`, { msgtype: 'm.text', body: 'next' })).body.event_id;
    await gw.until(() => gw.forKey('bob-key').some((x) => x.event_id === next));
    expect(gw.forKey('bob-key').map((x) => x.event_id)).toEqual([next]);
    expect(gw.received.filter((r) => r.n.event_id === lost)).toHaveLength(attemptsAtGiveUp);
    const db = s.server.ctx.database.db;
    await eventually(async () => (await db.selectFrom('pushers').select(['failing_since']).where('user_id', '=', '@bob:localhost').executeTakeFirstOrThrow()).failing_since === null, 'failing_since cleared');
  });
});

describe.each<Engine>(['sqlite', 'postgres'])('push gateway policy by default on %s', (engine) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startAccountsServer(engine);
  });
  afterAll(() => s?.close());

  it('refuses http:// gateways and gateways on private or loopback addresses', async () => {
    const bob = new TestClient(s.clientUrl);
    await bob.register('bob');
    const set = (url: string) =>
      bob.post(`${C}/pushers/set`, { kind: 'http', app_id: 'a', pushkey: 'k', app_display_name: 'A', device_display_name: 'D', lang: 'en', data: { url } });
    for (const url of [
      'http://push.example.org/_matrix/push/v1/notify',
      'https://127.0.0.1/_matrix/push/v1/notify',
      'https://10.0.0.1:8443/_matrix/push/v1/notify',
      'https://[::1]/_matrix/push/v1/notify',
      'https://169.254.169.254/_matrix/push/v1/notify',
    ]) {
      const res = await set(url);
      expect(res.status, url).toBe(400);
      expect(res.body.errcode, url).toBe('M_INVALID_PARAM');
    }
    expect((await set('https://push.example.org/_matrix/push/v1/notify')).status).toBe(200);
    expect((await bob.get(`${C}/pushers`)).body.pushers).toHaveLength(1);
  });
});
