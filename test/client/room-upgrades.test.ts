import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;

describe.each<Engine>(['sqlite', 'postgres'])('room upgrades, knocking and restricted joins on %s', (engine) => {
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

  for (const [from, to] of [['10', '11'], ['11', '12'], ['12', '12']] as const) {
    it(`upgrades a v${from} room to v${to}: predecessor, copied state, aliases, tombstone, restricted power levels`, async () => {
      const alias = `up-${from}-${to}-${engine}`;
      const old = (
        await alice.post(`${C}/createRoom`, {
          room_version: from,
          preset: 'public_chat',
          name: 'Old room',
          topic: 'about things',
          room_alias_name: alias,
          visibility: 'public',
          creation_content: { type: 'org.example.custom' },
        })
      ).body.room_id as string;
      await bob.post(`${C}/join/${enc(old)}`, {});

      // bob has no power to send a tombstone.
      const denied = await bob.post(`${C}/rooms/${enc(old)}/upgrade`, { new_version: to });
      expect(denied.status).toBe(403);
      expect(denied.body.errcode).toBe('M_FORBIDDEN');
      const bad = await alice.post(`${C}/rooms/${enc(old)}/upgrade`, { new_version: '999' });
      expect(bad.status).toBe(400);
      expect(bad.body.errcode).toBe('M_UNSUPPORTED_ROOM_VERSION');

      const up = await alice.post(`${C}/rooms/${enc(old)}/upgrade`, { new_version: to, ...(to === '12' ? { additional_creators: ['@bob:localhost'] } : {}) });
      expect(up.status).toBe(200);
      const neu = up.body.replacement_room as string;
      expect(neu).not.toBe(old);

      const create = (await alice.get(`${C}/rooms/${enc(neu)}/state/m.room.create`)).body;
      expect(create.room_version).toBe(to);
      expect(create.type).toBe('org.example.custom');
      expect(create.predecessor.room_id).toBe(old);
      if (to === '12') {
        expect(create.predecessor.event_id).toBeUndefined();
        expect(create.additional_creators).toEqual(['@bob:localhost']);
      } else {
        expect(create.predecessor.event_id).toMatch(/^\$/);
      }
      expect((await alice.get(`${C}/rooms/${enc(neu)}/state/m.room.name`)).body).toEqual({ name: 'Old room' });
      expect((await alice.get(`${C}/rooms/${enc(neu)}/state/m.room.topic`)).body.topic).toBe('about things');
      expect((await alice.get(`${C}/rooms/${enc(neu)}/state/m.room.join_rules`)).body.join_rule).toBe('public');
      expect((await alice.get(`${C}/rooms/${enc(neu)}/state/m.room.history_visibility`)).body.history_visibility).toBe('shared');
      const newPl = (await alice.get(`${C}/rooms/${enc(neu)}/state/m.room.power_levels`)).body;
      if (to === '12') expect(newPl.users?.['@alice:localhost']).toBeUndefined();
      else expect(newPl.users['@alice:localhost']).toBe(100);

      // The alias and the canonical alias moved; the directory lists the new room.
      const resolved = await bob.get(`${C}/directory/room/${enc(`#${alias}:localhost`)}`);
      expect(resolved.body.room_id).toBe(neu);
      expect((await alice.get(`${C}/rooms/${enc(neu)}/state/m.room.canonical_alias`)).body.alias).toBe(`#${alias}:localhost`);
      expect((await alice.get(`${C}/rooms/${enc(old)}/state/m.room.canonical_alias`)).body.alias).toBeUndefined();
      expect((await bob.get(`${C}/directory/list/room/${enc(neu)}`)).body.visibility).toBe('public');
      expect((await bob.get(`${C}/directory/list/room/${enc(old)}`)).body.visibility).toBe('private');

      // The old room: tombstone and restricted power levels.
      const tomb = (await bob.get(`${C}/rooms/${enc(old)}/state/m.room.tombstone`)).body;
      expect(tomb.replacement_room).toBe(neu);
      const oldPl = (await bob.get(`${C}/rooms/${enc(old)}/state/m.room.power_levels`)).body;
      expect(oldPl.events_default).toBeGreaterThanOrEqual(50);
      expect(oldPl.invite).toBeGreaterThanOrEqual(50);
      const talk = await bob.put(`${C}/rooms/${enc(old)}/send/m.room.message/late-${from}`, { msgtype: 'm.text', body: 'hi?' });
      expect(talk.status).toBe(403);

      // bob follows to the new room; a second upgrade of the old room is refused.
      expect((await bob.post(`${C}/join/${enc(neu)}`, {})).status).toBe(200);
      expect((await alice.post(`${C}/rooms/${enc(old)}/upgrade`, { new_version: to })).status).toBe(400);
    });
  }

  it('knocking: knock on a knock room, the admin denies, then a new knock is accepted with an invite', async () => {
    const roomId = (
      await alice.post(`${C}/createRoom`, { room_version: '10', preset: 'private_chat', initial_state: [{ type: 'm.room.join_rules', content: { join_rule: 'knock' } }] })
    ).body.room_id as string;
    const s0 = await carol.get(`${C}/sync`);
    // Without knocking, joining fails.
    expect((await carol.post(`${C}/join/${enc(roomId)}`, {})).status).toBe(403);
    const k = await carol.post(`${C}/knock/${enc(roomId)}`, { reason: 'let me in' });
    expect(k.status).toBe(200);
    expect(k.body.room_id).toBe(roomId);

    const s1 = await carol.get(`${C}/sync?since=${s0.body.next_batch}&timeout=0`);
    const knockState = s1.body.rooms.knock[roomId].knock_state.events;
    expect(knockState.some((e: any) => e.type === 'm.room.join_rules' && e.content.join_rule === 'knock')).toBe(true);
    expect(knockState.some((e: any) => e.type === 'm.room.member' && e.state_key === '@carol:localhost' && e.content.membership === 'knock')).toBe(true);
    // The admin sees the knock in the room's state.
    const members = await alice.get(`${C}/rooms/${enc(roomId)}/members?membership=knock`);
    expect(members.body.chunk.map((e: any) => e.state_key)).toEqual(['@carol:localhost']);

    // Deny: kick the knock.
    expect((await alice.post(`${C}/rooms/${enc(roomId)}/kick`, { user_id: '@carol:localhost', reason: 'no' })).status).toBe(200);
    const s2 = await carol.get(`${C}/sync?since=${s1.body.next_batch}&timeout=0`);
    expect(s2.body.rooms.leave[roomId]).toBeDefined();
    expect((await carol.post(`${C}/join/${enc(roomId)}`, {})).status).toBe(403);

    // Knock again; the admin accepts by inviting; carol joins.
    expect((await carol.post(`${C}/knock/${enc(roomId)}`, {})).status).toBe(200);
    expect((await alice.post(`${C}/rooms/${enc(roomId)}/invite`, { user_id: '@carol:localhost' })).status).toBe(200);
    expect((await carol.post(`${C}/join/${enc(roomId)}`, {})).status).toBe(200);
    expect((await carol.get(`${C}/joined_rooms`)).body.joined_rooms).toContain(roomId);

    // Knocking on an invite-only room is refused.
    const closed = (await alice.post(`${C}/createRoom`, { room_version: '10', preset: 'private_chat' })).body.room_id;
    expect((await bob.post(`${C}/knock/${enc(closed)}`, {})).status).toBe(403);
  });

  for (const rule of ['restricted', 'knock_restricted'] as const) {
    it(`${rule} rooms: members of an allowed room join without invite, others are refused`, async () => {
      const space = (await alice.post(`${C}/createRoom`, { preset: 'private_chat', invite: ['@bob:localhost'] })).body.room_id as string;
      await bob.post(`${C}/join/${enc(space)}`, {});
      const roomId = (
        await alice.post(`${C}/createRoom`, {
          room_version: '10',
          preset: 'private_chat',
          initial_state: [{ type: 'm.room.join_rules', content: { join_rule: rule, allow: [{ type: 'm.room_membership', room_id: space }] } }],
        })
      ).body.room_id as string;
      const join = await bob.post(`${C}/join/${enc(roomId)}`, {});
      expect(join.status).toBe(200);
      const member = (await bob.get(`${C}/rooms/${enc(roomId)}/state/m.room.member/${enc('@bob:localhost')}`)).body;
      expect(member.membership).toBe('join');
      expect(member.join_authorised_via_users_server).toBe('@alice:localhost');

      const refused = await carol.post(`${C}/join/${enc(roomId)}`, {});
      expect(refused.status).toBe(403);
      if (rule === 'knock_restricted') {
        expect((await carol.post(`${C}/knock/${enc(roomId)}`, {})).status).toBe(200);
      }
    });
  }
});
