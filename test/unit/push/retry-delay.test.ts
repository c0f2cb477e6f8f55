import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { retryDelay } from '../../../src/services/push/sender.js';

describe('push retry delay', () => {
  it('doubles from the first delay to the maximum', () => {
    const top = (n: number) => retryDelay(n, 1000, 600_000, 0.999999);
    expect([0, 1, 2, 3].map(top)).toEqual([1000, 2000, 4000, 8000]);
    expect(top(20)).toBe(600_000);
    expect(top(10_000)).toBe(600_000);
  });

  it('with jitter, stays between half and all of the un-jittered delay', () => {
    fc.assert(
      fc.property(fc.nat(200), fc.integer({ min: 10, max: 100_000 }), fc.integer({ min: 10, max: 10_000_000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (n, initial, max, r) => {
        const base = Math.min(max, initial * 2 ** Math.min(n, 40));
        const d = retryDelay(n, initial, max, r);
        return d >= Math.floor(base / 2) && d <= base && Number.isFinite(d);
      }),
    );
  });
});
