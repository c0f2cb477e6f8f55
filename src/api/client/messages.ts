import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import type { Requester } from '../../services/accounts/accounts.js';
import { eventMatches, type EventFilter } from '../../services/sync/filter.js';
import { formatLowerToken, formatPaginationToken, formatUpperToken, parseTimelineToken, tokenLowerKey, tokenUpperKey } from '../../services/sync/token.js';
import { compareTimelineKeys, timelineKeyOf, type StoredEvent, type TimelineKey } from '../../storage/stores/events.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

type P = Record<string, string>;
const MAX_LIMIT = 1000;
/** Below every stream position (history fetched with /backfill has negative positions). */
const BOTTOM = Number.MIN_SAFE_INTEGER;
/** Backfill requests one /messages call may make when it reaches the start of the stored history. */
const MAX_BACKFILLS = 2;

/**
 * The stream range a user may read in a room (see HistoryVisibility.readableUpTo). Throws
 * M_FORBIDDEN for rooms the user may not read.
 */
export async function readableUpTo(ctx: AppContext, user: Requester, roomId: string): Promise<number> {
  return ctx.visibility.readableUpTo(user.userId, roomId);
}

function parseLimit(raw: string | undefined, dflt: number): number {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw errors.invalidParam('limit must be a non-negative integer');
  return Math.min(n, MAX_LIMIT);
}

function parseRoomFilter(raw: string | undefined): EventFilter | undefined {
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as EventFilter;
  } catch {
    throw errors.invalidParam('filter must be a JSON RoomEventFilter');
  }
}

/** Member events of the senders of `chunk` at the state after `atEventId` (lazy loading). */
async function lazyMembers(ctx: AppContext, roomId: string, chunk: StoredEvent[], user: Requester) {
  const senders = new Set(chunk.map((s) => s.event.sender));
  if (!senders.size) return [];
  const ids = await ctx.eventStore.getCurrentStateIds(roomId);
  const wanted = [...senders].map((u) => ids.get(JSON.stringify(['m.room.member', u]))).filter((x): x is string => !!x);
  const stored = [...(await ctx.eventStore.getEvents(wanted)).values()];
  return ctx.formatter.format(stored, { viewer: user });
}

