import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { JsonObject } from '../../../src/protocol/json.js';
import { childLinks, orderChildren, parseFederationHierarchy, validOrder } from '../../../src/services/spaces/hierarchy.js';

const child = (roomId: string, ts: number, content: JsonObject): JsonObject => ({
  type: 'm.space.child',
  state_key: roomId,
  sender: '@a:example.org',
  origin_server_ts: ts,
  content,
});

describe('space child ordering', () => {
  it('orders the specification example', () => {
    const links = childLinks(
      [
        child('!b:example.org', 1640341000000, { order: ' ', via: ['example.org'] }),
        child('!a:example.org', 1640141000000, { order: 'aaaa', via: ['example.org'] }),
        child('!c:example.org', 1640841000000, { order: 'first', via: ['example.org'] }),
        child('!e:example.org', 1640641000000, { via: ['example.org'] }),
        child('!d:example.org', 1640741000000, { via: ['example.org'] }),
      ],
      false,
    );
    expect(links.map((l) => l.roomId)).toEqual(['!b:example.org', '!a:example.org', '!c:example.org', '!e:example.org', '!d:example.org']);
  });

  it('breaks ties on order by timestamp, then by room ID; invalid orders count as absent', () => {
    const links = childLinks(
      [
        child('!z:x', 5, { order: 'same', via: ['x'] }),
        child('!y:x', 5, { order: 'same', via: ['x'] }),
        child('!w:x', 1, { order: 'same', via: ['x'] }),
        child('!v:x', 0, { order: 'tab\there', via: ['x'] }),
        child('!u:x', 0, { order: 'x'.repeat(51), via: ['x'] }),
      ],
      false,
    );
    expect(links.map((l) => l.roomId)).toEqual(['!w:x', '!y:x', '!z:x', '!u:x', '!v:x']);
    expect(validOrder('~')).toBe(true);
    expect(validOrder('é')).toBe(false);
  });

  it('drops children without via, non-room state keys, and unsuggested ones when asked', () => {
    const events = [
      child('!a:x', 1, { via: [] }),
      child('!b:x', 2, {}),
      child('#alias:x', 3, { via: ['x'] }),
      child('!c:x', 4, { via: ['x'], suggested: true }),
      child('!d:x', 5, { via: ['x', ''] }),
    ];
    expect(childLinks(events, false).map((l) => l.roomId)).toEqual(['!c:x', '!d:x']);
    expect(childLinks(events, true).map((l) => l.roomId)).toEqual(['!c:x']);
    expect(childLinks(events, false)[1]!.via).toEqual(['x']);
  });

  it('is a total order: sorting a shuffled list gives the same result', () => {
    const arb = fc.array(
      fc.record({ roomId: fc.string({ minLength: 1, maxLength: 4 }).map((s) => `!${s}:x`), order: fc.option(fc.string({ maxLength: 3 }), { nil: undefined }), ts: fc.integer({ min: 0, max: 3 }) }),
      { maxLength: 12 },
    );
    fc.assert(
      fc.property(arb, (items) => {
        const uniq = [...new Map(items.map((i) => [i.roomId, i])).values()];
        const once = orderChildren(uniq).map((i) => i.roomId);
        const again = orderChildren([...uniq].reverse()).map((i) => i.roomId);
        expect(again).toEqual(once);
      }),
    );
  });
});

describe('federation hierarchy responses', () => {
  it('keeps only well-formed parts and refuses one for another room', () => {
    const raw = {
      room: { room_id: '!s:x', name: 'S', room_type: 'm.space', num_joined_members: 3, children_state: [child('!a:x', 1, { via: ['x'] }), { type: 'm.room.name' }], extra: 1 },
      children: [{ room_id: '!a:x', join_rule: 'public', world_readable: false }, { room_id: 42 }, 'junk'],
      inaccessible_children: ['!b:x', 7],
    };
    const parsed = parseFederationHierarchy(raw, '!s:x')!;
    expect(parsed.room['name']).toBe('S');
    expect(parsed.room['extra']).toBeUndefined();
    expect((parsed.room['children_state'] as unknown[]).length).toBe(1);
    expect(parsed.children.map((c) => c['room_id'])).toEqual(['!a:x']);
    expect(parsed.inaccessible_children).toEqual(['!b:x']);
    expect(parseFederationHierarchy(raw, '!other:x')).toBeUndefined();
    expect(parseFederationHierarchy('nope', '!s:x')).toBeUndefined();
  });
});
