/** Finding users of other servers: their profiles and the user directory. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { remoteMatches } from '../../src/api/client/user-directory.js';
import type { TestClient } from '../client/_client.js';
import { createFederation, eventually, type Federation } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const enc = encodeURIComponent;

describe('user directory entries from member events', () => {
  it('matches on user ID or display name, once per user, preferring an entry with a name', () => {
    const member = (displayname?: string, avatar_url?: string) => JSON.stringify({ type: 'm.room.member', content: { membership: 'join', displayname, avatar_url } });
    const rows = [
      { user_id: '@bob:b.test', json: member() },
      { user_id: '@bob:b.test', json: member('Robert', 'mxc://b.test/x') },
      { user_id: '@carol:c.test', json: member('Caroline') },
      // Found by the store's pre-filter (the JSON mentions carol) but neither ID nor name matches.
      { user_id: '@dave:d.test', json: JSON.stringify({ type: 'm.room.member', content: { membership: 'join', displayname: 'Dave', reason: 'friend of carol' } }) },
      { user_id: '@erin:e.test', json: 'not json' },
    ];
    expect(remoteMatches(rows, 'BOB')).toEqual([{ user_id: '@bob:b.test', display_name: 'Robert', avatar_url: 'mxc://b.test/x' }]);
    expect(remoteMatches(rows, 'caro')).toEqual([{ user_id: '@carol:c.test', display_name: 'Caroline' }]);
    expect(remoteMatches(rows, 'erin')).toEqual([]);
  });
});

describe.each<Engine>(['sqlite', 'postgres'])('finding users of other servers on %s', (engine) => {
  let fed: Federation;
  let alice: TestClient;
  let bob: TestClient;
  let carl: TestClient;

  beforeAll(async () => {
    fed = await createFederation(engine);
    const a = await fed.add('a.test');
    const b = await fed.add('b.test');
    alice = a.client();
    await alice.register('alice');
    bob = b.client();
    await bob.register('bob');
    carl = b.client();
    await carl.register('carl');
    expect((await bob.put(`/_matrix/client/v3/profile/${enc('@bob:b.test')}/displayname`, { displayname: 'Bobby Tables' })).status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await fed?.close();
  });

  it("reads a remote user's profile from their server", async () => {
    const profile = await alice.get(`/_matrix/client/v3/profile/${enc('@bob:b.test')}`);
    expect(profile.status, JSON.stringify(profile.body)).toBe(200);
    expect(profile.body).toEqual({ displayname: 'Bobby Tables' });
    const field = await alice.get(`/_matrix/client/v3/profile/${enc('@bob:b.test')}/displayname`);
    expect(field.body).toEqual({ displayname: 'Bobby Tables' });
    expect((await alice.get(`/_matrix/client/v3/profile/${enc('@bob:b.test')}/avatar_url`)).status).toBe(404);
    expect((await alice.get(`/_matrix/client/v3/profile/${enc('@nobody:b.test')}`)).status).toBe(404);
  });

  it('lists users of other servers who share a joined room, by ID or display name, until they leave', async () => {
    const search = async (term: string) => (await alice.post('/_matrix/client/v3/user_directory/search', { search_term: term })).body.results as Array<{ user_id: string; display_name?: string }>;
    const roomId = (await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' })).body.room_id as string;
    expect((await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=a.test`, {})).status).toBe(200);
    await eventually(async () => (await search('tables')).some((u) => u.user_id === '@bob:b.test'), 20_000, 'bob in the directory');
    expect(await search('TABLES')).toEqual([{ user_id: '@bob:b.test', display_name: 'Bobby Tables' }]);
    expect((await search('bob')).map((u) => u.user_id)).toContain('@bob:b.test');
    // A user of the other server who shares no room is not listed.
    expect((await search('carl')).map((u) => u.user_id)).not.toContain('@carl:b.test');
    expect((await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    await eventually(async () => !(await search('tables')).some((u) => u.user_id === '@bob:b.test'), 20_000, 'bob gone from the directory');
  });

  it('lists users of other servers joined to a room in the room directory, to anyone', async () => {
    const a = fed.members.find((m) => m.name === 'a.test')!;
    const zed = a.client();
    await zed.register('zed');
    const search = async (who: TestClient, term: string) => ((await who.post('/_matrix/client/v3/user_directory/search', { search_term: term })).body.results as Array<{ user_id: string }>).map((u) => u.user_id);
    const listed = (await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', visibility: 'public', name: 'Listed' })).body.room_id as string;
    const unlisted = (await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'Unlisted' })).body.room_id as string;
    expect((await carl.post(`/_matrix/client/v3/join/${enc(unlisted)}?server_name=a.test`, {})).status).toBe(200);
    expect((await bob.post(`/_matrix/client/v3/join/${enc(listed)}?server_name=a.test`, {})).status).toBe(200);
    // zed is in neither room: bob is found through the directory's room, carl is not.
    await eventually(async () => (await search(zed, 'tables')).includes('@bob:b.test'), 20_000, 'bob found by zed');
    expect(await search(zed, 'carl')).not.toContain('@carl:b.test');
    // Alice shares the unlisted room with carl.
    expect(await search(alice, 'carl')).toContain('@carl:b.test');
    // Taken out of the directory, the room no longer lists its members to strangers.
    expect((await alice.put(`/_matrix/client/v3/directory/list/room/${enc(listed)}`, { visibility: 'private' })).status).toBe(200);
    expect(await search(zed, 'tables')).not.toContain('@bob:b.test');
  });
});
