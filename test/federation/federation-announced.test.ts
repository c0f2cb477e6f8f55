import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient } from '../client/_client.js';
import { bodies, eventually, roomMessages, type Federation, type FedMember, twoServers } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';
import { withholdEventAnnouncements } from '../_util/withhold-announcements.js';

const enc = encodeURIComponent;

/**
 * The federation sender reads the event stream only up to what has been announced: a commit is
 * announced once it is on disk, so an event is never sent to another server before it is
 * durable here. The window between commit and announcement is held open by withholding the
 * announcements of A's notifier.
 */
describe.each<Engine>(['sqlite', 'postgres'])('federation sender reads announced events only, on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let alice: TestClient;
  let bob: TestClient;
  let roomId: string;

  beforeAll(async () => {
    ({ fed, a, alice, bob } = await twoServers(engine));
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    roomId = created.body.room_id;
    const joined = await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=a.test`, {});
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await fed?.close();
  });

  it('an event committed but not announced is not sent; it is once announced', async () => {
    const ctx = a.server!.ctx;
    const withheld = withholdEventAnnouncements(ctx.notifier);
    const send = async (txn: string, body: string) => {
      const res = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${txn}`, { msgtype: 'm.text', body });
      expect(res.status).toBe(200);
      return res.body.event_id as string;
    };
    try {
      const first = await send('held1', 'announced first');
      const second = await send('held2', 'announced later');
      expect(withheld.held.map((h) => h.change.eventId)).toEqual([first, second]);
      // Only the first is announced: the sender wakes, and must not read the second (committed,
      // but as far as the sender knows not yet on disk).
      withheld.release();
      await eventually(async () => bodies(await roomMessages(bob, roomId)).includes('announced first'), 20_000, 'B to receive the first event');
      await ctx.federationRooms.sender.flushStream();
      expect(await ctx.federationRooms.queue.countQueued('b.test')).toBe(0);
      expect(bodies(await roomMessages(bob, roomId))).not.toContain('announced later');
    } finally {
      withheld.restore();
    }
    await eventually(async () => bodies(await roomMessages(bob, roomId)).includes('announced later'), 20_000, 'B to receive the second event once announced');
  });
});
