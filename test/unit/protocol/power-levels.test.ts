import { describe, expect, it } from 'vitest';
import {
  canBan,
  canChangeNotifications,
  canInvite,
  canKick,
  canRedact,
  canSendEvent,
  isValidPowerLevelValue,
  parsePowerLevelValue,
  powerLevelsFromState,
  requiredPowerForEvent,
  roomCreators,
  roomVersionFromState,
  userPowerLevel,
} from '../../../src/protocol/power-levels.js';
import { stateKeyOf, type RoomEvent, type StateMap } from '../../../src/protocol/event.js';
import type { JsonObject, JsonValue } from '../../../src/protocol/json.js';
import { ROOM_VERSIONS, type RoomVersion } from '../../../src/protocol/room-versions.js';

const ALL = [...ROOM_VERSIONS.values()];
const num = (v: RoomVersion): number => Number(v.id);
const V = (id: string): RoomVersion => ROOM_VERSIONS.get(id)!;

const ALICE = '@alice:a.test';
const BOB = '@bob:b.test';
const CAROL = '@carol:c.test';

let counter = 0;
function ev(type: string, sender: string, stateKey: string, content: JsonObject): RoomEvent {
  return {
    type,
    sender,
    state_key: stateKey,
    content,
    room_id: '!r:a.test',
    prev_events: [],
    auth_events: [],
    depth: 1,
    origin_server_ts: 0,
    hashes: { sha256: 'x' },
    signatures: {},
    event_id: `$${++counter}:a.test`,
  };
}

function createEvent(v: RoomVersion, extra: JsonObject = {}, sender = ALICE): RoomEvent {
  return ev('m.room.create', sender, '', { room_version: v.id, ...(v.implicitRoomCreator ? {} : { creator: sender }), ...extra });
}

function stateOf(...events: RoomEvent[]): StateMap {
  return new Map(events.map((e) => [stateKeyOf(e.type, e.state_key!), e]));
}

describe('parsePowerLevelValue', () => {
  const cases: Array<[JsonValue, number | undefined, number | undefined, number | undefined]> = [
    // value, v1–v5, v6–v9, v10+
    [50, 50, 50, 50],
    [-7, -7, -7, -7],
    [0, 0, 0, 0],
    ['100', 100, 100, undefined],
    ['000100', 100, 100, undefined],
    ['+100', 100, 100, undefined],
    ['-100', -100, -100, undefined],
    [' 100 ', 100, 100, undefined],
    [' +100 ', 100, 100, undefined],
    ['\t00100\n', 100, 100, undefined],
    ['1.5', undefined, undefined, undefined],
    ['1e3', undefined, undefined, undefined],
    ['', undefined, undefined, undefined],
    ['+-1', undefined, undefined, undefined],
    ['abc', undefined, undefined, undefined],
    ['0x10', undefined, undefined, undefined],
    [50.57, 50, undefined, undefined],
    [-3.9, -3, undefined, undefined],
    [51146.98, 51146, undefined, undefined],
    [true, undefined, undefined, undefined],
    [null, undefined, undefined, undefined],
    [[50], undefined, undefined, undefined],
    [{ v: 1 }, undefined, undefined, undefined],
  ];
  it.each(ALL)('v$id', (v) => {
    for (const [value, early, mid, late] of cases) {
      const expected = num(v) <= 5 ? early : num(v) <= 9 ? mid : late;
      expect(parsePowerLevelValue(value, v), `${JSON.stringify(value)} in v${v.id}`).toBe(expected);
      expect(isValidPowerLevelValue(value, v)).toBe(expected !== undefined);
    }
  });
});

describe('roomCreators', () => {
  it.each(ALL)('v$id', (v) => {
    const create = ev('m.room.create', ALICE, '', { creator: BOB, additional_creators: [CAROL, ALICE, 7] });
    const expected = num(v) <= 10 ? [BOB] : num(v) === 11 ? [ALICE] : [ALICE, CAROL];
    expect(roomCreators(create, v)).toEqual(expected);
    expect(roomCreators(undefined, v)).toEqual([]);
    const noCreator = ev('m.room.create', ALICE, '', {});
    expect(roomCreators(noCreator, v)).toEqual(num(v) <= 10 ? [] : [ALICE]);
  });
});

describe('defaults', () => {
  it.each(ALL)('v$id: no power-levels event', (v) => {
    const state = stateOf(createEvent(v));
    const pl = powerLevelsFromState(state, v);
    expect(pl.fromEvent).toBe(false);
    expect([pl.usersDefault, pl.eventsDefault, pl.stateDefault, pl.ban, pl.kick, pl.redact, pl.invite]).toEqual([0, 0, 50, 50, 50, 50, 0]);
    expect(userPowerLevel(state, ALICE, v)).toBe(v.privilegedCreators ? Infinity : 100);
    expect(userPowerLevel(state, BOB, v)).toBe(0);
    expect(requiredPowerForEvent(state, 'm.room.message', false, v)).toBe(0);
    expect(requiredPowerForEvent(state, 'm.room.name', true, v)).toBe(50);
    expect(canChangeNotifications(state, BOB, 'room', v)).toBe(false);
    expect(canChangeNotifications(state, ALICE, 'room', v)).toBe(true);
  });

  it.each(ALL)('v$id: an empty power-levels event', (v) => {
    const state = stateOf(createEvent(v), ev('m.room.power_levels', ALICE, '', {}));
    const pl = powerLevelsFromState(state, v);
    expect(pl.fromEvent).toBe(true);
    expect([pl.usersDefault, pl.eventsDefault, pl.stateDefault, pl.ban, pl.kick, pl.redact, pl.invite]).toEqual([0, 0, 50, 50, 50, 50, 0]);
    // the creator has no implicit 100 once a power-levels event exists (v1–v11)
    expect(userPowerLevel(state, ALICE, v)).toBe(v.privilegedCreators ? Infinity : 0);
  });
});

