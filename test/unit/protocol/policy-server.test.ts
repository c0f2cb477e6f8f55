import { describe, expect, it } from 'vitest';
import { encodeBase64 } from '../../../src/protocol/base64.js';
import type { Pdu } from '../../../src/protocol/event.js';
import { signEvent } from '../../../src/protocol/event-signing.js';
import {
  enabledPolicyServer,
  hasValidPolicySignature,
  isPolicyExempt,
  POLICY_SERVER_KEY_ID,
  policyRecommends,
  policyServerFromContent,
  policyServerFromUnstableContent,
  withPolicySignature,
  type PolicyServer,
} from '../../../src/protocol/policy-server.js';
import { redactEvent } from '../../../src/protocol/redaction.js';
import { getRoomVersion } from '../../../src/protocol/room-versions.js';
import { generateSigningKey, jsonSignature } from '../../../src/protocol/signing.js';

const PS_KEY = generateSigningKey('policy_server');
const OTHER_KEY = generateSigningKey('policy_server');
const ORIGIN_KEY = generateSigningKey('a1');
const PS: PolicyServer = { via: 'policy.example', ed25519: encodeBase64(PS_KEY.publicKey) };
const policyContent = { via: 'policy.example', public_keys: { ed25519: PS.ed25519 } };
/** `stateKey` null: no state key (not a state event). */
const policyEvent = (content: unknown, stateKey: string | null = '', type = 'm.room.policy') =>
  (stateKey === null ? { type, content } : { type, state_key: stateKey, content }) as Pick<Pdu, 'type' | 'state_key' | 'content'>;
const joined = (...servers: string[]) => (s: string) => servers.includes(s);

function message(version: string, extra: Partial<Pdu> = {}): Pdu {
  const pdu: Pdu = {
    room_id: '!room:origin.example',
    type: 'm.room.message',
    sender: '@alice:origin.example',
    content: { msgtype: 'm.text', body: 'hello' },
    origin_server_ts: 1_700_000_000_000,
    prev_events: [],
    auth_events: [],
    depth: 5,
    hashes: { sha256: '' },
    signatures: {},
    ...extra,
  };
  const { hashes: _h, ...rest } = pdu;
  return signEvent(rest as Pdu, getRoomVersion(version)!, 'origin.example', ORIGIN_KEY);
}

describe('policyServerFromContent / enabledPolicyServer', () => {
  it('returns via and key for valid content when via has a joined member', () => {
    expect(policyServerFromContent(policyContent)).toEqual(PS);
    expect(enabledPolicyServer(policyEvent(policyContent), joined('policy.example'))).toEqual(PS);
    // Other public keys next to ed25519 are allowed.
    expect(enabledPolicyServer(policyEvent({ ...policyContent, public_keys: { ed25519: PS.ed25519, other: 'x' } }), joined('policy.example'))).toEqual(PS);
  });

  it('is not enabled without a policy event', () => {
    expect(enabledPolicyServer(undefined, joined('policy.example'))).toBeUndefined();
  });

  it('is not enabled when the via server has no joined member', () => {
    expect(enabledPolicyServer(policyEvent(policyContent), joined())).toBeUndefined();
    expect(enabledPolicyServer(policyEvent(policyContent), joined('origin.example'))).toBeUndefined();
  });

  it('asks about the via server only', () => {
    const asked: string[] = [];
    enabledPolicyServer(policyEvent(policyContent), (s) => (asked.push(s), true));
    expect(asked).toEqual(['policy.example']);
  });

  it.each([
    ['empty content', {}],
    ['no via', { public_keys: { ed25519: PS.ed25519 } }],
    ['via not a string', { via: 42, public_keys: { ed25519: PS.ed25519 } }],
    ['via null', { via: null, public_keys: { ed25519: PS.ed25519 } }],
    ['no public_keys', { via: 'policy.example' }],
    ['public_keys not an object', { via: 'policy.example', public_keys: 'abc' }],
    ['public_keys an array', { via: 'policy.example', public_keys: [PS.ed25519] }],
    ['public_keys without ed25519', { via: 'policy.example', public_keys: { curve25519: 'abc' } }],
    ['ed25519 not a string', { via: 'policy.example', public_keys: { ed25519: 7 } }],
    ['legacy single public_key', { via: 'policy.example', public_key: PS.ed25519 }],
  ])('is not enabled for invalid content: %s', (_name, content) => {
    expect(policyServerFromContent(content)).toBeUndefined();
    expect(enabledPolicyServer(policyEvent(content), joined('policy.example'))).toBeUndefined();
  });

  it('only the m.room.policy event with an empty state key counts', () => {
    expect(enabledPolicyServer(policyEvent(policyContent, 'x'), joined('policy.example'))).toBeUndefined();
    expect(enabledPolicyServer(policyEvent(policyContent, null), joined('policy.example'))).toBeUndefined();
    expect(enabledPolicyServer(policyEvent(policyContent, '', 'org.example.policy'), joined('policy.example'))).toBeUndefined();
  });
});

