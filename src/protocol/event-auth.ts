/**
 * The authorisation rules for events, for every stable room version (rooms/v1.md … v12.md and
 * the rule fragments they include).
 *
 * `authorizeEvent(event, authEvents, version)` accepts either
 *  - an array: the event's own auth events (the events named by `event.auth_events`). The
 *    `auth_events` checks (duplicates, entries outside the auth events selection, rejected
 *    entries, missing create event, room ID mismatch) are then applied to them, and the state
 *    the remaining rules see is formed from them by `(type, state_key)`. In v12, where the create
 *    event is not an auth event, the array may also hold the room's create event (or pass it as
 *    `opts.createEvent`).
 *  - a `StateMap`: a room state (for instance the state before the event, or the partial state
 *    of state resolution's iterative auth checks). Only the state-dependent rules run; the
 *    `auth_events` checks concern the event's own auth events and are done by calling
 *    `checkAuthEventsShape` (or `authorizeEvent` with the array) separately.
 *
 * On rejection the result names the rule as the version's list numbers it, e.g. "5.3.2" in v1
 * or "4.3.2" in v6. The rule reported is the one whose text rejects: a join to an invite-only
 * room by a user who was not invited is rejected by "Otherwise, reject" (v1 5.2.6), not by the
 * "If the join_rule is invite" rule that did not allow it. Numbers follow the rendered lists:
 * in v12 the room-ID-mismatch check of the auth_events rule is the fourth item ("3.4"), although
 * the page source writes it as 5.
 *
 * Not covered here (they belong to the checks on receipt of a PDU): hashes and the signatures of
 * the sender's server. The `join_authorised_via_users_server` signature rule (v8+) calls
 * `opts.verifySignature(event, serverName)`; without it the signature is taken as checked by the
 * caller, as the receipt checks do for every server whose signature is required. Likewise
 * rejected auth events are only detected when `opts.isRejected` is given.
 */
import { authEventIds, referenceId, stateKeyOf, type RoomEvent, type StateMap } from './event.js';
import type { JsonObject, JsonValue } from './json.js';
import { isJsonObject } from './json.js';
import { isKnownRoomVersion, type RoomVersion } from './room-versions.js';
import { authEventKeysFor } from './auth-events.js';
import { NAMED_LEVELS, levelOf, parsePowerLevelValue, parsePowerLevels, requiredLevel, roomCreators } from './power-levels.js';
import type { PowerLevels } from './power-levels.js';
import { decodeBase64 } from './base64.js';
import { verifyJsonSignature } from './signing.js';
import { isValidUserId } from './identifiers.js';

export type AuthResult = { allowed: true } | { allowed: false; rule: string; reason: string };

export interface AuthOptions {
  /**
   * Whether `event` carries a valid signature from `serverName` (used for
   * `join_authorised_via_users_server`). When absent that signature is assumed to be verified
   * by the caller.
   */
  verifySignature?: (event: RoomEvent, serverName: string) => boolean;
  /** Whether an event was rejected; when absent the given auth events are taken as accepted. */
  isRejected?: (eventId: string) => boolean;
  /** The room's create event, for v12 callers whose auth state does not contain it. */
  createEvent?: RoomEvent;
}

/** User IDs in events follow the historical grammar (any localpart without `:` or NUL). */
const HISTORICAL = { historical: true } as const;

const ALLOW: AuthResult = Object.freeze({ allowed: true }) as AuthResult;

function reject(rule: string, reason: string): AuthResult {
  return { allowed: false, rule, reason };
}

// ---------------------------------------------------------------------------------------------
// Rule numbering per room version.

interface Numbering {
  create: string;
  createSub: { prevEvents: string; roomId: string; roomVersion: string; creator: string | null; additionalCreators: string | null };
  roomId: string | null;
  authEvents: string;
  authEventsSub: { duplicate: string; selection: string; rejected: string; noCreate: string | null; roomId: string };
  federate: string;
  aliases: string | null;
  member: string;
  memberSub: {
    missing: string;
    authorisedVia: string | null;
    join: string;
    invite: string;
    leave: string;
    ban: string;
    knock: string | null;
    unknown: string;
  };
  joinSub: { restricted: string | null; public: string; otherwise: string };
  senderJoined: string;
  thirdPartyInvite: string;
  requiredPower: string;
  userStateKey: string;
  powerLevels: string;
  plSub: {
    namedIntegers: string | null;
    mapIntegers: string | null;
    users: string;
    creators: string | null;
    noPrevious: string;
    named: string;
    eventsOld: string;
    eventsNew: string;
    usersOld: string;
    usersNew: string;
  };
  redaction: string | null;
}

