import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeBase64 } from '../../../src/protocol/base64.js';
import type { Pdu } from '../../../src/protocol/event.js';
import { addContentHash, checkContentHash, computeContentHash, computeReferenceHash } from '../../../src/protocol/event-hash.js';
import {
  EventIdError,
  computeEventId,
  generateLegacyEventId,
  roomIdFromCreateEvent,
  withEventId,
} from '../../../src/protocol/event-id.js';
import { parseEventId, parseRoomId } from '../../../src/protocol/identifiers.js';
import { ROOM_VERSIONS, getRoomVersion } from '../../../src/protocol/room-versions.js';

const v = (id: string) => getRoomVersion(id)!;
const sha256b64 = (s: string) => createHash('sha256').update(s, 'utf8').digest('base64').replace(/=+$/, '');

function ev(depth: number, extra: Partial<Pdu> = {}): Pdu {
  return {
    type: 'm.room.message',
    room_id: '!room:example.org',
    sender: '@alice:example.org',
    origin_server_ts: 1700000000000,
    content: { msgtype: 'm.text', body: `message ${depth}` },
    prev_events: ['$prev'],
    auth_events: ['$a1', '$a2'],
    depth,
    hashes: { sha256: 'x' },
    signatures: { 'example.org': { 'ed25519:1': 'sig' } },
    unsigned: { age: 1 },
    ...extra,
  } as Pdu;
}

describe('content hash', () => {
  it('matches sha256 of the hand-written canonical JSON', () => {
    const e = { type: 'X', content: { b: 1, a: 'é' }, depth: 1, hashes: { sha256: 'q' }, signatures: {}, unsigned: { z: 1 } };
    expect(computeContentHash(e)).toBe(sha256b64('{"content":{"a":"é","b":1},"depth":1,"type":"X"}'));
  });
  it('addContentHash sets hashes.sha256 and checkContentHash accepts it', () => {
    const e = addContentHash(ev(1));
    expect(e.hashes).toEqual({ sha256: computeContentHash(ev(1)) });
    expect(checkContentHash(e)).toBe(true);
  });
  it.each([
    ['changed body', (e: Pdu) => ({ ...e, content: { ...e.content, body: 'changed' } })],
    ['changed depth', (e: Pdu) => ({ ...e, depth: 99 })],
    ['extra key', (e: Pdu) => ({ ...e, extra: 1 })],
    ['missing hashes', (e: Pdu) => ({ ...e, hashes: undefined as unknown as Pdu['hashes'] })],
    ['non-string hash', (e: Pdu) => ({ ...e, hashes: { sha256: 5 } as unknown as Pdu['hashes'] })],
    ['malformed hash', (e: Pdu) => ({ ...e, hashes: { sha256: '!!' } })],
    ['truncated hash', (e: Pdu) => ({ ...e, hashes: { sha256: e.hashes.sha256.slice(0, 40) } })],
  ])('mismatch detected: %s', (_n, mutate) => {
    expect(checkContentHash(mutate(addContentHash(ev(1))))).toBe(false);
  });
  it.each([
    ['unsigned', (e: Pdu) => ({ ...e, unsigned: { age: 1234 } })],
    ['signatures', (e: Pdu) => ({ ...e, signatures: {} })],
    ['padded hash', (e: Pdu) => ({ ...e, hashes: { sha256: e.hashes.sha256 + '=' } })],
  ])('not affected by %s', (_n, mutate) => {
    expect(checkContentHash(mutate(addContentHash(ev(1))))).toBe(true);
  });
});

describe('reference hash', () => {
  it('is sha256 of the redacted event without signatures/unsigned', () => {
    const e = ev(7);
    const expected =
      '{"auth_events":["$a1","$a2"],"content":{},"depth":7,"hashes":{"sha256":"x"},"origin_server_ts":1700000000000,' +
      '"prev_events":["$prev"],"room_id":"!room:example.org","sender":"@alice:example.org","type":"m.room.message"}';
    expect(Buffer.from(computeReferenceHash(e, v('10'))).toString('base64').replace(/=+$/, '')).toBe(sha256b64(expected));
  });
  it('ignores redactable content, signatures and unsigned', () => {
    const a = computeReferenceHash(ev(7), v('10'));
    const b = computeReferenceHash({ ...ev(7), content: { other: 1 }, signatures: {}, unsigned: { x: 1 } }, v('10'));
    expect(b).toEqual(a);
  });
  it('ignores a top-level age_ts', () => {
    expect(computeReferenceHash({ ...ev(7), age_ts: 5 }, v('1'))).toEqual(computeReferenceHash(ev(7), v('1')));
  });
  it('covers the hashes', () => {
    expect(computeReferenceHash({ ...ev(7), hashes: { sha256: 'y' } }, v('10'))).not.toEqual(computeReferenceHash(ev(7), v('10')));
  });
  it('origin counts before v11 but not after', () => {
    expect(computeReferenceHash({ ...ev(7), origin: 'a' }, v('10'))).not.toEqual(computeReferenceHash(ev(7), v('10')));
    expect(computeReferenceHash({ ...ev(7), origin: 'a' }, v('11'))).toEqual(computeReferenceHash(ev(7), v('11')));
  });
});

