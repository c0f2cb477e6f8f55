import { describe, expect, it } from 'vitest';
import { decodeBase64 } from '../../../src/protocol/base64.js';
import type { Pdu } from '../../../src/protocol/event.js';
import { checkContentHash, computeContentHash } from '../../../src/protocol/event-hash.js';
import {
  checkEventJson,
  requiredSignatureServers,
  signEvent,
  verifyEventSignature,
} from '../../../src/protocol/event-signing.js';
import { redactEvent } from '../../../src/protocol/redaction.js';
import { ROOM_VERSIONS, getRoomVersion } from '../../../src/protocol/room-versions.js';
import { generateSigningKey, signingKeyFromSeed } from '../../../src/protocol/signing.js';

const KEY = signingKeyFromSeed('ed25519:1', decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1'));
const v = (id: string) => getRoomVersion(id)!;

// appendices.md "Cryptographic Test Vectors" → "Event Signing"
const MINIMAL = {
  room_id: '!x:domain',
  sender: '@a:domain',
  origin: 'domain',
  origin_server_ts: 1000000,
  signatures: {},
  hashes: {},
  type: 'X',
  content: {},
  prev_events: [],
  auth_events: [],
  depth: 3,
  unsigned: { age_ts: 1000000 },
} as unknown as Pdu;

const REDACTABLE = {
  content: { body: 'Here is the message content' },
  event_id: '$0:domain',
  origin: 'domain',
  origin_server_ts: 1000000,
  type: 'm.room.message',
  room_id: '!r:domain',
  sender: '@u:domain',
  signatures: {},
  unsigned: { age_ts: 1000000 },
} as unknown as Pdu;

describe('appendix event signing vectors (v1 redaction rules keep "origin")', () => {
  // The vectors predate v11 (which no longer protects `origin`), so they hold for v1–v10.
  const versions = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10'];

  it.each(versions)('minimal event, room v%s', (id) => {
    const signed = signEvent(MINIMAL, v(id), 'domain', KEY);
    expect(signed).toEqual({
      auth_events: [],
      content: {},
      depth: 3,
      hashes: { sha256: '5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos' },
      origin: 'domain',
      origin_server_ts: 1000000,
      prev_events: [],
      room_id: '!x:domain',
      sender: '@a:domain',
      signatures: {
        domain: {
          'ed25519:1': 'KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg',
        },
      },
      type: 'X',
      unsigned: { age_ts: 1000000 },
    });
  });

  it.each(['1', '2'])('event with redactable content, room v%s', (id) => {
    const signed = signEvent(REDACTABLE, v(id), 'domain', KEY);
    expect(signed).toEqual({
      content: { body: 'Here is the message content' },
      event_id: '$0:domain',
      hashes: { sha256: 'onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g' },
      origin: 'domain',
      origin_server_ts: 1000000,
      type: 'm.room.message',
      room_id: '!r:domain',
      sender: '@u:domain',
      signatures: {
        domain: {
          'ed25519:1': 'Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA',
        },
      },
      unsigned: { age_ts: 1000000 },
    });
  });

  it('the vector signatures verify', () => {
    const signed = signEvent(MINIMAL, v('1'), 'domain', KEY);
    expect(verifyEventSignature(signed, v('1'), 'domain', 'ed25519:1', KEY.publicKey)).toBe(true);
    expect(checkContentHash(signed)).toBe(true);
  });

  it('v11 no longer signs "origin", so the signature differs', () => {
    const s1 = signEvent(MINIMAL, v('1'), 'domain', KEY);
    const s11 = signEvent(MINIMAL, v('11'), 'domain', KEY);
    expect(s11.hashes).toEqual(s1.hashes);
    expect(s11.signatures).not.toEqual(s1.signatures);
  });
});

function sampleEvent(): Pdu {
  return {
    type: 'm.room.message',
    room_id: '!someroom:example.org',
    sender: '@alice:example.org',
    origin_server_ts: 1700000000000,
    content: { msgtype: 'm.text', body: 'hello world' },
    prev_events: ['$abc'],
    auth_events: ['$def', '$ghi'],
    depth: 12,
    hashes: { sha256: '' },
    signatures: {},
  } as Pdu;
}

describe('sign → verify round trip for every room version', () => {
  const key = generateSigningKey('rt');
  const versions = [...ROOM_VERSIONS.values()];
  it.each(versions.map((rv) => [rv.id, rv] as const))('v%s', (_id, rv) => {
    const ev = { ...sampleEvent(), hashes: {} } as unknown as Pdu;
    if (rv.eventIdFormat === 'legacy') ev.event_id = '$legacy:example.org';
    const signed = signEvent(ev, rv, 'example.org', key);
    expect(checkContentHash(signed, rv)).toBe(true);
    expect(verifyEventSignature(signed, rv, 'example.org', key.keyId, key.publicKey)).toBe(true);
    // still valid once redacted
    expect(verifyEventSignature(redactEvent(signed, rv), rv, 'example.org', key.keyId, key.publicKey)).toBe(true);
    // but the redacted copy fails the content hash
    expect(checkContentHash(redactEvent(signed, rv), rv)).toBe(false);
  });
});

describe('tampering', () => {
  const key = generateSigningKey('t');
  const rv = v('10');
  const signed = signEvent({ ...sampleEvent(), hashes: {} } as unknown as Pdu, rv, 'example.org', key);
  const ok = (pdu: Pdu) => verifyEventSignature(pdu, rv, 'example.org', key.keyId, key.publicKey);

  it('untouched event verifies', () => expect(ok(signed)).toBe(true));
  it('content change keeps the signature (content is redacted) but breaks the content hash', () => {
    const t = { ...signed, content: { ...signed.content, body: 'evil' } };
    expect(ok(t)).toBe(true);
    expect(checkContentHash(t)).toBe(false);
  });
  it.each([
    ['sender', { sender: '@mallory:example.org' }],
    ['depth', { depth: 13 }],
    ['origin_server_ts', { origin_server_ts: 1 }],
    ['prev_events', { prev_events: ['$other'] }],
    ['hashes', { hashes: { sha256: 'AAAA' } }],
    ['type', { type: 'm.room.messages' }],
  ])('changing %s breaks the signature', (_k, patch) => {
    expect(ok({ ...signed, ...patch } as Pdu)).toBe(false);
  });
  it('protected content change breaks the signature', () => {
    const key2 = generateSigningKey('m');
    const member = signEvent(
      { ...sampleEvent(), type: 'm.room.member', state_key: '@alice:example.org', content: { membership: 'join' }, hashes: {} } as unknown as Pdu,
      rv,
      'example.org',
      key2,
    );
    expect(verifyEventSignature(member, rv, 'example.org', key2.keyId, key2.publicKey)).toBe(true);
    const t = { ...member, content: { membership: 'leave' } };
    expect(verifyEventSignature(t, rv, 'example.org', key2.keyId, key2.publicKey)).toBe(false);
  });
  it('unsigned is not covered', () => expect(ok({ ...signed, unsigned: { age: 5 } })).toBe(true));
  it('wrong key fails', () => expect(verifyEventSignature(signed, rv, 'example.org', key.keyId, generateSigningKey().publicKey)).toBe(false));
});

describe('signEvent details', () => {
  const key = generateSigningKey('d');
  it('keeps an existing content hash', () => {
    const pre = { ...sampleEvent(), hashes: { sha256: 'preexisting' } } as Pdu;
    expect(signEvent(pre, v('10'), 'example.org', key).hashes).toEqual({ sha256: 'preexisting' });
  });
  it('merges with other servers\' signatures without modifying the input', () => {
    const other = generateSigningKey('o');
    const first = signEvent({ ...sampleEvent(), hashes: {} } as unknown as Pdu, v('10'), 'a.example', other);
    const second = signEvent(first, v('10'), 'b.example', key);
    expect(Object.keys(second.signatures).sort()).toEqual(['a.example', 'b.example']);
    expect(Object.keys(first.signatures)).toEqual(['a.example']);
    expect(verifyEventSignature(second, v('10'), 'a.example', other.keyId, other.publicKey)).toBe(true);
  });
  it('ignores a carried event_id in hash-ID versions', () => {
    const ev = { ...sampleEvent(), hashes: {} } as unknown as Pdu;
    const a = signEvent(ev, v('10'), 'example.org', key);
    const b = signEvent({ ...ev, event_id: '$whatever' }, v('10'), 'example.org', key);
    expect(b.signatures).toEqual(a.signatures);
    expect(b.hashes).toEqual(a.hashes);
    expect(b.event_id).toBe('$whatever');
  });
  it('computeContentHash ignores unsigned, signatures and hashes', () => {
    const ev = sampleEvent();
    const h = computeContentHash(ev);
    expect(computeContentHash({ ...ev, unsigned: { a: 1 }, signatures: { x: {} }, hashes: { sha256: 'zz' } })).toBe(h);
    expect(computeContentHash({ ...ev, depth: 13 })).not.toBe(h);
  });
});

describe('requiredSignatureServers', () => {
  const base = sampleEvent();
  it.each([
    ['plain v10 event', v('10'), base, ['example.org']],
    ['v1 event with same-server event_id', v('1'), { ...base, event_id: '$x:example.org' }, ['example.org']],
    ['v1 event with other-server event_id', v('1'), { ...base, event_id: '$x:other.org' }, ['example.org', 'other.org']],
    ['v3 ignores event_id', v('3'), { ...base, event_id: '$x:other.org' }, ['example.org']],
    [
      'v8 restricted join',
      v('8'),
      { ...base, type: 'm.room.member', state_key: '@alice:example.org', content: { membership: 'join', join_authorised_via_users_server: '@bob:resident.org' } },
      ['example.org', 'resident.org'],
    ],
    [
      'v7 does not know restricted joins',
      v('7'),
      { ...base, type: 'm.room.member', state_key: '@alice:example.org', content: { membership: 'join', join_authorised_via_users_server: '@bob:resident.org' } },
      ['example.org'],
    ],
    [
      'authorising user on the same server',
      v('10'),
      { ...base, type: 'm.room.member', state_key: '@alice:example.org', content: { membership: 'join', join_authorised_via_users_server: '@bob:example.org' } },
      ['example.org'],
    ],
    [
      'authorising user on a leave is ignored',
      v('10'),
      { ...base, type: 'm.room.member', state_key: '@alice:example.org', content: { membership: 'leave', join_authorised_via_users_server: '@bob:resident.org' } },
      ['example.org'],
    ],
    [
      'third-party invite needs no sender signature',
      v('10'),
      { ...base, type: 'm.room.member', state_key: '@carol:third.org', content: { membership: 'invite', third_party_invite: { signed: {} } } },
      [],
    ],
    [
      'third-party invite in v1 still needs the event_id server',
      v('1'),
      { ...base, event_id: '$e:third.org', type: 'm.room.member', state_key: '@carol:third.org', content: { membership: 'invite', third_party_invite: {} } },
      ['third.org'],
    ],
  ])('%s', (_name, rv, pdu, expected) => {
    expect(requiredSignatureServers(pdu as Pdu, rv)).toEqual(expected);
  });
});

describe('checkEventJson', () => {
  it('v6+ rejects floats', () => {
    expect(checkEventJson({ ...sampleEvent(), content: { x: 1.5 } }, v('6'))).not.toBeNull();
  });
  it('v5 tolerates floats and huge integers', () => {
    expect(checkEventJson({ ...sampleEvent(), content: { x: 1.5, y: 2 ** 60 } }, v('5'))).toBeNull();
  });
  it('v6+ rejects integers beyond 2^53-1', () => {
    expect(checkEventJson({ ...sampleEvent(), content: { y: 2 ** 53 } }, v('11'))).not.toBeNull();
  });
});
