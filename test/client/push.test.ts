import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;

describe.each<Engine>(['sqlite', 'postgres'])('push rules, pushers, notifications and unread counts on %s', (engine) => {
  let t: TestServer;
  let alice: TestClient;
  let bob: TestClient;
  let carol: TestClient;

  beforeAll(async () => {
    t = await startAccountsServer(engine);
    alice = new TestClient(t.clientUrl);
    bob = new TestClient(t.clientUrl);
    carol = new TestClient(t.clientUrl);
    await alice.register('alice');
    await bob.register('bob');
    await carol.register('carol');
  });
  afterAll(() => t?.close());

  async function groupRoom(): Promise<{ roomId: string; rid: string }> {
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const rid = enc(roomId);
    expect((await bob.post(`${C}/join/${rid}`, {})).status).toBe(200);
    expect((await carol.post(`${C}/join/${rid}`, {})).status).toBe(200);
    return { roomId, rid };
  }

  const send = async (who: TestClient, rid: string, content: Record<string, unknown>) =>
    (await who.put(`${C}/rooms/${rid}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', ...content })).body.event_id as string;

  it('counts go up with messages and mentions, reach sync with the event, and drop to 0 after a read receipt', async () => {
    const { roomId, rid } = await groupRoom();
    const s0 = await bob.get(`${C}/sync`);
    expect(s0.body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });

    // Woken by Alice's message, the response that carries the event carries the new count.
    let since = s0.body.next_batch;
    const poll = bob.get(`${C}/sync?since=${since}&timeout=20000`);
    await new Promise((r) => setTimeout(r, 300));
    const one = await send(alice, rid, { body: 'one' });
    let s1 = await poll;
    for (let i = 0; i < 5 && !s1.body.rooms.join[roomId]?.timeline.events.some((e: any) => e.event_id === one); i++) {
      since = s1.body.next_batch;
      s1 = await bob.get(`${C}/sync?since=${since}&timeout=10000`);
    }
    expect(s1.body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 1, highlight_count: 0 });

    await send(alice, rid, { body: 'two' });
    const mention = await send(alice, rid, { body: 'bob: look', 'm.mentions': { user_ids: ['@bob:localhost'] } });
    await alice.put(`${C}/rooms/${rid}/send/m.room.message/notice1`, { msgtype: 'm.notice', body: 'bot says' });
    const s2 = await bob.get(`${C}/sync?since=${s1.body.next_batch}`);
    expect(s2.body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 3, highlight_count: 1 });
    // The sender's own messages never count for them.
    const a = await alice.get(`${C}/sync`);
    expect(a.body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });

    // A receipt on the mention clears everything up to it; the notice after it never counted.
    const poll2 = bob.get(`${C}/sync?since=${s2.body.next_batch}&timeout=20000`);
    await new Promise((r) => setTimeout(r, 300));
    expect((await bob.post(`${C}/rooms/${rid}/receipt/m.read/${enc(mention)}`, {})).status).toBe(200);
    let s3 = await poll2;
    for (let i = 0; i < 5 && !s3.body.rooms.join[roomId]; i++) s3 = await bob.get(`${C}/sync?since=${s3.body.next_batch}&timeout=10000`);
    expect(s3.body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });

    // A private receipt clears counts as well.
    const late = await send(alice, rid, { body: 'three' });
    expect((await carol.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications.notification_count).toBe(4);
    await carol.post(`${C}/rooms/${rid}/receipt/m.read.private/${enc(late)}`, {});
    expect((await carol.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications.notification_count).toBe(0);

    // Sending a message counts as reading up to it.
    await send(alice, rid, { body: 'four' });
    expect((await carol.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications.notification_count).toBe(1);
    await send(carol, rid, { body: 'reply' });
    expect((await carol.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications.notification_count).toBe(0);
  });

  it('@room highlights only from senders with the power to notify the room', async () => {
    const { roomId, rid } = await groupRoom();
    await carol.put(`${C}/rooms/${rid}/send/m.room.message/atroom1`, { msgtype: 'm.text', body: '@room hi', 'm.mentions': { room: true } });
    expect((await bob.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 1, highlight_count: 0 });
    await alice.put(`${C}/rooms/${rid}/send/m.room.message/atroom2`, { msgtype: 'm.text', body: '@room hi', 'm.mentions': { room: true } });
    expect((await bob.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 2, highlight_count: 1 });
  });

  it('thread counts apart when the filter asks for unread_thread_notifications', async () => {
    const { roomId, rid } = await groupRoom();
    const root = await send(alice, rid, { body: 'root' });
    const inThread = await send(alice, rid, { body: 'reply 1', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
    await send(alice, rid, { body: 'reply 2', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
    const filter = enc(JSON.stringify({ room: { timeline: { unread_thread_notifications: true } } }));
    const s = await bob.get(`${C}/sync?filter=${filter}`);
    const room = s.body.rooms.join[roomId];
    expect(room.unread_notifications).toEqual({ notification_count: 1, highlight_count: 0 });
    expect(room.unread_thread_notifications).toEqual({ [root]: { notification_count: 2, highlight_count: 0 } });
    // Without the option the room total includes threads.
    expect((await bob.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications.notification_count).toBe(3);

    // A threaded receipt clears only its thread.
    await bob.post(`${C}/rooms/${rid}/receipt/m.read/${enc(inThread)}`, { thread_id: root });
    const s2 = (await bob.get(`${C}/sync?filter=${filter}`)).body.rooms.join[roomId];
    expect(s2.unread_notifications.notification_count).toBe(1);
    expect(s2.unread_thread_notifications[root].notification_count).toBe(1);
    await bob.post(`${C}/rooms/${rid}/receipt/m.read/${enc(root)}`, { thread_id: 'main' });
    const s3 = (await bob.get(`${C}/sync?filter=${filter}`)).body.rooms.join[roomId];
    expect(s3.unread_notifications.notification_count).toBe(0);
    expect(s3.unread_thread_notifications).toEqual({ [root]: { notification_count: 1, highlight_count: 0 } });
  });

  it('one-to-one rooms and user rules change what notifies', async () => {
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'private_chat', invite: ['@bob:localhost'] })).body.room_id as string;
    const rid = enc(roomId);
    await bob.post(`${C}/join/${rid}`, {});
    await send(alice, rid, { body: 'dm' });
    expect((await bob.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications.notification_count).toBe(1);
    const n = await bob.get(`${C}/notifications?limit=1`);
    expect(n.body.notifications[0].room_id).toBe(roomId);
    expect(n.body.notifications[0].actions).toEqual(['notify', { set_tweak: 'sound', value: 'default' }]);

    // Silence the room with a room rule.
    expect((await bob.put(`${C}/pushrules/global/room/${rid}`, { actions: [] })).status).toBe(200);
    await send(alice, rid, { body: 'quiet' });
    expect((await bob.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications.notification_count).toBe(1);
    expect((await bob.del(`${C}/pushrules/global/room/${rid}`)).status).toBe(200);
    // A content rule makes a word highlight.
    await bob.put(`${C}/pushrules/global/content/cake`, { pattern: 'cake', actions: ['notify', { set_tweak: 'highlight' }] });
    await send(alice, rid, { body: 'Cake time!' });
    expect((await bob.get(`${C}/sync`)).body.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 2, highlight_count: 1 });
    await bob.del(`${C}/pushrules/global/content/cake`);
  });

  it('push rule CRUD with before/after, enabled, actions, and m.push_rules in sync', async () => {
    const rules = await carol.get(`${C}/pushrules/`);
    expect(rules.status).toBe(200);
    expect(rules.body.global.override[0].rule_id).toBe('.m.rule.master');
    expect(rules.body.global.underride.map((r: any) => r.rule_id)).toContain('.m.rule.message');
    expect((await carol.get(`${C}/pushrules/global/`)).body.content).toEqual([]);

    const s0 = await carol.get(`${C}/sync`);
    const cond = [{ kind: 'event_match', key: 'content.body', pattern: 'x' }];
    expect((await carol.put(`${C}/pushrules/global/override/a`, { conditions: cond, actions: ['notify'] })).status).toBe(200);
    expect((await carol.put(`${C}/pushrules/global/override/b`, { conditions: cond, actions: ['notify'] })).status).toBe(200);
    expect((await carol.put(`${C}/pushrules/global/override/c?after=a`, { conditions: cond, actions: [] })).status).toBe(200);
    expect((await carol.put(`${C}/pushrules/global/override/d?before=b`, { conditions: cond, actions: [] })).status).toBe(200);
    const ids = (await carol.get(`${C}/pushrules/`)).body.global.override.map((r: any) => r.rule_id).filter((id: string) => !id.startsWith('.'));
    expect(ids).toEqual(['d', 'b', 'a', 'c']);
    const full = (await carol.get(`${C}/pushrules/`)).body.global.override.map((r: any) => r.rule_id);
    expect(full[0]).toBe('.m.rule.master');
    expect(full.slice(1, 5)).toEqual(['d', 'b', 'a', 'c']);

    const rule = await carol.get(`${C}/pushrules/global/override/a`);
    expect(rule.body).toEqual({ rule_id: 'a', default: false, enabled: true, actions: ['notify'], conditions: cond });
    expect((await carol.put(`${C}/pushrules/global/override/a/enabled`, { enabled: false })).status).toBe(200);
    expect((await carol.get(`${C}/pushrules/global/override/a/enabled`)).body).toEqual({ enabled: false });
    expect((await carol.put(`${C}/pushrules/global/override/a/actions`, { actions: ['notify', { set_tweak: 'sound', value: 'x' }] })).status).toBe(200);
    expect((await carol.get(`${C}/pushrules/global/override/a/actions`)).body).toEqual({ actions: ['notify', { set_tweak: 'sound', value: 'x' }] });
    // Updating keeps the enabled state and position.
    await carol.put(`${C}/pushrules/global/override/a`, { conditions: [], actions: [] });
    expect((await carol.get(`${C}/pushrules/global/override/a`)).body.enabled).toBe(false);

    // Server-default rules: enable/disable and actions, but no overwrite or delete.
    expect((await carol.put(`${C}/pushrules/global/underride/.m.rule.message/enabled`, { enabled: false })).status).toBe(200);
    expect((await carol.get(`${C}/pushrules/global/underride/.m.rule.message`)).body).toMatchObject({ default: true, enabled: false });
    expect((await carol.put(`${C}/pushrules/global/override/.m.rule.mine`, { actions: [] })).body.errcode).toBe('M_INVALID_PARAM');
    expect((await carol.del(`${C}/pushrules/global/underride/.m.rule.message`)).status).toBe(400);
    expect((await carol.put(`${C}/pushrules/global/underride/.m.rule.message/enabled`, { enabled: true })).status).toBe(200);

    // Errors.
    expect((await carol.get(`${C}/pushrules/global/override/nope`)).body.errcode).toBe('M_NOT_FOUND');
    expect((await carol.del(`${C}/pushrules/global/override/nope`)).body.errcode).toBe('M_NOT_FOUND');
    expect((await carol.put(`${C}/pushrules/global/override/nope/enabled`, { enabled: true })).body.errcode).toBe('M_NOT_FOUND');
    const badAnchor = await carol.put(`${C}/pushrules/global/override/e?before=zzz`, { actions: [] });
    expect(badAnchor.status).toBe(400);
    expect(badAnchor.body.errcode).toBe('M_UNKNOWN');
    expect((await carol.put(`${C}/pushrules/global/override/e?before=.m.rule.master`, { actions: [] })).status).toBe(400);
    expect((await carol.put(`${C}/pushrules/global/content/e`, { actions: [] })).body.errcode).toBe('M_BAD_JSON');
    expect((await carol.put(`${C}/pushrules/global/sideways/e`, { actions: [] })).body.errcode).toBe('M_INVALID_PARAM');
    expect((await carol.put(`${C}/user/${enc('@carol:localhost')}/account_data/m.push_rules`, {})).status).toBe(405);

    for (const id of ['a', 'b', 'c', 'd']) expect((await carol.del(`${C}/pushrules/global/override/${id}`)).status).toBe(200);
    expect((await carol.get(`${C}/pushrules/`)).body.global.override.every((r: any) => r.rule_id.startsWith('.'))).toBe(true);

    // Changes reach the user's clients as m.push_rules account data.
    const s1 = await carol.get(`${C}/sync?since=${s0.body.next_batch}`);
    const pr = s1.body.account_data.events.filter((e: any) => e.type === 'm.push_rules');
    expect(pr).toHaveLength(1);
    expect(pr[0].content.global.override[0].rule_id).toBe('.m.rule.master');
  });

  it('pushers: set, list, replace, append, delete, validation', async () => {
    const pusher = {
      kind: 'http',
      app_id: 'org.example.app.ios',
      pushkey: 'key1',
      app_display_name: 'Example',
      device_display_name: 'Phone',
      lang: 'en',
      data: { url: 'https://push.example.org/_matrix/push/v1/notify', format: 'event_id_only' },
    };
    expect((await bob.post(`${C}/pushers/set`, pusher)).status).toBe(200);
    const list = await bob.get(`${C}/pushers`);
    expect(list.body.pushers).toEqual([{ ...pusher, data: pusher.data }].map(({ ...p }) => p));
    // The same pushkey for another user takes it over unless appended.
    expect((await carol.post(`${C}/pushers/set`, pusher)).status).toBe(200);
    expect((await bob.get(`${C}/pushers`)).body.pushers).toEqual([]);
    expect((await bob.post(`${C}/pushers/set`, { ...pusher, append: true })).status).toBe(200);
    expect((await bob.get(`${C}/pushers`)).body.pushers).toHaveLength(1);
    expect((await carol.get(`${C}/pushers`)).body.pushers).toHaveLength(1);
    // Updating replaces.
    await bob.post(`${C}/pushers/set`, { ...pusher, device_display_name: 'New phone', append: true });
    expect((await bob.get(`${C}/pushers`)).body.pushers.map((p: any) => p.device_display_name)).toEqual(['New phone']);
    expect((await bob.post(`${C}/pushers/set`, { kind: null, app_id: pusher.app_id, pushkey: 'key1' })).status).toBe(200);
    expect((await bob.get(`${C}/pushers`)).body.pushers).toEqual([]);

    expect((await bob.post(`${C}/pushers/set`, { kind: 'http', pushkey: 'k' })).body.errcode).toBe('M_MISSING_PARAM');
    expect((await bob.post(`${C}/pushers/set`, { ...pusher, lang: undefined })).body.errcode).toBe('M_MISSING_PARAM');
    expect((await bob.post(`${C}/pushers/set`, { ...pusher, data: {} })).body.errcode).toBe('M_INVALID_PARAM');
    expect((await bob.post(`${C}/pushers/set`, { ...pusher, data: { url: 'https://x.example/other' } })).body.errcode).toBe('M_INVALID_PARAM');
    expect((await bob.post(`${C}/pushers/set`, { ...pusher, app_id: 'x'.repeat(65) })).body.errcode).toBe('M_INVALID_PARAM');
    expect((await bob.get(`${C}/pushers`, { token: null })).status).toBe(401);
  });

  it('pushers go away with the device that set them (logout) and with the account', async () => {
    const dave = new TestClient(t.clientUrl);
    await dave.register(`dave${engine}`);
    const pusher = {
      kind: 'http',
      app_id: 'org.example.app.android',
      pushkey: `dave-${engine}`,
      app_display_name: 'Example',
      device_display_name: 'Phone',
      lang: 'en',
      data: { url: 'https://push.example.org/_matrix/push/v1/notify' },
    };
    expect((await dave.post(`${C}/pushers/set`, pusher)).status).toBe(200);
    const other = new TestClient(t.clientUrl);
    other.token = (await other.login(`dave${engine}`)).access_token;
    expect((await other.get(`${C}/pushers`)).body.pushers).toHaveLength(1);
    expect((await dave.post(`${C}/logout`, {})).status).toBe(200);
    expect((await other.get(`${C}/pushers`)).body.pushers).toEqual([]);
  });

  it('GET /notifications pages newest first, marks read ones, filters highlights', async () => {
    const { roomId, rid } = await groupRoom();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await send(alice, rid, { body: `n${i}`, ...(i === 2 ? { 'm.mentions': { user_ids: ['@carol:localhost'] } } : {}) }));
    await carol.post(`${C}/rooms/${rid}/receipt/m.read/${enc(ids[1]!)}`, {});
    const p1 = await carol.get(`${C}/notifications?limit=3`);
    expect(p1.status).toBe(200);
    expect(p1.body.notifications.map((n: any) => n.event.event_id)).toEqual([ids[4], ids[3], ids[2]]);
    expect(p1.body.notifications.every((n: any) => n.read === false)).toBe(true);
    expect(p1.body.notifications[0].event.content.body).toBe('n4');
    expect(typeof p1.body.next_token).toBe('string');
    const p2 = await carol.get(`${C}/notifications?limit=2&from=${p1.body.next_token}`);
    expect(p2.body.notifications.map((n: any) => [n.event.event_id, n.read])).toEqual([
      [ids[1], true],
      [ids[0], true],
    ]);
    const hl = await carol.get(`${C}/notifications?only=highlight`);
    expect(hl.body.notifications.every((n: any) => n.actions.some((a: any) => a.set_tweak === 'highlight'))).toBe(true);
    expect(hl.body.notifications.filter((n: any) => n.room_id === roomId).map((n: any) => n.event.event_id)).toEqual([ids[2]]);
    expect((await carol.get(`${C}/notifications?from=abc`)).body.errcode).toBe('M_INVALID_PARAM');
  });
});
