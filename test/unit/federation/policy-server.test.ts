import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { MatrixError } from '../../../src/errors.js';
import type { FederationClient } from '../../../src/federation/client.js';
import { FederationHttpError, FederationTimeoutError } from '../../../src/federation/errors.js';
import { PolicyRefusal, PolicyServers } from '../../../src/federation/policy-server.js';
import { encodeBase64 } from '../../../src/protocol/base64.js';
import { withEventId } from '../../../src/protocol/event-id.js';
import { signEvent } from '../../../src/protocol/event-signing.js';
import type { Pdu, RoomEvent } from '../../../src/protocol/event.js';
import { hasValidPolicySignature, POLICY_SERVER_KEY_ID } from '../../../src/protocol/policy-server.js';
import { getRoomVersion } from '../../../src/protocol/room-versions.js';
import { generateSigningKey } from '../../../src/protocol/signing.js';
import type { EventStore } from '../../../src/storage/stores/events.js';

const VERSION = getRoomVersion('11')!;
const ROOM = '!room:here.example';
const PS_KEY = generateSigningKey('policy_server');
const WRONG_KEY = generateSigningKey('policy_server');
const HS_KEY = generateSigningKey('k1');
const PS = { via: 'ps.example', ed25519: encodeBase64(PS_KEY.publicKey) };

function event(fields: Partial<Pdu> = {}): RoomEvent {
  const pdu = {
    room_id: ROOM,
    type: 'm.room.message',
    sender: '@alice:here.example',
    content: { body: 'hi' },
    origin_server_ts: 1_700_000_000_000,
    prev_events: [],
    auth_events: [],
    depth: 3,
    signatures: {},
    ...fields,
  } as unknown as Pdu;
  return withEventId(signEvent(pdu, VERSION, 'here.example', HS_KEY), VERSION);
}

const sigOf = (ev: RoomEvent, key = PS_KEY) => signEvent(ev, VERSION, PS.via, key).signatures[PS.via]![POLICY_SERVER_KEY_ID]!;

interface Setup {
  policy?: unknown;
  /** Content of the unstable org.matrix.msc4284.policy event (MSC4284). */
  unstable?: unknown;
  joined?: string[];
  answer?: (body: any, path: string) => unknown;
  serverName?: string;
}

function setup(s: Setup) {
  const calls: Array<{ destination: string; path: string; body: any }> = [];
  const events = {
    async getCurrentStateEvent(roomId: string, type: string, stateKey: string) {
      if (roomId !== ROOM || stateKey !== '') return undefined;
      const content = type === 'm.room.policy' ? s.policy : type === 'org.matrix.msc4284.policy' ? s.unstable : undefined;
      return content === undefined ? undefined : { event: { type, state_key: '', content } };
    },
    async members(roomId: string) {
      return roomId === ROOM ? s.joined ?? ['@alice:here.example', '@bot:ps.example'] : [];
    },
  } as unknown as EventStore;
  const client = {
    async post(destination: string, path: string, body: any) {
      calls.push({ destination, path, body });
      const a = s.answer ? s.answer(body, path) : {};
      if (a instanceof Error) throw a;
      return a;
    },
  } as unknown as FederationClient;
  const servers = new PolicyServers({ serverName: s.serverName ?? 'here.example', events, client, log: pino({ level: 'silent' }) });
  return { servers, calls };
}

const policyContent = { via: PS.via, public_keys: { ed25519: PS.ed25519 } };
const signingAnswer = (key = PS_KEY) => (body: any) => ({ [PS.via]: { [POLICY_SERVER_KEY_ID]: sigOf(withEventId(body, VERSION), key) } });

