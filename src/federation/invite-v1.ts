/**
 * The v1 form of the invite handshake (server-server `PUT /v1/invite/{roomId}/{eventId}`): the
 * body is the invite event itself, its room state rides in `unsigned.invite_room_state`, and no
 * room version is named, so the invited server must assume version "1" or "2" (the two differ
 * only in state resolution, which an invite does not involve). Read here into the v2 form that
 * the invite handling takes.
 */
import { MatrixError, errors } from '../errors.js';
import { isJsonObject, type JsonObject } from '../protocol/json.js';

/** The room versions a v1 invite may be for. */
export const V1_INVITE_ROOM_VERSIONS: readonly string[] = ['1', '2'];

export interface V2InviteBody {
  event: unknown;
  room_version: string;
  invite_room_state?: unknown[];
}

/**
 * The v2 body of a v1 invite. The room version is the room's when this server knows the room,
 * else the one its create event in the room state names ("1" when it names none, as version 1
 * create events do), else "1". Other versions than "1" and "2" are refused with
 * M_INCOMPATIBLE_ROOM_VERSION: their invites go through v2.
 */
export function v1InviteAsV2(raw: unknown, knownRoomVersion: string | undefined): V2InviteBody {
  if (!isJsonObject(raw)) throw errors.badJson('The body must be the invite event');
  const unsigned = raw['unsigned'];
  const state = isJsonObject(unsigned) && Array.isArray(unsigned['invite_room_state']) ? unsigned['invite_room_state'] : undefined;
  const create = state?.find((e): e is JsonObject => isJsonObject(e) && e['type'] === 'm.room.create' && e['state_key'] === '');
  const named = create && isJsonObject(create['content']) ? create['content']['room_version'] : undefined;
  const version = knownRoomVersion ?? (typeof named === 'string' ? named : '1');
  if (!V1_INVITE_ROOM_VERSIONS.includes(version)) {
    throw new MatrixError('M_INCOMPATIBLE_ROOM_VERSION', 400, `Invites to rooms of version ${version} must use /v2/invite`, { room_version: version });
  }
  return { event: raw, room_version: version, ...(state ? { invite_room_state: state } : {}) };
}
