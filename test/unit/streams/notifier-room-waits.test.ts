import { describe, expect, it } from 'vitest';
import { Notifier, type StreamChange } from '../../../src/streams/notifier.js';

const event = (roomId: string): StreamChange => ({ stream: 'events', position: 1, roomId, eventId: '$e', type: 'm.room.message', sender: '@s:x' });

describe('Notifier room waits', () => {
  it('wake on an event of their room, whoever the event wakes, and on nothing else', async () => {
    const n = new Notifier();
    const settled = (w: { woken: Promise<boolean> }) => Promise.race([w.woken, new Promise((r) => setTimeout(() => r('waiting'), 20))]);
    const a = n.waitForRoom('!a:x', 10_000);
    const b = n.waitForRoom('!b:x', 10_000);
    // Other streams of the room, and events of other rooms, leave the wait alone.
    n.publish({ stream: 'typing', position: 1, roomId: '!a:x' }, ['@m:x']);
    n.publish(event('!c:x'), ['@m:x']);
    expect(await settled(a)).toBe('waiting');
    // Nobody is named as woken (the reader is not a member): the room wait still ends.
    n.publish(event('!a:x'), []);
    expect(await a.woken).toBe(true);
    expect(await settled(b)).toBe('waiting');
    // User waits are not room waits.
    expect(n.waiting).toBe(0);
    b.cancel();
    expect(await b.woken).toBe(false);
  });

  it('end on the timeout and when the notifier closes', async () => {
    const n = new Notifier();
    expect(await n.waitForRoom('!a:x', 20).woken).toBe(false);
    const w = n.waitForRoom('!a:x', 10_000);
    n.close();
    expect(await w.woken).toBe(true);
    expect(await n.waitForRoom('!a:x', 10_000).woken).toBe(false);
  });
});
