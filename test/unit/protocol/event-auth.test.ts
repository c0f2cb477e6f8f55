import { describe, expect, it } from 'vitest';
import { authorizeEvent, checkAuthEventsShape, stateMapFromEvents, type AuthOptions, type AuthResult } from '../../../src/protocol/event-auth.js';
import { authEventKeysFor } from '../../../src/protocol/auth-events.js';
import { stateKeyOf, type RoomEvent, type StateMap } from '../../../src/protocol/event.js';
import type { JsonObject } from '../../../src/protocol/json.js';
import { ROOM_VERSIONS, type RoomVersion } from '../../../src/protocol/room-versions.js';
import { encodeBase64 } from '../../../src/protocol/base64.js';
import { generateSigningKey, signJson, verifyJsonSignature } from '../../../src/protocol/signing.js';

const ALL = [...ROOM_VERSIONS.values()];
const num = (v: RoomVersion): number => Number(v.id);
const versions = (from: number, to = 12): RoomVersion[] => ALL.filter((v) => num(v) >= from && num(v) <= to);

const ALICE = '@alice:a.test'; // creator
const BOB = '@bob:b.test';
const CAROL = '@carol:c.test';
const DAVE = '@dave:a.test'; // moderator (50) in the standard room
const EVE = '@eve:e.test';

// --- Rule numbers as each version's list numbers them (transcribed from rooms/v*.md). ---------

interface Top {
  roomId?: string;
  authEvents: string;
  federate: string;
  aliases?: string;
  member: string;
  joined: string;
  tpi: string;
  required: string;
  atKey: string;
  pl: string;
  redaction?: string;
}
const TOP_V1: Top = { authEvents: '2', federate: '3', aliases: '4', member: '5', joined: '6', tpi: '7', required: '8', atKey: '9', pl: '10', redaction: '11' };
const TOP_V3: Top = { authEvents: '2', federate: '3', aliases: '4', member: '5', joined: '6', tpi: '7', required: '8', atKey: '9', pl: '10' };
const TOP_V6: Top = { authEvents: '2', federate: '3', member: '4', joined: '5', tpi: '6', required: '7', atKey: '8', pl: '9' };
const TOP_V12: Top = { roomId: '2', authEvents: '3', federate: '4', member: '5', joined: '6', tpi: '7', required: '8', atKey: '9', pl: '10' };
function top(v: RoomVersion): Top {
  const n = num(v);
  return n <= 2 ? TOP_V1 : n <= 5 ? TOP_V3 : n <= 11 ? TOP_V6 : TOP_V12;
}

interface MemberRules {
  via?: string;
  join: string;
  joinOtherwise: string;
  restricted?: string;
  invite: string;
  leave: string;
  ban: string;
  knock?: string;
  unknown: string;
}
const MEMBER_V1: MemberRules = { join: '2', joinOtherwise: '2.6', invite: '3', leave: '4', ban: '5', unknown: '6' };
const MEMBER_V7: MemberRules = { join: '2', joinOtherwise: '2.6', invite: '3', leave: '4', ban: '5', knock: '6', unknown: '7' };
const MEMBER_V8: MemberRules = { via: '2', join: '3', joinOtherwise: '3.7', restricted: '3.5', invite: '4', leave: '5', ban: '6', knock: '7', unknown: '8' };
function mem(v: RoomVersion, rule: keyof MemberRules, sub = ''): string {
  const n = num(v);
  const table = n <= 6 ? MEMBER_V1 : n === 7 ? MEMBER_V7 : MEMBER_V8;
  const r = table[rule];
  if (r === undefined) throw new Error(`no ${rule} rule in v${v.id}`);
  return `${top(v).member}.${r}${sub}`;
}

interface PlRules {
  namedInt?: string;
  mapInt?: string;
  users: string;
  creators?: string;
  named: string;
  eventsOld: string;
  eventsNew: string;
  usersOld: string;
  usersNew: string;
}
const PL_V1: PlRules = { users: '1', named: '3', eventsOld: '4', eventsNew: '5', usersOld: '6', usersNew: '7' };
const PL_V10: PlRules = { namedInt: '1', mapInt: '2', users: '3', named: '5', eventsOld: '6', eventsNew: '7', usersOld: '8', usersNew: '9' };
const PL_V12: PlRules = { namedInt: '1', mapInt: '2', users: '3', creators: '4', named: '6', eventsOld: '7', eventsNew: '8', usersOld: '9', usersNew: '10' };
function plr(v: RoomVersion, rule: keyof PlRules, sub = ''): string {
  const n = num(v);
  const table = n <= 9 ? PL_V1 : n <= 11 ? PL_V10 : PL_V12;
  const r = table[rule];
  if (r === undefined) throw new Error(`no ${rule} rule in v${v.id}`);
  return `${top(v).pl}.${r}${sub}`;
}

// --- A small room builder. -------------------------------------------------------------------

interface EvSpec {
  type: string;
  sender: string;
  state_key?: string;
  content?: JsonObject;
  prev_events?: string[];
  auth_events?: string[];
  event_id?: string;
  room_id?: string | null;
  redacts?: string;
}

function domainOf(id: string): string {
  return id.slice(id.indexOf(':') + 1);
}

class Room {
  readonly state: StateMap = new Map();
  readonly byId = new Map<string, RoomEvent>();
  readonly create: RoomEvent;
  readonly roomId: string;
  private n = 0;

  constructor(
    readonly v: RoomVersion,
    opts: { creator?: string; createContent?: JsonObject } = {},
  ) {
    const sender = opts.creator ?? ALICE;
    const content: JsonObject = { room_version: v.id, ...(v.implicitRoomCreator ? {} : { creator: sender }), ...opts.createContent };
    const create: RoomEvent = {
      type: 'm.room.create',
      state_key: '',
      sender,
      content,
      prev_events: [],
      auth_events: [],
      depth: 1,
      origin_server_ts: 0,
      hashes: { sha256: 'x' },
      signatures: {},
      event_id: v.roomIdIsCreateEventHash ? '$createhash' : `$create:${domainOf(sender)}`,
    };
    if (!v.roomIdIsCreateEventHash) create.room_id = `!room:${domainOf(sender)}`;
    this.roomId = v.roomIdIsCreateEventHash ? '!createhash' : create.room_id!;
    this.create = create;
    this.add(create);
  }

