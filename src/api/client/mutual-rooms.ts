import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { isValidUserId } from '../../protocol/identifiers.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V1 } from './paths.js';

/** Room IDs per page of GET /mutual_rooms (an object so tests can page through a few rooms). */
export const mutualRoomsPaging = { pageSize: 100 };

/** The pagination token: the last room ID of the previous page (rooms are sorted by ID). */
function encodeFrom(roomId: string): string {
  return Buffer.from(roomId, 'utf8').toString('base64url');
}

function decodeFrom(token: string): string {
  const roomId = /^[A-Za-z0-9_-]+$/.test(token) ? Buffer.from(token, 'base64url').toString('utf8') : '';
  if (!roomId.startsWith('!')) throw errors.invalidParam('Invalid pagination token');
  return roomId;
}

function one(v: unknown): string | undefined {
  return typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined;
}

/**
 * GET /_matrix/client/v1/mutual_rooms?user_id=…[&from=…] (spec v1.19): the rooms both the
 * requester and `user_id` are joined to, sorted by room ID, in pages of `mutualRoomsPaging.pageSize` with
 * `next_batch`. An unknown user shares no rooms (an empty list, not an error).
 */
export function registerMutualRooms(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V1) {
    app.get(`${prefix}/mutual_rooms`, async (req) => {
      const me = await requireUser(ctx, req);
      const q = req.query as Record<string, unknown>;
      const other = one(q['user_id']);
      if (other === undefined) throw errors.missingParam('user_id is required');
      if (!isValidUserId(other, { historical: true })) throw errors.invalidParam(`Invalid user ID ${other}`);
      if (other === me.userId) throw errors.invalidParam('user_id must be another user');
      const fromRaw = one(q['from']);
      const after = fromRaw === undefined ? undefined : decodeFrom(fromRaw);
      const mine = new Set((await ctx.eventStore.roomsForUser(me.userId, ['join'])).map((r) => r.roomId));
      const shared = (await ctx.eventStore.roomsForUser(other, ['join']))
        .map((r) => r.roomId)
        .filter((r) => mine.has(r))
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const rest = after === undefined ? shared : shared.filter((r) => r > after);
      const joined = rest.slice(0, mutualRoomsPaging.pageSize);
      return {
        joined,
        count: shared.length,
        ...(rest.length > joined.length ? { next_batch: encodeFrom(joined.at(-1)!) } : {}),
      };
    });
  }
}