describe('values from the power-levels event', () => {
  const content: JsonObject = {
    users: { [ALICE]: 100, [BOB]: '60', [CAROL]: 20.9 },
    users_default: 5,
    events_default: '10',
    state_default: 40,
    ban: 70,
    kick: 55,
    redact: 65,
    invite: '30',
    events: { 'm.room.name': 90, 'm.room.topic': '15' },
    notifications: { room: 25 },
  };

  it.each(ALL)('v$id', (v) => {
    const state = stateOf(createEvent(v, v.privilegedCreators ? { additional_creators: [CAROL] } : {}), ev('m.room.power_levels', ALICE, '', content));
    const stringy = num(v) <= 9;
    const floaty = num(v) <= 5;
    expect(userPowerLevel(state, ALICE, v)).toBe(v.privilegedCreators ? Infinity : 100);
    expect(userPowerLevel(state, BOB, v)).toBe(stringy ? 60 : 5);
    expect(userPowerLevel(state, CAROL, v)).toBe(v.privilegedCreators ? Infinity : floaty ? 20 : 5);
    expect(userPowerLevel(state, '@zed:z.test', v)).toBe(5);
    expect(requiredPowerForEvent(state, 'm.room.message', false, v)).toBe(stringy ? 10 : 0);
    expect(requiredPowerForEvent(state, 'm.custom.state', true, v)).toBe(40);
    expect(requiredPowerForEvent(state, 'm.room.name', true, v)).toBe(90);
    expect(requiredPowerForEvent(state, 'm.room.topic', true, v)).toBe(stringy ? 15 : 40);

    expect(canSendEvent(state, BOB, 'm.room.name', true, v)).toBe(false);
    expect(canSendEvent(state, BOB, 'm.custom.state', true, v)).toBe(stringy);
    expect(canSendEvent(state, ALICE, 'm.room.name', true, v)).toBe(true);

    // invite 30 (string) in v1–9, default 0 from v10
    expect(canInvite(state, '@zed:z.test', v)).toBe(!stringy);
    expect(canInvite(state, BOB, v)).toBe(true);

    expect(canKick(state, BOB, '@zed:z.test', v)).toBe(stringy);
    expect(canKick(state, ALICE, BOB, v)).toBe(true);
    expect(canKick(state, BOB, ALICE, v)).toBe(false);
    expect(canBan(state, BOB, '@zed:z.test', v)).toBe(false); // ban 70
    expect(canBan(state, ALICE, BOB, v)).toBe(true);
    expect(canBan(state, ALICE, ALICE, v)).toBe(false); // never above oneself

    expect(canRedact(state, BOB, true, v)).toBe(true); // own event: m.room.redaction's level only
    expect(canRedact(state, '@zed:z.test', true, v)).toBe(!stringy); // 5 < events_default 10 in v1–9
    expect(canRedact(state, BOB, false, v)).toBe(false); // redact 65
    expect(canRedact(state, ALICE, false, v)).toBe(true);

    expect(canChangeNotifications(state, BOB, 'room', v)).toBe(stringy);
    expect(canChangeNotifications(state, '@zed:z.test', 'room', v)).toBe(false);
    expect(canChangeNotifications(state, '@zed:z.test', 'unlisted', v)).toBe(false); // default 50
  });

  it('v12 creators outrank everyone, including each other', () => {
    const v = V('12');
    const state = stateOf(createEvent(v, { additional_creators: [BOB] }), ev('m.room.power_levels', ALICE, '', { users: { [CAROL]: 100 } }));
    expect(canBan(state, ALICE, CAROL, v)).toBe(true);
    expect(canBan(state, CAROL, ALICE, v)).toBe(false);
    expect(canKick(state, ALICE, BOB, v)).toBe(false);
    expect(canSendEvent(state, BOB, 'm.room.tombstone', true, v)).toBe(true);
  });
});

describe('version from the create event', () => {
  it('helpers read content.room_version when no version is given', () => {
    const v1Create = ev('m.room.create', ALICE, '', { creator: ALICE });
    const v10 = stateOf(createEvent(V('10')), ev('m.room.power_levels', ALICE, '', { users: { [BOB]: '60' } }));
    const v9 = stateOf(createEvent(V('9')), ev('m.room.power_levels', ALICE, '', { users: { [BOB]: '60' } }));
    expect(roomVersionFromState(stateOf(v1Create)).id).toBe('1');
    expect(userPowerLevel(v10, BOB)).toBe(0);
    expect(userPowerLevel(v9, BOB)).toBe(60);
    expect(userPowerLevel(stateOf(createEvent(V('12'))), ALICE)).toBe(Infinity);
    expect(() => userPowerLevel(new Map(), BOB)).toThrow();
    expect(() => userPowerLevel(stateOf(ev('m.room.create', ALICE, '', { room_version: 'nope' })), BOB)).toThrow();
  });
});
