/**
 * Event authorisation throughput: a message and a membership change (a moderator kicking a
 * member) in a room with 1,000 joined members, checked against the full room state (a StateMap,
 * as state resolution and "state before the event" checks do) and against the event's own auth
 * events (as the receipt checks do, including the auth_events shape rule). The power-levels
 * event lists 200 users.
 */
import { report, throughput } from '../report.js';
import { authEventKeysFor } from '../../src/protocol/auth-events.js';
import { stateKeyOf, type RoomEvent, type StateMap } from '../../src/protocol/event.js';
import { authorizeEvent } from '../../src/protocol/event-auth.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { getRoomVersion, type RoomVersion } from '../../src/protocol/room-versions.js';

const SUITE = 'protocol-auth';
const MEMBERS = 1000;

function build(version: RoomVersion): { state: StateMap; byId: Map<string, RoomEvent>; make: (t: string, s: string, c: JsonObject, k?: string) => RoomEvent } {
  const v12 = version.roomIdIsCreateEventHash;
  const roomId = v12 ? '!createeventhash0123456789abcdefghijklmnopq' : '!room:server0.test';
  const state: StateMap = new Map();
  const byId = new Map<string, RoomEvent>();
  let n = 0;
  const make = (type: string, sender: string, content: JsonObject, stateKey?: string): RoomEvent => {
    const ev: RoomEvent = {
      type,
      sender,
      content,
      room_id: roomId,
      prev_events: ['$prev'],
      auth_events: [],
      depth: ++n,
      origin_server_ts: 1_700_000_000_000 + n,
      hashes: { sha256: 'x' },
      signatures: {},
      event_id: `$event${n}`,
    };
    if (stateKey !== undefined) ev.state_key = stateKey;
    ev.auth_events = authEventKeysFor(ev, version)
      .map(([t, k]) => state.get(stateKeyOf(t, k))?.event_id)
      .filter((x): x is string => x !== undefined);
    return ev;
  };
  const add = (ev: RoomEvent): void => {
    state.set(stateKeyOf(ev.type, ev.state_key!), ev);
    byId.set(ev.event_id, ev);
  };
  const creator = '@user0:server0.test';
  const create = make('m.room.create', creator, { room_version: version.id, ...(version.implicitRoomCreator ? {} : { creator }) }, '');
  if (v12) {
    delete create.room_id;
    create.event_id = `$${roomId.slice(1)}`;
  }
  add(create);
  add(make('m.room.member', creator, { membership: 'join' }, creator));
  const users: JsonObject = {};
  for (let i = 1; i <= 200; i++) users[`@user${i}:server${i % 20}.test`] = i <= 10 ? 50 : 0;
  if (!version.privilegedCreators) users[creator] = 100;
  add(make('m.room.power_levels', creator, { users, events: { 'm.room.name': 50, 'm.room.power_levels': 100 } }, ''));
  add(make('m.room.join_rules', creator, { join_rule: 'public' }, ''));
  for (let i = 1; i < MEMBERS; i++) {
    const u = `@user${i}:server${i % 20}.test`;
    add(make('m.room.member', u, { membership: 'join', displayname: `User ${i}` }, u));
  }
  return { state, byId, make };
}

for (const id of ['10', '12']) {
  const version = getRoomVersion(id)!;
  const { state, byId, make } = build(version);
  const message = make('m.room.message', '@user500:server0.test', { msgtype: 'm.text', body: 'hello' });
  const kick = make('m.room.member', '@user5:server5.test', { membership: 'leave' }, '@user700:server0.test');
  const authList = (ev: RoomEvent): RoomEvent[] => {
    const list = ev.auth_events.map((r) => byId.get(typeof r === 'string' ? r : r[0])!);
    if (!version.createEventInAuthEvents) list.push(state.get(stateKeyOf('m.room.create', ''))!);
    return list;
  };
  const messageAuth = authList(message);
  const kickAuth = authList(kick);
  for (const [ev, auth] of [
    [message, messageAuth],
    [kick, kickAuth],
  ] as const) {
    if (!authorizeEvent(ev, state, version).allowed || !authorizeEvent(ev, auth, version).allowed) {
      throw new Error(`benchmark event ${ev.type} is not allowed in v${id}`);
    }
  }
  report(SUITE, `v${id} message vs room state (${MEMBERS} members)`, throughput(() => authorizeEvent(message, state, version), 1000), 'checks/s');
  report(SUITE, `v${id} message vs auth events`, throughput(() => authorizeEvent(message, messageAuth, version), 1000), 'checks/s');
  report(SUITE, `v${id} kick vs room state (${MEMBERS} members)`, throughput(() => authorizeEvent(kick, state, version), 1000), 'checks/s');
  report(SUITE, `v${id} kick vs auth events`, throughput(() => authorizeEvent(kick, kickAuth, version), 1000), 'checks/s');
}