describe('PolicyServers.signLocal', () => {
  it('sends the PDU (without event_id or unsigned) to the via server and adds the checked signature', async () => {
    const { servers, calls } = setup({ policy: policyContent, answer: signingAnswer() });
    const ev = { ...event(), unsigned: { age: 1 } } as RoomEvent;
    const signed = await servers.signLocal(ev, VERSION);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.destination).toBe(PS.via);
    expect(calls[0]!.path).toBe('/_matrix/policy/v1/sign');
    expect(calls[0]!.body.event_id).toBeUndefined();
    expect(calls[0]!.body.unsigned).toBeUndefined();
    expect(calls[0]!.body.signatures).toEqual(ev.signatures);
    expect(signed.event_id).toBe(ev.event_id);
    expect(hasValidPolicySignature(signed, VERSION, PS)).toBe(true);
    expect(signed.signatures['here.example']).toEqual(ev.signatures['here.example']);
  });

  it('asks nothing in rooms without a usable policy server', async () => {
    for (const s of [
      { policy: undefined },
      { policy: { via: PS.via } },
      { policy: policyContent, joined: ['@alice:here.example', '@bot:other.example'] },
      { policy: { ...policyContent, via: 'here.example' }, joined: ['@alice:here.example'] },
    ] satisfies Setup[]) {
      const { servers, calls } = setup({ ...s, answer: signingAnswer() });
      const ev = event();
      expect(await servers.signLocal(ev, VERSION)).toBe(ev);
      expect(calls).toEqual([]);
    }
  });

  it('never sends the m.room.policy state event', async () => {
    const { servers, calls } = setup({ policy: policyContent, answer: signingAnswer() });
    const ev = event({ type: 'm.room.policy', state_key: '', content: { via: 'elsewhere.example', public_keys: { ed25519: 'x' } } });
    expect(await servers.signLocal(ev, VERSION)).toBe(ev);
    expect(calls).toEqual([]);
    // With another state key it is an ordinary event.
    await servers.signLocal(event({ type: 'm.room.policy', state_key: 'x', content: {} }), VERSION);
    expect(calls).toHaveLength(1);
  });

  it("passes the policy server's error on", async () => {
    const refuse = (status: number, body: Record<string, unknown>) => () =>
      new FederationHttpError(PS.via, status, body['errcode'] as string, body['error'] as string, body);
    const cases: Array<[Error, { status: number; json: Record<string, unknown> }]> = [
      [refuse(400, { errcode: 'M_FORBIDDEN', error: 'spam' })(), { status: 403, json: { errcode: 'M_FORBIDDEN', error: 'spam' } }],
      [refuse(429, { errcode: 'M_LIMIT_EXCEEDED', error: 'slow down', retry_after_ms: 500 })(), { status: 429, json: { errcode: 'M_LIMIT_EXCEEDED', error: 'slow down', retry_after_ms: 500 } }],
      [refuse(404, { errcode: 'M_NOT_FOUND', error: 'Unknown room' })(), { status: 404, json: { errcode: 'M_NOT_FOUND', error: 'Unknown room' } }],
      [refuse(400, { errcode: 'ORG_EXAMPLE_SPAM', error: 'looks like spam' })(), { status: 403, json: { errcode: 'M_FORBIDDEN', error: 'looks like spam' } }],
    ];
    for (const [err, want] of cases) {
      const { servers } = setup({ policy: policyContent, answer: () => err });
      const got = await servers.signLocal(event(), VERSION).catch((e: unknown) => e);
      expect(got).toBeInstanceOf(MatrixError);
      expect((got as MatrixError).status).toBe(want.status);
      expect((got as MatrixError).toJSON()).toEqual(want.json);
    }
  });

  it('refuses with M_FORBIDDEN when the policy server fails or signs wrongly', async () => {
    const cases: Array<[Setup['answer'], RegExp]> = [
      [() => new FederationTimeoutError(PS.via, 5000), /Could not get a signature from the room's policy server ps\.example/],
      [() => ({}), /without a signature/],
      [() => ({ [PS.via]: { 'ed25519:auto': 'abc' } }), /without a signature/],
      [signingAnswer(WRONG_KEY), /does not match the key in the room state/],
    ];
    for (const [answer, message] of cases) {
      const { servers } = setup({ policy: policyContent, answer });
      const got = await servers.signLocal(event(), VERSION).catch((e: unknown) => e);
      expect(got).toBeInstanceOf(MatrixError);
      expect((got as MatrixError).errcode).toBe('M_FORBIDDEN');
      expect((got as MatrixError).status).toBe(403);
      expect((got as MatrixError).message).toMatch(message);
    }
  });
});

describe('PolicyServers.checkReceived', () => {
  it('accepts a valid signature without asking', async () => {
    const { servers, calls } = setup({ policy: policyContent, answer: signingAnswer() });
    const ev = event();
    const signed = { ...ev, signatures: { ...ev.signatures, [PS.via]: { [POLICY_SERVER_KEY_ID]: sigOf(ev) } } };
    expect(await servers.checkReceived(signed, VERSION)).toEqual({ ok: true, event: signed });
    expect(calls).toEqual([]);
  });

  it('asks once for a missing or invalid signature and keeps the new one', async () => {
    const { servers, calls } = setup({ policy: policyContent, answer: signingAnswer() });
    const ev = event();
    const bad = { ...ev, signatures: { ...ev.signatures, [PS.via]: { [POLICY_SERVER_KEY_ID]: sigOf(ev, WRONG_KEY) } } };
    for (const e of [ev, bad]) {
      const got = await servers.checkReceived(e, VERSION);
      expect(got.ok).toBe(true);
      expect(hasValidPolicySignature(got.event, VERSION, PS)).toBe(true);
    }
    expect(calls).toHaveLength(2);
  });

  it('is not ok when the policy server refuses or cannot be reached', async () => {
    for (const answer of [() => new FederationHttpError(PS.via, 400, 'M_FORBIDDEN', 'spam', {}), () => new FederationTimeoutError(PS.via, 5000), signingAnswer(WRONG_KEY)]) {
      const { servers, calls } = setup({ policy: policyContent, answer });
      const ev = event();
      const got = await servers.checkReceived(ev, VERSION);
      expect(got.ok).toBe(false);
      expect(got.event).toBe(ev);
      expect(got.reason).toMatch(/policy server ps\.example/);
      expect(calls).toHaveLength(1);
    }
  });

  it('accepts everything in rooms without a policy server, and the exempt event', async () => {
    const none = setup({ policy: undefined, answer: () => new Error('not asked') });
    expect((await none.servers.checkReceived(event(), VERSION)).ok).toBe(true);
    const withPs = setup({ policy: policyContent, answer: () => new Error('not asked') });
    expect((await withPs.servers.checkReceived(event({ type: 'm.room.policy', state_key: '', content: {} }), VERSION)).ok).toBe(true);
    expect([...none.calls, ...withPs.calls]).toEqual([]);
  });
});

