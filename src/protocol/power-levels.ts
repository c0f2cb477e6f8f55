/**
 * Effective power levels of a room, as the authorisation rules and the rest of the server see them.
 *
 * Defaults (client-server API, `m.room.power_levels`): `users_default` 0, `events_default` 0,
 * `state_default` 50 (also when the room has no power-levels event at all — the older "0 without
 * a power-levels event" text was removed from the spec, MSC1304), `ban`/`kick`/`redact` 50,
 * `invite` 0, `notifications.room` 50. Without a power-levels event the room creator has 100 and
 * everyone else 0 (v1–v11); in v12 the creators (create `sender` plus `additional_creators`) have
 * infinite power whether or not there is a power-levels event.
 *
 * Value encodings: v1–v9 accept integers encoded as strings ("stringy" power levels); v1–v5,
 * which do not enforce canonical JSON, also accept floats, truncated towards zero ("floaty" power
 * levels). v10+ accept JSON integers only. Values that cannot be interpreted are treated as
 * absent (the named level falls back to its default, the `users`/`events`/`notifications` entry
 * is ignored); the authorisation rules reject power-levels events carrying such values where
 * the room version requires it.
 */
import type { JsonValue } from './json.js';
import { isJsonObject } from './json.js';
import { stateKeyOf, type RoomEvent, type StateMap } from './event.js';
import { getRoomVersion, type RoomVersion } from './room-versions.js';

export const NAMED_LEVELS = ['users_default', 'events_default', 'state_default', 'ban', 'redact', 'kick', 'invite'] as const;
export type NamedLevel = (typeof NAMED_LEVELS)[number];

const NAMED_DEFAULTS: Readonly<Record<NamedLevel, number>> = {
  users_default: 0,
  events_default: 0,
  state_default: 50,
  ban: 50,
  redact: 50,
  kick: 50,
  invite: 0,
};

/** Default for a `notifications` key that the event does not specify. */
export const NOTIFICATION_DEFAULTS: Readonly<Record<string, number>> = { room: 50 };

/** The level a creator has when there is no power-levels event (v1–v11). */
export const CREATOR_DEFAULT_LEVEL = 100;

const STRINGY_INTEGER = /^\s*[+-]?\d+\s*$/;

/**
 * Interprets one power-level value under the room version's encoding rules; `undefined` when it is
 * not a power level in this version.
 */