describe('computeEventId', () => {
  // Find (deterministically) events whose hash encodes with + or / in standard base64.
  const samples = Array.from({ length: 64 }, (_, i) => ev(i + 1));
  const v3ids = samples.map((e) => computeEventId(e, v('3')));

  it.each(['1', '2'])('v%s returns the carried event_id', (id) => {
    expect(computeEventId(ev(1, { event_id: '$abc:example.org' }), v(id))).toBe('$abc:example.org');
  });
  it.each(['1', '2'])('v%s throws without event_id', (id) => {
    expect(() => computeEventId(ev(1), v(id))).toThrow(EventIdError);
  });
  it('v3 uses the standard alphabet', () => {
    for (const id of v3ids) expect(id).toMatch(/^\$[A-Za-z0-9+/]{43}$/);
    expect(v3ids.some((id) => /[+/]/.test(id))).toBe(true);
  });
  it.each(['4', '5', '6', '7', '8', '9', '10', '11', '12'])('v%s uses the URL-safe alphabet with the same hash as v3', (rid) => {
    samples.forEach((e, i) => {
      const id = computeEventId(e, v(rid));
      expect(id).toMatch(/^\$[A-Za-z0-9_-]{43}$/);
      if (rid !== '11' && rid !== '12') expect(id).toBe(v3ids[i]!.replace(/\+/g, '-').replace(/\//g, '_'));
    });
  });
  it('v4 ID decodes to the reference hash', () => {
    const e = ev(3);
    expect([...decodeBase64(computeEventId(e, v('4')).slice(1))]).toEqual([...computeReferenceHash(e, v('4'))]);
  });
  it('a carried event_id does not change a v3+ event ID', () => {
    expect(computeEventId(ev(5, { event_id: '$other' }), v('10'))).toBe(computeEventId(ev(5), v('10')));
  });
  it('parses as an event ID of the right kind', () => {
    expect(parseEventId(computeEventId(ev(2), v('10'))).kind).toBe('urlsafe');
  });
  it('withEventId adds event_id', () => {
    const e = withEventId(ev(2), v('10'));
    expect(e.event_id).toBe(computeEventId(ev(2), v('10')));
    expect(withEventId(ev(2, { event_id: '$l:s' }), v('1')).event_id).toBe('$l:s');
  });
  it('every version yields an ID', () => {
    for (const rv of ROOM_VERSIONS.values()) {
      expect(computeEventId(ev(1, { event_id: '$x:y' }), rv)).toMatch(/^\$/);
    }
  });
});

describe('generateLegacyEventId', () => {
  it('formats $local:server', () => expect(generateLegacyEventId('abc123', 'example.org')).toBe('$abc123:example.org'));
  it.each([[''], ['a:b']])('rejects localpart %j', (lp) => expect(() => generateLegacyEventId(lp, 'example.org')).toThrow(EventIdError));
  it('rejects over-long IDs', () => expect(() => generateLegacyEventId('a'.repeat(250), 'example.org')).toThrow(EventIdError));
});

describe('v12 room ID from the create event', () => {
  const create = {
    type: 'm.room.create',
    state_key: '',
    sender: '@creator:example.org',
    origin_server_ts: 1700000000000,
    content: { room_version: '12', additional_creators: ['@co:example.org'] },
    prev_events: [],
    auth_events: [],
    depth: 1,
    hashes: { sha256: 'h' },
    signatures: { 'example.org': { 'ed25519:1': 's' } },
    unsigned: { age: 1 },
  } as unknown as Pdu;

  it('is ! + URL-safe sha256 of the redacted create event', () => {
    const canonical =
      '{"auth_events":[],"content":{"additional_creators":["@co:example.org"],"room_version":"12"},"depth":1,' +
      '"hashes":{"sha256":"h"},"origin_server_ts":1700000000000,"prev_events":[],"sender":"@creator:example.org","state_key":"","type":"m.room.create"}';
    const expected = '!' + sha256b64(canonical).replace(/\+/g, '-').replace(/\//g, '_');
    expect(roomIdFromCreateEvent(create, v('12'))).toBe(expected);
  });
  it('equals the create event ID with ! instead of $', () => {
    expect(roomIdFromCreateEvent(create, v('12')).slice(1)).toBe(computeEventId(create, v('12')).slice(1));
  });
  it('parses as a hash room ID', () => {
    expect(parseRoomId(roomIdFromCreateEvent(create, v('12')))).toMatchObject({ kind: 'hash' });
  });
  it('is refused for versions with server room IDs', () => {
    expect(() => roomIdFromCreateEvent(create, v('11'))).toThrow(EventIdError);
  });
  it('is refused for other event types', () => {
    expect(() => roomIdFromCreateEvent({ ...create, type: 'm.room.message' }, v('12'))).toThrow(EventIdError);
  });
});