  make(spec: EvSpec): RoomEvent {
    const id = spec.event_id ?? `$e${++this.n}:${domainOf(spec.sender)}`;
    const ev: RoomEvent = {
      type: spec.type,
      sender: spec.sender,
      content: spec.content ?? {},
      prev_events: spec.prev_events ?? ['$prev:a.test'],
      auth_events: [],
      depth: this.n + 1,
      origin_server_ts: this.n,
      hashes: { sha256: 'x' },
      signatures: {},
      event_id: id,
    };
    if (spec.room_id !== null) ev.room_id = spec.room_id ?? this.roomId;
    if (spec.state_key !== undefined) ev.state_key = spec.state_key;
    if (spec.redacts !== undefined) {
      if (this.v.redactsInContent) ev.content = { ...ev.content, redacts: spec.redacts };
      else ev.redacts = spec.redacts;
    }
    ev.auth_events =
      spec.auth_events ??
      authEventKeysFor(ev, this.v)
        .map(([t, s]) => this.state.get(stateKeyOf(t, s))?.event_id)
        .filter((x): x is string => x !== undefined);
    return ev;
  }

  add(ev: RoomEvent): RoomEvent {
    this.byId.set(ev.event_id, ev);
    if (typeof ev.state_key === 'string') this.state.set(stateKeyOf(ev.type, ev.state_key), ev);
    return ev;
  }

  /** Adds a state event without authorising it (setting up arbitrary states). */
  put(spec: EvSpec): RoomEvent {
    return this.add(this.make(spec));
  }

  member(user: string, membership: string, sender = user, extra: JsonObject = {}): RoomEvent {
    return this.put({ type: 'm.room.member', sender, state_key: user, content: { membership, ...extra } });
  }

  /** The events the event's auth_events name, plus the create event where it is not an auth event. */
  authEventsOf(ev: RoomEvent): RoomEvent[] {
    const list = ev.auth_events.map((r) => this.byId.get(typeof r === 'string' ? r : r[0])!).filter(Boolean);
    if (!this.v.createEventInAuthEvents) list.push(this.create);
    return list;
  }

  /**
   * Authorises `ev` against its auth events and, separately, against the room state; both must
   * agree (the auth events are the selected subset of that state).
   */
  check(ev: RoomEvent, opts: AuthOptions = {}): AuthResult {
    const viaAuthEvents = authorizeEvent(ev, this.authEventsOf(ev), this.v, opts);
    const viaState = authorizeEvent(ev, this.state, this.v, opts);
    expect(viaState).toEqual(viaAuthEvents);
    return viaAuthEvents;
  }

  try(spec: EvSpec, opts: AuthOptions = {}): AuthResult {
    return this.check(this.make(spec), opts);
  }
}

/** create, creator joined, power levels (alice 100, dave 50), join rules, bob joined. */
function standardRoom(
  v: RoomVersion,
  opts: { joinRule?: string; pl?: JsonObject; joinRulesContent?: JsonObject; createContent?: JsonObject } = {},
): Room {
  const room = new Room(v, { createContent: opts.createContent });
  room.put({ type: 'm.room.member', sender: ALICE, state_key: ALICE, content: { membership: 'join' }, prev_events: [room.create.event_id] });
  const users: JsonObject = v.privilegedCreators ? { [DAVE]: 50 } : { [ALICE]: 100, [DAVE]: 50 };
  room.put({ type: 'm.room.power_levels', sender: ALICE, state_key: '', content: { users, ...opts.pl } });
  room.put({ type: 'm.room.join_rules', sender: ALICE, state_key: '', content: { join_rule: opts.joinRule ?? 'public', ...opts.joinRulesContent } });
  room.member(BOB, 'join');
  room.member(DAVE, 'join');
  return room;
}

function allowed(r: AuthResult): void {
  expect(r).toEqual({ allowed: true });
}
function rejected(r: AuthResult, rule: string): void {
  expect(r.allowed).toBe(false);
  if (!r.allowed) {
    expect(r.rule).toBe(rule);
    expect(r.reason.length).toBeGreaterThan(0);
  }
}

const msg = (sender: string, content: JsonObject = { body: 'hi', msgtype: 'm.text' }): EvSpec => ({ type: 'm.room.message', sender, content });
const mem_ = (sender: string, target: string, membership: string, extra: JsonObject = {}): EvSpec => ({
  type: 'm.room.member',
  sender,
  state_key: target,
  content: { membership, ...extra },
});

// ================================================================================================

describe('rule 1: m.room.create', () => {
  const makeCreate = (v: RoomVersion, over: Partial<RoomEvent> & { content?: JsonObject } = {}): RoomEvent => {
    const room = new Room(v);
    return { ...room.create, ...over };
  };

  it.each(ALL)('v$id: a well-formed create event is allowed', (v) => {
    allowed(authorizeEvent(makeCreate(v), [], v));
  });

  it.each(ALL)('v$id: create with prev_events is rejected (1.1)', (v) => {
    rejected(authorizeEvent(makeCreate(v, { prev_events: ['$x:a.test'] }), [], v), '1.1');
  });

  it.each(versions(1, 11))('v$id: room_id domain must match the sender (1.2)', (v) => {
    rejected(authorizeEvent(makeCreate(v, { room_id: '!room:other.test' }), [], v), '1.2');
    const missing = makeCreate(v);
    delete missing.room_id;
    rejected(authorizeEvent(missing, [], v), '1.2');
  });

  it('v12: a create event with a room_id is rejected (1.2); without is allowed', () => {
    const v = ROOM_VERSIONS.get('12')!;
    rejected(authorizeEvent(makeCreate(v, { room_id: '!room:a.test' }), [], v), '1.2');
    allowed(authorizeEvent(makeCreate(v), [], v));
  });

  it.each(ALL)('v$id: unrecognised content.room_version is rejected (1.3)', (v) => {
    const base = makeCreate(v);
    rejected(authorizeEvent({ ...base, content: { ...base.content, room_version: '999' } }, [], v), '1.3');
    rejected(authorizeEvent({ ...base, content: { ...base.content, room_version: 11 } }, [], v), '1.3');
    const noVersion = { ...base.content };
    delete noVersion['room_version'];
    allowed(authorizeEvent({ ...base, content: noVersion }, [], v));
  });

  it.each(ALL)('v$id: content.creator is required in v1–v10 only (1.4)', (v) => {
    const base = makeCreate(v);
    const content = { ...base.content };
    delete content['creator'];
    const r = authorizeEvent({ ...base, content }, [], v);
    if (num(v) <= 10) rejected(r, '1.4');
    else allowed(r);
  });

  it.each(versions(11))('v$id: additional_creators must be valid user IDs in v12 (1.4)', (v) => {
    const base = makeCreate(v);
    const bad = [['not-a-user'], 'string', [42], [BOB, '@:']];
    for (const extra of bad) {
      const r = authorizeEvent({ ...base, content: { ...base.content, additional_creators: extra } }, [], v);
      if (v.privilegedCreators) rejected(r, '1.4');
      else allowed(r);
    }
    allowed(authorizeEvent({ ...base, content: { ...base.content, additional_creators: [BOB, CAROL] } }, [], v));
  });
});

