import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authEventKeysFor } from '../../src/protocol/auth-events.js';
import { withEventId } from '../../src/protocol/event-id.js';
import { signEvent } from '../../src/protocol/event-signing.js';
import { stateKeyOf, type Pdu } from '../../src/protocol/event.js';
import { getRoomVersion } from '../../src/protocol/room-versions.js';
import type { TestClient } from '../client/_client.js';
import { eventually, type Federation, type FedMember, twoServers, registerOn } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const enc = encodeURIComponent;

async function createRoom(c: TestClient, body: Record<string, unknown>): Promise<string> {
  const res = await c.post('/_matrix/client/v3/createRoom', body);
  if (res.status !== 200) throw new Error(`createRoom: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.room_id;
}

const space = (name: string, extra: Record<string, unknown> = {}) => ({ preset: 'public_chat', name, creation_content: { type: 'm.space' }, ...extra });

async function addChild(c: TestClient, spaceId: string, childId: string, content: Record<string, unknown>): Promise<void> {
  const res = await c.put(`/_matrix/client/v3/rooms/${enc(spaceId)}/state/m.space.child/${enc(childId)}`, content);
  if (res.status !== 200) throw new Error(`space child: ${res.status} ${JSON.stringify(res.body)}`);
}

async function hierarchy(c: TestClient, roomId: string, query = ''): Promise<{ status: number; body: any }> {
  return c.get(`/_matrix/client/v1/rooms/${enc(roomId)}/hierarchy${query ? `?${query}` : ''}`);
}

async function allPages(c: TestClient, roomId: string, query: string): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let from: string | undefined;
  let pages = 0;
  for (; pages < 50; pages++) {
    const res = await hierarchy(c, roomId, `${query}${from ? `&from=${enc(from)}` : ''}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    ids.push(...res.body.rooms.map((r: any) => r.room_id));
    if (!res.body.next_batch) break;
    from = res.body.next_batch;
  }
  return { ids, pages: pages + 1 };
}

async function sendText(c: TestClient, roomId: string, body: string): Promise<string> {
  const res = await c.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', body });
  if (res.status !== 200) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.event_id;
}