export function parsePowerLevelValue(value: JsonValue | undefined, version: RoomVersion): number | undefined {
  if (typeof value === 'number') {
    if (Number.isInteger(value)) return value;
    // Floats are only possible where canonical JSON is not enforced (v1–v5); they are truncated.
    if (!version.integerPowerLevels && !version.strictCanonicalJson && Number.isFinite(value)) {
      return Math.trunc(value);
    }
    return undefined;
  }
  if (typeof value === 'string' && !version.integerPowerLevels && STRINGY_INTEGER.test(value)) {
    const n = Number.parseInt(value.trim(), 10);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** Whether a value is an acceptable power level in this room version ("integer, or string that is an integer"). */
export function isValidPowerLevelValue(value: JsonValue | undefined, version: RoomVersion): boolean {
  return parsePowerLevelValue(value, version) !== undefined;
}

export interface PowerLevels {
  /** Whether the levels come from an `m.room.power_levels` event (false: defaults only). */
  readonly fromEvent: boolean;
  readonly usersDefault: number;
  readonly eventsDefault: number;
  readonly stateDefault: number;
  readonly ban: number;
  readonly kick: number;
  readonly redact: number;
  readonly invite: number;
  readonly users: ReadonlyMap<string, number>;
  readonly events: ReadonlyMap<string, number>;
  readonly notifications: ReadonlyMap<string, number>;
  /** Users with infinite power (v12 creators); empty in earlier versions. */
  readonly privileged: ReadonlySet<string>;
  /** Users with level 100 because there is no power-levels event (v1–v11 creator). */
  readonly implicitAdmins: ReadonlySet<string>;
}

function parseLevelMap(value: JsonValue | undefined, version: RoomVersion): Map<string, number> {
  const out = new Map<string, number>();
  if (!isJsonObject(value)) return out;
  for (const key of Object.keys(value)) {
    const n = parsePowerLevelValue(value[key], version);
    if (n !== undefined) out.set(key, n);
  }
  return out;
}

/**
 * The room creators: v1–v10 `content.creator`; v11 the create event's `sender`; v12 the sender
 * plus every string in `content.additional_creators`.
 */
export function roomCreators(createEvent: RoomEvent | undefined, version: RoomVersion): string[] {
  if (!createEvent) return [];
  if (!version.implicitRoomCreator) {
    const creator = createEvent.content['creator'];
    return typeof creator === 'string' ? [creator] : [];
  }
  const creators = [createEvent.sender];
  if (version.privilegedCreators) {
    const extra = createEvent.content['additional_creators'];
    if (Array.isArray(extra)) {
      for (const u of extra) if (typeof u === 'string' && !creators.includes(u)) creators.push(u);
    }
  }
  return creators;
}

interface CacheEntry {
  create: RoomEvent | undefined;
  version: RoomVersion;
  levels: PowerLevels;
}
/** Parsed levels per power-levels event object (events are treated as immutable). */
const cache = new WeakMap<RoomEvent, CacheEntry>();

/**
 * Effective power levels from the power-levels event (if any) and the create event. The result
 * for a given power-levels event object is memoised, so events must not be mutated after use.
 */
export function parsePowerLevels(
  powerLevelsEvent: RoomEvent | undefined,
  createEvent: RoomEvent | undefined,
  version: RoomVersion,
): PowerLevels {
  if (!powerLevelsEvent) return computePowerLevels(undefined, createEvent, version);
  const hit = cache.get(powerLevelsEvent);
  if (hit && hit.create === createEvent && hit.version === version) return hit.levels;
  const levels = computePowerLevels(powerLevelsEvent, createEvent, version);
  cache.set(powerLevelsEvent, { create: createEvent, version, levels });
  return levels;
}

function computePowerLevels(
  powerLevelsEvent: RoomEvent | undefined,
  createEvent: RoomEvent | undefined,
  version: RoomVersion,
): PowerLevels {
  const creators = roomCreators(createEvent, version);
  const privileged = new Set(version.privilegedCreators ? creators : []);
  if (!powerLevelsEvent) {
    return {
      fromEvent: false,
      usersDefault: NAMED_DEFAULTS.users_default,
      eventsDefault: NAMED_DEFAULTS.events_default,
      stateDefault: NAMED_DEFAULTS.state_default,
      ban: NAMED_DEFAULTS.ban,
      kick: NAMED_DEFAULTS.kick,
      redact: NAMED_DEFAULTS.redact,
      invite: NAMED_DEFAULTS.invite,
      users: new Map(),
      events: new Map(),
      notifications: new Map(),
      privileged,
      implicitAdmins: new Set(version.privilegedCreators ? [] : creators),
    };
  }
  const c = powerLevelsEvent.content;
  const named = (k: NamedLevel): number => parsePowerLevelValue(c[k], version) ?? NAMED_DEFAULTS[k];
  return {
    fromEvent: true,
    usersDefault: named('users_default'),
    eventsDefault: named('events_default'),
    stateDefault: named('state_default'),
    ban: named('ban'),
    kick: named('kick'),
    redact: named('redact'),
    invite: named('invite'),
    users: parseLevelMap(c['users'], version),
    events: parseLevelMap(c['events'], version),
    notifications: parseLevelMap(c['notifications'], version),
    privileged,
    implicitAdmins: new Set(),
  };
}

/** A user's level under parsed power levels (`Infinity` for v12 creators). */
export function levelOf(pl: PowerLevels, userId: string): number {
  if (pl.privileged.has(userId)) return Infinity;
  if (pl.implicitAdmins.has(userId)) return CREATOR_DEFAULT_LEVEL;
  return pl.users.get(userId) ?? pl.usersDefault;
}

/** Level required to send an event of this type (membership events use invite/kick/ban instead). */
export function requiredLevel(pl: PowerLevels, type: string, isState: boolean): number {
  return pl.events.get(type) ?? (isState ? pl.stateDefault : pl.eventsDefault);
}

/** Level required for a notification key such as `room` (`@room`). */
export function notificationLevel(pl: PowerLevels, key: string): number {
  return pl.notifications.get(key) ?? NOTIFICATION_DEFAULTS[key] ?? 50;
}

// ---------------------------------------------------------------------------------------------
// State-based helpers used by the rest of the server. `version` may be omitted: it is then read
// from the create event's `content.room_version` (absent means "1").

function createOf(state: StateMap): RoomEvent | undefined {
  return state.get(stateKeyOf('m.room.create', ''));
}

/** The room version named by the create event in `state`. Throws if there is none or it is unknown. */
export function roomVersionFromState(state: StateMap): RoomVersion {
  const create = createOf(state);
  if (!create) throw new Error('room state has no m.room.create event');
  const id = create.content['room_version'] ?? '1';
  const v = typeof id === 'string' ? getRoomVersion(id) : undefined;
  if (!v) throw new Error(`unknown room version ${JSON.stringify(id)}`);
  return v;
}

/** Effective power levels of a room state. */
export function powerLevelsFromState(state: StateMap, version?: RoomVersion): PowerLevels {
  const v = version ?? roomVersionFromState(state);
  return parsePowerLevels(state.get(stateKeyOf('m.room.power_levels', '')), createOf(state), v);
}

export function userPowerLevel(state: StateMap, userId: string, version?: RoomVersion): number {
  return levelOf(powerLevelsFromState(state, version), userId);
}

export function requiredPowerForEvent(state: StateMap, type: string, isState: boolean, version?: RoomVersion): number {
  return requiredLevel(powerLevelsFromState(state, version), type, isState);
}

/** Whether the user's level allows sending an event of this type (power levels only, not membership). */
export function canSendEvent(
  state: StateMap,
  userId: string,
  type: string,
  isState: boolean,
  version?: RoomVersion,
): boolean {
  const pl = powerLevelsFromState(state, version);
  return levelOf(pl, userId) >= requiredLevel(pl, type, isState);
}

/**
 * Whether the user may redact an event: they must be able to send `m.room.redaction`, and for
 * someone else's event also reach the `redact` level.
 */
export function canRedact(state: StateMap, userId: string, isOwnEvent: boolean, version?: RoomVersion): boolean {
  const pl = powerLevelsFromState(state, version);
  const level = levelOf(pl, userId);
  if (level < requiredLevel(pl, 'm.room.redaction', false)) return false;
  return isOwnEvent || level >= pl.redact;
}

export function canInvite(state: StateMap, userId: string, version?: RoomVersion): boolean {
  const pl = powerLevelsFromState(state, version);
  return levelOf(pl, userId) >= pl.invite;
}

/** Kick: sender at least the kick level and strictly above the target. */
export function canKick(state: StateMap, userId: string, targetId: string, version?: RoomVersion): boolean {
  const pl = powerLevelsFromState(state, version);
  const level = levelOf(pl, userId);
  return level >= pl.kick && levelOf(pl, targetId) < level;
}

/** Ban: sender at least the ban level and strictly above the target. */
export function canBan(state: StateMap, userId: string, targetId: string, version?: RoomVersion): boolean {
  const pl = powerLevelsFromState(state, version);
  const level = levelOf(pl, userId);
  return level >= pl.ban && levelOf(pl, targetId) < level;
}

/**
 * Whether the user's level reaches the `notifications` level for `key` (default `room`, i.e. the
 * level needed to trigger an `@room` notification).
 */
export function canChangeNotifications(
  state: StateMap,
  userId: string,
  key = 'room',
  version?: RoomVersion,
): boolean {
  const pl = powerLevelsFromState(state, version);
  return levelOf(pl, userId) >= notificationLevel(pl, key);
}