describe('v12 rule 2: room_id is the create event ID', () => {
  const v = ROOM_VERSIONS.get('12')!;
  it('accepts the matching room ID and rejects another', () => {
    const room = standardRoom(v);
    allowed(room.try(msg(BOB)));
    rejected(room.try({ ...msg(BOB), room_id: '!otherhash' }), '2');
  });
  it('rejects when the create event is rejected or absent', () => {
    const room = standardRoom(v);
    const ev = room.make(msg(BOB));
    rejected(authorizeEvent(ev, room.authEventsOf(ev), v, { isRejected: (id) => id === room.create.event_id }), '2');
    const withoutCreate = room.authEventsOf(ev).filter((e) => e.type !== 'm.room.create');
    rejected(authorizeEvent(ev, withoutCreate, v), '2');
    allowed(authorizeEvent(ev, withoutCreate, v, { createEvent: room.create }));
  });
});

describe('auth_events checks', () => {
  it.each(ALL)('v$id: duplicate (type, state_key) entries are rejected', (v) => {
    const room = standardRoom(v);
    const oldPl = room.state.get(stateKeyOf('m.room.power_levels', ''))!;
    room.put({ type: 'm.room.power_levels', sender: ALICE, state_key: '', content: oldPl.content });
    const ev = room.make(msg(BOB));
    ev.auth_events = [...ev.auth_events, oldPl.event_id];
    const r = authorizeEvent(ev, [...room.authEventsOf(ev), oldPl], v);
    rejected(r, `${top(v).authEvents}.1`);
    rejected(checkAuthEventsShape(ev, [...room.authEventsOf(ev), oldPl], v), `${top(v).authEvents}.1`);
  });

  it.each(ALL)('v$id: entries not chosen by the auth events selection are rejected', (v) => {
    const room = standardRoom(v);
    const jr = room.state.get(stateKeyOf('m.room.join_rules', ''))!;
    const ev = room.make(msg(BOB));
    allowed(authorizeEvent(ev, room.authEventsOf(ev), v));
    ev.auth_events = [...ev.auth_events, jr.event_id]; // join rules are not selected for a message
    rejected(authorizeEvent(ev, room.authEventsOf(ev), v), `${top(v).authEvents}.2`);
  });

  it.each(ALL)('v$id: the create event is selected except in v12', (v) => {
    const room = standardRoom(v);
    const ev = room.make(msg(BOB));
    const hasCreate = ev.auth_events.includes(room.create.event_id);
    expect(hasCreate).toBe(v.createEventInAuthEvents);
    if (!hasCreate) {
      ev.auth_events = [room.create.event_id, ...ev.auth_events];
      rejected(authorizeEvent(ev, room.authEventsOf(ev), v), `${top(v).authEvents}.2`);
    }
  });

  it.each(ALL)('v$id: rejected auth events are rejected (with isRejected)', (v) => {
    const room = standardRoom(v);
    const ev = room.make(msg(BOB));
    const bobJoin = room.state.get(stateKeyOf('m.room.member', BOB))!;
    allowed(authorizeEvent(ev, room.authEventsOf(ev), v, { isRejected: () => false }));
    rejected(authorizeEvent(ev, room.authEventsOf(ev), v, { isRejected: (id) => id === bobJoin.event_id }), `${top(v).authEvents}.3`);
  });

  it.each(versions(1, 11))('v$id: a missing create event is rejected (2.4)', (v) => {
    const room = standardRoom(v);
    const ev = room.make(msg(BOB));
    ev.auth_events = ev.auth_events.filter((id) => id !== room.create.event_id);
    rejected(authorizeEvent(ev, room.authEventsOf(ev), v), '2.4');
    // the state-map form also needs a create event
    const noCreate = new Map(room.state);
    noCreate.delete(stateKeyOf('m.room.create', ''));
    rejected(authorizeEvent(ev, noCreate, v), '2.4');
  });

  it.each(ALL)('v$id: auth events from another room are rejected', (v) => {
    const room = standardRoom(v);
    const bobJoin = room.state.get(stateKeyOf('m.room.member', BOB))!;
    const foreign = { ...bobJoin, event_id: '$foreign:b.test', room_id: '!elsewhere:b.test' };
    room.add(foreign);
    const ev = room.make(msg(BOB));
    expect(ev.auth_events).toContain('$foreign:b.test');
    // v12 numbers it 3.4 (rendered list), earlier versions 2.5
    rejected(authorizeEvent(ev, room.authEventsOf(ev), v), num(v) === 12 ? '3.4' : '2.5');
  });

  it.each(ALL)('v$id: an auth event that is not supplied is rejected', (v) => {
    const room = standardRoom(v);
    const ev = room.make(msg(BOB));
    const supplied = room.authEventsOf(ev).filter((e) => e.type !== 'm.room.power_levels');
    rejected(authorizeEvent(ev, supplied, v), top(v).authEvents);
  });
});

describe('auth events selection', () => {
  it.each(ALL)('v$id: selects create (not v12), power levels, sender and target membership, join rules', (v) => {
    const keys = authEventKeysFor({ type: 'm.room.member', sender: BOB, state_key: BOB, content: { membership: 'join' } }, v);
    const expected: Array<[string, string]> = [
      ...(num(v) < 12 ? ([['m.room.create', '']] as Array<[string, string]>) : []),
      ['m.room.power_levels', ''],
      ['m.room.member', BOB],
      ['m.room.join_rules', ''],
    ];
    expect(keys).toEqual(expected);
    const forMessage = authEventKeysFor({ type: 'm.room.message', sender: BOB, content: {} }, v);
    expect(forMessage).toEqual(expected.filter(([t]) => t !== 'm.room.join_rules'));
    expect(authEventKeysFor({ type: 'm.room.create', sender: BOB, state_key: '', content: {} }, v)).toEqual([]);
  });

  it.each(ALL)('v$id: third-party invite token and restricted-join authoriser', (v) => {
    const invite = authEventKeysFor(
      { type: 'm.room.member', sender: ALICE, state_key: BOB, content: { membership: 'invite', third_party_invite: { signed: { token: 'tok' } } } },
      v,
    );
    expect(invite).toContainEqual(['m.room.third_party_invite', 'tok']);
    expect(invite).toContainEqual(['m.room.member', BOB]);
    expect(invite).toContainEqual(['m.room.join_rules', '']);
    const join = authEventKeysFor(
      { type: 'm.room.member', sender: BOB, state_key: BOB, content: { membership: 'join', join_authorised_via_users_server: DAVE } },
      v,
    );
    expect(join.some(([t, s]) => t === 'm.room.member' && s === DAVE)).toBe(v.restrictedJoinRule);
    const leave = authEventKeysFor({ type: 'm.room.member', sender: DAVE, state_key: BOB, content: { membership: 'leave' } }, v);
    expect(leave.some(([t]) => t === 'm.room.join_rules')).toBe(false);
  });
});

