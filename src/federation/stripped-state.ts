/**
 * Room state sent with invites and knocks over federation (`invite_room_state`,
 * `knock_room_state`). Since spec v1.16 (MSC4311) the entries are full PDUs in the room
 * version's format and must include the room's `m.room.create` event, so the receiving server
 * can check that the invite really is for the room it names (signatures, room ID). Servers
 * written before that send the short form (`type`, `state_key`, `sender`, `content`); it is
 * still accepted in room versions that allow it. Clients only ever see the short form.
 */
import type { Logger } from 'pino';
import { federationForm } from '../protocol/event-hash.js';
import type { RoomEvent } from '../protocol/event.js';
import { isJsonObject, type JsonObject } from '../protocol/json.js';
import type { RoomVersion } from '../protocol/room-versions.js';
import { errors } from '../errors.js';
import type { Keyring } from './keyring.js';
import { checkPdu } from './pdu.js';

/** The state events sent with invites and knocks (client-server "Stripped state"). */
export const STRIPPED_STATE_TYPES: readonly string[] = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

/** The entries to send: each event as a full PDU of the room version. */
export function federationRoomState(events: Iterable<RoomEvent>, version: RoomVersion): JsonObject[] {
  const out: JsonObject[] = [];
  for (const ev of events) out.push(federationForm(ev, version) as JsonObject);
  return out;
}

/** The client-server stripped form of an event. */
export function stripEvent(ev: { type: string; state_key?: string; sender: string; content: JsonObject }): JsonObject {
  return { type: ev.type, state_key: ev.state_key ?? '', sender: ev.sender, content: ev.content };
}

/** An entry in the short form servers sent before spec v1.16 (nothing of a PDU but these). */
function shortForm(raw: JsonObject): JsonObject | undefined {
  if (typeof raw['type'] !== 'string' || typeof raw['state_key'] !== 'string' || typeof raw['sender'] !== 'string' || !isJsonObject(raw['content'])) return undefined;
  return { type: raw['type'], state_key: raw['state_key'], sender: raw['sender'], content: raw['content'] };
}

/** Whether an entry claims to be a full PDU (as opposed to the short form). */
function looksLikePdu(raw: JsonObject): boolean {
  return 'signatures' in raw || 'hashes' in raw || 'auth_events' in raw || 'prev_events' in raw;
}

export interface CheckedRoomState {
  /** The entries that passed, in the client-server stripped form. */
  stripped: JsonObject[];
  /** What was wrong with the others (dropped). */
  problems: string[];
  /** Whether a valid m.room.create of the room is among them. */
  hasCreate: boolean;
  /** How many entries came in the old short form (accepted). */
  shortForm: number;
}

/**
 * Checks received invite or knock room state: each full PDU for its format in the room version,
 * that it belongs to `roomId` (for room versions whose room ID is the create event's hash, that
 * the create event hashes to it), its signatures and content hash. Short-form entries are taken
 * as they are where the room version allows them, and dropped otherwise.
 */
export async function checkRoomState(raws: unknown, version: RoomVersion, roomId: string, keyring: Keyring): Promise<CheckedRoomState> {
  const out: CheckedRoomState = { stripped: [], problems: [], hasCreate: false, shortForm: 0 };
  for (const raw of Array.isArray(raws) ? raws : []) {
    if (!isJsonObject(raw)) {
      out.problems.push('an entry is not an object');
      continue;
    }
    if (!looksLikePdu(raw)) {
      const short = shortForm(raw);
      if (!short) out.problems.push('an entry is neither a PDU nor a stripped state event');
      else if (version.strictStrippedState) out.problems.push(`${short['type']} is not formatted according to room version ${version.id}`);
      else {
        out.shortForm++;
        out.stripped.push(short);
      }
      continue;
    }
    try {
      const { event, redacted } = await checkPdu(raw, version, roomId, keyring);
      if (redacted) throw new Error(`${event.type} does not match its content hash`);
      if (typeof event.state_key !== 'string') throw new Error(`${event.type} is not a state event`);
      if (event.type === 'm.room.create' && event.state_key === '') out.hasCreate = true;
      out.stripped.push(stripEvent(event));
    } catch (err) {
      out.problems.push((err as Error).message);
    }
  }
  return out;
}

/**
 * The invited server's checks of `invite_room_state` (server-server `PUT /v2/invite`): in room
 * versions with strict room state an invite without a valid create event, or with entries that
 * fail the checks, is refused (400); in older ones the problems are logged and the bad entries
 * dropped. Returns the stripped state to show the invitee.
 */
export async function checkInviteRoomState(raws: unknown, version: RoomVersion, roomId: string, keyring: Keyring, log: Logger, origin: string): Promise<JsonObject[]> {
  const checked = await checkRoomState(raws, version, roomId, keyring);
  if (version.strictStrippedState) {
    if (checked.problems.length) throw errors.invalidParam(`invite_room_state: ${checked.problems[0]}`);
    if (!checked.hasCreate) throw errors.missingParam('invite_room_state must contain the m.room.create event of the room');
  } else if (checked.problems.length || !checked.hasCreate) {
    log.warn({ origin, roomId, problems: checked.problems.slice(0, 5), hasCreate: checked.hasCreate, shortForm: checked.shortForm }, 'invite room state not as the specification asks (accepted in this room version)');
  }
  return checked.stripped;
}

/** The knocking server's checks of `knock_room_state`: bad entries are dropped (and logged). */
export async function checkKnockRoomState(raws: unknown, version: RoomVersion, roomId: string, keyring: Keyring, log: Logger, server: string): Promise<JsonObject[]> {
  const checked = await checkRoomState(raws, version, roomId, keyring);
  if (checked.problems.length || !checked.hasCreate) {
    log.warn({ server, roomId, problems: checked.problems.slice(0, 5), hasCreate: checked.hasCreate, shortForm: checked.shortForm }, 'knock room state not as the specification asks (bad entries dropped)');
  }
  return checked.stripped;
}
