/**
 * Simplified sliding sync (MSC4186) on the unstable endpoint Element X and matrix-rust-sdk
 * call: lists by recency and ranges, required_state (incl. $LAZY/$ME), timelines usable with
 * /messages, incremental responses per connection, long-poll wake-ups, invites, unread counts,
 * extensions (to-device, e2ee, typing, receipts, account data), errors, and the matrix-js-sdk
 * SlidingSync class as a real client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type MatrixClient } from 'matrix-js-sdk';
import { SlidingSync, SlidingSyncEvent, type MSC3575RoomData } from 'matrix-js-sdk/lib/sliding-sync.js';
import type { Engine, TestServer } from '../_util/server.js';
import { quietJsSdk, until } from '../_util/js-sdk.js';
import { makeDevice, oneTimeKeys } from './_e2ee.js';
import { startAccountsServer, TestClient, type Res } from './_client.js';

quietJsSdk();

const C = '/_matrix/client/v3';
const SS = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';
const enc = encodeURIComponent;

interface Reg {
  c: TestClient;
  userId: string;
  deviceId: string;
  token: string;
}

function ss(c: TestClient, body: unknown, q: { pos?: string; timeout?: number } = {}): Promise<Res> {
  const qs = new URLSearchParams();
  if (q.pos !== undefined) qs.set('pos', q.pos);
  if (q.timeout !== undefined) qs.set('timeout', String(q.timeout));
  const s = qs.toString();
  return c.post(`${SS}${s ? `?${s}` : ''}`, body);
}

async function ok(p: Promise<Res>): Promise<any> {
  const r = await p;
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  checkShape(r.body);
  return r.body;
}

/** The response shape clients deserialise (matrix-rust-sdk is strict about types). */
function checkShape(body: any): void {
  expect(typeof body.pos).toBe('string');
  for (const l of Object.values<any>(body.lists ?? {})) expect(Number.isInteger(l.count)).toBe(true);
  for (const [roomId, room] of Object.entries<any>(body.rooms ?? {})) {
    expect(roomId.startsWith('!')).toBe(true);
    for (const f of ['notification_count', 'highlight_count', 'joined_count', 'invited_count', 'num_live', 'bump_stamp']) {
      if (room[f] !== undefined) expect(Number.isInteger(room[f]), `${f} of ${roomId}`).toBe(true);
    }
    for (const e of room.timeline ?? []) {
      expect(typeof e.event_id).toBe('string');
      expect(typeof e.sender).toBe('string');
      expect(typeof e.origin_server_ts).toBe('number');
    }
    for (const e of room.required_state ?? []) {
      expect(typeof e.type).toBe('string');
      expect(typeof e.state_key).toBe('string');
    }
    if (room.prev_batch !== undefined) expect(typeof room.prev_batch).toBe('string');
    for (const h of room.heroes ?? []) expect(typeof h.user_id).toBe('string');
  }
}

const list = (over: Record<string, unknown> = {}) => ({ ranges: [[0, 19]], timeline_limit: 1, required_state: [['m.room.name', '']], ...over });

