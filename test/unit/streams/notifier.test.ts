import { describe, expect, it } from 'vitest';
import { ClientGone, Notifier, type StreamChange } from '../../../src/streams/notifier.js';

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

describe('Notifier announcements', () => {
  it('hand listeners the users woken for a change, as a list', () => {
    const n = new Notifier();
    const seen: Array<[StreamChange, readonly string[]]> = [];
    n.on('change', (c, woken) => seen.push([c, woken]));
    n.publish({ stream: 'to_device', position: 3, userId: '@a:x' }, new Set(['@a:x', '@b:x']));
    expect(seen).toEqual([[{ stream: 'to_device', position: 3, userId: '@a:x' }, ['@a:x', '@b:x']]]);
  });
});

describe('ClientGone', () => {
  it('ends a wait when raised, once, and not after its listener was removed', async () => {
    const n = new Notifier();
    const gone = new ClientGone();
    const w = n.waitFor(['@a:x'], 10_000, gone);
    gone.abort();
    expect(gone.aborted).toBe(true);
    expect(await w.woken).toBe(false);
    expect(n.waiting).toBe(0);
    gone.abort();
    // Already raised: a wait does not start.
    expect(await n.waitFor(['@a:x'], 10_000, gone).woken).toBe(false);

    const other = new ClientGone();
    const first = n.waitFor(['@a:x'], 10_000, other);
    first.cancel();
    expect(await first.woken).toBe(false);
    // The cancelled wait's listener is gone: a second wait may listen.
    const second = n.waitFor(['@a:x'], 10_000, other);
    n.wake(['@a:x']);
    expect(await second.woken).toBe(true);
    other.abort();
    expect(other.aborted).toBe(true);
  });
});