describe('m.federate', () => {
  it.each(ALL)('v$id: a non-federated room rejects senders from other servers', (v) => {
    const room = standardRoom(v, { createContent: { 'm.federate': false } });
    rejected(room.try(msg(BOB)), top(v).federate);
    allowed(room.try(msg(DAVE))); // same server as the creator
    const federated = standardRoom(v, { createContent: { 'm.federate': true } });
    allowed(federated.try(msg(BOB)));
  });
});

describe('m.room.aliases (v1–v5 special case)', () => {
  it.each(ALL)('v$id', (v) => {
    const room = standardRoom(v);
    // EVE is not in the room and has no power: only the v1–v5 special case allows this.
    const own = room.try({ type: 'm.room.aliases', sender: EVE, state_key: 'e.test', content: { aliases: ['#x:e.test'] } });
    const other = room.try({ type: 'm.room.aliases', sender: EVE, state_key: 'a.test', content: { aliases: [] } });
    const noKey = room.try({ type: 'm.room.aliases', sender: EVE, content: { aliases: [] } });
    if (v.specialCaseAliasesAuth) {
      allowed(own);
      rejected(other, '4.2');
      rejected(noKey, '4.1');
    } else {
      rejected(own, top(v).joined);
      rejected(other, top(v).joined);
      // joined but below state_default 50: the ordinary rules apply
      rejected(room.try({ type: 'm.room.aliases', sender: BOB, state_key: 'b.test', content: { aliases: [] } }), top(v).required);
      allowed(room.try({ type: 'm.room.aliases', sender: DAVE, state_key: 'a.test', content: { aliases: [] } }));
    }
  });
});