describe('PolicyRefusal', () => {
  it('explains itself as M_FORBIDDEN when the policy server sent no error', () => {
    const e = new PolicyRefusal(PS.via, 'no answer').toMatrixError();
    expect([e.errcode, e.status, e.message]).toEqual(['M_FORBIDDEN', 403, 'no answer']);
  });
});

describe('rooms set up before the specification (MSC4284)', () => {
  const unstableContent = { via: PS.via, public_key: PS.ed25519 };
  const STABLE = '/_matrix/policy/v1/sign';
  const UNSTABLE = '/_matrix/policy/unstable/org.matrix.msc4284/sign';
  const unknown = (status: number, body?: Record<string, unknown>) => new FederationHttpError(PS.via, status, body?.['errcode'] as string | undefined, body?.['error'] as string | undefined, body ?? '');

  it('uses the org.matrix.msc4284.policy event (via, public_key) when there is no m.room.policy', async () => {
    const { servers, calls } = setup({ unstable: unstableContent, answer: signingAnswer() });
    expect(await servers.policyServerOf(ROOM)).toEqual(PS);
    const signed = await servers.signLocal(event(), VERSION);
    expect(hasValidPolicySignature(signed, VERSION, PS)).toBe(true);
    expect(calls.map((c) => c.path)).toEqual([STABLE]);
    // Received events signed with the key of the unstable event are accepted without asking.
    const ev = event();
    const withSig = { ...ev, signatures: { ...ev.signatures, [PS.via]: { [POLICY_SERVER_KEY_ID]: sigOf(ev) } } };
    expect((await servers.checkReceived(withSig, VERSION)).ok).toBe(true);
    expect(calls).toHaveLength(1);
  });

  it('prefers m.room.policy, and does not fall back when it is invalid', async () => {
    const other = { via: 'other-ps.example', public_key: PS.ed25519 };
    expect(await setup({ policy: policyContent, unstable: other, joined: ['@a:ps.example', '@b:other-ps.example'] }).servers.policyServerOf(ROOM)).toEqual(PS);
    expect(await setup({ policy: { via: PS.via }, unstable: unstableContent }).servers.policyServerOf(ROOM)).toBeUndefined();
    // The unstable content has its own shape; the stable one's is not read from it.
    expect(await setup({ unstable: policyContent }).servers.policyServerOf(ROOM)).toBeUndefined();
    expect(await setup({ unstable: unstableContent, joined: ['@alice:here.example'] }).servers.policyServerOf(ROOM)).toBeUndefined();
  });

  it('never sends the unstable policy state event either', async () => {
    const { servers, calls } = setup({ unstable: unstableContent, answer: signingAnswer() });
    const ev = event({ type: 'org.matrix.msc4284.policy', state_key: '', content: { via: 'elsewhere.example', public_key: 'x' } });
    expect(await servers.signLocal(ev, VERSION)).toBe(ev);
    expect((await servers.checkReceived(ev, VERSION)).ok).toBe(true);
    expect(calls).toEqual([]);
  });

  it("asks MSC4284's sign path when the policy server does not know the stable one", async () => {
    for (const err of [unknown(404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' }), unknown(404), unknown(405), unknown(400, { errcode: 'M_UNRECOGNIZED' })]) {
      for (const cfg of [{ policy: policyContent }, { unstable: unstableContent }]) {
        const { servers, calls } = setup({ ...cfg, answer: (body, path) => (path === STABLE ? err : signingAnswer()(body)) });
        const signed = await servers.signLocal(event(), VERSION);
        expect(hasValidPolicySignature(signed, VERSION, PS)).toBe(true);
        expect(calls.map((c) => c.path)).toEqual([STABLE, UNSTABLE]);
        expect(calls[1]!.body).toEqual(calls[0]!.body);
      }
    }
  });

  it('does not retry on the unstable path for other errors, and refuses when neither path is known', async () => {
    const refused = setup({ unstable: unstableContent, answer: () => unknown(404, { errcode: 'M_NOT_FOUND', error: 'Unknown room' }) });
    const err = await refused.servers.signLocal(event(), VERSION).catch((e: unknown) => e);
    expect((err as MatrixError).errcode).toBe('M_NOT_FOUND');
    expect(refused.calls.map((c) => c.path)).toEqual([STABLE]);
    const neither = setup({ unstable: unstableContent, answer: () => unknown(404) });
    const got = await neither.servers.checkReceived(event(), VERSION);
    expect(got.ok).toBe(false);
    expect(neither.calls.map((c) => c.path)).toEqual([STABLE, UNSTABLE]);
  });
});
