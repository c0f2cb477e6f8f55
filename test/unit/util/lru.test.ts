import { describe, expect, it } from 'vitest';
import { LruCache } from '../../../src/util/lru.js';

describe('LruCache', () => {
  it('evicts the least recently used entry (small capacities exactly)', () => {
    const c = new LruCache<string, number>(3);
    c.set('a', 1);
    c.set('b', 2);
    c.set('c', 3);
    expect(c.get('a')).toBe(1);
    c.set('d', 4);
    expect(c.get('b')).toBeUndefined();
    expect([c.get('a'), c.get('c'), c.get('d')]).toEqual([1, 3, 4]);
    expect(c.size).toBe(3);
    c.delete('c');
    expect(c.get('c')).toBeUndefined();
    c.set('a', 10);
    expect(c.get('a')).toBe(10);
  });

  it('keeps every entry used within the latest three quarters of its capacity in insertions', () => {
    const cap = 100;
    const c = new LruCache<number, number>(cap);
    for (let i = 0; i < cap; i++) c.set(i, i);
    // Key 0 is used while others come in; it stays however many there are.
    for (let i = cap; i < 10 * cap; i++) {
      expect(c.get(0)).toBe(0);
      c.set(i, i);
      expect(c.size).toBe(cap);
    }
    expect(c.get(0)).toBe(0);
    // An entry left unused goes once a capacity's worth of newer ones came in.
    c.set(-1, -1);
    for (let i = 0; i < cap; i++) c.set(20 * cap + i, i);
    expect(c.get(-1)).toBeUndefined();
  });
});