describe('m.room.member', () => {
  it.each(ALL)('v$id: missing state_key or membership is rejected (.1)', (v) => {
    const room = standardRoom(v);
    rejected(room.try({ type: 'm.room.member', sender: CAROL, state_key: CAROL, content: {} }), `${top(v).member}.1`);
    rejected(room.try({ type: 'm.room.member', sender: CAROL, content: { membership: 'join' } }), `${top(v).member}.1`);
  });

  it.each(ALL)('v$id: unknown membership is rejected', (v) => {
    const room = standardRoom(v);
    rejected(room.try(mem_(BOB, BOB, 'hover')), mem(v, 'unknown'));
    rejected(room.try({ type: 'm.room.member', sender: BOB, state_key: BOB, content: { membership: 5 } }), mem(v, 'unknown'));
  });

  describe('join', () => {
    it.each(ALL)('v$id: the creator joins right after the create event; v11+ use the sender, not content.creator', (v) => {
      // content.creator names mallory; the sender is alice.
      const room = new Room(v, { createContent: { creator: '@mallory:a.test' } });
      const joinAfterCreate = (user: string): AuthResult =>
        room.try({ ...mem_(user, user, 'join'), prev_events: [room.create.event_id] });
      if (v.implicitRoomCreator) {
        allowed(joinAfterCreate(ALICE));
        rejected(joinAfterCreate('@mallory:a.test'), mem(v, 'joinOtherwise'));
      } else {
        allowed(joinAfterCreate('@mallory:a.test'));
        rejected(joinAfterCreate(ALICE), mem(v, 'joinOtherwise'));
      }
      // not directly after the create event: the join rules apply (no join rules: invite-only)
      rejected(room.try(mem_(ALICE, ALICE, 'join')), mem(v, 'joinOtherwise'));
    });

    it.each(ALL)('v$id: sender must match state_key (.2)', (v) => {
      const room = standardRoom(v);
      rejected(room.try(mem_(ALICE, CAROL, 'join')), mem(v, 'join', '.2'));
      allowed(room.try(mem_(CAROL, CAROL, 'join')));
    });

    it.each(ALL)('v$id: banned users cannot join (.3)', (v) => {
      const room = standardRoom(v);
      room.member(CAROL, 'ban', ALICE);
      rejected(room.try(mem_(CAROL, CAROL, 'join')), mem(v, 'join', '.3'));
    });

    it.each(ALL)('v$id: invite join rule needs an invite or a join (.4)', (v) => {
      const room = standardRoom(v, { joinRule: 'invite' });
      rejected(room.try(mem_(CAROL, CAROL, 'join')), mem(v, 'joinOtherwise'));
      room.member(CAROL, 'invite', ALICE);
      allowed(room.try(mem_(CAROL, CAROL, 'join')));
      allowed(room.try(mem_(BOB, BOB, 'join', { displayname: 'Bob' }))); // already joined
    });

    it.each(ALL)('v$id: knock join rule admits invited users from v7, otherwise rejects', (v) => {
      const room = standardRoom(v, { joinRule: 'knock' });
      room.member(CAROL, 'invite', ALICE);
      const r = room.try(mem_(CAROL, CAROL, 'join'));
      if (num(v) >= 7) allowed(r);
      else rejected(r, mem(v, 'joinOtherwise'));
      rejected(room.try(mem_(EVE, EVE, 'join')), mem(v, 'joinOtherwise'));
    });

    it.each(ALL)('v$id: restricted join rule (v8+)', (v) => {
      const room = standardRoom(v, { joinRule: 'restricted', joinRulesContent: { allow: [{ type: 'm.room_membership', room_id: '!other:a.test' }] } });
      const viaDave = room.try(mem_(CAROL, CAROL, 'join', { join_authorised_via_users_server: DAVE }));
      if (num(v) < 8) {
        rejected(viaDave, mem(v, 'joinOtherwise'));
        return;
      }
      allowed(viaDave);
      // authoriser not joined
      rejected(room.try(mem_(CAROL, CAROL, 'join', { join_authorised_via_users_server: EVE })), `${mem(v, 'restricted')}.2`);
      // no authoriser
      rejected(room.try(mem_(CAROL, CAROL, 'join')), `${mem(v, 'restricted')}.2`);
      // authoriser joined but below the invite level
      const strict = standardRoom(v, { joinRule: 'restricted', pl: { invite: 60 } });
      rejected(strict.try(mem_(CAROL, CAROL, 'join', { join_authorised_via_users_server: DAVE })), `${mem(v, 'restricted')}.2`);
      // invited users need no authoriser (.5.1)
      room.member(EVE, 'invite', ALICE);
      allowed(room.try(mem_(EVE, EVE, 'join')));
    });

    it.each(ALL)('v$id: knock_restricted join rule (v10+)', (v) => {
      const room = standardRoom(v, { joinRule: 'knock_restricted' });
      const viaDave = room.try(mem_(CAROL, CAROL, 'join', { join_authorised_via_users_server: DAVE }));
      if (num(v) >= 10) {
        allowed(viaDave);
        rejected(room.try(mem_(CAROL, CAROL, 'join', { join_authorised_via_users_server: EVE })), `${mem(v, 'restricted')}.2`);
      } else {
        rejected(viaDave, mem(v, 'joinOtherwise'));
      }
    });

    it.each(ALL)('v$id: public rooms admit anyone; other join rules reject', (v) => {
      allowed(standardRoom(v).try(mem_(CAROL, CAROL, 'join')));
      rejected(standardRoom(v, { joinRule: 'private' }).try(mem_(CAROL, CAROL, 'join')), mem(v, 'joinOtherwise'));
    });

    it.each(ALL)('v$id: join_authorised_via_users_server must be signed by that server (v8+)', (v) => {
      const room = standardRoom(v, { joinRule: 'restricted' });
      const daveKey = generateSigningKey();
      const keys = new Map([['a.test', daveKey]]);
      const verifySignature = (ev: RoomEvent, server: string): boolean => {
        const key = keys.get(server);
        return key !== undefined && verifyJsonSignature(ev, server, key.keyId, key.publicKey);
      };
      const unsigned = room.make(mem_(CAROL, CAROL, 'join', { join_authorised_via_users_server: DAVE }));
      const signed = signJson(unsigned, 'a.test', daveKey) as RoomEvent;
      if (num(v) < 8) {
        // the key means nothing before v8: a restricted room cannot be joined at all
        rejected(room.check(signed, { verifySignature }), mem(v, 'joinOtherwise'));
        return;
      }
      allowed(room.check(signed, { verifySignature }));
      rejected(room.check(unsigned, { verifySignature }), mem(v, 'via', '.1'));
      // without a verifier the signature is taken as checked elsewhere
      allowed(room.check(unsigned));
      // the rule applies to any membership carrying the key, and to malformed values
      rejected(room.try(mem_(BOB, BOB, 'leave', { join_authorised_via_users_server: 'nobody' })), mem(v, 'via', '.1'));
      // a public room still requires the signature
      const pub = standardRoom(v);
      rejected(pub.check(pub.make(mem_(CAROL, CAROL, 'join', { join_authorised_via_users_server: DAVE })), { verifySignature }), mem(v, 'via', '.1'));
    });
  });

  describe('invite', () => {
    it.each(ALL)('v$id: sender must be joined (.2)', (v) => {
      const room = standardRoom(v);
      rejected(room.try(mem_(EVE, CAROL, 'invite')), mem(v, 'invite', '.2'));
      allowed(room.try(mem_(BOB, CAROL, 'invite')));
    });

    it.each(ALL)('v$id: target must not be joined or banned (.3)', (v) => {
      const room = standardRoom(v);
      rejected(room.try(mem_(ALICE, BOB, 'invite')), mem(v, 'invite', '.3'));
      room.member(CAROL, 'ban', ALICE);
      rejected(room.try(mem_(ALICE, CAROL, 'invite')), mem(v, 'invite', '.3'));
      room.member(EVE, 'leave');
      allowed(room.try(mem_(ALICE, EVE, 'invite')));
    });

    it.each(ALL)('v$id: sender needs the invite level (.4/.5)', (v) => {
      const room = standardRoom(v, { pl: { invite: 50 } });
      rejected(room.try(mem_(BOB, CAROL, 'invite')), mem(v, 'invite', '.5'));
      allowed(room.try(mem_(DAVE, CAROL, 'invite')));
    });

    describe('third-party invites', () => {
      const key = generateSigningKey();
      const other = generateSigningKey();
      const setup = (v: RoomVersion, publicKeys: { single?: Uint8Array; list?: Uint8Array[] } = { single: key.publicKey }): Room => {
        const room = standardRoom(v);
        const content: JsonObject = { display_name: 'c...@example.org', key_validity_url: 'https://id.test/isvalid' };
        if (publicKeys.single) content['public_key'] = encodeBase64(publicKeys.single);
        if (publicKeys.list) content['public_keys'] = publicKeys.list.map((k) => ({ public_key: encodeBase64(k), key_validity_url: 'https://id.test/isvalid' }));
        room.put({ type: 'm.room.third_party_invite', sender: DAVE, state_key: 'tok', content });
        return room;
      };
      const signedFor = (mxid: string, token: string, k = key): JsonObject =>
        signJson({ mxid, token, sender: DAVE }, 'id.test', k) as unknown as JsonObject;
      const tpInvite = (sender: string, target: string, tpi: JsonObject): EvSpec => mem_(sender, target, 'invite', { third_party_invite: tpi });
      const sub = (v: RoomVersion, n: number): string => mem(v, 'invite', `.1.${n}`);

      it.each(ALL)('v$id: a correctly signed invite is allowed', (v) => {
        const room = setup(v);
        allowed(room.try(tpInvite(DAVE, CAROL, { display_name: 'c', signed: signedFor(CAROL, 'tok') })));
        // the public_keys list works too, and the sender need not reach the invite level
        const listed = setup(v, { list: [other.publicKey, key.publicKey] });
        allowed(listed.try(tpInvite(DAVE, CAROL, { display_name: 'c', signed: signedFor(CAROL, 'tok') })));
      });

      it.each(ALL)('v$id: each third-party rule rejects', (v) => {
        const room = setup(v);
        room.member(EVE, 'ban', ALICE);
        rejected(room.try(tpInvite(DAVE, EVE, { signed: signedFor(EVE, 'tok') })), sub(v, 1));
        rejected(room.try(tpInvite(DAVE, CAROL, { display_name: 'c' })), sub(v, 2));
        rejected(room.try(tpInvite(DAVE, CAROL, { signed: { mxid: CAROL } })), sub(v, 3));
        rejected(room.try(tpInvite(DAVE, CAROL, { signed: { token: 'tok' } })), sub(v, 3));
        rejected(room.try(tpInvite(DAVE, CAROL, { signed: signedFor(BOB, 'tok') })), sub(v, 4));
        rejected(room.try(tpInvite(DAVE, CAROL, { signed: signedFor(CAROL, 'unknown') })), sub(v, 5));
        rejected(room.try(tpInvite(BOB, CAROL, { signed: signedFor(CAROL, 'tok') })), sub(v, 6));
        rejected(room.try(tpInvite(DAVE, CAROL, { signed: signedFor(CAROL, 'tok', other) })), sub(v, 8));
        const tampered = { ...signedFor(CAROL, 'tok'), extra: 1 };
        rejected(room.try(tpInvite(DAVE, CAROL, { signed: tampered })), sub(v, 8));
        rejected(room.try(tpInvite(DAVE, CAROL, { signed: { mxid: CAROL, token: 'tok' } })), sub(v, 8));
      });
    });
  });

  describe('leave', () => {
    it.each(ALL)('v$id: leaving yourself needs invite or join (or knock from v7) (.1)', (v) => {
      const room = standardRoom(v);
      allowed(room.try(mem_(BOB, BOB, 'leave')));
      room.member(CAROL, 'invite', ALICE);
      allowed(room.try(mem_(CAROL, CAROL, 'leave')));
      rejected(room.try(mem_(EVE, EVE, 'leave')), mem(v, 'leave', '.1'));
      room.member(EVE, 'ban', ALICE);
      rejected(room.try(mem_(EVE, EVE, 'leave')), mem(v, 'leave', '.1'));
      room.member('@kim:k.test', 'knock');
      const r = room.try(mem_('@kim:k.test', '@kim:k.test', 'leave'));
      if (v.knockJoinRule) allowed(r);
      else rejected(r, mem(v, 'leave', '.1'));
    });

    it.each(ALL)('v$id: kicking needs a joined sender (.2), the ban level to unban (.3), kick level and more power (.4/.5)', (v) => {
      const room = standardRoom(v);
      room.member(EVE, 'invite', ALICE);
      rejected(room.try(mem_(CAROL, BOB, 'leave')), mem(v, 'leave', '.2'));
      allowed(room.try(mem_(DAVE, BOB, 'leave'))); // 50 >= kick 50, bob 0
      rejected(room.try(mem_(BOB, DAVE, 'leave')), mem(v, 'leave', '.5'));
      allowed(room.try(mem_(ALICE, DAVE, 'leave')));
      room.member(CAROL, 'ban', ALICE);
      const high = standardRoom(v, { pl: { ban: 75 } });
      high.member(CAROL, 'ban', ALICE);
      rejected(high.try(mem_(DAVE, CAROL, 'leave')), mem(v, 'leave', '.3'));
      allowed(high.try(mem_(ALICE, CAROL, 'leave')));
      allowed(room.try(mem_(DAVE, CAROL, 'leave')));
    });
  });

  describe('ban', () => {
    it.each(ALL)('v$id: sender joined (.1), ban level and more power (.2/.3)', (v) => {
      const room = standardRoom(v);
      room.member(CAROL, 'leave');
      rejected(room.try(mem_(CAROL, BOB, 'ban')), mem(v, 'ban', '.1'));
      allowed(room.try(mem_(DAVE, BOB, 'ban')));
      allowed(room.try(mem_(DAVE, EVE, 'ban'))); // need not be in the room
      rejected(room.try(mem_(BOB, EVE, 'ban')), mem(v, 'ban', '.3'));
      rejected(room.try(mem_(DAVE, ALICE, 'ban')), mem(v, 'ban', '.3'));
    });
  });

  describe('knock', () => {
    it.each(ALL)('v$id: knocking exists from v7', (v) => {
      const room = standardRoom(v, { joinRule: 'knock' });
      const r = room.try(mem_(CAROL, CAROL, 'knock'));
      if (num(v) < 7) {
        rejected(r, mem(v, 'unknown'));
        return;
      }
      allowed(r);
      rejected(room.try(mem_(BOB, CAROL, 'knock')), mem(v, 'knock', '.2'));
      rejected(room.try(mem_(BOB, BOB, 'knock')), mem(v, 'knock', '.4'));
      room.member(EVE, 'ban', ALICE);
      rejected(room.try(mem_(EVE, EVE, 'knock')), mem(v, 'knock', '.4'));
      room.member('@kim:k.test', 'invite', ALICE);
      rejected(room.try(mem_('@kim:k.test', '@kim:k.test', 'knock')), mem(v, 'knock', '.4'));
      room.member('@lee:l.test', 'leave');
      allowed(room.try(mem_('@lee:l.test', '@lee:l.test', 'knock')));
      rejected(standardRoom(v).try(mem_(CAROL, CAROL, 'knock')), mem(v, 'knock', '.1'));
    });

    it.each(versions(7))('v$id: knock_restricted admits knocks from v10', (v) => {
      const r = standardRoom(v, { joinRule: 'knock_restricted' }).try(mem_(CAROL, CAROL, 'knock'));
      if (num(v) >= 10) allowed(r);
      else rejected(r, mem(v, 'knock', '.1'));
    });
  });
});