describe('the unstable org.matrix.msc4284.policy event (MSC4284)', () => {
  const unstable = (content: unknown, stateKey: string | null = '') => policyEvent(content, stateKey, 'org.matrix.msc4284.policy');
  const unstableContent = { via: 'policy.example', public_key: PS.ed25519 };

  it('names the policy server with via and public_key when there is no m.room.policy', () => {
    expect(policyServerFromUnstableContent(unstableContent)).toEqual(PS);
    expect(enabledPolicyServer(undefined, joined('policy.example'), unstable(unstableContent))).toEqual(PS);
    expect(enabledPolicyServer(undefined, joined(), unstable(unstableContent))).toBeUndefined();
  });

  it('is not read with the stable shape, nor with another state key or type', () => {
    expect(policyServerFromUnstableContent(policyContent)).toBeUndefined();
    expect(policyServerFromUnstableContent({ via: 'policy.example', public_key: 7 })).toBeUndefined();
    expect(policyServerFromUnstableContent({ public_key: PS.ed25519 })).toBeUndefined();
    expect(enabledPolicyServer(undefined, joined('policy.example'), unstable(unstableContent, 'x'))).toBeUndefined();
    expect(enabledPolicyServer(undefined, joined('policy.example'), policyEvent(unstableContent))).toBeUndefined();
  });

  it('gives way to m.room.policy, even an invalid one', () => {
    const other = { via: 'other.example', public_key: encodeBase64(OTHER_KEY.publicKey) };
    expect(enabledPolicyServer(policyEvent(policyContent), joined('policy.example', 'other.example'), unstable(other))).toEqual(PS);
    expect(enabledPolicyServer(policyEvent({}), joined('policy.example'), unstable(unstableContent))).toBeUndefined();
  });

  it('is exempt like m.room.policy', () => {
    expect(isPolicyExempt({ type: 'org.matrix.msc4284.policy', state_key: '' })).toBe(true);
    expect(isPolicyExempt({ type: 'org.matrix.msc4284.policy', state_key: 'x' })).toBe(false);
  });
});

describe('isPolicyExempt', () => {
  it('exempts only the m.room.policy state event with an empty state key', () => {
    expect(isPolicyExempt({ type: 'm.room.policy', state_key: '' })).toBe(true);
    expect(isPolicyExempt({ type: 'm.room.policy', state_key: 'x' })).toBe(false);
    expect(isPolicyExempt({ type: 'm.room.policy' })).toBe(false);
    expect(isPolicyExempt({ type: 'm.room.member', state_key: '' })).toBe(false);
    expect(isPolicyExempt({ type: 'm.room.power_levels', state_key: '' })).toBe(false);
  });
});

