import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { closestEventWithOthers } from '../../federation/timestamp-to-event.js';
import { parseTimestampQuery } from '../../services/rooms/event-by-timestamp.js';
import { formatPaginationToken, parsePaginationToken } from '../../services/sync/token.js';
import type { StoredEvent } from '../../storage/stores/events.js';
import { MAX_RELATION_DEPTH } from '../../storage/stores/relations.js';
import { requireUser, type Requester } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V1 } from './paths.js';

type P = Record<string, string>;

function parseLimit(raw: string | undefined, dflt: number, max: number): number {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw errors.invalidParam('limit must be a non-negative integer');
  return Math.min(n, max);
}

function parseToken(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined) return undefined;
  try {
    return parsePaginationToken(raw);
  } catch {
    throw errors.invalidParam(`Invalid ${name} token`);
  }
}

/** The event must exist in the room and be visible to the user; M_NOT_FOUND otherwise. */
async function visibleEvent(ctx: AppContext, user: Requester, roomId: string, eventId: string, upTo: number): Promise<StoredEvent> {
  const ev = await ctx.eventStore.getEvent(eventId);
  if (!ev || ev.roomId !== roomId || ev.outlier || ev.streamOrdering > upTo) throw errors.notFound('Event not found');
  if (!(await ctx.visibility.filter(user.userId, [ev])).length) throw errors.notFound('Event not found');
  return ev;
}

/** GET /rooms/{roomId}/relations/..., /rooms/{roomId}/threads and /rooms/{roomId}/timestamp_to_event (v1). */
export function registerRelations(app: HttpApp, ctx: AppContext): void {
  const relations = async (user: Requester, params: P, query: Record<string, string | undefined>) => {
    const roomId = params.roomId!;
    const upTo = await ctx.visibility.readableUpTo(user.userId, roomId);
    await visibleEvent(ctx, user, roomId, params.eventId!, upTo);
    const dir = query.dir ?? 'b';
    if (dir !== 'b' && dir !== 'f') throw errors.invalidParam('dir must be "b" or "f"');
    let recurse = false;
    if (query.recurse !== undefined) {
      if (query.recurse !== 'true' && query.recurse !== 'false') throw errors.invalidParam('recurse must be true or false');
      recurse = query.recurse === 'true';
    }
    const limit = parseLimit(query.limit, 5, 100);
    const from = parseToken(query.from, 'from');
    let to = parseToken(query.to, 'to');
    const max = Math.min(upTo, await ctx.eventStore.maxStreamOrdering());
    let cursor = dir === 'b' ? Math.min(from ?? max, max) : from ?? 0;
    if (dir === 'f') to = Math.min(to ?? max, max);
    const chunk: StoredEvent[] = [];
    let more = false;
    // Pages until `limit` visible events are found or the relations run out.
    for (let round = 0; round < 50 && chunk.length < limit; round++) {
      const want = limit - chunk.length + 1;
      const rows = await ctx.relations.relations({
        roomId,
        eventId: params.eventId!,
        relType: params.relType,
        eventType: params.eventType,
        from: cursor,
        to,
        limit: want,
        dir,
        recurse,
      });
      const loaded = await ctx.eventStore.getEvents(rows.map((r) => r.eventId));
      const page = rows.map((r) => loaded.get(r.eventId)).filter((s): s is StoredEvent => !!s);
      const visible = new Set(await ctx.visibility.filter(user.userId, page));
      more = false;
      for (const s of page) {
        if (chunk.length >= limit) {
          more = true;
          break;
        }
        cursor = dir === 'b' ? s.streamOrdering - 1 : s.streamOrdering;
        if (visible.has(s)) chunk.push(s);
      }
      if (rows.length < want) break;
      if (chunk.length >= limit) {
        more = true;
        break;
      }
    }
    const out: Record<string, unknown> = { chunk: await ctx.formatter.format(chunk, { viewer: user }) };
    if (more) out['next_batch'] = formatPaginationToken(cursor);
    if (query.from !== undefined) out['prev_batch'] = query.from;
    if (query.recurse !== undefined) out['recursion_depth'] = recurse ? MAX_RELATION_DEPTH : 1;
    return out;
  };

  for (const prefix of V1) {
    for (const suffix of ['', '/:relType', '/:relType/:eventType']) {
      app.get(`${prefix}/rooms/:roomId/relations/:eventId${suffix}`, async (req) =>
        relations(await requireUser(ctx, req), req.params as P, req.query as Record<string, string | undefined>),
      );
    }

    app.get(`${prefix}/rooms/:roomId/threads`, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomId } = req.params as P;
      const q = req.query as { include?: string; from?: string; limit?: string };
      const include = q.include ?? 'all';
      if (include !== 'all' && include !== 'participated') throw errors.invalidParam('include must be "all" or "participated"');
      const limit = parseLimit(q.limit, 10, 100);
      const upTo = await ctx.visibility.readableUpTo(user.userId, roomId!);
      let cursor = Math.min(parseToken(q.from, 'from') ?? Number.MAX_SAFE_INTEGER, upTo);
      const roots: StoredEvent[] = [];
      let more = false;
      for (let round = 0; round < 50 && roots.length < limit; round++) {
        const want = limit - roots.length + 1;
        const rows = await ctx.relations.threadRoots(roomId!, {
          from: cursor,
          limit: want,
          participant: include === 'participated' ? user.userId : undefined,
        });
        const loaded = await ctx.eventStore.getEvents(rows.map((r) => r.rootId));
        const page = rows.map((r) => ({ row: r, ev: loaded.get(r.rootId) }));
        const visible = new Set(await ctx.visibility.filter(user.userId, page.map((p) => p.ev).filter((e): e is StoredEvent => !!e)));
        more = false;
        for (const { row, ev } of page) {
          if (roots.length >= limit) {
            more = true;
            break;
          }
          cursor = row.latestStream - 1;
          if (ev && visible.has(ev) && ev.streamOrdering <= upTo) roots.push(ev);
        }
        if (rows.length < want) break;
        if (roots.length >= limit) {
          more = true;
          break;
        }
      }
      const out: Record<string, unknown> = { chunk: await ctx.formatter.format(roots, { viewer: user }) };
      if (more) out['next_batch'] = formatPaginationToken(cursor);
      return out;
    });

    app.get(`${prefix}/rooms/:roomId/timestamp_to_event`, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomId } = req.params as P;
      const { ts, dir } = parseTimestampQuery(req.query as { ts?: string; dir?: string });
      const upTo = await ctx.visibility.readableUpTo(user.userId, roomId!);
      const keep = (candidates: StoredEvent[]) => ctx.visibility.filter(user.userId, candidates.filter((s) => s.streamOrdering <= upTo));
      const found = await closestEventWithOthers(ctx, roomId!, ts, dir, keep);
      if (!found) throw errors.notFound(`No event found ${dir === 'f' ? 'after' : 'before'} ${ts}`);
      return { event_id: found.event.event_id, origin_server_ts: found.event.origin_server_ts };
    });
  }
}
