import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStore } from '../../src/storage/stores/events.js';
import type { Engine, TestServer } from '../_util/server.js';
import { startAccountsServer, TestClient } from './_client.js';

const C = '/_matrix/client/v3';

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
});
