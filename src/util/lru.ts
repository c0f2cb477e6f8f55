/**
 * A bounded least-recently-used cache (Map keeps insertion order; a hit re-inserts).
 *
 * A hit on an entry inserted (or re-inserted) among the latest quarter of the capacity's
 * insertions is not moved again: re-inserting costs a Map delete and set, and such an entry is
 * far from being evicted. So every entry used within the latest three quarters of the
 * capacity's insertions is kept (all of them exactly so for capacities below 4).
 */
export class LruCache<K, V> {
  private readonly map = new Map<K, { value: V; at: number }>();
  /** Insertions so far (an entry's `at` is the count when it was last put at the end). */
  private tick = 0;
  private readonly fresh: number;

  constructor(private readonly capacity: number) {
    if (capacity < 1) throw new RangeError('LRU capacity must be at least 1');
    this.fresh = capacity >> 2;
  }

  get(key: K): V | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (this.tick - e.at > this.fresh) {
      this.map.delete(key);
      e.at = ++this.tick;
      this.map.set(key, e);
    }
    return e.value;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, { value, at: ++this.tick });
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}