const numberings = new WeakMap<RoomVersion, Numbering>();

function counter(prefix = ''): () => string {
  let i = 0;
  return () => `${prefix}${++i}`;
}

function buildNumbering(v: RoomVersion): Numbering {
  const top = counter();
  const create = top();
  const roomId = v.roomIdIsCreateEventHash ? top() : null;
  const authEvents = top();
  const federate = top();
  const aliases = v.specialCaseAliasesAuth ? top() : null;
  const member = top();
  const senderJoined = top();
  const thirdPartyInvite = top();
  const requiredPower = top();
  const userStateKey = top();
  const powerLevels = top();
  const redaction = v.redactionInAuthRules ? top() : null;

  const c = counter(`${create}.`);
  const createSub = {
    prevEvents: c(),
    roomId: c(),
    roomVersion: c(),
    creator: v.implicitRoomCreator ? null : c(),
    additionalCreators: v.privilegedCreators ? c() : null,
  };
  const a = counter(`${authEvents}.`);
  const authEventsSub = {
    duplicate: a(),
    selection: a(),
    rejected: a(),
    noCreate: v.createEventInAuthEvents ? a() : null,
    roomId: a(),
  };
  const m = counter(`${member}.`);
  const memberSub = {
    missing: m(),
    authorisedVia: v.restrictedJoinRule ? m() : null,
    join: m(),
    invite: m(),
    leave: m(),
    ban: m(),
    knock: v.knockJoinRule ? m() : null,
    unknown: m(),
  };
  // join: 1 creator, 2 sender != state_key, 3 banned, 4 invite(/knock), [5 restricted], public, otherwise
  const j = counter(`${memberSub.join}.`);
  j(), j(), j(), j();
  const joinSub = { restricted: v.restrictedJoinRule ? j() : null, public: j(), otherwise: j() };
  const p = counter(`${powerLevels}.`);
  const plSub = {
    namedIntegers: v.integerPowerLevels ? p() : null,
    mapIntegers: v.integerPowerLevels ? p() : null,
    users: p(),
    creators: v.privilegedCreators ? p() : null,
    noPrevious: p(),
    named: p(),
    eventsOld: p(),
    eventsNew: p(),
    usersOld: p(),
    usersNew: p(),
  };
  return {
    create,
    createSub,
    roomId,
    authEvents,
    authEventsSub,
    federate,
    aliases,
    member,
    memberSub,
    joinSub,
    senderJoined,
    thirdPartyInvite,
    requiredPower,
    userStateKey,
    powerLevels,
    plSub,
    redaction,
  };
}

