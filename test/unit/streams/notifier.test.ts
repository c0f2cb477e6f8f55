import { describe, expect, it } from 'vitest';
import { Notifier } from '../../../src/streams/notifier.js';

describe('Notifier waits', () => {
  it('wakes a waiter of a notified user, and only those', async () => {
    const n = new Notifier();
    const a = n.waitFor(['@a:x'], 10_000);
    const b = n.waitFor(['@b:x', '@c:x'], 10_000);
    expect(n.waiting).toBe(3);
    n.wake(['@c:x']);
    expect(await b.woken).toBe(true);
    expect(n.waiting).toBe(1);
    a.cancel();
    expect(await a.woken).toBe(false);
    expect(n.waiting).toBe(0);
  });

  it('ends on cancel, on the signal, or on the timeout, without a later wake changing the answer', async () => {
    const n = new Notifier();
    const cancelled = n.waitFor(['@a:x'], 10_000);
    cancelled.cancel();
    n.wake(['@a:x']);
    expect(await cancelled.woken).toBe(false);

    const ac = new AbortController();
    const aborted = n.waitFor(['@a:x'], 10_000, ac.signal);
    ac.abort(new Error('gone'));
    expect(await aborted.woken).toBe(false);
    aborted.cancel();

    const timed = n.waitFor(['@a:x'], 20);
    expect(await timed.woken).toBe(false);
    expect(n.waiting).toBe(0);

    // An already aborted signal or a closed notifier: no wait at all.
    expect(await n.waitFor(['@a:x'], 10_000, ac.signal).woken).toBe(false);
    n.close();
    expect(await n.wait(['@a:x'], 10_000)).toBe(false);
    expect(n.waiting).toBe(0);
  });
});
