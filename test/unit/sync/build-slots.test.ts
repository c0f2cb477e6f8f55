import { describe, expect, it } from 'vitest';
import { BuildSlots } from '../../../src/services/sync/build-slots.js';

describe('BuildSlots', () => {
  it('runs at most `limit` at once, the rest in arrival order, and frees slots on failure', async () => {
    const slots = new BuildSlots(2);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const gates: Array<() => void> = [];
    const job = (i: number, fail = false) =>
      slots.run(async () => {
        running++;
        most = Math.max(most, running);
        order.push(i);
        await new Promise<void>((resolve) => gates.push(resolve));
        running--;
        if (fail) throw new Error(`job ${i} failed`);
        return i;
      });
    const results = [job(0, true), job(1), job(2), job(3), job(4)].map((p) => p.then((v) => ({ v }), (e: Error) => ({ e: e.message })));
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([0, 1]);
    expect(slots.queued).toBe(3);
    // Finish the running ones one at a time until everything has run.
    for (let i = 0; i < 5; i++) {
      gates.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    expect(await Promise.all(results)).toEqual([{ e: 'job 0 failed' }, { v: 1 }, { v: 2 }, { v: 3 }, { v: 4 }]);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(most).toBe(2);
    expect(slots.queued).toBe(0);
    // With the slots free again, a new build starts at once.
    let started = false;
    const p = slots.run(async () => {
      started = true;
    });
    expect(started).toBe(true);
    await p;
  });
});