function numbering(v: RoomVersion): Numbering {
  let n = numberings.get(v);
  if (!n) {
    n = buildNumbering(v);
    numberings.set(v, n);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** The server part of a user, room or (v1/v2) event ID: everything after the first `:`. */
function domainOf(id: string | undefined): string | undefined {
  if (typeof id !== 'string') return undefined;
  const i = id.indexOf(':');
  return i < 0 ? undefined : id.slice(i + 1);
}

/** A state map keyed by `stateKeyOf(type, state_key)` from the state events among `events` (later entries win). */
export function stateMapFromEvents(events: Iterable<RoomEvent>): StateMap {
  const map: StateMap = new Map();
  for (const ev of events) {
    if (typeof ev.state_key === 'string') map.set(stateKeyOf(ev.type, ev.state_key), ev);
  }
  return map;
}

function membershipOf(state: StateMap, userId: string): string | undefined {
  const ev = state.get(stateKeyOf('m.room.member', userId));
  const m = ev?.content['membership'];
  return typeof m === 'string' ? m : undefined;
}

function redactsOf(event: RoomEvent, version: RoomVersion): string | undefined {
  const r = version.redactsInContent ? event.content['redacts'] : event.redacts;
  return typeof r === 'string' ? r : undefined;
}

// ---------------------------------------------------------------------------------------------
// auth_events checks

/** An unambiguous, cheap `(type, state_key)` key: the type's length, the type, then the state key. */
function pairKey(type: string, stateKey: string): string {
  return `${type.length}:${type}${stateKey}`;
}

/**
 * The "Considering the event's auth_events" rule: every event named by `event.auth_events` must
 * be among `authEvents`; no two may share a `(type, state_key)`; each must be one the auth
 * events selection picks for this event; none may be rejected (when `opts.isRejected` is given);
 * the create event must be among them (where the version selects it); and each must be in the
 * event's room.
 */
export function checkAuthEventsShape(
  event: RoomEvent,
  authEvents: Iterable<RoomEvent>,
  version: RoomVersion,
  opts: Pick<AuthOptions, 'isRejected'> = {},
): AuthResult {
  const n = numbering(version);
  const byId = new Map<string, RoomEvent>();
  for (const ev of authEvents) byId.set(ev.event_id, ev);
  const entries: RoomEvent[] = [];
  for (const id of authEventIds(event)) {
    const ev = byId.get(id);
    if (!ev) return reject(n.authEvents, `auth event ${id} was not supplied`);
    entries.push(ev);
  }
  const seen = new Set<string>();
  for (const ev of entries) {
    const key = typeof ev.state_key === 'string' ? pairKey(ev.type, ev.state_key) : `-${ev.event_id}`;
    if (seen.has(key)) {
      return reject(n.authEventsSub.duplicate, `duplicate auth event for (${ev.type}, ${String(ev.state_key)})`);
    }
    seen.add(key);
  }
  const selected = new Set(authEventKeysFor(event, version).map(([t, s]) => pairKey(t, s)));
  for (const ev of entries) {
    if (typeof ev.state_key !== 'string' || !selected.has(pairKey(ev.type, ev.state_key))) {
      return reject(
        n.authEventsSub.selection,
        `auth event ${ev.event_id} (${ev.type}, ${String(ev.state_key)}) is not selected for this event`,
      );
    }
  }
  if (opts.isRejected) {
    for (const ev of entries) {
      if (opts.isRejected(ev.event_id)) return reject(n.authEventsSub.rejected, `auth event ${ev.event_id} was rejected`);
    }
  }
  if (n.authEventsSub.noCreate && !entries.some((ev) => ev.type === 'm.room.create' && ev.state_key === '')) {
    return reject(n.authEventsSub.noCreate, 'no m.room.create event among the auth events');
  }
  for (const ev of entries) {
    if (ev.room_id !== event.room_id) {
      return reject(n.authEventsSub.roomId, `auth event ${ev.event_id} belongs to room ${String(ev.room_id)}`);
    }
  }
  return ALLOW;
}

// ---------------------------------------------------------------------------------------------
// Rule 1: m.room.create

function authorizeCreate(event: RoomEvent, version: RoomVersion, n: Numbering): AuthResult {
  const s = n.createSub;
  if (event.prev_events.length > 0) return reject(s.prevEvents, 'create event has prev_events');
  if (version.roomIdIsCreateEventHash) {
    if (event.room_id !== undefined) return reject(s.roomId, 'create event has a room_id');
  } else {
    const roomDomain = domainOf(event.room_id);
    if (roomDomain === undefined || roomDomain !== domainOf(event.sender)) {
      return reject(s.roomId, 'room_id domain does not match the sender domain');
    }
  }
  const rv = event.content['room_version'];
  if (rv !== undefined && (typeof rv !== 'string' || !isKnownRoomVersion(rv))) {
    return reject(s.roomVersion, `unrecognised room version ${JSON.stringify(rv)}`);
  }
  if (s.creator && !Object.hasOwn(event.content, 'creator')) {
    return reject(s.creator, 'create event content has no creator');
  }
  if (s.additionalCreators && event.content['additional_creators'] !== undefined) {
    const extra = event.content['additional_creators'];
    if (!Array.isArray(extra) || !extra.every((u) => typeof u === 'string' && isValidUserId(u, HISTORICAL))) {
      return reject(s.additionalCreators, 'additional_creators is not an array of valid user IDs');
    }
  }
  return ALLOW;
}

// ---------------------------------------------------------------------------------------------
// Membership

function verifyThirdPartySignature(signed: JsonObject, tpiEvent: RoomEvent): boolean {
  const keys: string[] = [];
  const c = tpiEvent.content;
  if (typeof c['public_key'] === 'string') keys.push(c['public_key']);
  const list = c['public_keys'];
  if (Array.isArray(list)) {
    for (const entry of list) {
      if (isJsonObject(entry) && typeof entry['public_key'] === 'string') keys.push(entry['public_key']);
    }
  }
  const decoded: Uint8Array[] = [];
  for (const k of keys) {
    try {
      decoded.push(decodeBase64(k));
    } catch {
      // not a key; ignore
    }
  }
  const signatures = signed['signatures'];
  if (!isJsonObject(signatures)) return false;
  for (const server of Object.keys(signatures)) {
    const byKey = signatures[server];
    if (!isJsonObject(byKey)) continue;
    for (const keyId of Object.keys(byKey)) {
      for (const pk of decoded) {
        if (verifyJsonSignature(signed, server, keyId, pk)) return true;
      }
    }
  }
  return false;
}

function authorizeMember(
  event: RoomEvent,
  state: StateMap,
  create: RoomEvent,
  pl: PowerLevels,
  version: RoomVersion,
  n: Numbering,
  opts: AuthOptions,
): AuthResult {
  const ms = n.memberSub;
  const membership = event.content['membership'];
  if (typeof event.state_key !== 'string' || !Object.hasOwn(event.content, 'membership')) {
    return reject(ms.missing, 'membership event without state_key or content.membership');
  }
  const target = event.state_key;
  const sender = event.sender;

  if (ms.authorisedVia && Object.hasOwn(event.content, 'join_authorised_via_users_server')) {
    const via = event.content['join_authorised_via_users_server'];
    const server = typeof via === 'string' && isValidUserId(via, HISTORICAL) ? domainOf(via) : undefined;
    if (server === undefined) {
      return reject(`${ms.authorisedVia}.1`, 'join_authorised_via_users_server is not a valid user ID');
    }
    if (opts.verifySignature && !opts.verifySignature(event, server)) {
      return reject(`${ms.authorisedVia}.1`, `event is not signed by ${server}, the authorising user's server`);
    }
  }

  const senderMembership = membershipOf(state, sender);
  const targetMembership = membershipOf(state, target);
  const joinRulesEvent = state.get(stateKeyOf('m.room.join_rules', ''));
  const jr = joinRulesEvent?.content['join_rule'];
  // Without an m.room.join_rules event the room behaves as invite-only, as deployed servers do.
  const joinRule = joinRulesEvent ? (typeof jr === 'string' ? jr : undefined) : 'invite';
  const senderLevel = levelOf(pl, sender);

  switch (membership) {
    case 'join': {
      const r = ms.join;
      const firstCreator = version.implicitRoomCreator ? create.sender : create.content['creator'];
      if (
        event.prev_events.length === 1 &&
        referenceId(event.prev_events[0]!) === create.event_id &&
        target === firstCreator
      ) {
        return ALLOW;
      }
      if (sender !== target) return reject(`${r}.2`, 'sender does not match state_key');
      if (senderMembership === 'ban') return reject(`${r}.3`, 'sender is banned');
      if (joinRule === 'invite' || (version.knockJoinRule && joinRule === 'knock')) {
        if (targetMembership === 'invite' || targetMembership === 'join') return ALLOW;
        return reject(n.joinSub.otherwise, `join rule is ${joinRule} and the user is neither invited nor joined`);
      }
      if (
        n.joinSub.restricted &&
        (joinRule === 'restricted' || (version.knockRestrictedJoinRule && joinRule === 'knock_restricted'))
      ) {
        const rr = n.joinSub.restricted;
        if (targetMembership === 'join' || targetMembership === 'invite') return ALLOW;
        const via = event.content['join_authorised_via_users_server'];
        if (typeof via !== 'string') {
          return reject(`${rr}.2`, 'restricted join without join_authorised_via_users_server');
        }
        if (membershipOf(state, via) !== 'join') {
          return reject(`${rr}.2`, `authorising user ${via} is not joined to the room`);
        }
        if (levelOf(pl, via) < pl.invite) {
          return reject(`${rr}.2`, `authorising user ${via} may not invite`);
        }
        return ALLOW;
      }
      if (joinRule === 'public') return ALLOW;
      return reject(n.joinSub.otherwise, `join rule ${JSON.stringify(joinRule ?? null)} does not allow joining`);
    }
    case 'invite': {
      const r = ms.invite;
      if (Object.hasOwn(event.content, 'third_party_invite')) {
        const t = `${r}.1`;
        if (targetMembership === 'ban') return reject(`${t}.1`, 'target user is banned');
        const tpi = event.content['third_party_invite'];
        const signed = isJsonObject(tpi) ? tpi['signed'] : undefined;
        if (!isJsonObject(signed)) return reject(`${t}.2`, 'third_party_invite has no signed object');
        const mxid = signed['mxid'];
        const token = signed['token'];
        if (typeof mxid !== 'string' || typeof token !== 'string') {
          return reject(`${t}.3`, 'signed lacks mxid or token');
        }
        if (mxid !== target) return reject(`${t}.4`, 'signed.mxid does not match state_key');
        const tpiEvent = state.get(stateKeyOf('m.room.third_party_invite', token));
        if (!tpiEvent) return reject(`${t}.5`, `no m.room.third_party_invite for token ${token}`);
        if (tpiEvent.sender !== sender) {
          return reject(`${t}.6`, 'sender does not match the sender of the m.room.third_party_invite');
        }
        if (verifyThirdPartySignature(signed, tpiEvent)) return ALLOW;
        return reject(`${t}.8`, 'no signature in signed matches a public key of the third-party invite');
      }
      if (senderMembership !== 'join') return reject(`${r}.2`, 'sender is not joined');
      if (targetMembership === 'join' || targetMembership === 'ban') {
        return reject(`${r}.3`, `target user is ${targetMembership}`);
      }
      if (senderLevel >= pl.invite) return ALLOW;
      return reject(`${r}.5`, 'sender power level is below the invite level');
    }
    case 'leave': {
      const r = ms.leave;
      if (sender === target) {
        const ok =
          targetMembership === 'invite' ||
          targetMembership === 'join' ||
          (version.knockJoinRule && targetMembership === 'knock');
        return ok ? ALLOW : reject(`${r}.1`, `cannot leave with membership ${String(targetMembership ?? 'none')}`);
      }
      if (senderMembership !== 'join') return reject(`${r}.2`, 'sender is not joined');
      const targetLevel = levelOf(pl, target);
      if (targetMembership === 'ban' && senderLevel < pl.ban) {
        return reject(`${r}.3`, 'sender power level is below the ban level and the target is banned');
      }
      if (senderLevel >= pl.kick && targetLevel < senderLevel) return ALLOW;
      return reject(`${r}.5`, 'sender may not kick the target');
    }
    case 'ban': {
      const r = ms.ban;
      if (senderMembership !== 'join') return reject(`${r}.1`, 'sender is not joined');
      if (senderLevel >= pl.ban && levelOf(pl, target) < senderLevel) return ALLOW;
      return reject(`${r}.3`, 'sender may not ban the target');
    }
    case 'knock': {
      if (!ms.knock) break;
      const r = ms.knock;
      const knockable = joinRule === 'knock' || (version.knockRestrictedJoinRule && joinRule === 'knock_restricted');
      if (!knockable) return reject(`${r}.1`, `join rule ${JSON.stringify(joinRule ?? null)} does not allow knocking`);
      if (sender !== target) return reject(`${r}.2`, 'sender does not match state_key');
      if (senderMembership !== 'ban' && senderMembership !== 'invite' && senderMembership !== 'join') return ALLOW;
      return reject(`${r}.4`, `cannot knock with membership ${senderMembership}`);
    }
    default:
      break;
  }
  return reject(ms.unknown, `unknown membership ${JSON.stringify(membership ?? null)}`);
}

// ---------------------------------------------------------------------------------------------
// m.room.power_levels

function isIntegerMap(v: JsonValue | undefined): boolean {
  if (!isJsonObject(v)) return false;
  for (const k of Object.keys(v)) {
    const x = v[k];
    if (typeof x !== 'number' || !Number.isInteger(x)) return false;
  }
  return true;
}

function authorizePowerLevels(
  event: RoomEvent,
  state: StateMap,
  create: RoomEvent,
  pl: PowerLevels,
  version: RoomVersion,
  n: Numbering,
): AuthResult {
  const s = n.plSub;
  const content = event.content;
  if (s.namedIntegers) {
    for (const k of NAMED_LEVELS) {
      const v = content[k];
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v))) {
        return reject(s.namedIntegers, `${k} is not an integer`);
      }
    }
  }
  if (s.mapIntegers) {
    for (const k of ['events', 'notifications']) {
      if (content[k] !== undefined && !isIntegerMap(content[k])) {
        return reject(s.mapIntegers, `${k} is not an object of integers`);
      }
    }
  }
  const users = content['users'];
  if (users !== undefined) {
    if (!isJsonObject(users)) return reject(s.users, 'users is not an object');
    for (const u of Object.keys(users)) {
      if (!isValidUserId(u, HISTORICAL)) return reject(s.users, `users has an invalid user ID ${JSON.stringify(u)}`);
      if (parsePowerLevelValue(users[u], version) === undefined) {
        return reject(s.users, `users has a non-integer level for ${u}`);
      }
    }
    if (s.creators) {
      for (const c of roomCreators(create, version)) {
        if (Object.hasOwn(users, c)) return reject(s.creators, `users lists the room creator ${c}`);
      }
    }
  }
  const previous = state.get(stateKeyOf('m.room.power_levels', ''));
  if (!previous) return ALLOW;

  const senderLevel = levelOf(pl, event.sender);
  const old = previous.content;
  for (const k of NAMED_LEVELS) {
    const before = parsePowerLevelValue(old[k], version);
    const after = parsePowerLevelValue(content[k], version);
    if (before === after) continue;
    if (before !== undefined && before > senderLevel) {
      return reject(`${s.named}.1`, `current ${k} (${before}) is above the sender's level`);
    }
    if (after !== undefined && after > senderLevel) {
      return reject(`${s.named}.2`, `new ${k} (${after}) is above the sender's level`);
    }
  }
  const mapKeys = version.limitNotificationsPowerLevels ? ['events', 'notifications'] : ['events'];
  const maps = mapKeys.map((k) => ({ k, before: levelMap(old[k], version), after: levelMap(content[k], version) }));
  for (const { k, before, after } of maps) {
    for (const [key, b] of before) {
      if (after.get(key) !== b && b > senderLevel) {
        return reject(`${s.eventsOld}.1`, `current ${k}[${key}] (${b}) is above the sender's level`);
      }
    }
  }
  for (const { k, before, after } of maps) {
    for (const [key, a] of after) {
      if (before.get(key) !== a && a > senderLevel) {
        return reject(`${s.eventsNew}.1`, `new ${k}[${key}] (${a}) is above the sender's level`);
      }
    }
  }
  const usersBefore = levelMap(old['users'], version);
  const usersAfter = levelMap(content['users'], version);
  for (const [u, b] of usersBefore) {
    if (u === event.sender || usersAfter.get(u) === b) continue;
    if (b >= senderLevel) return reject(`${s.usersOld}.1`, `cannot change the level of ${u} (${b})`);
  }
  for (const [u, a] of usersAfter) {
    if (usersBefore.get(u) !== a && a > senderLevel) {
      return reject(`${s.usersNew}.1`, `cannot give ${u} level ${a}, above the sender's level`);
    }
  }
  return ALLOW;
}