describe('non-membership events', () => {
  it.each(ALL)('v$id: the sender must be joined', (v) => {
    const room = standardRoom(v);
    allowed(room.try(msg(BOB)));
    rejected(room.try(msg(CAROL)), top(v).joined);
    room.member(CAROL, 'invite', ALICE);
    rejected(room.try(msg(CAROL)), top(v).joined);
  });

  it.each(ALL)('v$id: m.room.third_party_invite needs the invite level', (v) => {
    const room = standardRoom(v, { pl: { invite: 50 } });
    const tpi = (sender: string): EvSpec => ({ type: 'm.room.third_party_invite', sender, state_key: 'tok', content: { public_key: 'AAAA' } });
    rejected(room.try(tpi(BOB)), `${top(v).tpi}.1`);
    allowed(room.try(tpi(DAVE)));
    // the invite level, not state_default, applies
    const lax = standardRoom(v, { pl: { invite: 0, state_default: 100, events: { 'm.room.third_party_invite': 100 } } });
    allowed(lax.try(tpi(BOB)));
  });

  it.each(ALL)('v$id: the required power level applies', (v) => {
    const room = standardRoom(v, { pl: { events_default: 10, events: { 'm.room.topic': 0, 'm.custom': 60 } } });
    rejected(room.try(msg(BOB)), top(v).required);
    allowed(room.try(msg(DAVE)));
    allowed(room.try({ type: 'm.room.topic', sender: BOB, state_key: '', content: { topic: 't' } }));
    rejected(room.try({ type: 'm.room.name', sender: BOB, state_key: '', content: { name: 'n' } }), top(v).required); // state_default 50
    allowed(room.try({ type: 'm.room.name', sender: DAVE, state_key: '', content: { name: 'n' } }));
    rejected(room.try({ type: 'm.custom', sender: DAVE, content: {} }), top(v).required);
  });

  it.each(ALL)('v$id: state keys naming another user are reserved to that user', (v) => {
    const room = standardRoom(v, { pl: { state_default: 0 } });
    allowed(room.try({ type: 'm.custom', sender: BOB, state_key: BOB, content: {} }));
    rejected(room.try({ type: 'm.custom', sender: ALICE, state_key: BOB, content: {} }), top(v).atKey);
    allowed(room.try({ type: 'm.custom', sender: BOB, state_key: 'free', content: {} }));
  });

  it.each(ALL)('v$id: m.room.redaction: domain rule in v1/v2, ordinary event from v3', (v) => {
    const room = standardRoom(v);
    const fromA = '$target:a.test';
    const fromB = '$target:b.test';
    const bobRedacts = (target: string): AuthResult => room.try({ type: 'm.room.redaction', sender: BOB, redacts: target, content: {} });
    allowed(bobRedacts(fromB)); // same server
    if (v.redactionInAuthRules) {
      rejected(bobRedacts(fromA), '11.3');
      allowed(room.try({ type: 'm.room.redaction', sender: DAVE, redacts: fromB, content: {} })); // redact level 50
    } else {
      allowed(bobRedacts(fromA)); // decided when the redaction is applied
    }
    // sending the redaction still needs the event's required level
    const strict = standardRoom(v, { pl: { events: { 'm.room.redaction': 60 } } });
    rejected(strict.try({ type: 'm.room.redaction', sender: DAVE, redacts: fromA, content: {} }), top(v).required);
  });
});

