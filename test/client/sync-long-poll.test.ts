import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSyncToken } from '../../src/services/sync/token.js';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const C = '/_matrix/client/v3';

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each<Engine>(['sqlite', 'postgres'])('/sync long-polls on %s', (engine) => {
  let t: TestServer;
  let alice: TestClient;
  let userId: string;
  let deviceId: string;
  let roomId: string;
  beforeAll(async () => {
    t = await startAccountsServer(engine);
    alice = new TestClient(t.clientUrl);
    const reg = await alice.register('alice');
    userId = reg.user_id;
    deviceId = reg.device_id;
    roomId = (await alice.post(`${C}/createRoom`, {})).body.room_id;
  });
  afterAll(() => t?.close());

  const since = async () => parseSyncToken((await alice.get(`${C}/sync?timeout=0`)).body.next_batch);

  it('wakes on a new event, and leaves no waiter behind', async () => {
    const { sync, notifier } = t.server.ctx;
    const before = notifier.waiting;
    const polling = sync.sync({ userId, deviceId, since: await since(), timeoutMs: 20_000, fullState: false, filter: {} });
    await until(() => notifier.waiting > before, 'the long-poll to wait');
    await alice.put(`${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/w1`, { msgtype: 'm.text', body: 'wake' });
    const res = await polling;
    expect(res.rooms.join[roomId]!.timeline.events.map((e) => (e.content as { body?: string }).body)).toEqual(['wake']);
    expect(notifier.waiting).toBe(before);
  });

  it('answers at once when the client goes away, and again when it had gone before the call', async () => {
    const { sync, notifier } = t.server.ctx;
    const before = notifier.waiting;
    const ac = new AbortController();
    const from = await since();
    const polling = sync.sync({ userId, deviceId, since: from, timeoutMs: 20_000, fullState: false, filter: {}, signal: ac.signal });
    await until(() => notifier.waiting > before, 'the long-poll to wait');
    const started = Date.now();
    ac.abort();
    const res = await polling;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(Object.keys(res.rooms.join)).toEqual([]);
    expect(parseSyncToken(res.next_batch)).toEqual(from);
    expect(notifier.waiting).toBe(before);

    const gone = new AbortController();
    gone.abort();
    const t0 = Date.now();
    await sync.sync({ userId, deviceId, since: from, timeoutMs: 20_000, fullState: false, filter: {}, signal: gone.signal });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(notifier.waiting).toBe(before);
  });

  it('returns what is already there without waiting, and times out with the same positions', async () => {
    const { sync, notifier } = t.server.ctx;
    const before = notifier.waiting;
    const from = await since();
    await alice.put(`${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/w2`, { msgtype: 'm.text', body: 'ready' });
    const ready = await sync.sync({ userId, deviceId, since: from, timeoutMs: 20_000, fullState: false, filter: {} });
    expect(ready.rooms.join[roomId]!.timeline.events).toHaveLength(1);
    expect(notifier.waiting).toBe(before);
    const next = parseSyncToken(ready.next_batch);
    const idle = await sync.sync({ userId, deviceId, since: next, timeoutMs: 200, fullState: false, filter: {} });
    expect(parseSyncToken(idle.next_batch)).toEqual(next);
    expect(Object.keys(idle.rooms.join)).toEqual([]);
    expect(notifier.waiting).toBe(before);
  });

  it('waits without building a response while nothing is new for the user, though other rooms moved', async () => {
    const { sync, notifier } = t.server.ctx;
    const bob = new TestClient(t.clientUrl);
    await bob.register('bob-quiet');
    const elsewhere = (await bob.post(`${C}/createRoom`, {})).body.room_id as string;
    const from = await since();
    // Another room moves the events stream past the token: nothing there is for alice.
    await bob.put(`${C}/rooms/${encodeURIComponent(elsewhere)}/send/m.room.message/q1`, { msgtype: 'm.text', body: 'not for alice' });
    const s = sync as unknown as { build: (...a: unknown[]) => Promise<unknown> };
    const build = s.build;
    let builds = 0;
    s.build = function (this: unknown, ...a: unknown[]) {
      builds++;
      return build.apply(this, a);
    };
    try {
      const before = notifier.waiting;
      const polling = sync.sync({ userId, deviceId, since: from, timeoutMs: 20_000, fullState: false, filter: {} });
      await until(() => notifier.waiting > before, 'the long-poll to wait');
      expect(builds).toBe(0);
      await alice.put(`${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/q2`, { msgtype: 'm.text', body: 'for alice' });
      const res = await polling;
      expect(res.rooms.join[roomId]!.timeline.events.map((e) => (e.content as { body?: string }).body)).toEqual(['for alice']);
      expect(res.rooms.join[elsewhere]).toBeUndefined();
      expect(builds).toBe(1);

      // Timing out after waiting without a build: an empty answer at the current positions.
      const next = parseSyncToken(res.next_batch);
      builds = 0;
      const idle = await sync.sync({ userId, deviceId, since: next, timeoutMs: 200, fullState: false, filter: {} });
      expect(builds).toBe(1);
      expect(parseSyncToken(idle.next_batch)).toEqual(next);
      expect(Object.keys(idle.rooms.join)).toEqual([]);
      expect(idle.device_one_time_keys_count).toBeDefined();
    } finally {
      s.build = build;
    }
  });

  it('answers at once with what was announced for the user after the token', async () => {
    const { sync } = t.server.ctx;
    const from = await since();
    await alice.put(`${C}/user/${encodeURIComponent(userId)}/account_data/org.example.quiet`, { n: 1 });
    const t0 = Date.now();
    const res = await sync.sync({ userId, deviceId, since: from, timeoutMs: 20_000, fullState: false, filter: {} });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(res.account_data.events).toEqual([{ type: 'org.example.quiet', content: { n: 1 } }]);
  });
});
