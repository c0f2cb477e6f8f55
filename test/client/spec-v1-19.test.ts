/**
 * Client-server API additions of spec versions 1.13 to 1.19: room summaries, mutual rooms,
 * redactions through /send, account suspension and locking, invite blocking, application
 * services managing devices, capabilities and `unsigned.replaces_state`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mutualRoomsPaging } from '../../src/api/client/mutual-rooms.js';
import { SUPPORTED_SPEC_VERSIONS } from '../../src/api/client/versions.js';
import { Homeserver, type Registration } from '../appservice/_harness.js';
import type { Engine } from '../_util/server.js';
import { TestClient } from './_client.js';

const C = '/_matrix/client/v3';
const V1 = '/_matrix/client/v1';
const enc = encodeURIComponent;
const AS_TOKEN = 'as-token-recent-0123456789';
const REG: Registration = {
  id: 'recent',
  url: null,
  as_token: AS_TOKEN,
  hs_token: 'hs-token-recent-0123456789',
  sender_localpart: 'recentbot',
  namespaces: { users: [{ regex: '@_rc_.*', exclusive: true }], aliases: [], rooms: [] },
  rate_limited: false,
};

describe.each<Engine>(['sqlite', 'postgres'])('client API of spec v1.13–v1.19 on %s', (engine) => {
  let hs: Homeserver;
  let alice: TestClient;
  let bob: TestClient;
  let admin: TestClient;
  let anon: TestClient;
  let aliceId: string;
  let bobId: string;

  beforeAll(async () => {
    hs = await Homeserver.create(engine, [REG]);
    await hs.start();
    alice = new TestClient(hs.url);
    bob = new TestClient(hs.url);
    admin = new TestClient(hs.url);
    anon = new TestClient(hs.url);
    aliceId = (await alice.register('alice')).user_id;
    bobId = (await bob.register('bob')).user_id;
    const adminId = (await admin.register('admin')).user_id;
    await hs.server!.ctx.accounts.setAdmin(adminId, true);
  });
  afterAll(async () => {
    await hs?.destroy();
  });

  it('advertises every version up to v1.19 and the capabilities it implies', async () => {
    const v = await anon.get('/_matrix/client/versions');
    expect(v.body.versions).toEqual([...SUPPORTED_SPEC_VERSIONS]);
    for (const ver of ['v1.13', 'v1.14', 'v1.15', 'v1.16', 'v1.17', 'v1.18', 'v1.19']) expect(v.body.versions).toContain(ver);
    const caps = (await alice.get(`${C}/capabilities`)).body.capabilities;
    expect(caps['m.profile_fields']).toEqual({ enabled: true });
    expect(caps['m.forget_forced_upon_leave']).toEqual({ enabled: false });
    expect(caps['m.account_moderation']).toBeUndefined();
    expect((await admin.get(`${C}/capabilities`)).body.capabilities['m.account_moderation']).toEqual({ suspend: true, lock: true });
    // No OAuth 2.0 API here: its metadata endpoint is unknown.
    const meta = await anon.get(`${V1}/auth_metadata`);
    expect(meta.status).toBe(404);
    expect(meta.body.errcode).toBe('M_UNRECOGNIZED');
  });

  it('room summaries: members, public rooms without a token, private rooms hidden, aliases', async () => {
    const pub = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'Public', topic: 'About', room_alias_name: 'summary-pub' })).body.room_id as string;
    const priv = (await alice.post(`${C}/createRoom`, {
      preset: 'private_chat',
      name: 'Private',
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    })).body.room_id as string;

    const mine = await alice.get(`${V1}/room_summary/${enc(priv)}`);
    expect(mine.status).toBe(200);
    expect(mine.body).toMatchObject({ room_id: priv, name: 'Private', membership: 'join', join_rule: 'invite', encryption: 'm.megolm.v1.aes-sha2', num_joined_members: 1, world_readable: false, guest_can_join: true });
    expect(typeof mine.body.room_version).toBe('string');
    // Not a member of a private room: as if it did not exist, with or without a token.
    expect((await bob.get(`${V1}/room_summary/${enc(priv)}`)).status).toBe(404);
    expect((await anon.get(`${V1}/room_summary/${enc(priv)}`)).status).toBe(404);
    // Invited: visible.
    await alice.post(`${C}/rooms/${enc(priv)}/invite`, { user_id: bobId });
    expect((await bob.get(`${V1}/room_summary/${enc(priv)}`)).body.membership).toBe('invite');

    const open = await anon.get(`${V1}/room_summary/${enc(pub)}`);
    expect(open.status).toBe(200);
    expect(open.body).toMatchObject({ room_id: pub, name: 'Public', topic: 'About', join_rule: 'public', canonical_alias: '#summary-pub:localhost' });
    expect(open.body.membership).toBeUndefined();
    expect((await bob.get(`${V1}/room_summary/${enc(pub)}`)).body.membership).toBe('leave');
    expect((await bob.get(`${V1}/room_summary/${enc('#summary-pub:localhost')}?via=localhost`)).body.room_id).toBe(pub);
    expect((await bob.get(`${V1}/room_summary/${enc('#nothing:localhost')}`)).status).toBe(404);
    expect((await bob.get(`${V1}/room_summary/${enc('!unknown:localhost')}`)).status).toBe(404);
  });

  it('space hierarchy rooms carry room_version, encryption and allowed_room_ids', async () => {
    const space = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', creation_content: { type: 'm.space' } })).body.room_id as string;
    const child = (await alice.post(`${C}/createRoom`, {
      room_version: '10',
      initial_state: [
        { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: space }] } },
        { type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } },
      ],
    })).body.room_id as string;
    await alice.put(`${C}/rooms/${enc(space)}/state/m.space.child/${enc(child)}`, { via: ['localhost'] });
    await bob.post(`${C}/join/${enc(space)}`, {});
    const h = await bob.get(`${V1}/rooms/${enc(space)}/hierarchy`);
    const c = h.body.rooms.find((r: any) => r.room_id === child);
    expect(c).toMatchObject({ room_version: '10', encryption: 'm.megolm.v1.aes-sha2', allowed_room_ids: [space], join_rule: 'restricted' });
    // The summary of a restricted room is visible to members of an allowed room.
    expect((await bob.get(`${V1}/room_summary/${enc(child)}`)).body.allowed_room_ids).toEqual([space]);
  });

  it('mutual rooms: only rooms both users joined, paginated by next_batch', async () => {
    const carol = new TestClient(hs.url);
    const carolId = (await carol.register('carol')).user_id;
    const shared: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = (await carol.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
      await alice.post(`${C}/join/${enc(r)}`, {});
      shared.push(r);
    }
    const left = (await carol.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    await alice.post(`${C}/join/${enc(left)}`, {});
    await alice.post(`${C}/rooms/${enc(left)}/leave`, {});
    await carol.post(`${C}/createRoom`, { preset: 'public_chat' }); // carol alone

    const saved = mutualRoomsPaging.pageSize;
    mutualRoomsPaging.pageSize = 2;
    try {
      const first = await alice.get(`${V1}/mutual_rooms?user_id=${enc(carolId)}`);
      expect(first.status).toBe(200);
      expect(first.body.count).toBe(3);
      expect(first.body.joined).toHaveLength(2);
      expect(first.body.next_batch).toEqual(expect.any(String));
      const second = await alice.get(`${V1}/mutual_rooms?user_id=${enc(carolId)}&from=${enc(first.body.next_batch)}`);
      expect(second.body.joined).toHaveLength(1);
      expect(second.body.next_batch).toBeUndefined();
      expect([...first.body.joined, ...second.body.joined].sort()).toEqual([...shared].sort());
    } finally {
      mutualRoomsPaging.pageSize = saved;
    }
    expect((await alice.get(`${V1}/mutual_rooms?user_id=${enc('@nobody:localhost')}`)).body).toEqual({ joined: [], count: 0 });
    expect((await alice.get(`${V1}/mutual_rooms?user_id=${enc(aliceId)}`)).body.errcode).toBe('M_INVALID_PARAM');
    expect((await alice.get(`${V1}/mutual_rooms?user_id=nope`)).status).toBe(400);
    expect((await alice.get(`${V1}/mutual_rooms`)).status).toBe(400);
    expect((await alice.get(`${V1}/mutual_rooms?user_id=${enc(carolId)}&from=garbage`)).body.errcode).toBe('M_INVALID_PARAM');
    expect((await anon.get(`${V1}/mutual_rooms?user_id=${enc(carolId)}`)).status).toBe(401);
  });

  it.each(['10', '11'])('m.room.redaction sent through /send redacts like /redact (room version %s)', async (version) => {
    const room = (await alice.post(`${C}/createRoom`, { room_version: version })).body.room_id as string;
    const target = (await alice.put(`${C}/rooms/${enc(room)}/send/m.room.message/m1`, { msgtype: 'm.text', body: 'oops' })).body.event_id as string;
    const sent = await alice.put(`${C}/rooms/${enc(room)}/send/m.room.redaction/r1`, { redacts: target, reason: 'typo' });
    expect(sent.status).toBe(200);
    // The same transaction again is the same event.
    expect((await alice.put(`${C}/rooms/${enc(room)}/send/m.room.redaction/r1`, { redacts: target, reason: 'typo' })).body.event_id).toBe(sent.body.event_id);
    const redacted = await alice.get(`${C}/rooms/${enc(room)}/event/${enc(target)}`);
    expect(redacted.body.content).toEqual({});
    expect(redacted.body.unsigned.redacted_because.event_id).toBe(sent.body.event_id);
    const redaction = await alice.get(`${C}/rooms/${enc(room)}/event/${enc(sent.body.event_id)}`);
    expect(redaction.body.redacts).toBe(target);
    expect(redaction.body.content.reason).toBe('typo');
    // Before v11 `redacts` moves to the top level; from v11 it stays in the content.
    expect(redaction.body.content.redacts).toBe(version === '11' ? target : undefined);
    expect((await alice.put(`${C}/rooms/${enc(room)}/send/m.room.redaction/r2`, { reason: 'no target' })).body.errcode).toBe('M_BAD_JSON');
  });

  it('state events carry unsigned.replaces_state; format=event returns the whole event', async () => {
    const room = (await alice.post(`${C}/createRoom`, { name: 'One' })).body.room_id as string;
    const first = await alice.get(`${C}/rooms/${enc(room)}/state/m.room.name/?format=event`);
    expect(first.body.type).toBe('m.room.name');
    expect(first.body.content).toEqual({ name: 'One' });
    const second = (await alice.put(`${C}/rooms/${enc(room)}/state/m.room.name/`, { name: 'Two' })).body.event_id as string;
    const ev = await alice.get(`${C}/rooms/${enc(room)}/event/${enc(second)}`);
    expect(ev.body.unsigned.replaces_state).toBe(first.body.event_id);
    expect(ev.body.unsigned.prev_content).toEqual({ name: 'One' });
    expect((await alice.get(`${C}/rooms/${enc(room)}/state/m.room.name/`)).body).toEqual({ name: 'Two' });
  });

  it('sync with use_state_after: state up to the end of the timeline in state_after, instead of state', async () => {
    const gina = new TestClient(hs.url);
    const ginaId = (await gina.register('gina')).user_id as string;
    const room = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'A' })).body.room_id as string;
    await gina.post(`${C}/join/${enc(room)}`, {});
    const initial = await gina.get(`${C}/sync?use_state_after=true`);
    const first = initial.body.rooms.join[room];
    expect(first.state).toBeUndefined();
    const types = first.state_after.events.map((e: any) => e.type);
    expect(types).toEqual(expect.arrayContaining(['m.room.create', 'm.room.name', 'm.room.member']));
    expect(first.state_after.events.find((e: any) => e.type === 'm.room.name').content.name).toBe('A');

    // A state change inside the timeline: `state` leaves it out, `state_after` has it.
    await alice.put(`${C}/rooms/${enc(room)}/state/m.room.name/`, { name: 'B' });
    await alice.put(`${C}/rooms/${enc(room)}/send/m.room.message/sa1`, { msgtype: 'm.text', body: 'hi' });
    const classic = (await gina.get(`${C}/sync?since=${initial.body.next_batch}`)).body.rooms.join[room];
    expect(classic.timeline.events.map((e: any) => e.type)).toContain('m.room.name');
    expect((classic.state?.events ?? []).map((e: any) => e.type)).not.toContain('m.room.name');
    const after = (await gina.get(`${C}/sync?since=${initial.body.next_batch}&use_state_after=true`)).body;
    const section = after.rooms.join[room];
    expect(section.state).toBeUndefined();
    expect(section.state_after.events.map((e: any) => [e.type, e.content.name])).toEqual([['m.room.name', 'B']]);

    // Nothing changed: an empty state_after, still present.
    await alice.put(`${C}/rooms/${enc(room)}/send/m.room.message/sa2`, { msgtype: 'm.text', body: 'again' });
    const quiet = (await gina.get(`${C}/sync?since=${after.next_batch}&use_state_after=true`)).body;
    expect(quiet.rooms.join[room].state_after).toEqual({ events: [] });

    // Left rooms: the state as of the leave.
    await gina.post(`${C}/rooms/${enc(room)}/leave`, {});
    const left = (await gina.get(`${C}/sync?since=${quiet.next_batch}&use_state_after=true`)).body.rooms.leave[room];
    expect(left.state).toBeUndefined();
    expect(left.state_after.events).toContainEqual(expect.objectContaining({ type: 'm.room.member', state_key: ginaId, content: expect.objectContaining({ membership: 'leave' }) }));
    expect((await gina.get(`${C}/sync?use_state_after=maybe`)).status).toBe(400);
  });

  it('room version 12: trusted_private_chat invitees join additional_creators; upgrades take additional_creators', async () => {
    const room = (await alice.post(`${C}/createRoom`, {
      room_version: '12',
      preset: 'trusted_private_chat',
      invite: [bobId],
      creation_content: { additional_creators: ['@extra:localhost'] },
    })).body.room_id as string;
    const create = await alice.get(`${C}/rooms/${enc(room)}/state/m.room.create/`);
    expect([...create.body.additional_creators].sort()).toEqual(['@extra:localhost', bobId].sort());
    const up = await alice.post(`${C}/rooms/${enc(room)}/upgrade`, { new_version: '12', additional_creators: [bobId] });
    expect(up.status).toBe(200);
    expect((await alice.get(`${C}/rooms/${enc(up.body.replacement_room)}/state/m.room.create/`)).body.additional_creators).toEqual([bobId]);
  });

  it('suspended users read but cannot act; administrators only; reversible', async () => {
    const dave = new TestClient(hs.url);
    const daveId = (await dave.register('dave')).user_id;
    const room = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    await dave.post(`${C}/join/${enc(room)}`, {});
    const own = (await dave.put(`${C}/rooms/${enc(room)}/send/m.room.message/d1`, { msgtype: 'm.text', body: 'mine' })).body.event_id as string;
    const others = (await alice.put(`${C}/rooms/${enc(room)}/send/m.room.message/a1`, { msgtype: 'm.text', body: 'hers' })).body.event_id as string;
    await alice.post(`${C}/rooms/${enc(room)}/invite`, { user_id: daveId }).catch(() => undefined);

    expect((await alice.put(`${V1}/admin/suspend/${enc(daveId)}`, { suspended: true })).status).toBe(403);
    expect((await admin.put(`${V1}/admin/suspend/${enc(daveId)}`, { suspended: true })).body).toEqual({ suspended: true });
    expect((await admin.get(`${V1}/admin/suspend/${enc(daveId)}`)).body).toEqual({ suspended: true });

    const suspended = (r: { status: number; body: any }) => {
      expect(r.status).toBe(403);
      expect(r.body.errcode).toBe('M_USER_SUSPENDED');
    };
    suspended(await dave.put(`${C}/rooms/${enc(room)}/send/m.room.message/d2`, { msgtype: 'm.text', body: 'more' }));
    suspended(await dave.put(`${C}/rooms/${enc(room)}/state/org.example.s/`, { a: 1 }));
    suspended(await dave.put(`${C}/profile/${enc(daveId)}/displayname`, { displayname: 'D' }));
    suspended(await dave.post(`${C}/createRoom`, {}));
    const other = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    suspended(await dave.post(`${C}/join/${enc(other)}`, {}));
    suspended(await dave.put(`${C}/rooms/${enc(room)}/redact/${enc(others)}/x1`, {}));
    // Reading, and redacting one's own events, still work.
    expect((await dave.get(`${C}/rooms/${enc(room)}/messages?dir=b`)).status).toBe(200);
    expect((await dave.get(`${C}/sync`)).status).toBe(200);
    expect((await dave.put(`${C}/rooms/${enc(room)}/redact/${enc(own)}/x2`, {})).status).toBe(200);
    // Leaving works.
    expect((await dave.post(`${C}/rooms/${enc(room)}/leave`, {})).status).toBe(200);

    expect((await admin.put(`${V1}/admin/suspend/${enc(daveId)}`, { suspended: false })).body).toEqual({ suspended: false });
    expect((await dave.post(`${C}/join/${enc(other)}`, {})).status).toBe(200);

    // Errors: not local, unknown, self, another administrator.
    expect((await admin.get(`${V1}/admin/suspend/${enc('@x:elsewhere.example')}`)).body.errcode).toBe('M_INVALID_PARAM');
    expect((await admin.get(`${V1}/admin/suspend/${enc('@ghost:localhost')}`)).status).toBe(404);
    const adminId = (await admin.get(`${C}/account/whoami`)).body.user_id as string;
    expect((await admin.put(`${V1}/admin/suspend/${enc(adminId)}`, { suspended: true })).status).toBe(403);
    expect((await admin.put(`${V1}/admin/suspend/${enc(daveId)}`, {})).status).toBe(400);
  });

  it('locked users get M_USER_LOCKED with soft_logout everywhere but logout, keep their tokens, cannot log in', async () => {
    const erin = new TestClient(hs.url);
    const erinId = (await erin.register('erin')).user_id;
    const second = await new TestClient(hs.url).login('erin');
    expect((await bob.put(`${V1}/admin/lock/${enc(erinId)}`, { locked: true })).status).toBe(403);
    expect((await admin.put(`${V1}/admin/lock/${enc(erinId)}`, { locked: true })).body).toEqual({ locked: true });
    expect((await admin.get(`${V1}/admin/lock/${enc(erinId)}`)).body).toEqual({ locked: true });
    const r = await erin.get(`${C}/account/whoami`);
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ errcode: 'M_USER_LOCKED', soft_logout: true });
    expect((await erin.get(`${C}/sync`)).body.errcode).toBe('M_USER_LOCKED');
    const login = await erin.post(`${C}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'erin' }, password: 'correct horse battery' }, { token: null });
    expect(login.body.errcode).toBe('M_USER_LOCKED');
    // Logout is allowed.
    expect((await erin.post(`${C}/logout`, {}, { token: second.access_token })).status).toBe(200);
    // Unlocked: the remaining session works again.
    expect((await admin.put(`${V1}/admin/lock/${enc(erinId)}`, { locked: false })).body).toEqual({ locked: false });
    expect((await erin.get(`${C}/account/whoami`)).body.user_id).toBe(erinId);
    expect((await admin.get(`${V1}/admin/lock/${enc('@ghost:localhost')}`)).status).toBe(404);
  });

  it('invite blocking: M_INVITE_BLOCKED on /invite and member state, left out of createRoom, hidden from /sync', async () => {
    const frank = new TestClient(hs.url);
    const frankId = (await frank.register('frank')).user_id;
    const room = (await alice.post(`${C}/createRoom`, {})).body.room_id as string;
    const earlier = (await alice.post(`${C}/createRoom`, {})).body.room_id as string;
    await alice.post(`${C}/rooms/${enc(earlier)}/invite`, { user_id: frankId });
    expect(Object.keys((await frank.get(`${C}/sync`)).body.rooms?.invite ?? {})).toContain(earlier);

    await frank.put(`${C}/user/${enc(frankId)}/account_data/m.invite_permission_config`, { default_action: 'block' });
    const inv = await alice.post(`${C}/rooms/${enc(room)}/invite`, { user_id: frankId });
    expect(inv.status).toBe(403);
    expect(inv.body.errcode).toBe('M_INVITE_BLOCKED');
    const st = await alice.put(`${C}/rooms/${enc(room)}/state/m.room.member/${enc(frankId)}`, { membership: 'invite' });
    expect(st.body.errcode).toBe('M_INVITE_BLOCKED');
    const created = await alice.post(`${C}/createRoom`, { invite: [frankId, bobId] });
    expect(created.status).toBe(200);
    const members = (await alice.get(`${C}/rooms/${enc(created.body.room_id)}/members`)).body.chunk.map((m: any) => [m.state_key, m.content.membership]);
    expect(members).toContainEqual([bobId, 'invite']);
    expect(members.find(([u]: string[]) => u === frankId)).toBeUndefined();
    // The invite from before the block is no longer served.
    expect(Object.keys((await frank.get(`${C}/sync`)).body.rooms?.invite ?? {})).not.toContain(earlier);

    // Any other value lets invites in again.
    await frank.put(`${C}/user/${enc(frankId)}/account_data/m.invite_permission_config`, {});
    expect((await alice.post(`${C}/rooms/${enc(room)}/invite`, { user_id: frankId })).status).toBe(200);
    expect(Object.keys((await frank.get(`${C}/sync`)).body.rooms?.invite ?? {})).toEqual(expect.arrayContaining([room, earlier]));
  });

  it('application services create and delete devices without user-interactive auth and act as them', async () => {
    const as = new TestClient(hs.url, AS_TOKEN);
    const reg = await as.post(`${C}/register`, { type: 'm.login.application_service', username: '_rc_user', inhibit_login: true });
    expect(reg.status).toBe(200);
    expect(reg.body.access_token).toBeUndefined();
    const uid = reg.body.user_id as string;
    const q = `user_id=${enc(uid)}`;
    // Unknown device: 400 M_UNKNOWN_DEVICE.
    const unknown = await as.get(`${C}/account/whoami?${q}&device_id=BRIDGE1`);
    expect(unknown.status).toBe(400);
    expect(unknown.body.errcode).toBe('M_UNKNOWN_DEVICE');
    expect((await as.put(`${C}/devices/BRIDGE1?${q}`, { display_name: 'Bridge' })).status).toBe(201);
    expect((await as.put(`${C}/devices/BRIDGE1?${q}`, { display_name: 'Bridge 2' })).status).toBe(200);
    expect((await as.get(`${C}/devices/BRIDGE1?${q}`)).body).toMatchObject({ device_id: 'BRIDGE1', display_name: 'Bridge 2' });
    expect((await as.get(`${C}/account/whoami?${q}&device_id=BRIDGE1`)).body).toMatchObject({ user_id: uid, device_id: 'BRIDGE1' });
    expect((await as.put(`${C}/devices/BRIDGE2?${q}`, {})).status).toBe(201);
    // Ordinary users cannot create devices.
    expect((await alice.put(`${C}/devices/NEWONE`, { display_name: 'x' })).status).toBe(404);
    // Deleting needs no user-interactive auth for the service (it does for users).
    expect((await as.del(`${C}/devices/BRIDGE1?${q}`, {})).status).toBe(200);
    expect((await as.post(`${C}/delete_devices?${q}`, { devices: ['BRIDGE2'] })).status).toBe(200);
    expect((await as.get(`${C}/devices?${q}`)).body.devices).toEqual([]);
    const mine = (await alice.get(`${C}/account/whoami`)).body.device_id as string;
    expect((await alice.del(`${C}/devices/${enc(mine)}`, {})).status).toBe(401);
  });
});