describe('m.room.power_levels', () => {
  const plEvent = (sender: string, content: JsonObject): EvSpec => ({ type: 'm.room.power_levels', sender, state_key: '', content });
  const base = (v: RoomVersion): JsonObject => ({ users: v.privilegedCreators ? { [DAVE]: 50 } : { [ALICE]: 100, [DAVE]: 50 } });

  it.each(ALL)('v$id: users must map valid user IDs to integers', (v) => {
    const room = standardRoom(v);
    allowed(room.try(plEvent(ALICE, base(v))));
    rejected(room.try(plEvent(ALICE, { users: { notauser: 10 } })), plr(v, 'users'));
    rejected(room.try(plEvent(ALICE, { users: { [BOB]: 'ten' } })), plr(v, 'users'));
    rejected(room.try(plEvent(ALICE, { users: [BOB] })), plr(v, 'users'));
    rejected(room.try(plEvent(ALICE, { users: { [BOB]: true } })), plr(v, 'users'));
  });

  it.each(ALL)('v$id: string power levels are accepted in v1–v9 and rejected from v10', (v) => {
    const room = standardRoom(v);
    const stringUsers = room.try(plEvent(ALICE, { users: { ...(base(v)['users'] as JsonObject), [BOB]: ' +10 ' } }));
    const stringNamed = room.try(plEvent(ALICE, { ...base(v), ban: '50' }));
    const stringEvents = room.try(plEvent(ALICE, { ...base(v), events: { 'm.room.name': '50' } }));
    const stringNotif = room.try(plEvent(ALICE, { ...base(v), notifications: { room: '50' } }));
    if (num(v) <= 9) {
      allowed(stringUsers);
      allowed(stringNamed);
      allowed(stringEvents);
      allowed(stringNotif);
    } else {
      rejected(stringUsers, plr(v, 'users'));
      rejected(stringNamed, plr(v, 'namedInt'));
      rejected(stringEvents, plr(v, 'mapInt'));
      rejected(stringNotif, plr(v, 'mapInt'));
      rejected(room.try(plEvent(ALICE, { ...base(v), events: [] })), plr(v, 'mapInt'));
    }
  });

  it.each(ALL)('v$id: string levels in state are honoured in v1–v9', (v) => {
    const room = standardRoom(v, { pl: { users: { ...(v.privilegedCreators ? {} : { [ALICE]: '100' }), [BOB]: '75' }, kick: '60' } });
    // bob (75 as a string) may kick dave (0 here) in v1–v9; from v10 the strings are ignored
    const r = room.try(mem_(BOB, DAVE, 'leave'));
    if (num(v) <= 9) allowed(r);
    else rejected(r, mem(v, 'leave', '.5'));
  });

  it.each(ALL)('v$id: floats are truncated in v1–v5 and rejected afterwards', (v) => {
    const room = standardRoom(v);
    const r = room.try(plEvent(ALICE, { users: { ...(base(v)['users'] as JsonObject), [BOB]: 50.7 } }));
    if (num(v) <= 5) allowed(r);
    else rejected(r, plr(v, 'users'));
  });

  it.each(ALL)('v$id: the first power-levels event is allowed without change checks', (v) => {
    const room = new Room(v);
    room.put({ ...mem_(ALICE, ALICE, 'join'), prev_events: [room.create.event_id] });
    allowed(room.try(plEvent(ALICE, { users: v.privilegedCreators ? {} : { [ALICE]: 100 }, ban: 1000, events: { x: 1000 } })));
    // a non-creator (level 0 < state_default 50) may not
    room.put({ type: 'm.room.join_rules', sender: ALICE, state_key: '', content: { join_rule: 'public' } });
    room.member(BOB, 'join');
    rejected(room.try(plEvent(BOB, { users: { [BOB]: 100 } })), top(v).required);
  });

  it.each(ALL)('v$id: named levels: current and new values must not exceed the sender', (v) => {
    const room = standardRoom(v, { pl: { kick: 75, state_default: 0, events: { 'm.room.power_levels': 50 } } });
    const b = { ...base(v), kick: 75, state_default: 0, events: { 'm.room.power_levels': 50 } };
    rejected(room.try(plEvent(DAVE, { ...b, kick: 40 })), plr(v, 'named', '.1'));
    rejected(room.try(plEvent(DAVE, { ...b, ban: 60 })), plr(v, 'named', '.2'));
    rejected(room.try(plEvent(DAVE, { ...b, users_default: 60 })), plr(v, 'named', '.2'));
    allowed(room.try(plEvent(DAVE, { ...b, ban: 40, invite: 50 })));
    // removing a value above the sender is a change too
    const removed: JsonObject = { ...b };
    delete removed['kick'];
    rejected(room.try(plEvent(DAVE, removed)), plr(v, 'named', '.1'));
    allowed(room.try(plEvent(ALICE, { ...b, kick: 100 })));
    // only an infinitely powerful creator (v12) may go above 100
    const huge = room.try(plEvent(ALICE, { ...b, kick: 1000 }));
    if (v.privilegedCreators) allowed(huge);
    else rejected(huge, plr(v, 'named', '.2'));
  });

  it.each(ALL)('v$id: events and (from v6) notifications entries', (v) => {
    const pl = { events: { 'm.room.power_levels': 50, 'm.room.tombstone': 100 }, notifications: { room: 80 } };
    const room = standardRoom(v, { pl });
    const b = { ...base(v), ...pl };
    rejected(room.try(plEvent(DAVE, { ...b, events: { 'm.room.power_levels': 50, 'm.room.tombstone': 0 } })), plr(v, 'eventsOld', '.1'));
    rejected(room.try(plEvent(DAVE, { ...b, events: { 'm.room.power_levels': 50 } })), plr(v, 'eventsOld', '.1'));
    rejected(room.try(plEvent(DAVE, { ...b, events: { ...b.events, 'm.room.name': 60 } })), plr(v, 'eventsNew', '.1'));
    allowed(room.try(plEvent(DAVE, { ...b, events: { ...b.events, 'm.room.name': 50 } })));
    const lowerNotif = room.try(plEvent(DAVE, { ...b, notifications: { room: 0 } }));
    const raiseNotif = room.try(plEvent(DAVE, { ...b, notifications: { room: 80, other: 90 } }));
    if (v.limitNotificationsPowerLevels) {
      rejected(lowerNotif, plr(v, 'eventsOld', '.1'));
      rejected(raiseNotif, plr(v, 'eventsNew', '.1'));
    } else {
      allowed(lowerNotif);
      allowed(raiseNotif);
    }
  });

  it.each(ALL)('v$id: users entries', (v) => {
    const pl = { users: { ...(v.privilegedCreators ? {} : { [ALICE]: 100 }), [DAVE]: 50, '@mod:m.test': 50, [BOB]: 10 }, events: { 'm.room.power_levels': 50 } };
    const room = standardRoom(v, { pl });
    const users = pl.users as Record<string, number>;
    const withUsers = (u: Record<string, number>): JsonObject => ({ ...pl, users: u });
    rejected(room.try(plEvent(DAVE, withUsers({ ...users, '@mod:m.test': 0 }))), plr(v, 'usersOld', '.1'));
    const noMod = { ...users };
    delete noMod['@mod:m.test'];
    rejected(room.try(plEvent(DAVE, withUsers(noMod))), plr(v, 'usersOld', '.1'));
    allowed(room.try(plEvent(DAVE, withUsers({ ...users, [BOB]: 0 }))));
    allowed(room.try(plEvent(DAVE, withUsers({ ...users, [DAVE]: 20 })))); // own entry
    rejected(room.try(plEvent(DAVE, withUsers({ ...users, [DAVE]: 60 }))), plr(v, 'usersNew', '.1'));
    rejected(room.try(plEvent(DAVE, withUsers({ ...users, [CAROL]: 51 }))), plr(v, 'usersNew', '.1'));
    allowed(room.try(plEvent(DAVE, withUsers({ ...users, [CAROL]: 50 }))));
  });
});

