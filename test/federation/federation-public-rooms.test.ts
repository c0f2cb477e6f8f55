/**
 * Another server's room directory from the client API (`/publicRooms?server=`, Element's
 * "Explore rooms" on another server): B's user lists, searches and pages through A's public
 * rooms and joins one of them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { twoServers, type TwoServers } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;

describe.each<Engine>(['sqlite', 'postgres'])("another server's public rooms on %s", (engine) => {
  let s: TwoServers;
  let lobby: string;

  beforeAll(async () => {
    s = await twoServers(engine);
    lobby = (await s.alice.post(`${C}/createRoom`, { preset: 'public_chat', visibility: 'public', name: 'Conference lobby', topic: 'Say hi' })).body.room_id;
    await s.alice.post(`${C}/createRoom`, { preset: 'public_chat', visibility: 'public', name: 'Hallway track' });
    // Public but not in the directory.
    await s.alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'Unlisted' });
  }, 60_000);
  afterAll(async () => {
    await s?.fed.close();
  });

  it('lists, searches and pages through the rooms of another server, and joins one', async () => {
    const all = await s.bob.get(`${C}/publicRooms?server=a.test`);
    expect(all.status).toBe(200);
    expect(all.body.chunk.map((r: any) => r.name).sort()).toEqual(['Conference lobby', 'Hallway track']);
    expect(all.body.chunk.find((r: any) => r.room_id === lobby)).toMatchObject({ topic: 'Say hi', num_joined_members: 1, world_readable: false });
    // B's own directory has none of them.
    expect((await s.bob.get(`${C}/publicRooms`)).body.chunk).toEqual([]);
    expect((await s.bob.get(`${C}/publicRooms?server=b.test`)).body.chunk).toEqual([]);

    const found = await s.bob.post(`${C}/publicRooms?server=a.test`, { filter: { generic_search_term: 'lobby' } });
    expect(found.body.chunk.map((r: any) => r.room_id)).toEqual([lobby]);
    expect((await s.bob.post(`${C}/publicRooms?server=a.test`, { filter: { generic_search_term: 'nothing like it' } })).body.chunk).toEqual([]);

    const first = await s.bob.get(`${C}/publicRooms?server=a.test&limit=1`);
    expect(first.body.chunk).toHaveLength(1);
    expect(typeof first.body.next_batch).toBe('string');
    const second = await s.bob.post(`${C}/publicRooms?server=a.test`, { limit: 1, since: first.body.next_batch });
    expect(second.body.chunk).toHaveLength(1);
    expect(second.body.chunk[0].room_id).not.toBe(first.body.chunk[0].room_id);

    // Element joins a listed room through the server it was listed by.
    const joined = await s.bob.post(`${C}/join/${enc(lobby)}?via=a.test`, {});
    expect(joined.body.room_id).toBe(lobby);
  });

  it('answers bad requests with Matrix errors', async () => {
    const anon = s.b.client();
    expect((await anon.get(`${C}/publicRooms?server=a.test`)).status).toBe(401);
    expect((await s.bob.get(`${C}/publicRooms?server=${enc('not a server')}`)).status).toBe(400);
    // A server that cannot be found.
    const gone = await s.bob.get(`${C}/publicRooms?server=nowhere.test`);
    expect([gone.status, gone.body.errcode]).toEqual([502, 'M_UNKNOWN']);
    // A's answer to a bad pagination token is passed on as a bad parameter.
    const bad = await s.bob.get(`${C}/publicRooms?server=a.test&since=garbage`);
    expect(bad.status).toBe(400);
  });
});
