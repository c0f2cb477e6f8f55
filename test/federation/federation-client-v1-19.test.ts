/**
 * Client-server additions of spec v1.15–v1.18 that reach over federation: room summaries of
 * rooms this server is not in (through the federation space hierarchy of the `via` servers), and
 * invite blocking of invites arriving from other servers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient } from '../client/_client.js';
import { eventually, type Federation, type FedMember, twoServers } from '../_util/federation.js';
import type { Engine } from '../_util/server.js';

const C = '/_matrix/client/v3';
const V1 = '/_matrix/client/v1';
const enc = encodeURIComponent;

describe.each<Engine>(['sqlite', 'postgres'])('spec v1.15–v1.18 client features over federation on %s', (engine) => {
  let fed: Federation;
  let a: FedMember;
  let b: FedMember;
  let alice: TestClient;
  let bob: TestClient;

  beforeAll(async () => {
    ({ fed, a, b, alice, bob } = await twoServers(engine));
  }, 60_000);
  afterAll(async () => {
    await fed?.close();
  });

  it('summarises a room held only by another server, through the via servers', async () => {
    const pub = (await alice.post(`${C}/createRoom`, { preset: 'public_chat', name: 'Over there', topic: 'Remote' })).body.room_id as string;
    const priv = (await alice.post(`${C}/createRoom`, { preset: 'private_chat', name: 'Secret' })).body.room_id as string;
    const s = await bob.get(`${V1}/room_summary/${enc(pub)}?via=a.test`);
    expect(s.status, JSON.stringify(s.body)).toBe(200);
    expect(s.body).toMatchObject({ room_id: pub, name: 'Over there', topic: 'Remote', join_rule: 'public', num_joined_members: 1, membership: 'leave' });
    expect(typeof s.body.room_version).toBe('string');
    expect(s.body.children_state).toBeUndefined();
    // Without an access token only rooms held here are summarised (no federation requests for anonymous callers).
    expect((await b.client().get(`${V1}/room_summary/${enc(pub)}?via=a.test`)).status).toBe(404);
    expect((await a.client().get(`${V1}/room_summary/${enc(pub)}`)).body.name).toBe('Over there');
    // Not visible to B's users, and unknown rooms: 404.
    expect((await bob.get(`${V1}/room_summary/${enc(priv)}?via=a.test`)).status).toBe(404);
    expect((await bob.get(`${V1}/room_summary/${enc('!nothing:a.test')}?via=a.test`)).status).toBe(404);
  }, 60_000);

  it('refuses invites from other servers to a user who blocks them', async () => {
    await bob.put(`${C}/user/${enc('@bob:b.test')}/account_data/m.invite_permission_config`, { default_action: 'block' });
    const room = (await alice.post(`${C}/createRoom`, { preset: 'private_chat' })).body.room_id as string;
    const refused = await alice.post(`${C}/rooms/${enc(room)}/invite`, { user_id: '@bob:b.test' });
    expect(refused.status).toBe(403);
    expect(refused.body.errcode).toBe('M_INVITE_BLOCKED');
    expect((await bob.get(`${C}/sync?timeout=0`)).body.rooms?.invite?.[room]).toBeUndefined();

    await bob.put(`${C}/user/${enc('@bob:b.test')}/account_data/m.invite_permission_config`, {});
    expect((await alice.post(`${C}/rooms/${enc(room)}/invite`, { user_id: '@bob:b.test' })).status).toBe(200);
    await eventually(async () => (await bob.get(`${C}/sync?timeout=0`)).body.rooms?.invite?.[room], 20_000, 'invite on B');
  }, 60_000);
});
