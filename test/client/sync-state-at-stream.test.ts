import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomEvent } from '../../src/protocol/event.js';
import { EventStore } from '../../src/storage/stores/events.js';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const C = '/_matrix/client/v3';

/** `roomEventsBetween` of `store` is the database's (`reference`) for windows within [low, high]. */
async function sameWindows(store: EventStore, reference: EventStore, roomId: string, low: number, high: number, what: string): Promise<void> {
  const ids = (list: Array<{ event: { event_id: string } }>) => list.map((e) => e.event.event_id);
  const edges = [low, ...Array.from({ length: 12 }, (_, i) => high - i), Math.floor((low + high) / 2), 0].filter((p, i, all) => p >= low && all.indexOf(p) === i);
  for (const from of edges) {
    for (const to of edges) {
      if (to <= from) continue;
      for (const limit of [1, 3, 101]) {
        for (const dir of ['backwards', 'forwards'] as const) {
          expect(ids(await store.roomEventsBetween(roomId, from, to, limit, dir)), `${what}: (${from}, ${to}] ${limit} ${dir}`).toEqual(
            ids(await reference.roomEventsBetween(roomId, from, to, limit, dir)),
          );
        }
      }
    }
  }
}

describe.each<Engine>(['sqlite', 'postgres'])('state at a stream position on %s', (engine) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startAccountsServer(engine);
  });
  afterAll(() => t?.close());

  it('answers like the database at every position while messages and state changes are written', async () => {
    const { eventStore, database } = t.server.ctx;
    // A second store on the same database keeps nothing in memory yet: its answers are the queries'.
    const fresh = () => new EventStore(database);
    const alice = new TestClient(t.clientUrl);
    const bob = new TestClient(t.clientUrl);
    await alice.register('alice');
    await bob.register('bob');
    const roomId = (await alice.post(`${C}/createRoom`, { preset: 'public_chat' })).body.room_id as string;
    const rid = encodeURIComponent(roomId);
    const start = await eventStore.maxStreamOrdering();
    let n = 0;
    const say = (c: TestClient) => c.put(`${C}/rooms/${rid}/send/m.room.message/m${n++}`, { msgtype: 'm.text', body: `m${n}` });
    await say(alice);
    await say(alice);
    await bob.post(`${C}/rooms/${rid}/join`, {});
    await say(bob);
    await alice.put(`${C}/rooms/${rid}/state/m.room.topic`, { topic: 'one' });
    await say(alice);
    await say(bob);
    await alice.put(`${C}/rooms/${rid}/state/m.room.topic`, { topic: 'two' });
    await say(bob);
    const end = await eventStore.maxStreamOrdering();
    const reference = fresh();
    for (let p = 0; p <= end + 2; p++) {
      expect(Object.fromEntries(await eventStore.stateIdsAtStream(roomId, p)), `position ${p}`).toEqual(Object.fromEntries(await reference.stateIdsAtStream(roomId, p)));
    }
    // The latest state is the current one, with the second topic.
    const latest = await eventStore.stateIdsAtStream(roomId, end);
    expect(Object.fromEntries(latest)).toEqual(Object.fromEntries(await eventStore.getCurrentStateIds(roomId)));
    expect(start).toBeLessThan(end);

    // After the last state change, the state is known without asking the database.
    let queries = 0;
    database.observeQueries(() => queries++);
    try {
      await eventStore.stateIdsAtStream(roomId, end);
      await eventStore.stateIdsAtStream(roomId, end - 1);
      expect(queries).toBe(0);
      // Before it, the database is asked.
      await eventStore.stateIdsAtStream(roomId, start);
      expect(queries).toBeGreaterThan(0);
    } finally {
      database.observeQueries(undefined);
    }
    // Callers may change what they get.
    latest.clear();
    expect((await eventStore.stateIdsAtStream(roomId, end)).size).toBeGreaterThan(0);
  });

  it('stays right when history is written below the run or an outlier joins the timeline inside or below it', async () => {
    const { eventStore, database } = t.server.ctx;
    const alice = new TestClient(t.clientUrl);
    const reg = await alice.register('writer');
    const roomId = (await alice.post(`${C}/createRoom`, {})).body.room_id as string;
    const say = (i: number) => alice.put(`${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/w${i}`, { msgtype: 'm.text', body: `w${i}` });
    await say(0);
    const early = await eventStore.maxStreamOrdering();
    const earlyGroup = (await eventStore.getStateGroupOf((await eventStore.roomEventsBetween(roomId, 0, early, 1, 'backwards'))[0]!.event.event_id))!;
    await alice.put(`${C}/rooms/${encodeURIComponent(roomId)}/state/m.room.topic`, { topic: 'later' });
    await say(1);
    await say(2);
    let n = 0;
    const fake = (): RoomEvent => ({
      event_id: `$fake${n++}-${roomId}`,
      room_id: roomId,
      type: 'm.room.message',
      sender: reg.user_id,
      content: { body: 'fake' },
      prev_events: [],
      auth_events: [],
      depth: 1,
      origin_server_ts: Date.now(),
      hashes: { sha256: '' },
      signatures: {},
    } as unknown as RoomEvent);
    const check = async (what: string) => {
      const end = (await eventStore.maxStreamOrdering()) + 2;
      const reference = new EventStore(database);
      for (let p = early - 2; p <= end; p++) {
        expect(Object.fromEntries(await eventStore.stateIdsAtStream(roomId, p)), `${what}: position ${p}`).toEqual(Object.fromEntries(await reference.stateIdsAtStream(roomId, p)));
      }
      await sameWindows(eventStore, reference, roomId, -60, end, what);
    };
    await check('messages');
    // History below everything (a negative position, as /backfill writes it).
    await database.transaction((tx) => eventStore.persist(tx, { event: fake(), roomId, stateGroupBefore: earlyGroup, prevStateEventId: null, updateCurrentState: false, outlier: false, streamOrdering: -50 }));
    await check('history below');
    await say(3);
    await say(4);
    // An outlier stored between two messages with the same state, then taken into the timeline
    // with another state: the run over it no longer holds.
    const outlier = fake();
    await database.transaction((tx) => eventStore.persist(tx, { event: outlier, roomId, stateGroupBefore: null, prevStateEventId: null, updateCurrentState: false }));
    await say(5);
    await check('outlier stored');
    await database.transaction((tx) => eventStore.deOutlier(tx, outlier.event_id, earlyGroup));
    await check('outlier in the timeline');
    await say(6);
    await check('messages again');
    // One promoted with a position of history.
    const old = fake();
    await database.transaction((tx) => eventStore.persist(tx, { event: old, roomId, stateGroupBefore: null, prevStateEventId: null, updateCurrentState: false }));
    await database.transaction((tx) => eventStore.promoteOutlier(tx, old.event_id, -40, earlyGroup, null));
    await check('outlier promoted');
  });

  it('serves recent timeline windows and their new events without a query, like the database', async () => {
    const { eventStore, database } = t.server.ctx;
    const alice = new TestClient(t.clientUrl);
    await alice.register('windows');
    const roomId = (await alice.post(`${C}/createRoom`, {})).body.room_id as string;
    const first = await eventStore.maxStreamOrdering();
    // More messages than the room's recent timeline keeps.
    for (let i = 0; i < 60; i++) await alice.put(`${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/r${i}`, { msgtype: 'm.text', body: `r${i}` });
    const end = await eventStore.maxStreamOrdering();
    let queries = 0;
    database.observeQueries(() => queries++);
    try {
      // The window and its events (kept as they were written) come without a query.
      const got = await eventStore.roomEventsBetween(roomId, end - 5, end, 101, 'backwards');
      expect(got.map((e) => e.streamOrdering)).toEqual([end, end - 1, end - 2, end - 3, end - 4]);
      expect(queries).toBe(0);
      database.observeQueries(undefined);
      const reference = new EventStore(database);
      for (const e of got) expect(e).toEqual(await reference.getEvent(e.event.event_id));
      database.observeQueries(() => queries++);
      // A window reaching back past what is kept is asked of the database.
      await eventStore.roomEventsBetween(roomId, first, end, 101, 'backwards');
      expect(queries).toBeGreaterThan(0);
    } finally {
      database.observeQueries(undefined);
    }
    await sameWindows(eventStore, new EventStore(database), roomId, first - 8, end + 1, 'recent');
  });
});
