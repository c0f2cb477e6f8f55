import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LastPositions, StreamActivity } from '../../../src/services/sync/activity.js';

describe('LastPositions', () => {
  it('never answers below the true last position of a key, however small its capacity', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 50 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 1000 })), { maxLength: 60 }),
        (capacity, start, notes) => {
          const lp = new LastPositions<number>(capacity, start);
          const truth = new Map<number, number>();
          for (const [key, pos] of notes) {
            lp.note(key, start + pos);
            truth.set(key, Math.max(truth.get(key) ?? 0, start + pos));
          }
          for (let k = 0; k < 10; k++) expect(lp.last(k)).toBeGreaterThanOrEqual(truth.get(k) ?? start);
        },
      ),
    );
  });

  it('is exact for the keys it holds when positions arrive in increasing order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 60 }), (capacity, keys) => {
        const lp = new LastPositions<number>(capacity, 0);
        const truth = new Map<number, number>();
        keys.forEach((key, i) => {
          lp.note(key, i + 1);
          truth.set(key, i + 1);
        });
        for (let k = 0; k < 10; k++) {
          if (lp.known(k)) expect(lp.last(k)).toBe(truth.get(k));
          else expect(lp.last(k)).toBeGreaterThanOrEqual(truth.get(k) ?? 0);
        }
      }),
    );
  });

  it('answers exactly for keys it holds and with the start position for keys never seen', () => {
    const lp = new LastPositions<string>(10, 7);
    lp.note('a', 9);
    lp.note('a', 8);
    expect(lp.last('a')).toBe(9);
    expect(lp.known('a')).toBe(true);
    expect(lp.last('b')).toBe(7);
    expect(lp.known('b')).toBe(false);
  });
});

describe('StreamActivity', () => {
  it('follows room events, memberships by room and by member, to-device and account data per user', () => {
    const a = new StreamActivity({ events: 10, to_device: 3, account_data: 4 });
    a.observe({ stream: 'events', position: 11, roomId: '!r', eventId: '$1', type: 'm.room.message', sender: '@s:x' });
    a.observe({ stream: 'events', position: 12, roomId: '!r', eventId: '$2', type: 'm.room.member', stateKey: '@m:x', sender: '@s:x' });
    a.observe({ stream: 'to_device', position: 5, userId: '@m:x' });
    a.observe({ stream: 'account_data', position: 6, userId: '@s:x' });
    expect(a.roomEvents.last('!r')).toBe(12);
    expect(a.roomMemberships.last('!r')).toBe(12);
    expect(a.userMemberships.last('@m:x')).toBe(12);
    expect(a.userMemberships.last('@s:x')).toBe(10);
    expect(a.roomEvents.last('!other')).toBe(10);
    expect(a.toDevice.last('@m:x')).toBe(5);
    expect(a.toDevice.last('@s:x')).toBe(3);
    expect(a.accountData.last('@s:x')).toBe(6);
    expect(a.accountData.last('@m:x')).toBe(4);
  });

  it('keeps per stream the last position each user was woken at (streams left out of the start are never quiet)', () => {
    const a = new StreamActivity({ events: 10, to_device: 3, account_data: 4, receipts: 2 });
    a.observe({ stream: 'events', position: 11, roomId: '!r', eventId: '$1', type: 'm.room.message', sender: '@s:x' }, ['@a:x', '@b:x']);
    a.observe({ stream: 'receipts', position: 5, roomId: '!r', userId: '@a:x' }, ['@a:x']);
    a.observe({ stream: 'presence', position: 9, userId: '@a:x' }, ['@a:x']);
    expect(a.woken.events.last('@a:x')).toBe(11);
    expect(a.woken.events.last('@b:x')).toBe(11);
    expect(a.woken.events.last('@c:x')).toBe(10);
    expect(a.woken.receipts.last('@a:x')).toBe(5);
    expect(a.woken.receipts.last('@b:x')).toBe(2);
    expect(a.woken.account_data.last('@a:x')).toBe(4);
    expect(a.woken.typing.last('@a:x')).toBe(Number.POSITIVE_INFINITY);
  });
});
