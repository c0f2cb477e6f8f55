import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const C = '/_matrix/client/v3';
const filterOf = (f: object) => encodeURIComponent(JSON.stringify(f));
const LAZY = filterOf({ room: { state: { lazy_load_members: true }, timeline: { limit: 2 } } });
const REDUNDANT = filterOf({ room: { state: { lazy_load_members: true, include_redundant_members: true }, timeline: { limit: 2 } } });

/** Member events in a room's `state` section of a sync response: state_key → event ID. */
function stateMembers(body: any, roomId: string): Map<string, string> {
  const events = body.rooms.join[roomId]?.state.events ?? [];
  return new Map(events.filter((e: any) => e.type === 'm.room.member').map((e: any) => [e.state_key, e.event_id]));
}

function timelineBodies(body: any, roomId: string): string[] {
  return (body.rooms.join[roomId]?.timeline.events ?? []).map((e: any) => e.content.body ?? e.type);
}

describe.each<Engine>(['sqlite', 'postgres'])('lazy-loaded members already sent to a device on %s', (engine) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startAccountsServer(engine);
  });
  afterAll(() => t?.close());

  /** alice creates a public room that carol and bob join; alice speaks once. */
  async function setup(tag: string) {
    const alice = new TestClient(t.clientUrl);
    const bob = new TestClient(t.clientUrl);
    const carol = new TestClient(t.clientUrl);
    await alice.register(`alice${tag}`);
    await bob.register(`bob${tag}`);
    await carol.register(`carol${tag}`);
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const rid = encodeURIComponent(roomId);
    await carol.post(`${C}/rooms/${rid}/join`, {});
    await bob.post(`${C}/rooms/${rid}/join`, {});
    let n = 0;
    const say = (c: TestClient, body: string) => c.put(`${C}/rooms/${rid}/send/m.room.message/t${n++}`, { msgtype: 'm.text', body });
    await say(alice, 'hello');
    const carolId = `@carol${tag}:localhost`;
    /** Changes carol's display name and waits until her member event in the room carries it. */
    const rename = async (name: string) => {
      expect((await carol.put(`${C}/profile/${encodeURIComponent(carolId)}/displayname`, { displayname: name })).status).toBe(200);
      const end = Date.now() + 10_000;
      while ((await alice.get(`${C}/rooms/${rid}/state/m.room.member/${encodeURIComponent(carolId)}`)).body?.displayname !== name) {
        if (Date.now() > end) throw new Error('the new name did not reach the room');
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    return { alice, bob, carol, roomId, say, rename, carolId };
  }

  it('sends a member event once per device, again when it changed, and always with include_redundant_members', async () => {
    const { alice, bob, carol, roomId, say, rename, carolId } = await setup('a');
    const s0 = await bob.get(`${C}/sync?filter=${LAZY}`);
    expect(stateMembers(s0.body, roomId).has(carolId)).toBe(false);

    await say(carol, 'c1');
    const s1 = await bob.get(`${C}/sync?filter=${LAZY}&since=${s0.body.next_batch}&timeout=0`);
    expect(timelineBodies(s1.body, roomId)).toEqual(['c1']);
    const first = stateMembers(s1.body, roomId).get(carolId);
    expect(first).toBeDefined();

    // carol speaks again: her member event has not changed and the client has it.
    await say(carol, 'c2');
    const s2 = await bob.get(`${C}/sync?filter=${LAZY}&since=${s1.body.next_batch}&timeout=0`);
    expect(timelineBodies(s2.body, roomId)).toEqual(['c2']);
    expect(stateMembers(s2.body, roomId).has(carolId)).toBe(false);

    // A filter with include_redundant_members gets it every time.
    await say(carol, 'c3');
    const r = await bob.get(`${C}/sync?filter=${REDUNDANT}&since=${s2.body.next_batch}&timeout=0`);
    expect(timelineBodies(r.body, roomId)).toEqual(['c3']);
    expect(stateMembers(r.body, roomId).get(carolId)).toBe(first);

    // carol changes her name while the client's timeline (limit 2) shows only alice: the change
    // is not sent then (carol is no sender of that response)…
    await rename('Carol C');
    for (let i = 0; i < 3; i++) await say(alice, `a${i}`);
    const s3 = await bob.get(`${C}/sync?filter=${LAZY}&since=${r.body.next_batch}&timeout=0`);
    expect(s3.body.rooms.join[roomId].timeline.limited).toBe(true);
    expect(timelineBodies(s3.body, roomId)).toEqual(['a1', 'a2']);
    expect(stateMembers(s3.body, roomId).has(carolId)).toBe(false);
    // …but with her next message, as a different member event than the one sent before.
    await say(carol, 'c4');
    const s4 = await bob.get(`${C}/sync?filter=${LAZY}&since=${s3.body.next_batch}&timeout=0`);
    expect(timelineBodies(s4.body, roomId)).toEqual(['c4']);
    const renamed = s4.body.rooms.join[roomId].state.events.find((e: any) => e.type === 'm.room.member' && e.state_key === carolId);
    expect(renamed?.content.displayname).toBe('Carol C');
    expect(renamed?.event_id).not.toBe(first);

    // A member event seen in the timeline counts as sent.
    await rename('Carol D');
    // (Long-polling: the change reaches the room's state before it is announced to /sync.)
    const s5 = await bob.get(`${C}/sync?filter=${LAZY}&since=${s4.body.next_batch}&timeout=10000`);
    expect(timelineBodies(s5.body, roomId)).toEqual(['m.room.member']);
    await say(carol, 'c5');
    const s6 = await bob.get(`${C}/sync?filter=${LAZY}&since=${s5.body.next_batch}&timeout=0`);
    expect(timelineBodies(s6.body, roomId)).toEqual(['c5']);
    expect(stateMembers(s6.body, roomId).has(carolId)).toBe(false);
  });

  it('sends members again to a client that asks again from an older token, or starts a new sync', async () => {
    const { bob, carol, roomId, say, carolId } = await setup('b');
    const s0 = await bob.get(`${C}/sync?filter=${LAZY}`);
    await say(carol, 'c1');
    const s1 = await bob.get(`${C}/sync?filter=${LAZY}&since=${s0.body.next_batch}&timeout=0`);
    const member = stateMembers(s1.body, roomId).get(carolId);
    expect(member).toBeDefined();
    // The response may never have arrived: the same request again carries the member again.
    const again = await bob.get(`${C}/sync?filter=${LAZY}&since=${s0.body.next_batch}&timeout=0`);
    expect(timelineBodies(again.body, roomId)).toEqual(['c1']);
    expect(stateMembers(again.body, roomId).get(carolId)).toBe(member);

    // A new initial sync whose timeline does not show carol: the client may have forgotten her.
    const fresh = await bob.get(`${C}/sync?filter=${filterOf({ room: { state: { lazy_load_members: true }, timeline: { limit: 1, not_senders: [carolId] } } })}`);
    expect(stateMembers(fresh.body, roomId).has(carolId)).toBe(false);
    await say(carol, 'c2');
    const s2 = await bob.get(`${C}/sync?filter=${LAZY}&since=${fresh.body.next_batch}&timeout=0`);
    expect(timelineBodies(s2.body, roomId)).toEqual(['c2']);
    expect(stateMembers(s2.body, roomId).get(carolId)).toBe(member);

    // full_state starts over as well.
    await say(carol, 'c3');
    const full = await bob.get(`${C}/sync?filter=${LAZY}&since=${s2.body.next_batch}&timeout=0&full_state=true`);
    expect(stateMembers(full.body, roomId).get(carolId)).toBe(member);
  });

  it('keeps what each device was sent apart', async () => {
    const { bob, carol, roomId, say, carolId } = await setup('c');
    const other = new TestClient(t.clientUrl, (await bob.login('bobc')).access_token);
    const a0 = await bob.get(`${C}/sync?filter=${LAZY}`);
    const b0 = await other.get(`${C}/sync?filter=${LAZY}`);
    await say(carol, 'c1');
    const a1 = await bob.get(`${C}/sync?filter=${LAZY}&since=${a0.body.next_batch}&timeout=0`);
    expect(stateMembers(a1.body, roomId).has(carolId)).toBe(true);
    await say(carol, 'c2');
    // The second device has not been sent carol's member event yet.
    const b1 = await other.get(`${C}/sync?filter=${LAZY}&since=${b0.body.next_batch}&timeout=0`);
    expect(timelineBodies(b1.body, roomId)).toEqual(['c1', 'c2']);
    expect(stateMembers(b1.body, roomId).has(carolId)).toBe(true);
    const a2 = await bob.get(`${C}/sync?filter=${LAZY}&since=${a1.body.next_batch}&timeout=0`);
    expect(timelineBodies(a2.body, roomId)).toEqual(['c2']);
    expect(stateMembers(a2.body, roomId).has(carolId)).toBe(false);
  });
});