describe.each<Engine>(['sqlite', 'postgres'])('simplified sliding sync on %s', (engine) => {
  let t: TestServer;
  let alice: Reg;
  let bob: Reg;
  let carol: Reg;

  async function register(name: string): Promise<Reg> {
    const c = new TestClient(t.clientUrl);
    const r = await c.register(name);
    return { c, userId: r.user_id, deviceId: r.device_id, token: r.access_token };
  }
  async function room(owner: Reg, name: string | undefined, invite: Reg[] = [], extra: Record<string, unknown> = {}): Promise<string> {
    const r = await owner.c.post(`${C}/createRoom`, { preset: 'private_chat', ...(name ? { name } : {}), invite: invite.map((u) => u.userId), ...extra });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.room_id;
  }
  let txn = 0;
  async function say(u: Reg, roomId: string, body: string): Promise<string> {
    const r = await u.c.put(`${C}/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.event_id;
  }
  async function join(u: Reg, roomId: string): Promise<void> {
    expect((await u.c.post(`${C}/join/${enc(roomId)}`, {})).status).toBe(200);
  }

  beforeAll(async () => {
    t = await startAccountsServer(engine);
    alice = await register('alice');
    bob = await register('bob');
    carol = await register('carol');
  });
  afterAll(() => t?.close());

  it('is advertised in /versions', async () => {
    const v = await alice.c.get('/_matrix/client/versions', { token: null });
    expect(v.body.unstable_features['org.matrix.simplified_msc3575']).toBe(true);
  });

  it('lists rooms by recency, cuts ranges, counts, and sends each room once per connection', async () => {
    const u = await register('lister');
    const r1 = await room(u, 'one');
    const r2 = await room(u, 'two');
    const r3 = await room(u, 'three');
    await say(u, r1, 'bump one');
    // Newest activity first: r1 (message), r3, r2 (created in that order).
    const first = await ok(ss(u.c, { lists: { all: list({ ranges: [[0, 1]] }) } }));
    expect(first.lists.all.count).toBe(3);
    expect(first.lists.all.ops[0].room_ids).toEqual([r1, r3]);
    expect(Object.keys(first.rooms).sort()).toEqual([r1, r3].sort());
    const one = first.rooms[r1];
    expect(one).toMatchObject({ initial: true, name: 'one', membership: 'join', joined_count: 1, invited_count: 0, lists: ['all'] });
    expect(one.timeline.map((e: any) => e.content.body)).toEqual(['bump one']);
    expect(one.limited).toBe(true);
    expect(one.bump_stamp).toBeGreaterThan(first.rooms[r3].bump_stamp);
    expect(one.required_state.map((e: any) => [e.type, e.state_key])).toEqual([['m.room.name', '']]);

    // Growing the range sends only the room not sent yet.
    const grown = await ok(ss(u.c, { lists: { all: list({ ranges: [[0, 2]] }) } }, { pos: first.pos }));
    expect(Object.keys(grown.rooms)).toEqual([r2]);
    expect(grown.rooms[r2].initial).toBe(true);
    expect(grown.lists.all.ops[0].room_ids).toEqual([r1, r3, r2]);

    // Nothing new: no rooms at all (timeout 0 answers at once).
    const same = await ok(ss(u.c, { lists: { all: list({ ranges: [[0, 2]] }) } }, { pos: grown.pos }));
    expect(same.rooms).toEqual({});
    expect(same.lists.all.count).toBe(3);

    // A message in r2 moves it to the top and only it comes back, as a delta.
    const ev = await say(u, r2, 'now two');
    const inc = await ok(ss(u.c, { lists: { all: list({ ranges: [[0, 2]] }) } }, { pos: same.pos }));
    expect(Object.keys(inc.rooms)).toEqual([r2]);
    const two = inc.rooms[r2];
    expect(two.initial).toBeUndefined();
    expect(two.name).toBeUndefined();
    expect(two.timeline.map((e: any) => e.event_id)).toEqual([ev]);
    expect(two.num_live).toBe(1);
    expect(two.limited).toBe(false);
    expect(inc.lists.all.ops[0].room_ids[0]).toBe(r2);

    // Filters: a DM list via m.direct, and spaces left out by room type.
    const space = await room(u, 'space', [], { creation_content: { type: 'm.space' } });
    expect((await u.c.put(`${C}/user/${enc(u.userId)}/account_data/m.direct`, { '@someone:localhost': [r3] })).status).toBe(200);
    const filtered = await ok(
      ss(u.c, {
        conn_id: 'filters',
        lists: {
          dms: list({ filters: { is_dm: true } }),
          rooms: list({ filters: { not_room_types: ['m.space'] } }),
          spaces: list({ filters: { room_types: ['m.space'] } }),
        },
      }),
    );
    expect(filtered.lists.dms.ops[0].room_ids).toEqual([r3]);
    expect(filtered.rooms[r3].is_dm).toBe(true);
    expect(filtered.lists.rooms.count).toBe(3);
    expect(filtered.lists.spaces.ops[0].room_ids).toEqual([space]);

    // `is_dm` follows m.direct on later requests.
    expect((await u.c.put(`${C}/user/${enc(u.userId)}/account_data/m.direct`, { '@someone:localhost': [r2] })).status).toBe(200);
    const dm = await ok(ss(u.c, { lists: { all: list({ ranges: [[0, 9]] }) } }, { pos: inc.pos }));
    expect(dm.rooms[r2].is_dm).toBe(true);
    expect(dm.rooms[r2].timeline).toBeUndefined();
    expect(dm.rooms[r1]).toBeUndefined();
    expect(dm.rooms[r3]).toBeUndefined();
    expect(dm.rooms[space].initial).toBe(true);
    expect((await u.c.put(`${C}/user/${enc(u.userId)}/account_data/m.direct`, {})).status).toBe(200);
    const notDm = await ok(ss(u.c, { lists: { all: list({ ranges: [[0, 9]] }) } }, { pos: dm.pos }));
    expect(Object.keys(notDm.rooms)).toEqual([r2]);
    expect(notDm.rooms[r2].is_dm).toBe(false);
  });

  it('required_state: $LAZY members of the timeline, $ME, wildcards, and state changes as deltas', async () => {
    const roomId = await room(alice, 'lazy room', [bob, carol]);
    await join(bob, roomId);
    await join(carol, roomId);
    await say(carol, roomId, 'carol speaks');
    await say(bob, roomId, 'bob speaks');
    const required = [
      ['m.room.create', ''],
      ['m.room.member', '$LAZY'],
      ['m.room.member', '$ME'],
    ];
    const body = { room_subscriptions: { [roomId]: { timeline_limit: 1, required_state: required } } };
    const r = await ok(ss(alice.c, body));
    const got = r.rooms[roomId].required_state.map((e: any) => `${e.type}|${e.state_key}`).sort();
    // bob sent the only timeline event; alice is $ME; carol is not needed.
    expect(got).toEqual(['m.room.create|', `m.room.member|${alice.userId}`, `m.room.member|${bob.userId}`].sort());
    expect(r.rooms[roomId].heroes).toBeUndefined();
    expect(r.rooms[roomId].joined_count).toBe(3);

    // Carol speaks: her membership comes with her message; bob's is not sent again.
    await say(carol, roomId, 'carol again');
    const r2 = await ok(ss(alice.c, body, { pos: r.pos }));
    expect(r2.rooms[roomId].required_state.map((e: any) => e.state_key)).toEqual([carol.userId]);

    // A topic change is only sent to configs that ask for it; asking for more sends it now.
    expect((await alice.c.put(`${C}/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'hello' })).status).toBe(200);
    const r3 = await ok(ss(alice.c, body, { pos: r2.pos }));
    expect(r3.rooms[roomId].required_state ?? []).toEqual([]);
    const wider = { room_subscriptions: { [roomId]: { timeline_limit: 1, required_state: [...required, ['m.room.topic', '*']] } } };
    const r4 = await ok(ss(alice.c, wider, { pos: r3.pos }));
    expect(r4.rooms[roomId].required_state.map((e: any) => [e.type, e.content.topic])).toEqual([['m.room.topic', 'hello']]);

    // ["*","*"] is everything; a name change updates `name`.
    const all = await ok(ss(alice.c, { room_subscriptions: { [roomId]: { timeline_limit: 0, required_state: [['*', '*']] } } }));
    const types = new Set(all.rooms[roomId].required_state.map((e: any) => e.type));
    for (const ty of ['m.room.create', 'm.room.power_levels', 'm.room.join_rules', 'm.room.topic', 'm.room.member']) expect(types.has(ty)).toBe(true);
    expect(all.rooms[roomId].required_state.filter((e: any) => e.type === 'm.room.member')).toHaveLength(3);
    expect(all.rooms[roomId].timeline).toBeUndefined();
    expect((await alice.c.put(`${C}/rooms/${enc(roomId)}/state/m.room.name/`, { name: 'renamed' })).status).toBe(200);
    const renamed = await ok(ss(alice.c, { room_subscriptions: { [roomId]: { timeline_limit: 0, required_state: [['*', '*']] } } }, { pos: all.pos }));
    expect(renamed.rooms[roomId].name).toBe('renamed');
  });

  it('timeline_limit cuts the timeline and prev_batch pages on with /messages; unnamed rooms get heroes', async () => {
    const roomId = await room(alice, undefined, [bob]);
    await join(bob, roomId);
    for (let i = 1; i <= 5; i++) await say(bob, roomId, `m${i}`);
    const r = await ok(ss(alice.c, { room_subscriptions: { [roomId]: { timeline_limit: 2, required_state: [] } } }));
    const res = r.rooms[roomId];
    expect(res.timeline.map((e: any) => e.content.body)).toEqual(['m4', 'm5']);
    expect(res.limited).toBe(true);
    expect(res.name).toBeUndefined();
    expect(res.heroes).toEqual([{ user_id: bob.userId, displayname: 'bob' }]);
    const page = await alice.c.get(`${C}/rooms/${enc(roomId)}/messages?dir=b&limit=3&from=${enc(res.prev_batch)}`);
    expect(page.status).toBe(200);
    expect(page.body.chunk.map((e: any) => e.content.body)).toEqual(['m3', 'm2', 'm1']);
  });

  it('after a gap: a limited timeline with the state changed meanwhile; a larger limit expands the timeline', async () => {
    const u = await register('gappy');
    const quiet = await room(u, 'quiet');
    const busy = await room(u, 'busy');
    const rs = [['m.room.topic', ''], ['m.room.name', '']];
    const top1 = (pos?: string) => ss(u.c, { lists: { top: { ranges: [[0, 0]], timeline_limit: 2, required_state: rs } } }, { pos });
    const first = await ok(top1());
    expect(Object.keys(first.rooms)).toEqual([busy]);
    // `quiet` moves to the top while `busy` changes out of sight.
    await say(u, quiet, 'up');
    const second = await ok(top1(first.pos));
    expect(Object.keys(second.rooms)).toEqual([quiet]);
    expect((await u.c.put(`${C}/rooms/${enc(busy)}/state/m.room.topic/`, { topic: 'changed' })).status).toBe(200);
    for (let i = 0; i < 4; i++) await say(u, busy, `b${i}`);
    const back = await ok(top1(second.pos));
    expect(Object.keys(back.rooms)).toEqual([busy]);
    const b = back.rooms[busy];
    expect(b.initial).toBeUndefined();
    expect(b.limited).toBe(true);
    expect(b.timeline.map((e: any) => e.content.body)).toEqual(['b2', 'b3']);
    expect(b.num_live).toBe(2);
    expect(b.required_state.map((e: any) => e.content.topic)).toEqual(['changed']);

    // A subscription with a larger timeline_limit sends the latest events again, flagged.
    const sub = { lists: { top: { ranges: [[0, 0]], timeline_limit: 2, required_state: rs } }, room_subscriptions: { [busy]: { timeline_limit: 5, required_state: [] } } };
    const expanded = await ok(ss(u.c, sub, { pos: back.pos }));
    expect(expanded.rooms[busy].unstable_expanded_timeline).toBe(true);
    expect(expanded.rooms[busy].timeline.map((e: any) => e.content?.body ?? e.type)).toEqual(['m.room.topic', 'b0', 'b1', 'b2', 'b3']);
    expect(expanded.rooms[busy].num_live).toBe(0);
    // Once expanded, the same config sends nothing new.
    expect((await ok(ss(u.c, sub, { pos: expanded.pos }))).rooms).toEqual({});
  });

  it('long-polls until a message arrives, then wakes', async () => {
    const roomId = await room(alice, 'poll', [bob]);
    await join(bob, roomId);
    const body = { lists: { all: list({ ranges: [[0, 0]] }) } };
    const first = await ok(ss(alice.c, body));
    expect(first.lists.all.ops[0].room_ids).toEqual([roomId]);
    const started = Date.now();
    const poll = ss(alice.c, body, { pos: first.pos, timeout: 20000 });
    await new Promise((r) => setTimeout(r, 300));
    await say(bob, roomId, 'wake up');
    const woke = await poll;
    expect(woke.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(10000);
    expect(woke.body.rooms[roomId].timeline.map((e: any) => e.content.body)).toEqual(['wake up']);
    // With nothing happening, the timeout ends the request with no rooms.
    const idle = await ok(ss(alice.c, body, { pos: woke.body.pos, timeout: 500 }));
    expect(idle.rooms).toEqual({});
  });

  it('invites come with stripped state; joining sends the room whole', async () => {
    const u = await register('invitee');
    const roomId = await room(alice, 'invite me', [u]);
    const body = { lists: { invites: list({ filters: { is_invite: true } }), all: list({ timeline_limit: 5 }) } };
    const r = await ok(ss(u.c, body));
    expect(r.lists.invites.count).toBe(1);
    const inv = r.rooms[roomId];
    expect(inv.membership).toBe('invite');
    expect(inv.timeline).toBeUndefined();
    const stripped = inv.invite_state as any[];
    expect(stripped.find((e) => e.type === 'm.room.name').content.name).toBe('invite me');
    expect(stripped.find((e) => e.type === 'm.room.member' && e.state_key === u.userId).content.membership).toBe('invite');
    expect(stripped.every((e) => e.event_id === undefined || e.type === 'm.room.member')).toBe(true);

    await join(u, roomId);
    const joined = await ok(ss(u.c, body, { pos: r.pos }));
    expect(joined.lists.invites.count).toBe(0);
    expect(joined.rooms[roomId]).toMatchObject({ initial: true, membership: 'join', name: 'invite me', joined_count: 2 });
    expect(joined.rooms[roomId].timeline.at(-1).content.membership).toBe('join');

    // A rejected invite comes back once as `leave`, still with stripped state only.
    const other = await room(alice, 'reject me', [u]);
    const invited = await ok(ss(u.c, body, { pos: joined.pos }));
    expect(invited.rooms[other].membership).toBe('invite');
    expect((await u.c.post(`${C}/rooms/${enc(other)}/leave`, {})).status).toBe(200);
    const rejected = await ok(ss(u.c, body, { pos: invited.pos }));
    expect(rejected.rooms[other]).toMatchObject({ membership: 'leave', initial: true });
    expect(rejected.rooms[other].timeline).toBeUndefined();
    expect(rejected.rooms[other].invite_state.find((e: any) => e.type === 'm.room.member' && e.state_key === u.userId).content.membership).toBe('leave');
    expect((await ok(ss(u.c, body, { pos: rejected.pos }))).rooms).toEqual({});
    // Subscribing to it later still shows only stripped state.
    const sub = await ok(ss(u.c, { conn_id: 'sub', room_subscriptions: { [other]: { timeline_limit: 10, required_state: [['*', '*']] } } }));
    expect(sub.rooms[other].membership).toBe('leave');
    expect(sub.rooms[other].timeline).toBeUndefined();
    expect(sub.rooms[other].required_state).toBeUndefined();

    // Kicked: the room stays in the list, its timeline ends with the kick.
    expect((await alice.c.post(`${C}/rooms/${enc(roomId)}/kick`, { user_id: u.userId, reason: 'bye' })).status).toBe(200);
    const kicked = await ok(ss(u.c, body, { pos: rejected.pos }));
    expect(kicked.rooms[roomId].membership).toBe('leave');
    expect(kicked.rooms[roomId].initial).toBeUndefined();
    expect(kicked.rooms[roomId].timeline.at(-1).content).toMatchObject({ membership: 'leave', reason: 'bye' });
    const fresh = await ok(ss(u.c, body));
    expect(fresh.lists.all.ops[0].room_ids).toContain(roomId);
    expect(fresh.lists.all.ops[0].room_ids).not.toContain(other);
  });

  it('unread counts, and the room comes back when the user reads it', async () => {
    const roomId = await room(alice, 'unread', [bob]);
    await join(bob, roomId);
    await say(bob, roomId, 'one');
    const last = await say(bob, roomId, `two for ${alice.userId}`);
    const body = { room_subscriptions: { [roomId]: { timeline_limit: 1, required_state: [] } } };
    const r = await until(
      'counts',
      async () => {
        const b = await ok(ss(alice.c, body));
        return b.rooms[roomId].notification_count === 2 && b;
      },
      10000,
    );
    expect(r.rooms[roomId].notification_count).toBe(2);
    expect((await alice.c.post(`${C}/rooms/${enc(roomId)}/receipt/m.read/${enc(last)}`, {})).status).toBe(200);
    const after = await ok(ss(alice.c, body, { pos: r.pos }));
    expect(after.rooms[roomId]).toMatchObject({ notification_count: 0, highlight_count: 0 });
    expect(after.rooms[roomId].timeline).toBeUndefined();

    // A new connection gets the receipts of its timeline's events and the user's own.
    const fresh = await ok(ss(bob.c, { ...body, extensions: { receipts: { enabled: true } } }));
    const content = fresh.extensions.receipts.rooms[roomId].content;
    expect(Object.keys(content)).toEqual([last]);
    expect(Object.keys(content[last]['m.read'])).toEqual([alice.userId]);
  });

  it('extensions: to-device delivered until acknowledged, e2ee counts and device lists, typing, receipts, account data', async () => {
    const u = await register('extuser');
    const roomId = await room(u, 'ext', [bob]);
    await join(bob, roomId);
    const exts = (since?: string) => ({
      to_device: { enabled: true, ...(since ? { since } : {}) },
      e2ee: { enabled: true },
      typing: { enabled: true },
      receipts: { enabled: true },
      account_data: { enabled: true },
    });
    const body = (since?: string) => ({ lists: { all: list() }, extensions: exts(since) });

    const dev = makeDevice(u.userId, u.deviceId);
    expect((await u.c.post(`${C}/keys/upload`, { device_keys: dev.deviceKeys, one_time_keys: oneTimeKeys(dev, 3) })).status).toBe(200);
    expect((await bob.c.put(`${C}/sendToDevice/m.test/td1`, { messages: { [u.userId]: { [u.deviceId]: { n: 1 } } } })).status).toBe(200);
    expect((await u.c.put(`${C}/user/${enc(u.userId)}/account_data/m.test.global`, { g: 1 })).status).toBe(200);
    expect((await u.c.put(`${C}/user/${enc(u.userId)}/rooms/${enc(roomId)}/tags/m.favourite`, { order: 0.5 })).status).toBe(200);

    const first = await ok(ss(u.c, body()));
    const x = first.extensions;
    expect(x.to_device.events).toEqual([{ sender: bob.userId, type: 'm.test', content: { n: 1 } }]);
    expect(x.e2ee.device_one_time_keys_count.signed_curve25519).toBe(3);
    expect(Array.isArray(x.e2ee.device_unused_fallback_key_types)).toBe(true);
    expect(x.account_data.global.find((e: any) => e.type === 'm.test.global').content).toEqual({ g: 1 });
    expect(x.account_data.global.some((e: any) => e.type === 'm.push_rules')).toBe(true);
    expect(x.account_data.rooms[roomId].find((e: any) => e.type === 'm.tag').content.tags['m.favourite']).toEqual({ order: 0.5 });

    // Not acknowledged yet: the same since gives it again; the next batch does not.
    const again = await ok(ss(u.c, body(), { pos: first.pos }));
    expect(again.extensions.to_device.events).toHaveLength(1);
    const acked = await ok(ss(u.c, body(first.extensions.to_device.next_batch), { pos: again.pos }));
    expect(acked.extensions.to_device.events).toEqual([]);
    expect(acked.extensions.account_data.global).toEqual([]);

    // Typing, a receipt and a device list change wake a long-poll and show up.
    const poll = ss(u.c, body(acked.extensions.to_device.next_batch), { pos: acked.pos, timeout: 20000 });
    await new Promise((r) => setTimeout(r, 300));
    expect((await bob.c.put(`${C}/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { typing: true, timeout: 30000 })).status).toBe(200);
    const typed = await poll;
    expect(typed.status).toBe(200);
    expect(typed.body.extensions.typing.rooms[roomId]).toEqual({ type: 'm.typing', content: { user_ids: [bob.userId] } });

    const ev = await say(bob, roomId, 'read me');
    expect((await bob.c.post(`${C}/rooms/${enc(roomId)}/receipt/m.read/${enc(ev)}`, {})).status).toBe(200);
    const bobDev = makeDevice(bob.userId, bob.deviceId);
    expect((await bob.c.post(`${C}/keys/upload`, { device_keys: bobDev.deviceKeys })).status).toBe(200);
    const later = await until(
      'receipt and device list',
      async () => {
        const b = await ok(ss(u.c, body(acked.extensions.to_device.next_batch), { pos: typed.body.pos }));
        return b.extensions.receipts.rooms[roomId] && b.extensions.e2ee.device_lists.changed.includes(bob.userId) && b;
      },
      10000,
    );
    expect(later.extensions.receipts.rooms[roomId].content[ev]['m.read'][bob.userId]).toBeDefined();
  });

  it('an unknown, expired or foreign pos answers M_UNKNOWN_POS', async () => {
    const r = await ss(alice.c, { lists: {} }, { pos: 'nonsense' });
    expect(r.status).toBe(400);
    expect(r.body.errcode).toBe('M_UNKNOWN_POS');
    const bobs = await ok(ss(bob.c, { lists: {} }));
    const foreign = await ss(alice.c, { lists: {} }, { pos: bobs.pos });
    expect(foreign.body.errcode).toBe('M_UNKNOWN_POS');
    // Another connection of the same device does not share positions.
    const other = await ss(bob.c, { conn_id: 'other', lists: {} }, { pos: bobs.pos });
    expect(other.body.errcode).toBe('M_UNKNOWN_POS');
    // A retried request with the same pos still works.
    expect((await ss(bob.c, { lists: {} }, { pos: bobs.pos })).status).toBe(200);
    expect((await ss(bob.c, { lists: {} }, { pos: bobs.pos })).status).toBe(200);
  });

  it('rejects bad bodies with M_BAD_JSON and bad parameters with M_INVALID_PARAM', async () => {
    for (const bad of [
      { lists: [] },
      { lists: { a: { ranges: [[0]] } } },
      { lists: { a: { ranges: [[0, 1]], timeline_limit: '5' } } },
      { lists: { a: { required_state: [['m.room.name']] } } },
      { room_subscriptions: { '!x:localhost': { timeline_limit: -1 } } },
      { extensions: { to_device: { enabled: 'yes' } } },
      { conn_id: 5 },
      { lists: { a: { ranges: Array.from({ length: 101 }, () => [0, 1]) } } },
    ]) {
      const r = await ss(alice.c, bad);
      expect(r.status, JSON.stringify(bad)).toBe(400);
      expect(r.body.errcode, JSON.stringify(bad)).toBe('M_BAD_JSON');
    }
    expect((await ss(alice.c, { lists: { a: { ranges: [[5, 1]] } } })).body.errcode).toBe('M_INVALID_PARAM');
    expect((await ss(alice.c, {}, { timeout: -1 } as never)).status).toBe(400);
    expect((await alice.c.post(SS, {}, { token: null })).body.errcode).toBe('M_MISSING_TOKEN');
    // A request needs a JSON object body, even an empty one.
    expect((await alice.c.req('POST', SS)).body.errcode).toBe('M_BAD_JSON');
    expect((await ok(alice.c.req('POST', SS, {}))).rooms).toEqual({});
  });

  it('drives matrix-js-sdk SlidingSync as a client', async () => {
    const roomId = await room(alice, 'js-sdk room', [bob]);
    await join(bob, roomId);
    await say(bob, roomId, 'hello sdk');
    const client: MatrixClient = createClient({ baseUrl: t.clientUrl, accessToken: alice.token, userId: alice.userId, deviceId: alice.deviceId });
    const lists = new Map([['all', { ranges: [[0, 9]] as number[][], timeline_limit: 5, required_state: [['m.room.name', '']] as string[][] }]]);
    const sliding = new SlidingSync(t.clientUrl, lists, { timeline_limit: 5, required_state: [] }, client, 5000);
    const seen = new Map<string, MSC3575RoomData[]>();
    sliding.on(SlidingSyncEvent.RoomData, (id, data) => {
      seen.set(id, [...(seen.get(id) ?? []), data]);
    });
    void sliding.start();
    try {
      const first = await until('room data', () => seen.get(roomId)?.[0], 15000);
      expect(first.name).toBe('js-sdk room');
      expect(first.initial).toBe(true);
      expect(first.timeline.map((e) => e.content?.body)).toContain('hello sdk');
      expect(sliding.getListData('all')?.joinedCount).toBeGreaterThan(0);
      await say(bob, roomId, 'second');
      const upd = await until('live update', () => seen.get(roomId)?.find((d) => d.timeline.some((e) => e.content?.body === 'second')), 15000);
      expect(upd.initial).toBeFalsy();
    } finally {
      sliding.stop();
      client.stopClient();
    }
  });
});
