import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../_util/server.js';
import { TestClient } from './_client.js';
import { startRestartable, type RestartableServer } from './_restartable.js';

const C = '/_matrix/client/v3';
const LAZY = encodeURIComponent(JSON.stringify({ room: { state: { lazy_load_members: true }, timeline: { limit: 10 } } }));

function timeline(body: any, roomId: string): any[] {
  return body.rooms.join[roomId]?.timeline.events ?? [];
}

/** Long-polls from `since` until a response's timeline of the room has events (other streams may wake it first). */
async function wokenWithEvents(c: TestClient, since: string, roomId: string, start?: () => Promise<unknown>): Promise<any> {
  let started = false;
  for (let i = 0; i < 20; i++) {
    const poll = c.get(`${C}/sync?filter=${LAZY}&since=${since}&timeout=10000`);
    if (!started && start) {
      started = true;
      await new Promise((r) => setTimeout(r, 50));
      await start();
    }
    const body = (await poll).body;
    if (timeline(body, roomId).length) return body;
    // Nothing of the room yet: lazy members recorded as sent carry over with the token.
    since = body.next_batch;
  }
  throw new Error('no events came');
}

function stateMembers(body: any, roomId: string): string[] {
  return (body.rooms.join[roomId]?.state.events ?? []).filter((e: any) => e.type === 'm.room.member').map((e: any) => e.state_key);
}

/**
 * Incremental /sync of a room's latest events (served from what is kept in memory of them):
 * a redaction shows in events already sent, the sender's transaction ID only to its device,
 * and the same answers after a restart (nothing kept).
 */
describe.each<Engine>(['sqlite', 'postgres'])('incremental /sync of new events on %s', (engine) => {
  let t: RestartableServer;
  beforeAll(async () => {
    t = await startRestartable(engine);
  });
  afterAll(() => t?.close());

  it('shows redactions, transaction IDs per device and lazy members, before and after a restart', async () => {
    const alice = new TestClient(t.url);
    const bob = new TestClient(t.url);
    await alice.register('alice');
    await bob.register('bob');
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const rid = encodeURIComponent(roomId);
    await bob.post(`${C}/rooms/${rid}/join`, {});
    const bobStart = (await bob.get(`${C}/sync?filter=${LAZY}`)).body.next_batch as string;
    const aliceStart = (await alice.get(`${C}/sync?filter=${LAZY}`)).body.next_batch as string;

    // bob long-polls; alice's message wakes him.
    let sent: any;
    const woken = await wokenWithEvents(bob, bobStart, roomId, async () => {
      sent = await alice.put(`${C}/rooms/${rid}/send/m.room.message/m1`, { msgtype: 'm.text', body: 'secret' });
    });
    const [m1] = timeline(woken, roomId);
    expect(m1).toMatchObject({ event_id: sent.body.event_id, sender: '@alice:localhost', content: { body: 'secret' } });
    expect(m1.room_id).toBeUndefined();
    expect(m1.unsigned.transaction_id).toBeUndefined();
    // alice's member event came with bob's initial sync (she sent the room's first events).
    expect(stateMembers(woken, roomId)).toEqual([]);

    // alice sees her own transaction ID; a second device of hers does not.
    const mine = timeline((await alice.get(`${C}/sync?filter=${LAZY}&since=${aliceStart}&timeout=0`)).body, roomId);
    expect(mine.find((e: any) => e.event_id === m1.event_id).unsigned.transaction_id).toBe('m1');
    const other = new TestClient(t.url);
    other.token = (await other.login('alice')).access_token;
    const otherView = timeline((await other.get(`${C}/sync?filter=${LAZY}&since=${aliceStart}&timeout=0`)).body, roomId);
    expect(otherView.find((e: any) => e.event_id === m1.event_id).unsigned.transaction_id).toBeUndefined();

    // Redacted: the same window asked again shows it redacted, with its redaction.
    const red = await alice.put(`${C}/rooms/${rid}/redact/${encodeURIComponent(m1.event_id)}/r1`, { reason: 'oops' });
    const again = async () => {
      const body = (await bob.get(`${C}/sync?filter=${LAZY}&since=${bobStart}&timeout=0`)).body;
      const events = timeline(body, roomId);
      const redacted = events.find((e: any) => e.event_id === m1.event_id);
      expect(redacted.content).toEqual({});
      expect(redacted.unsigned.redacted_because.event_id).toBe(red.body.event_id);
      expect(events.at(-1).event_id).toBe(red.body.event_id);
      return body;
    };
    expect(stateMembers(await again(), roomId)).toEqual([]);
    // The newest window only: the redaction alone.
    const after = timeline((await bob.get(`${C}/sync?filter=${LAZY}&since=${woken.next_batch}&timeout=0`)).body, roomId);
    expect(after.map((e: any) => e.event_id)).toEqual([red.body.event_id]);

    // After a restart (nothing in memory) the answers are the same; lazy members (what was sent
    // to the device is kept in memory only) are sent again.
    await t.restart();
    const body = await again();
    expect(stateMembers(body, roomId)).toEqual(['@alice:localhost']);
    const woken2 = await wokenWithEvents(bob, body.next_batch, roomId, () => alice.put(`${C}/rooms/${rid}/send/m.room.message/m2`, { msgtype: 'm.text', body: 'later' }));
    expect(timeline(woken2, roomId).map((e: any) => e.content.body)).toEqual(['later']);
    // alice's member event reached this device with the previous response.
    expect(stateMembers(woken2, roomId)).toEqual([]);
  });
});
