/**
 * The v1 invite handshake (`PUT /_matrix/federation/v1/invite/{roomId}/{eventId}`), for rooms of
 * version 1 and 2: server A sends it for a room of version 1 while persisting the invite of a
 * user of B (as it would with v2), B signs it and its user can accept; invites to rooms of later
 * versions are refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FederationHttpError } from '../../src/federation/errors.js';
import { STRIPPED_STATE_TYPES } from '../../src/federation/stripped-state.js';
import { federationForm } from '../../src/protocol/event-hash.js';
import type { RoomEvent } from '../../src/protocol/event.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { getRoomVersion, type RoomVersion } from '../../src/protocol/room-versions.js';
import type { TestClient } from '../client/_client.js';
import { expectMatchesSpec } from '../_util/openapi.js';
import { eventually, registerOn, twoServers, type Federation, type FedMember } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;

interface Answer {
  status: number;
  body: any;
}

/** Sends a v1 invite from A to B (the answer validated against the spec). */
async function sendV1Invite(a: FedMember, destination: string, roomId: string, eventId: string, body: JsonObject): Promise<Answer> {
  const path = `/_matrix/federation/v1/invite/${enc(roomId)}/${enc(eventId)}`;
  try {
    const res = await a.server!.ctx.federation.client.requestStream(destination, 'PUT', path, body);
    const chunks: Buffer[] = [];
    for await (const chunk of res.body as AsyncIterable<Buffer>) chunks.push(chunk);
    const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    expectMatchesSpec('PUT', path, res.status, parsed);
    return { status: res.status, body: parsed };
  } catch (err) {
    if (!(err instanceof FederationHttpError)) throw err;
    expectMatchesSpec('PUT', path, err.status, err.body);
    return { status: err.status, body: err.body };
  }
}

/** The room state A sends with an invite: its stripped-state events as full PDUs. */
async function inviteRoomState(a: FedMember, roomId: string, version: RoomVersion): Promise<JsonObject[]> {
  const state = await a.server!.ctx.eventStore.getCurrentState(roomId);
  return [...state.values()].filter((ev) => STRIPPED_STATE_TYPES.includes(ev.type)).map((ev) => federationForm(ev, version) as JsonObject);
}

describe.each<Engine>(['sqlite', 'postgres'])('v1 invites over federation on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  let alice: TestClient;
  let bob: TestClient;
  let carol: TestClient;

  beforeAll(async () => {
    ({ fed, a, b, alice, bob } = await twoServers(engine));
    carol = await registerOn(b, 'carol');
  }, 60_000);

  afterAll(async () => {
    await fed?.close();
  });

  it('a room of version 1: B signs the invite A sends with v1, and the invited user joins', async () => {
    const created = await alice.post(`${C}/createRoom`, { preset: 'private_chat', room_version: '1', name: 'Old room' });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const roomId = created.body.room_id as string;
    let answer: Answer | undefined;
    // A builds, signs and stores the invite as for any remote invite, countersigned through v1.
    const stored = await a.server!.ctx.roomEvents.send({
      roomId,
      type: 'm.room.member',
      sender: '@alice:a.test',
      stateKey: '@carol:b.test',
      content: { membership: 'invite' },
      beforePersist: async (event: RoomEvent, version: RoomVersion) => {
        expect(version.id).toBe('1');
        const body = { ...(federationForm(event, version) as JsonObject), unsigned: { invite_room_state: await inviteRoomState(a, roomId, version) } };
        answer = await sendV1Invite(a, 'b.test', roomId, event.event_id, body);
        if (answer.status !== 200) throw new Error(`v1 invite: ${answer.status} ${JSON.stringify(answer.body)}`);
        const signed = answer.body[1].event as RoomEvent;
        return { ...event, signatures: { ...event.signatures, ...signed.signatures } };
      },
    });
    expect(answer!.body[0]).toBe(200);
    const signed = answer!.body[1].event;
    expect(signed.event_id).toBe(stored.event.event_id);
    expect(Object.keys(signed.signatures).sort()).toEqual(['a.test', 'b.test']);
    expect(signed.content).toEqual({ membership: 'invite' });
    expect(Object.keys(stored.event.signatures).sort()).toEqual(['a.test', 'b.test']);

    // Carol sees the invite, with the room's name, and accepts it.
    const invite = await eventually(async () => (await carol.get(`${C}/sync?timeout=0`)).body.rooms?.invite?.[roomId], 20_000, 'invite on B');
    expect(invite.invite_state.events.find((e: any) => e.type === 'm.room.name')?.content.name).toBe('Old room');
    const joined = await carol.post(`${C}/rooms/${enc(roomId)}/join`, {});
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    await eventually(async () => (await alice.get(`${C}/rooms/${enc(roomId)}/joined_members`)).body.joined?.['@carol:b.test'], 20_000, 'carol joined on A');
  });

  it('a v1 invite to a room of a later version is refused', async () => {
    // A room B does not know: its version is the one its create event names.
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'private_chat', room_version: '10' })).body.room_id as string;
    const state = await a.server!.ctx.eventStore.getCurrentState(roomId);
    const member = [...state.values()].find((e) => e.type === 'm.room.member' && e.state_key === '@alice:a.test');
    const template = { ...member!, state_key: '@carol:b.test', content: { membership: 'invite' } } as JsonObject;
    delete template['event_id'];
    const roomVersion = (await a.server!.ctx.eventStore.getRoom(roomId))!.roomVersion;
    expect(roomVersion).toBe('10');
    const v10 = getRoomVersion('10')!;
    const refused = await sendV1Invite(a, 'b.test', roomId, '$whatever', { ...template, unsigned: { invite_room_state: await inviteRoomState(a, roomId, v10) } });
    expect(refused.status).toBe(400);
    expect(refused.body.errcode).toBe('M_INCOMPATIBLE_ROOM_VERSION');
    expect(refused.body.room_version).toBe('10');
    expect((await carol.get(`${C}/sync?timeout=0`)).body.rooms?.invite?.[roomId]).toBeUndefined();

    // A room B is in: its known version decides, whatever the invite claims.
    const shared = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    expect((await bob.post(`${C}/join/${enc(shared)}?server_name=a.test`, {})).status).toBe(200);
    const known = await sendV1Invite(a, 'b.test', shared, '$whatever', { ...template, room_id: shared });
    expect(known.status).toBe(400);
    expect(known.body.errcode).toBe('M_INCOMPATIBLE_ROOM_VERSION');

    // Not the event itself: refused.
    expect((await sendV1Invite(a, 'b.test', roomId, '$whatever', [] as unknown as JsonObject)).status).toBe(400);
  });
});
