import { describe, expect, it } from 'vitest';
import { ConnectionStore, type ConnectionState } from '../../../src/services/sliding-sync/connections.js';
import { zeroPositions } from '../../../src/services/sync/token.js';

const state = (events: number): ConnectionState => ({ positions: { ...zeroPositions(), events }, rooms: new Map() });

describe('sliding sync connection store', () => {
  it('positions belong to one user, device and connection', () => {
    const s = new ConnectionStore();
    const pos = s.put('@a:x', 'D', '', state(1), undefined);
    expect(s.get('@a:x', 'D', '', pos).positions.events).toBe(1);
    for (const [u, d, c] of [['@b:x', 'D', ''], ['@a:x', 'E', ''], ['@a:x', 'D', 'other']] as const) {
      expect(() => s.get(u, d, c, pos)).toThrow(expect.objectContaining({ errcode: 'M_UNKNOWN_POS', status: 400 }));
    }
    expect(() => s.get('@a:x', 'D', '', 'nonsense')).toThrow(expect.objectContaining({ errcode: 'M_UNKNOWN_POS' }));
  });

  it('keeps the position a client used while it retries, and drops the ones before it', () => {
    const s = new ConnectionStore();
    const p1 = s.put('@a:x', 'D', '', state(1), undefined);
    s.get('@a:x', 'D', '', p1);
    // Retries from p1 issue several new positions; p1 stays usable.
    const retries = [1, 2, 3, 4].map((n) => s.put('@a:x', 'D', '', state(1 + n), p1));
    expect(s.get('@a:x', 'D', '', p1).positions.events).toBe(1);
    const last = retries.at(-1)!;
    expect(s.get('@a:x', 'D', '', last).positions.events).toBe(5);
    // Once the client moved on to `last`, p1 is gone.
    expect(() => s.get('@a:x', 'D', '', p1)).toThrow(expect.objectContaining({ errcode: 'M_UNKNOWN_POS' }));
    // A request without pos starts the connection afresh.
    s.put('@a:x', 'D', '', state(9), undefined);
    expect(() => s.get('@a:x', 'D', '', last)).toThrow(expect.objectContaining({ errcode: 'M_UNKNOWN_POS' }));
  });

  it('a device holds at most ten connections: the oldest is forgotten', () => {
    const s = new ConnectionStore();
    const first = s.put('@a:x', 'D', 'c0', state(0), undefined);
    for (let i = 1; i <= 10; i++) s.put('@a:x', 'D', `c${i}`, state(i), undefined);
    expect(() => s.get('@a:x', 'D', 'c0', first)).toThrow(expect.objectContaining({ errcode: 'M_UNKNOWN_POS' }));
    const other = s.put('@a:x', 'E', 'c0', state(0), undefined);
    expect(s.get('@a:x', 'E', 'c0', other).positions.events).toBe(0);
  });
});