describe.each<Engine>(['sqlite', 'postgres'])('spaces, restricted joins and late events over federation on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  let alice: TestClient;
  let carol: TestClient;
  let bob: TestClient;
  let dave: TestClient;

  beforeAll(async () => {
    ({ fed, a, b, alice, bob } = await twoServers(engine));
    carol = await registerOn(a, 'carol');
    dave = await registerOn(b, 'dave');
  }, 60_000);

  afterAll(async () => {
    await fed?.close();
  });

  it('walks a local space depth first, in child order, with suggested_only, max_depth and pagination', async () => {
    const root = await createRoom(alice, space('Root'));
    const sub = await createRoom(alice, space('Sub'));
    const r1 = await createRoom(alice, { preset: 'public_chat', name: 'R1' });
    const r2 = await createRoom(alice, { preset: 'public_chat', name: 'R2', topic: 'second' });
    const r3 = await createRoom(alice, { preset: 'public_chat', name: 'R3' });
    // Invite-only room of carol's: alice may not see it; a world-readable one she may.
    const secret = await createRoom(carol, { preset: 'private_chat', name: 'Secret' });
    const readable = await createRoom(carol, { preset: 'private_chat', name: 'Readable', initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'world_readable' } }] });
    await addChild(alice, root, r2, { via: ['a.test'], order: 'b' });
    await addChild(alice, root, sub, { via: ['a.test'], order: 'a', suggested: true });
    await addChild(alice, root, r1, { via: ['a.test'] });
    await addChild(alice, root, secret, { via: ['a.test'] });
    await addChild(alice, root, readable, { via: ['a.test'] });
    await addChild(alice, sub, r3, { via: ['a.test'], suggested: true });
    await addChild(alice, sub, root, { via: ['a.test'] }); // a loop
    await addChild(alice, root, '!gone:a.test', { via: [] }); // removed child: no via

    const full = await hierarchy(alice, root);
    expect(full.status, JSON.stringify(full.body)).toBe(200);
    expect(full.body.next_batch).toBeUndefined();
    // Depth first: sub (order "a") and its child r3, then r2 (order "b"), then the unordered by timestamp.
    expect(full.body.rooms.map((r: any) => r.room_id)).toEqual([root, sub, r3, r2, r1, readable]);
    const top = full.body.rooms[0];
    expect(top.room_type).toBe('m.space');
    expect(top.name).toBe('Root');
    expect(top.num_joined_members).toBe(1);
    expect(top.join_rule).toBe('public');
    expect(top.children_state.map((e: any) => e.state_key).sort()).toEqual([r2, sub, r1, secret, readable, '!gone:a.test'].sort());
    for (const e of top.children_state) {
      expect(e.type).toBe('m.space.child');
      expect(typeof e.origin_server_ts).toBe('number');
      expect(e.sender).toBe('@alice:a.test');
    }
    const r2Entry = full.body.rooms.find((r: any) => r.room_id === r2);
    expect(r2Entry.topic).toBe('second');
    expect(r2Entry.children_state).toEqual([]);
    expect(full.body.rooms.find((r: any) => r.room_id === readable).world_readable).toBe(true);

    // Carol is in the invite-only room: she sees it.
    const asCarol = await hierarchy(carol, root);
    expect(asCarol.body.rooms.map((r: any) => r.room_id)).toContain(secret);

    const suggested = await hierarchy(alice, root, 'suggested_only=true');
    expect(suggested.body.rooms.map((r: any) => r.room_id)).toEqual([root, sub, r3]);
    const shallow = await hierarchy(alice, root, 'max_depth=1');
    expect(shallow.body.rooms.map((r: any) => r.room_id)).toEqual([root, sub, r2, r1, readable]);
    const rootOnly = await hierarchy(alice, root, 'max_depth=0');
    expect(rootOnly.body.rooms.map((r: any) => r.room_id)).toEqual([root]);

    const paged = await allPages(alice, root, 'limit=2');
    expect(paged.ids).toEqual([root, sub, r3, r2, r1, readable]);
    expect(paged.pages).toBe(3);

    const first = await hierarchy(alice, root, 'limit=1');
    const changed = await hierarchy(alice, root, `limit=1&suggested_only=true&from=${enc(first.body.next_batch)}`);
    expect(changed.status).toBe(400);
    expect(changed.body.errcode).toBe('M_INVALID_PARAM');
    expect((await hierarchy(alice, root, 'from=nonsense')).body.errcode).toBe('M_INVALID_PARAM');
    expect((await hierarchy(alice, root, 'limit=0')).status).toBe(400);

    // A space the user may not see at all.
    const hidden = await createRoom(carol, { preset: 'private_chat', name: 'Hidden', creation_content: { type: 'm.space' } });
    const refused = await hierarchy(alice, hidden);
    expect(refused.status).toBe(403);
    expect(refused.body.errcode).toBe('M_FORBIDDEN');
  }, 120_000);

  it('shows a space of A with children on A and B to a user of B, asking A over federation', async () => {
    const onB = await createRoom(bob, { preset: 'public_chat', name: 'B room' });
    const spaceA = await createRoom(alice, space('A space'));
    const roomA = await createRoom(alice, { preset: 'public_chat', name: 'A room' });
    const subA = await createRoom(alice, space('A sub'));
    const deepA = await createRoom(alice, { preset: 'public_chat', name: 'A deep' });
    const privA = await createRoom(alice, { preset: 'private_chat', name: 'A private' });
    await addChild(alice, spaceA, roomA, { via: ['a.test'], order: '1' });
    await addChild(alice, spaceA, onB, { via: ['b.test'], order: '2' });
    await addChild(alice, spaceA, subA, { via: ['a.test'], order: '3' });
    await addChild(alice, spaceA, privA, { via: ['a.test'], order: '4' });
    await addChild(alice, subA, deepA, { via: ['a.test'] });

    // The federation endpoint itself: the space, its accessible children, the others listed as inaccessible.
    const fedRes = await b.server!.ctx.federation.client.get<any>('a.test', `/_matrix/federation/v1/hierarchy/${enc(spaceA)}`);
    expect(fedRes.room.room_id).toBe(spaceA);
    expect(fedRes.room.children_state).toHaveLength(4);
    expect(fedRes.children.map((c: any) => c.room_id).sort()).toEqual([roomA, subA].sort());
    expect(fedRes.inaccessible_children).toEqual([privA]);

    // Bob joins the space; A holds its children, B holds its own room.
    const joined = await bob.post(`/_matrix/client/v3/join/${enc(spaceA)}?via=a.test`, {});
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    const res = await hierarchy(bob, spaceA);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.rooms.map((r: any) => r.room_id)).toEqual([spaceA, roomA, onB, subA, deepA]);
    expect(res.body.rooms.find((r: any) => r.room_id === roomA).name).toBe('A room');
    expect(res.body.rooms.find((r: any) => r.room_id === deepA).name).toBe('A deep');
    expect(res.body.rooms.find((r: any) => r.room_id === subA).children_state.map((e: any) => e.state_key)).toEqual([deepA]);
    const paged = await allPages(bob, spaceA, 'limit=2');
    expect(paged.ids).toEqual([spaceA, roomA, onB, subA, deepA]);

    // A space of A in a room version whose IDs name the server: seen from B without joining.
    const v10 = await createRoom(alice, space('V10 space', { room_version: '10' }));
    await addChild(alice, v10, roomA, { via: ['a.test'] });
    const unseen = await hierarchy(dave, v10);
    expect(unseen.status, JSON.stringify(unseen.body)).toBe(200);
    expect(unseen.body.rooms.map((r: any) => r.room_id)).toEqual([v10, roomA]);
  }, 120_000);

  it('joins a restricted room on A through a room B\'s user is in; others are refused as the spec says', async () => {
    const allowed = await createRoom(alice, { preset: 'public_chat', name: 'Allowed' });
    const j = await bob.post(`/_matrix/client/v3/join/${enc(allowed)}?via=a.test`, {});
    expect(j.status, JSON.stringify(j.body)).toBe(200);
    const restricted = await createRoom(alice, {
      preset: 'private_chat',
      name: 'Members only',
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: allowed }] } }],
    });
    // The hierarchy shows the restricted room to bob (he meets the condition), not to dave.
    const sp = await createRoom(alice, space('Restricted space'));
    await addChild(alice, sp, restricted, { via: ['a.test'] });
    await bob.post(`/_matrix/client/v3/join/${enc(sp)}?via=a.test`, {});
    await dave.post(`/_matrix/client/v3/join/${enc(sp)}?via=a.test`, {});
    const forBob = await hierarchy(bob, sp);
    expect(forBob.body.rooms.map((r: any) => r.room_id)).toEqual([sp, restricted]);
    expect(forBob.body.rooms[1].allowed_room_ids).toEqual([allowed]);
    expect((await hierarchy(dave, sp)).body.rooms.map((r: any) => r.room_id)).toEqual([sp]);

    const bobJoin = await bob.post(`/_matrix/client/v3/join/${enc(restricted)}?via=a.test`, {});
    expect(bobJoin.status, JSON.stringify(bobJoin.body)).toBe(200);
    const member = await alice.get(`/_matrix/client/v3/rooms/${enc(restricted)}/state/m.room.member/${enc('@bob:b.test')}`);
    expect(member.body.membership).toBe('join');
    expect(member.body.join_authorised_via_users_server).toBe('@alice:a.test');
    const onBobSide = await bob.get(`/_matrix/client/v3/rooms/${enc(restricted)}/state/m.room.name/`);
    expect(onBobSide.body.name).toBe('Members only');

    // Dave is in none of the allowed rooms: A refuses (403 M_FORBIDDEN), nothing is stored on A.
    const daveJoin = await dave.post(`/_matrix/client/v3/join/${enc(restricted)}?via=a.test`, {});
    expect(daveJoin.status).toBe(403);
    expect(daveJoin.body.errcode).toBe('M_FORBIDDEN');
    expect((await alice.get(`/_matrix/client/v3/rooms/${enc(restricted)}/state/m.room.member/${enc('@dave:b.test')}`)).status).toBe(404);

    // A room whose conditions A cannot check (A is in none of the allowed rooms).
    const onlyB = await createRoom(bob, { preset: 'public_chat', name: 'Only on B' });
    const unknowable = await createRoom(alice, {
      preset: 'private_chat',
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: onlyB }] } }],
    });
    const unk = await bob.post(`/_matrix/client/v3/join/${enc(unknowable)}?via=a.test`, {});
    expect(unk.status).toBe(400);
    expect(unk.body.errcode).toBe('M_UNABLE_TO_AUTHORISE_JOIN');

    // A send_join naming an authoriser for a user who meets no condition is refused by the
    // resident (the auth rules alone would accept it: alice may invite).
    const ctxA = a.server!.ctx;
    const version = getRoomVersion((await ctxA.eventStore.getRoom(restricted))!.roomVersion)!;
    const state = await ctxA.eventStore.getCurrentStateIds(restricted);
    const content = { membership: 'join', join_authorised_via_users_server: '@alice:a.test' };
    const keys = authEventKeysFor({ type: 'm.room.member', sender: '@dave:b.test', state_key: '@dave:b.test', content } as never, version);
    const unsigned: Pdu = {
      room_id: restricted,
      type: 'm.room.member',
      sender: '@dave:b.test',
      state_key: '@dave:b.test',
      content,
      origin_server_ts: Date.now(),
      prev_events: await ctxA.eventStore.getForwardExtremities(restricted),
      auth_events: keys.map(([t, k]) => state.get(stateKeyOf(t, k))).filter((x): x is string => !!x),
      depth: 100,
      hashes: { sha256: '' },
      signatures: {},
    };
    const { hashes: _h, ...noHash } = unsigned;
    const forged = signEvent(noHash as Pdu, version, 'b.test', b.server!.ctx.signingKey);
    const forgedId = withEventId(forged, version).event_id;
    const sendJoin = await b.server!.ctx.federation.client
      .put<any>('a.test', `/_matrix/federation/v2/send_join/${enc(restricted)}/${enc(forgedId)}`, forged as never)
      .then(() => undefined, (e: any) => e);
    expect(sendJoin?.status).toBe(403);
    expect(sendJoin?.errcode).toBe('M_FORBIDDEN');
    expect(await ctxA.eventStore.getEvent(forgedId)).toBeUndefined();
  }, 120_000);

  it('a restricted join on a server already in the room goes through a resident server that can authorise it', async () => {
    const allowed = await createRoom(alice, { preset: 'public_chat', name: 'Allowed 2' });
    for (const c of [bob, dave]) expect((await c.post(`/_matrix/client/v3/join/${enc(allowed)}?via=a.test`, {})).status).toBe(200);
    const restricted = await createRoom(alice, {
      preset: 'private_chat',
      power_level_content_override: { invite: 50 },
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: allowed }] } }],
    });
    expect((await bob.post(`/_matrix/client/v3/join/${enc(restricted)}?via=a.test`, {})).status).toBe(200);
    // B is in the room now, but bob may not invite: the join of dave is authorised by A.
    const res = await dave.post(`/_matrix/client/v3/join/${enc(restricted)}`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const onA = await alice.get(`/_matrix/client/v3/rooms/${enc(restricted)}/state/m.room.member/${enc('@dave:b.test')}`);
    expect(onA.body).toMatchObject({ membership: 'join', join_authorised_via_users_server: '@alice:a.test' });
    const onB = await bob.get(`/_matrix/client/v3/rooms/${enc(restricted)}/joined_members`);
    expect(Object.keys(onB.body.joined).sort()).toEqual(['@alice:a.test', '@bob:b.test', '@dave:b.test']);
    // The room still works both ways afterwards.
    await sendText(dave, restricted, 'hello from dave');
    await eventually(async () => {
      const m = await alice.get(`/_matrix/client/v3/rooms/${enc(restricted)}/messages?dir=b&limit=5`);
      return m.body.chunk.some((e: any) => e.content?.body === 'hello from dave');
    }, 20_000, "dave's message on A");
  }, 120_000);

  it('applies a redaction held before its target arrives through backfill, and indexes backfilled messages for search', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat', name: 'Late', topic: 'flamingo topic' });
    const topicId = (await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state`)).body.find((e: any) => e.type === 'm.room.topic').event_id;
    const early = await sendText(alice, roomId, 'pelican before the join');
    const kept = await sendText(alice, roomId, 'albatross history kept');
    const j = await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?via=a.test`, {});
    expect(j.status, JSON.stringify(j.body)).toBe(200);
    // B holds neither message; the redaction of the first reaches it through /send.
    const r = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/redact/${enc(early)}/r1`, { reason: 'late' });
    expect(r.status).toBe(200);
    const redactionId = r.body.event_id;
    await eventually(async () => (await b.server!.ctx.eventStore.getEvent(redactionId)) !== undefined, 20_000, 'the redaction on B');
    expect(await b.server!.ctx.eventStore.getEvent(early)).toBeUndefined();

    // Paging back fetches the history: the target arrives already redacted.
    const events: any[] = [];
    let from: string | undefined;
    for (let i = 0; i < 10; i++) {
      const res = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=20${from ? `&from=${enc(from)}` : ''}`);
      expect(res.status).toBe(200);
      events.push(...res.body.chunk);
      if (!res.body.end) break;
      from = res.body.end;
    }
    const target = events.find((e) => e.event_id === early);
    expect(target, 'the backfilled target').toBeDefined();
    expect(target.content).toEqual({});
    expect(target.unsigned.redacted_because.event_id).toBe(redactionId);
    expect(events.find((e) => e.event_id === kept)?.content.body).toBe('albatross history kept');

    // Backfilled messages are searchable on B; the redacted one is not.
    const search = async (term: string) => {
      const res = await bob.post('/_matrix/client/v3/search', { search_categories: { room_events: { search_term: term } } });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.search_categories.room_events.results.map((x: any) => x.result.event_id);
    };
    expect(await search('albatross')).toEqual([kept]);
    expect(await search('pelican')).toEqual([]);
    // The topic came with the join as an outlier and took its place in the timeline through backfill.
    expect((await b.server!.ctx.eventStore.getEvent(topicId))?.outlier).toBeFalsy();
    expect(await search('flamingo')).toEqual([topicId]);
  }, 120_000);

  it('createRoom returns the room when an invitee\'s server refuses the invite or cannot be reached', async () => {
    const res = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', name: 'Invites', invite: ['@nobody:b.test', '@bob:b.test', '@x:unreachable.test'] });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const roomId = res.body.room_id;
    const name = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.name/`);
    expect(name.body.name).toBe('Invites');
    // The invite that could be delivered was; the others left no membership behind.
    const members = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/members`);
    const byUser = Object.fromEntries(members.body.chunk.map((e: any) => [e.state_key, e.content.membership]));
    expect(byUser).toEqual({ '@alice:a.test': 'join', '@bob:b.test': 'invite' });
    expect(a.logs.some((l) => l.includes('could not invite a user of another server'))).toBe(true);
  }, 120_000);
});
