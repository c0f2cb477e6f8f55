import type { AppContext } from '../../app.js';
import { errors, MatrixError } from '../../errors.js';
import { RoomPreview } from '../../services/rooms/preview.js';
import { formatPaginationToken, formatUpperToken, parsePaginationToken } from '../../services/sync/token.js';
import { timelineKeyOf } from '../../storage/stores/events.js';
import { ClientGone } from '../../streams/notifier.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

type P = Record<string, string>;

/** Events in an initialSync answer when the client names no `limit` (as other servers do). */
const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 1000;
/** How long /events waits when the client names no `timeout`. */
const DEFAULT_TIMEOUT_MS = 30_000;
/** The longest /events may long-poll, whatever the client asks (as /sync). */
const MAX_TIMEOUT_MS = 120_000;

function parseLimit(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_LIMIT;
  const n = Number(raw);
  if (raw === '' || !Number.isInteger(n) || n < 0) throw errors.invalidParam('limit must be a non-negative integer');
  return Math.min(n, MAX_LIMIT);
}

function parseTimeout(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_TIMEOUT_MS;
  const n = Number(raw);
  if (raw === '' || !Number.isFinite(n) || n < 0) throw errors.invalidParam('timeout must be a non-negative number of milliseconds');
  return Math.min(n, MAX_TIMEOUT_MS);
}

/**
 * Room previews (client-server "Room Previews"): GET /rooms/{roomId}/initialSync, a snapshot of
 * a room the user is in, was in, or may read as `world_readable`; GET /events?room_id=, the
 * long-poll of that room's new events; and the deprecated GET /events/{eventId}.
 */
export function registerPeeking(app: HttpApp, ctx: AppContext): void {
  const eventsPosition = async () => (await ctx.sync.currentPositions()).events;
  const preview = new RoomPreview({ events: ctx.eventStore, eventsPosition, visibility: ctx.visibility, notifier: ctx.notifier, userData: ctx.userData });
  for (const prefix of V3) {
    app.get(`${prefix}/rooms/:roomId/initialSync`, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomId } = req.params as P;
      const limit = parseLimit((req.query as { limit?: string }).limit);
      const snap = await preview.snapshot(user.userId, roomId!, limit);
      return {
        room_id: roomId,
        ...(snap.membership !== undefined ? { membership: snap.membership } : {}),
        messages: {
          chunk: await ctx.formatter.format(snap.chunk, { viewer: user }),
          // Usable with /rooms/{roomId}/messages (dir=b) for earlier events, and `end` with
          // /events or /messages (dir=f) for later ones.
          start: formatUpperToken(snap.before),
          end: formatPaginationToken(snap.end),
        },
        state: await ctx.formatter.format(snap.state, { viewer: user, bundle: false }),
        visibility: snap.visibility,
        account_data: snap.accountData,
        presence: snap.presence,
      };
    });

    app.get(`${prefix}/events`, async (req, reply) => {
      const user = await requireUser(ctx, req);
      const q = req.query as { room_id?: string; from?: string; timeout?: string };
      // Only the room stream of previews is served: the global event stream (GET /events
      // without room_id) was deprecated in r0 in favour of /sync, and room_id is required by
      // the previews' form of the endpoint, so its absence is a missing parameter.
      if (q.room_id === undefined || q.room_id === '') throw errors.missingParam('room_id is required (the global event stream is replaced by /sync)');
      const roomId = q.room_id;
      const timeout = parseTimeout(q.timeout);
      const fromGiven = q.from !== undefined && q.from !== '' ? parsePaginationToken(q.from) : undefined;
      // M_FORBIDDEN before waiting when the user may not read the room.
      await ctx.visibility.readableUpTo(user.userId, roomId);
      // Without `from`, the stream starts now.
      const from = fromGiven ?? (await eventsPosition());
      const start = fromGiven !== undefined ? q.from! : formatPaginationToken(from);
      const gone = new ClientGone();
      const onClose = gone.abort;
      // The response closing before we answer means the client went away.
      reply.raw.once('close', onClose);
      try {
        const { chunk, end } = await preview.eventsAfter(user.userId, roomId, from, timeout, gone);
        return {
          start,
          end: end === from ? start : formatPaginationToken(end),
          chunk: await ctx.formatter.format(chunk, { viewer: user }),
        };
      } finally {
        reply.raw.off('close', onClose);
      }
    });

    app.get(`${prefix}/events/:eventId`, async (req) => {
      const user = await requireUser(ctx, req);
      const { eventId } = req.params as P;
      const stored = await ctx.eventStore.getEvent(eventId!);
      if (!stored || stored.outlier) throw errors.notFound('Event not found');
      // A room the user may not read is answered like a missing event.
      const upTo = await ctx.visibility.readableUpTo(user.userId, stored.roomId).catch((err: unknown) => {
        if (err instanceof MatrixError && err.errcode === 'M_FORBIDDEN') return undefined;
        throw err;
      });
      if (upTo === undefined || timelineKeyOf(stored).major > upTo) throw errors.notFound('Event not found');
      if (!(await ctx.visibility.filter(user.userId, [stored])).length) throw errors.notFound('Event not found');
      return ctx.formatter.formatOne(stored, { viewer: user });
    });
  }
}