describe('room creators', () => {
  it.each(ALL)('v$id: creators listed in users (v12 rule 10.4)', (v) => {
    const room = new Room(v, { createContent: v.privilegedCreators ? { additional_creators: [BOB] } : {} });
    room.put({ ...mem_(ALICE, ALICE, 'join'), prev_events: [room.create.event_id] });
    const withAlice = room.try({ type: 'm.room.power_levels', sender: ALICE, state_key: '', content: { users: { [ALICE]: 100 } } });
    const withBob = room.try({ type: 'm.room.power_levels', sender: ALICE, state_key: '', content: { users: { [BOB]: 100 } } });
    if (v.privilegedCreators) {
      rejected(withAlice, plr(v, 'creators'));
      rejected(withBob, plr(v, 'creators'));
    } else {
      allowed(withAlice);
      allowed(withBob);
    }
  });

  it.each(versions(11))('v$id: creators have infinite power in v12', (v) => {
    const room = standardRoom(v, {
      createContent: v.privilegedCreators ? { additional_creators: [BOB] } : {},
      pl: { users: { [DAVE]: 100 }, state_default: 1000, ban: 100 },
    });
    // alice is not in users: in v11 she has users_default (0) once a power-levels event exists
    const topic = room.try({ type: 'm.room.topic', sender: ALICE, state_key: '', content: { topic: 't' } });
    const banDave = room.try(mem_(ALICE, DAVE, 'ban'));
    const bobBansAlice = room.try(mem_(BOB, ALICE, 'ban'));
    const daveBansBob = room.try(mem_(DAVE, BOB, 'ban'));
    if (v.privilegedCreators) {
      allowed(topic);
      allowed(banDave);
      rejected(bobBansAlice, mem(v, 'ban', '.3')); // infinity is not below infinity
      rejected(daveBansBob, mem(v, 'ban', '.3'));
    } else {
      rejected(topic, top(v).required);
      rejected(banDave, mem(v, 'ban', '.3'));
      rejected(bobBansAlice, mem(v, 'ban', '.3'));
      allowed(daveBansBob);
    }
  });

  it.each(ALL)('v$id: without power levels the creator has 100 (v1–v11) or infinite power (v12)', (v) => {
    const room = new Room(v);
    room.put({ ...mem_(ALICE, ALICE, 'join'), prev_events: [room.create.event_id] });
    room.put({ type: 'm.room.join_rules', sender: ALICE, state_key: '', content: { join_rule: 'public' } });
    room.member(BOB, 'join');
    allowed(room.try({ type: 'm.room.name', sender: ALICE, state_key: '', content: { name: 'x' } }));
    allowed(room.try(mem_(ALICE, BOB, 'ban')));
    rejected(room.try({ type: 'm.room.name', sender: BOB, state_key: '', content: { name: 'x' } }), top(v).required);
    rejected(room.try(mem_(BOB, ALICE, 'ban')), mem(v, 'ban', '.3'));
    allowed(room.try(msg(BOB)));
  });
});

describe('stateMapFromEvents', () => {
  it('keys state events by (type, state_key), later events winning, ignoring messages', () => {
    const v = ROOM_VERSIONS.get('10')!;
    const room = standardRoom(v);
    const name1 = room.make({ type: 'm.room.name', sender: ALICE, state_key: '', content: { name: '1' } });
    const name2 = room.make({ type: 'm.room.name', sender: ALICE, state_key: '', content: { name: '2' } });
    const message = room.make(msg(BOB));
    const map = stateMapFromEvents([room.create, name1, message, name2]);
    expect(map.size).toBe(2);
    expect(map.get(stateKeyOf('m.room.name', ''))).toBe(name2);
    expect(map.get(stateKeyOf('m.room.create', ''))).toBe(room.create);
  });
});
