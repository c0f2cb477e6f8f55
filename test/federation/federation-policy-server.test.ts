/**
 * Policy servers (spec v1.18): servers a.test and b.test share a room whose `m.room.policy`
 * names policy.test. policy.test is a third Myelin server with a joined user (so the room
 * really uses it: "the via server has a joined user") whose federation listener gets, in this
 * test only, a `POST /_matrix/policy/v1/sign` endpoint: it checks the X-Matrix signature of
 * the request, refuses events containing a marker word with a Matrix error, and signs the
 * others with a key of the test (not its server key), as the room's `public_keys` announce.
 * The other servers reach it through ordinary server discovery.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { federationAuth } from '../../src/api/federation/index.js';
import { originOf } from '../../src/federation/index.js';
import { encodeBase64 } from '../../src/protocol/base64.js';
import { signEvent } from '../../src/protocol/event-signing.js';
import type { Pdu } from '../../src/protocol/event.js';
import { hasValidPolicySignature, POLICY_SERVER_KEY_ID } from '../../src/protocol/policy-server.js';
import { getRoomVersion } from '../../src/protocol/room-versions.js';
import { generateSigningKey } from '../../src/protocol/signing.js';
import type { TestClient } from '../client/_client.js';
import { bodies, createFederation, eventually, roomMessages, type Federation, type FedMember } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const enc = encodeURIComponent;
const PS_NAME = 'policy.test';
const MARKER = 'SPAMWORD';

interface SignRequest {
  origin: string;
  type: string;
  stateKey?: string;
  body?: string;
  refused: boolean;
}

async function send(c: TestClient, roomId: string, body: string) {
  return c.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', body });
}

async function members(c: TestClient, roomId: string): Promise<Record<string, string>> {
  const res = await c.get(`/_matrix/client/v3/rooms/${enc(roomId)}/members`);
  if (res.status !== 200) throw new Error(`members: ${res.status} ${JSON.stringify(res.body)}`);
  return Object.fromEntries(res.body.chunk.map((e: any) => [e.state_key, e.content.membership]));
}

describe.each<Engine>(['sqlite', 'postgres'])('policy servers on %s', (engine) => {
  const psKey = generateSigningKey('policy_server');
  const requests: SignRequest[] = [];
  /** Requests to MSC4284's sign path, and the rooms for which the stable path is unknown. */
  const unstableRequests: SignRequest[] = [];
  const unstableOnly = new Set<string>();
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  let p: FedMember;
  let alice: TestClient;
  let bob: TestClient;
  let roomId: string;

  const pdusOn = async (m: FedMember, eventId: string) => (await m.server!.ctx.eventStore.getEvent(eventId))!;
  const policyContent = () => ({ via: PS_NAME, public_keys: { ed25519: encodeBase64(psKey.publicKey) } });

  beforeAll(async () => {
    fed = await createFederation(engine);
    a = await fed.add('a.test');
    b = await fed.add('b.test');
    let pRef: FedMember | undefined;
    p = await fed.add(PS_NAME, {}, {
      extend: (app, listener) => {
        if (listener !== 'federation') return;
        const auth = { preHandler: (req: any, reply: any) => federationAuth({ federation: pRef!.server!.ctx.federation }).preHandler(req, reply) };
        const sign = (log: SignRequest[]) => async (req: any, reply: any) => {
          const pdu = req.body as Pdu;
          // Rooms of a policy server deployed before the specification: only MSC4284's path.
          if (log === requests && unstableOnly.has(pdu.room_id!)) return reply.code(404).send({ errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
          const text = JSON.stringify(pdu.content ?? {});
          const refused = text.includes(MARKER);
          log.push({ origin: originOf(req)!, type: pdu.type, stateKey: pdu.state_key, body: pdu.content?.['body'] as string | undefined, refused });
          if (refused) return reply.code(400).send({ errcode: 'M_FORBIDDEN', error: 'This message looks like spam to the policy server' });
          const room = await pRef!.server!.ctx.eventStore.getRoom(pdu.room_id!);
          const version = getRoomVersion(room!.roomVersion)!;
          const signed = signEvent(pdu, version, PS_NAME, psKey);
          return { [PS_NAME]: { [POLICY_SERVER_KEY_ID]: signed.signatures[PS_NAME]![POLICY_SERVER_KEY_ID] } };
        };
        app.post('/_matrix/policy/v1/sign', auth, sign(requests));
        app.post('/_matrix/policy/unstable/org.matrix.msc4284/sign', auth, sign(unstableRequests));
      },
    });
    pRef = p;
    alice = a.client();
    await alice.register('alice');
    bob = b.client();
    await bob.register('bob');
    const pol = p.client();
    await pol.register('pol');

    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', room_alias_name: 'guarded' });
    expect(created.status).toBe(200);
    roomId = created.body.room_id;
    for (const c of [bob, pol]) {
      const joined = await c.post(`/_matrix/client/v3/join/${enc('#guarded:a.test')}`, {});
      expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    }
    for (const m of [alice, bob]) {
      await eventually(async () => {
        const ms = await members(m, roomId);
        return ms['@bob:b.test'] === 'join' && ms['@pol:policy.test'] === 'join';
      }, 20_000, 'everyone joined');
    }
  }, 90_000);

  afterAll(async () => {
    await fed?.close();
  });

  it('a room without m.room.policy is unaffected', async () => {
    const res = await send(alice, roomId, 'before the policy');
    expect(res.status).toBe(200);
    const ev = await pdusOn(a, res.body.event_id);
    expect(ev.event.signatures[PS_NAME]).toBeUndefined();
    await eventually(async () => bodies(await roomMessages(bob, roomId)).includes('before the policy'), 20_000, 'B to get the message');
    expect(requests).toEqual([]);
  }, 30_000);

  it('a room whose policy server has no joined member is unaffected', async () => {
    const other = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    const rid = other.body.room_id;
    const set = await alice.put(`/_matrix/client/v3/rooms/${enc(rid)}/state/m.room.policy/`, policyContent());
    expect(set.status).toBe(200);
    const res = await send(alice, rid, `not checked ${MARKER}`);
    expect(res.status).toBe(200);
    expect(requests).toEqual([]);
  }, 30_000);

  it('local events get the policy server signature, visible on both servers', async () => {
    const set = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.policy/`, policyContent());
    expect(set.status).toBe(200);
    // The m.room.policy state event itself is never sent for signing.
    expect(requests).toEqual([]);
    await eventually(async () => (await b.server!.ctx.eventStore.getCurrentStateEvent(roomId, 'm.room.policy', ''))?.event.event_id === set.body.event_id, 20_000, 'B to get the policy');

    const res = await send(alice, roomId, 'hello, checked');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(requests).toEqual([{ origin: 'a.test', type: 'm.room.message', stateKey: undefined, body: 'hello, checked', refused: false }]);
    const version = getRoomVersion((await a.server!.ctx.eventStore.getRoom(roomId))!.roomVersion)!;
    const ps = { via: PS_NAME, ed25519: encodeBase64(psKey.publicKey) };
    const onA = await pdusOn(a, res.body.event_id);
    expect(hasValidPolicySignature(onA.event, version, ps)).toBe(true);
    expect(Object.keys(onA.event.signatures).sort()).toEqual(['a.test', PS_NAME]);
    await eventually(async () => bodies(await roomMessages(bob, roomId)).includes('hello, checked'), 20_000, 'B to get the message');
    const onB = await pdusOn(b, res.body.event_id);
    expect(onB.outlier).toBe(false);
    expect(hasValidPolicySignature(onB.event, version, ps)).toBe(true);
    // B found a valid signature: it did not ask again.
    expect(requests.filter((r) => r.origin === 'b.test')).toEqual([]);

    // State events too, and B's own events.
    const topic = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'checked topic' });
    expect(topic.status, JSON.stringify(topic.body)).toBe(200);
    expect(requests.at(-1)).toMatchObject({ origin: 'a.test', type: 'm.room.topic', stateKey: '' });
    await eventually(async () => (await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`)).body.topic === 'checked topic', 20_000, 'B to get the topic');
    const fromB = await send(bob, roomId, 'hello from b, checked');
    expect(fromB.status, JSON.stringify(fromB.body)).toBe(200);
    expect(requests.at(-1)).toMatchObject({ origin: 'b.test', type: 'm.room.message', body: 'hello from b, checked' });
    expect(hasValidPolicySignature((await pdusOn(b, fromB.body.event_id)).event, version, ps)).toBe(true);
    await eventually(async () => bodies(await roomMessages(alice, roomId)).includes('hello from b, checked'), 20_000, 'A to get B’s message');
    expect(requests.filter((r) => r.origin === 'a.test')).toHaveLength(2);

    // An invite is signed before it goes to the invitee's server, and keeps the signature.
    await b.client().register('carol');
    const invite = await alice.post(`/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: '@carol:b.test' });
    expect(invite.status, JSON.stringify(invite.body)).toBe(200);
    expect(requests.at(-1)).toMatchObject({ origin: 'a.test', type: 'm.room.member', stateKey: '@carol:b.test' });
    const inviteEv = (await a.server!.ctx.eventStore.getCurrentStateEvent(roomId, 'm.room.member', '@carol:b.test'))!.event;
    expect(hasValidPolicySignature(inviteEv, version, ps)).toBe(true);
    expect(Object.keys(inviteEv.signatures).sort()).toEqual(['a.test', 'b.test', PS_NAME]);
  }, 60_000);

  it('a refused event is rejected to the client with the policy server error, and neither stored nor sent', async () => {
    const before = (await a.server!.ctx.eventStore.maxStreamOrdering());
    const res = await send(alice, roomId, `buy ${MARKER} now`);
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ errcode: 'M_FORBIDDEN', error: 'This message looks like spam to the policy server' });
    expect(requests.at(-1)).toMatchObject({ origin: 'a.test', refused: true });
    expect(await a.server!.ctx.eventStore.maxStreamOrdering()).toBe(before);
    // Sending goes on; the refused message appears on neither server.
    const after = await send(alice, roomId, 'after the refusal');
    expect(after.status).toBe(200);
    await eventually(async () => bodies(await roomMessages(bob, roomId)).includes('after the refusal'), 20_000, 'B to get the next message');
    for (const c of [alice, bob]) expect(bodies(await roomMessages(c, roomId)).some((t) => t.includes(MARKER))).toBe(false);
    // The next event builds on the last stored one.
    const next = await pdusOn(a, after.body.event_id);
    expect(next.event.prev_events).toHaveLength(1);
  }, 60_000);

  it('received events without a valid signature: asked for once, soft-failed when refused', async () => {
    // A stops asking (as a server ignoring policy servers would).
    const hook = a.server!.ctx.roomEvents.beforePersist;
    a.server!.ctx.roomEvents.beforePersist = undefined;
    try {
      const n = requests.length;
      const spam = await send(alice, roomId, `unchecked ${MARKER}`);
      expect(spam.status).toBe(200);
      const fine = await send(alice, roomId, 'unchecked but fine');
      expect(fine.status).toBe(200);
      expect((await pdusOn(a, fine.body.event_id)).event.signatures[PS_NAME]).toBeUndefined();
      await eventually(async () => bodies(await roomMessages(bob, roomId)).includes('unchecked but fine'), 20_000, 'B to get the fine message');
      // Last, as an event built on it would bring its state back (soft failure is not rejection).
      const spamTopic = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: `${MARKER} topic` });
      expect(spamTopic.status).toBe(200);
      await eventually(async () => b.server!.ctx.eventStore.getEvent(spamTopic.body.event_id), 20_000, 'B to get the topic');

      // B asked for each of the three; the policy server refused two.
      expect(requests.slice(n).map((r) => [r.origin, r.type, r.refused])).toEqual([
        ['b.test', 'm.room.message', true],
        ['b.test', 'm.room.message', false],
        ['b.test', 'm.room.topic', true],
      ]);
      // The refused ones are soft-failed on B: stored, not in the timeline, not in the current state.
      for (const id of [spam.body.event_id, spamTopic.body.event_id]) {
        const soft = await pdusOn(b, id);
        expect(soft.outlier).toBe(true);
        expect(soft.rejected).toBeNull();
      }
      expect(bodies(await roomMessages(bob, roomId))).not.toContain(`unchecked ${MARKER}`);
      expect((await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`)).body.topic).toBe('checked topic');
      const extremities = await b.server!.ctx.eventStore.getForwardExtremities(roomId);
      expect(extremities).toContain(fine.body.event_id);
      expect(extremities).not.toContain(spamTopic.body.event_id);
      // The accepted one is stored on B with the signature B asked for.
      const version = getRoomVersion((await b.server!.ctx.eventStore.getRoom(roomId))!.roomVersion)!;
      expect(hasValidPolicySignature((await pdusOn(b, fine.body.event_id)).event, version, { via: PS_NAME, ed25519: encodeBase64(psKey.publicKey) })).toBe(true);
      // A, not checking, shows everything.
      expect((await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`)).body.topic).toBe(`${MARKER} topic`);
    } finally {
      a.server!.ctx.roomEvents.beforePersist = hook;
    }
  }, 60_000);

  it('rooms set up before the specification: org.matrix.msc4284.policy and its sign path', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', room_alias_name: 'guarded-early' });
    expect(created.status).toBe(200);
    const rid = created.body.room_id as string;
    unstableOnly.add(rid);
    const pol = p.client((await p.client().login('pol')).access_token);
    for (const c of [bob, pol]) {
      const joined = await c.post(`/_matrix/client/v3/join/${enc('#guarded-early:a.test')}`, {});
      expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    }
    await eventually(async () => (await members(alice, rid))['@pol:policy.test'] === 'join', 20_000, 'the policy server joined');
    const n = requests.length;
    const set = await alice.put(`/_matrix/client/v3/rooms/${enc(rid)}/state/org.matrix.msc4284.policy/`, { via: PS_NAME, public_key: encodeBase64(psKey.publicKey) });
    expect(set.status).toBe(200);
    // The unstable policy event is not sent for signing either.
    expect([...requests.slice(n), ...unstableRequests]).toEqual([]);
    await eventually(async () => b.server!.ctx.eventStore.getEvent(set.body.event_id), 20_000, 'B to get the policy event');

    const res = await send(alice, rid, 'checked the early way');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    // The stable path was tried first (unknown there for this room), then MSC4284's.
    expect(unstableRequests).toEqual([{ origin: 'a.test', type: 'm.room.message', stateKey: undefined, body: 'checked the early way', refused: false }]);
    const version = getRoomVersion((await a.server!.ctx.eventStore.getRoom(rid))!.roomVersion)!;
    const ps = { via: PS_NAME, ed25519: encodeBase64(psKey.publicKey) };
    expect(hasValidPolicySignature((await pdusOn(a, res.body.event_id)).event, version, ps)).toBe(true);
    await eventually(async () => bodies(await roomMessages(bob, rid)).includes('checked the early way'), 20_000, 'B to get the message');
    expect((await pdusOn(b, res.body.event_id)).outlier).toBe(false);
    expect(unstableRequests.filter((r) => r.origin === 'b.test')).toEqual([]);

    const refused = await send(alice, rid, `early ${MARKER}`);
    expect(refused.status).toBe(403);
    expect(refused.body.errcode).toBe('M_FORBIDDEN');
    expect(unstableRequests.at(-1)).toMatchObject({ origin: 'a.test', refused: true });
  }, 60_000);
});