describe.each(['3', '10', '11', '12'])('policy signatures in room version %s', (vid) => {
  const version = getRoomVersion(vid)!;
  const psSign = (pdu: Pdu, key = PS_KEY, name = PS.via) => signEvent(pdu, version, name, key);

  it('accepts a signature by the room-state key under the via name, over the redacted event', () => {
    const ev = message(vid);
    const signed = psSign(ev);
    expect(signed.signatures[PS.via]![POLICY_SERVER_KEY_ID]).toBe(jsonSignature(redactEvent(ev, version), PS_KEY));
    expect(hasValidPolicySignature(signed, version, PS)).toBe(true);
    expect(policyRecommends(signed, version, PS)).toBe(true);
    // The origin's own signature is untouched.
    expect(signed.signatures['origin.example']).toEqual(ev.signatures['origin.example']);
    // Still valid once the event is redacted (the signature covers the redacted form).
    expect(hasValidPolicySignature(redactEvent(signed, version) as Pdu, version, PS)).toBe(true);
    // And when the content changes in a way the redaction removes (the content hash would catch it).
    expect(hasValidPolicySignature({ ...signed, content: { body: 'other' } }, version, PS)).toBe(true);
  });

  it('refuses a missing signature', () => {
    const ev = message(vid);
    expect(hasValidPolicySignature(ev, version, PS)).toBe(false);
    expect(policyRecommends(ev, version, PS)).toBe(false);
  });

  it('refuses a signature by another key, under another name, or with another key ID', () => {
    const ev = message(vid);
    expect(hasValidPolicySignature(psSign(ev, OTHER_KEY), version, PS)).toBe(false);
    expect(hasValidPolicySignature(psSign(ev, PS_KEY, 'other.example'), version, PS)).toBe(false);
    const otherId = signEvent(ev, version, PS.via, { ...PS_KEY, keyId: 'ed25519:auto' });
    expect(hasValidPolicySignature(otherId, version, PS)).toBe(false);
  });

  it('refuses a signature of another event and a malformed one', () => {
    const ev = message(vid);
    const other = psSign(message(vid, { origin_server_ts: 1 }));
    const moved = { ...ev, signatures: { ...ev.signatures, [PS.via]: other.signatures[PS.via]! } };
    expect(hasValidPolicySignature(moved, version, PS)).toBe(false);
    const garbage = { ...ev, signatures: { ...ev.signatures, [PS.via]: { [POLICY_SERVER_KEY_ID]: 'not base64!' } } };
    expect(hasValidPolicySignature(garbage, version, PS)).toBe(false);
    // A key in the room state that is not a valid Ed25519 key validates nothing.
    expect(hasValidPolicySignature(psSign(ev), version, { via: PS.via, ed25519: 'AAAA' })).toBe(false);
  });

  it('recommends every event when the room uses no policy server, and the exempt event always', () => {
    expect(policyRecommends(message(vid), version, undefined)).toBe(true);
    const policyState = message(vid, { type: 'm.room.policy', state_key: '', content: policyContent });
    expect(policyRecommends(policyState, version, PS)).toBe(true);
    const keyed = message(vid, { type: 'm.room.policy', state_key: 'x', content: policyContent });
    expect(policyRecommends(keyed, version, PS)).toBe(false);
    const nonState = message(vid, { type: 'm.room.policy', content: policyContent });
    expect(policyRecommends(nonState, version, PS)).toBe(false);
    const member = message(vid, { type: 'm.room.member', state_key: '@alice:origin.example', content: { membership: 'join' } });
    expect(policyRecommends(member, version, PS)).toBe(false);
    expect(policyRecommends(psSign(member), version, PS)).toBe(true);
  });

  it('adds the signature of a sign answer, keeping the existing ones', () => {
    const ev = message(vid);
    const sig = psSign(ev).signatures[PS.via]![POLICY_SERVER_KEY_ID]!;
    const added = withPolicySignature(ev, PS, { [PS.via]: { [POLICY_SERVER_KEY_ID]: sig } })!;
    expect(added.signatures).toEqual({ ...ev.signatures, [PS.via]: { [POLICY_SERVER_KEY_ID]: sig } });
    expect(ev.signatures[PS.via]).toBeUndefined();
    expect(hasValidPolicySignature(added, version, PS)).toBe(true);
    // The policy server may also be the origin: its other signatures stay.
    const fromPs = { ...ev, signatures: { [PS.via]: { 'ed25519:a1': 'x' } } };
    expect(withPolicySignature(fromPs, PS, { [PS.via]: { [POLICY_SERVER_KEY_ID]: sig } })!.signatures[PS.via]).toEqual({
      'ed25519:a1': 'x',
      [POLICY_SERVER_KEY_ID]: sig,
    });
  });

  it('finds no signature in answers without one', () => {
    const ev = message(vid);
    for (const answer of [null, [], {}, { [PS.via]: 'x' }, { 'other.example': { [POLICY_SERVER_KEY_ID]: 'x' } }, { [PS.via]: { 'ed25519:auto': 'x' } }, { [PS.via]: { [POLICY_SERVER_KEY_ID]: 1 } }]) {
      expect(withPolicySignature(ev, PS, answer)).toBeUndefined();
    }
  });
});
