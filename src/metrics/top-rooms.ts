/**
 * The busiest rooms in bounded memory (the "space-saving" heavy-hitters algorithm): at most
 * `capacity` rooms are tracked; a new room replaces the least busy one and inherits its count,
 * so any room with more than total/capacity messages is always present, and counts are never
 * under-estimated. With 10,000 rooms the memory and the label set stay bounded.
 */
export class TopRooms {
  private readonly counts = new Map<string, number>();

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError('capacity must be at least 1');
  }

  get size(): number {
    return this.counts.size;
  }

  add(roomId: string, n = 1): void {
    const have = this.counts.get(roomId);
    if (have !== undefined) {
      this.counts.set(roomId, have + n);
      return;
    }
    if (this.counts.size < this.capacity) {
      this.counts.set(roomId, n);
      return;
    }
    let minKey: string | undefined;
    let min = Infinity;
    for (const [k, v] of this.counts) {
      if (v < min) {
        min = v;
        minKey = k;
      }
    }
    this.counts.delete(minKey!);
    this.counts.set(roomId, min + n);
  }

  /** The `n` busiest rooms, busiest first (ties by room ID, for a stable order). */
  top(n: number): Array<[string, number]> {
    if (n <= 0) return [];
    const out: Array<[string, number]> = [];
    for (const e of this.counts) {
      if (out.length < n) {
        out.push(e);
        if (out.length === n) out.sort(byCount);
        continue;
      }
      if (byCount(e, out[n - 1]!) < 0) {
        out[n - 1] = e;
        out.sort(byCount);
      }
    }
    return out.length < n ? out.sort(byCount) : out;
  }
}

function byCount(a: [string, number], b: [string, number]): number {
  return b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
}