/** GET /rooms/{roomId}/messages and /rooms/{roomId}/context/{eventId}. */
export function registerMessages(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V3) {
    app.get(`${prefix}/rooms/:roomId/messages`, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomId } = req.params as P;
      const q = req.query as { from?: string; to?: string; dir?: string; limit?: string; filter?: string };
      if (q.dir !== 'b' && q.dir !== 'f') throw errors.invalidParam('dir must be "b" or "f"');
      const limit = parseLimit(q.limit, 10);
      const filter = parseRoomFilter(q.filter);
      const upTo = await readableUpTo(ctx, user, roomId!);
      const max = Math.min(upTo, await ctx.eventStore.maxStreamOrdering());
      const backwards = q.dir === 'b';
      const fromToken = q.from !== undefined ? parseTimelineToken(q.from) : undefined;
      const toToken = q.to !== undefined ? parseTimelineToken(q.to) : undefined;
      const cap: TimelineKey = { major: max, minor: 0 };
      const bottom: TimelineKey = { major: BOTTOM, minor: 0 };
      const min = (a: TimelineKey, b: TimelineKey) => (compareTimelineKeys(a, b) <= 0 ? a : b);
      // Backwards: events with lower < key <= cursor; forwards: cursor < key <= upper.
      let cursor: TimelineKey = backwards ? min(fromToken ? tokenUpperKey(fromToken) : cap, cap) : fromToken ? tokenLowerKey(fromToken) : bottom;
      const lower = backwards ? (toToken ? tokenLowerKey(toToken) : bottom) : undefined;
      const upper = backwards ? undefined : min(toToken ? tokenUpperKey(toToken) : cap, cap);
      const chunk: StoredEvent[] = [];
      let exhausted = false;
      let backfills = 0;
      const mayBackfill = () => backwards && backfills < MAX_BACKFILLS && !!ctx.federationRooms;
      // Fetch in pages until `limit` events pass the filter or the room runs out.
      while (chunk.length < limit && !exhausted) {
        const want = Math.max(limit - chunk.length, 20);
        const page = backwards
          ? await ctx.eventStore.roomTimeline(roomId!, lower!, cursor, want, 'backwards')
          : await ctx.eventStore.roomTimeline(roomId!, cursor, upper!, want, 'forwards');
        // Events with a gap before them (prev events missed while this server was unreachable).
        const gaps = mayBackfill() ? await ctx.eventStore.backwardExtremitiesOf(page.map((p) => p.stored.event.event_id)) : new Map<string, string[]>();
        let consumed = 0;
        let reread = false;
        const visible = new Set(await ctx.visibility.filter(user.userId, page.map((p) => p.stored)));
        for (const { stored: s, key } of page) {
          consumed++;
          cursor = backwards ? { major: key.major, minor: key.minor - 1 } : key;
          if (visible.has(s) && eventMatches(filter, { type: s.event.type, sender: s.event.sender, room_id: roomId, content: s.event.content })) {
            chunk.push(s);
          }
          // Paging back past an event with a gap before it: fill the gap from other servers
          // (stored just before this event), then read on from here.
          if (gaps.has(s.event.event_id) && mayBackfill()) {
            backfills++;
            const fetched = await ctx.federationRooms!.rooms.backfillGap(roomId!, s.event.event_id, Math.max(limit - chunk.length, 100)).catch(() => 0);
            if (fetched > 0) {
              reread = true;
              break;
            }
          }
          if (chunk.length >= limit) break;
        }
        if (reread) continue;
        // The room has nothing more in this direction once a short page was read to its end.
        if (page.length < want && consumed === page.length) exhausted = true;
        // Reaching the start of what this server holds of a room shared with other servers:
        // ask them for older history (stored below every known event), then read on.
        if (exhausted && toToken === undefined && mayBackfill()) {
          backfills++;
          const fetched = await ctx.federationRooms!.rooms.backfillOlder(roomId!, Math.max(limit - chunk.length, 50)).catch(() => 0);
          if (fetched > 0) exhausted = false;
        }
      }
      const out: Record<string, unknown> = {
        start: q.from ?? formatPaginationToken(backwards ? max : BOTTOM),
        chunk: await ctx.formatter.format(chunk, { viewer: user }),
      };
      if (!exhausted) out['end'] = backwards ? formatUpperToken(cursor) : formatLowerToken(cursor);
      if (filter?.lazy_load_members) out['state'] = await lazyMembers(ctx, roomId!, chunk, user);
      return out;
    });

    app.get(`${prefix}/rooms/:roomId/context/:eventId`, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomId, eventId } = req.params as P;
      const q = req.query as { limit?: string; filter?: string };
      const limit = parseLimit(q.limit, 10);
      const filter = parseRoomFilter(q.filter);
      const upTo = await readableUpTo(ctx, user, roomId!);
      const target = await ctx.eventStore.getEvent(eventId!);
      if (!target || target.roomId !== roomId || target.outlier || timelineKeyOf(target).major > upTo) throw errors.notFound('Event not found');
      if (!(await ctx.visibility.filter(user.userId, [target])).length) throw errors.notFound('Event not found');
      const half = Math.floor(limit / 2);
      const match = (s: StoredEvent) => eventMatches(filter, { type: s.event.type, sender: s.event.sender, room_id: roomId, content: s.event.content });
      const targetKey = timelineKeyOf(target);
      const read = async (lower: TimelineKey, upper: TimelineKey, n: number, dir: 'forwards' | 'backwards') =>
        (await ctx.visibility.filter(user.userId, (await ctx.eventStore.roomTimeline(roomId!, lower, upper, n, dir)).map((p) => p.stored))).filter(match);
      const before = await read({ major: BOTTOM, minor: 0 }, { major: targetKey.major, minor: targetKey.minor - 1 }, half, 'backwards');
      const max = Math.min(upTo, await ctx.eventStore.maxStreamOrdering());
      const after = await read(targetKey, { major: max, minor: 0 }, limit - half, 'forwards');
      const last = after[after.length - 1] ?? target;
      const stateIds = (await ctx.eventStore.getStateIdsAfter(last.event.event_id)) ?? new Map();
      let stateStored = [...(await ctx.eventStore.getEvents(stateIds.values())).values()];
      if (filter?.lazy_load_members) {
        const senders = new Set([target, ...before, ...after].map((s) => s.event.sender));
        stateStored = stateStored.filter((s) => s.event.type !== 'm.room.member' || senders.has(s.event.state_key ?? ''));
      }
      return {
        event: await ctx.formatter.formatOne(target, { viewer: user }),
        events_before: await ctx.formatter.format(before, { viewer: user }),
        events_after: await ctx.formatter.format(after, { viewer: user }),
        start: formatUpperToken(((k) => ({ major: k.major, minor: k.minor - 1 }))(timelineKeyOf(before[before.length - 1] ?? target))),
        end: formatLowerToken(timelineKeyOf(last)),
        state: await ctx.formatter.format(stateStored, { viewer: user }),
      };
    });
  }
}