function levelMap(v: JsonValue | undefined, version: RoomVersion): Map<string, number> {
  const out = new Map<string, number>();
  if (!isJsonObject(v)) return out;
  for (const k of Object.keys(v)) {
    const x = parsePowerLevelValue(v[k], version);
    if (x !== undefined) out.set(k, x);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Entry point

function isStateMap(x: RoomEvent[] | StateMap): x is StateMap {
  return x instanceof Map;
}

export function authorizeEvent(
  event: RoomEvent,
  authEvents: RoomEvent[] | StateMap,
  version: RoomVersion,
  opts: AuthOptions = {},
): AuthResult {
  const n = numbering(version);

  // 1. m.room.create
  if (event.type === 'm.room.create') return authorizeCreate(event, version, n);

  const isCreateEvent = (ev: RoomEvent): boolean => ev.type === 'm.room.create' && ev.state_key === '';
  let state: StateMap;
  let create: RoomEvent | undefined;
  if (isStateMap(authEvents)) {
    state = authEvents;
    create = state.get(stateKeyOf('m.room.create', '')) ?? opts.createEvent;
  } else {
    const ids = new Set(authEventIds(event));
    // v1–v11: the create event must be one of the auth events; v12: it is supplied alongside.
    create = authEvents.find((ev) => isCreateEvent(ev) && (!version.createEventInAuthEvents || ids.has(ev.event_id)));
    if (!version.createEventInAuthEvents) create ??= opts.createEvent;
    state = new Map();
    for (const ev of authEvents) {
      if (typeof ev.state_key === 'string' && ids.has(ev.event_id)) state.set(stateKeyOf(ev.type, ev.state_key), ev);
    }
    if (create) state.set(stateKeyOf('m.room.create', ''), create);
  }

  if (n.roomId) {
    // v12 rule 2: the room ID is the create event's ID with `!` for `$`.
    if (!create) return reject(n.roomId, 'the room has no m.room.create event');
    if (event.room_id !== `!${create.event_id.slice(1)}`) {
      return reject(n.roomId, `room_id ${String(event.room_id)} is not the ID of the create event`);
    }
    if (opts.isRejected?.(create.event_id)) return reject(n.roomId, 'the m.room.create event was rejected');
  }

  if (!isStateMap(authEvents)) {
    const shape = checkAuthEventsShape(event, authEvents, version, opts);
    if (!shape.allowed) return shape;
  }
  if (!create) return reject(n.authEventsSub.noCreate ?? n.authEvents, 'no m.room.create event among the auth events');

  // m.federate
  if (create.content['m.federate'] === false && domainOf(event.sender) !== domainOf(create.sender)) {
    return reject(n.federate, 'room is not federated and the sender is on another server');
  }

  // m.room.aliases (v1–v5)
  if (n.aliases && event.type === 'm.room.aliases') {
    if (typeof event.state_key !== 'string') return reject(`${n.aliases}.1`, 'aliases event without state_key');
    if (domainOf(event.sender) !== event.state_key) {
      return reject(`${n.aliases}.2`, "sender's domain does not match state_key");
    }
    return ALLOW;
  }

  const pl = parsePowerLevels(state.get(stateKeyOf('m.room.power_levels', '')), create, version);

  if (event.type === 'm.room.member') return authorizeMember(event, state, create, pl, version, n, opts);

  if (membershipOf(state, event.sender) !== 'join') return reject(n.senderJoined, 'sender is not joined to the room');

  const senderLevel = levelOf(pl, event.sender);

  if (event.type === 'm.room.third_party_invite') {
    if (senderLevel >= pl.invite) return ALLOW;
    return reject(`${n.thirdPartyInvite}.1`, 'sender power level is below the invite level');
  }

  const isState = typeof event.state_key === 'string';
  const required = requiredLevel(pl, event.type, isState);
  if (required > senderLevel) {
    return reject(n.requiredPower, `sending ${event.type} requires level ${required}`);
  }

  if (isState && event.state_key!.startsWith('@') && event.state_key !== event.sender) {
    return reject(n.userStateKey, 'state_key names another user');
  }

  if (event.type === 'm.room.power_levels') return authorizePowerLevels(event, state, create, pl, version, n);

  if (n.redaction && event.type === 'm.room.redaction') {
    if (senderLevel >= pl.redact) return ALLOW;
    const redacted = domainOf(redactsOf(event, version));
    if (redacted !== undefined && redacted === domainOf(event.event_id)) return ALLOW;
    return reject(`${n.redaction}.3`, 'sender may not redact events from another server');
  }

  return ALLOW;
}
