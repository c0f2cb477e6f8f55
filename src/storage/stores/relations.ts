import { sql, type Kysely } from 'kysely';
import type { Database } from '../db.js';
import type { Tables } from '../schema.js';

type Q = Kysely<Tables>;

/** The largest recursion depth followed by `relations({ recurse: true })`. */
export const MAX_RELATION_DEPTH = 3;

export interface RelationsQuery {
  roomId: string;
  eventId: string;
  relType?: string;
  eventType?: string;
  /** Backwards: stream positions ≤ from; forwards: > from. */
  from?: number;
  /** Backwards: > to; forwards: ≤ to. */
  to?: number;
  limit: number;
  dir: 'b' | 'f';
  recurse: boolean;
}

export interface ThreadSummaryRow {
  rootId: string;
  count: number;
  latestStream: number;
  participated: boolean;
}

export interface RelationRow {
  eventId: string;
  relatesTo: string;
  relType: string;
  sender: string;
  streamOrdering: number;
}

/**
 * Reads over event relationships (the `relates_to`/`rel_type` columns of `events`), thread
 * roots, timestamp lookups and the history needed to decide event visibility. Redacted
 * children no longer relate to anything and are left out.
 */
export class RelationStore {
  constructor(private readonly database: Database) {}

  private get db(): Q {
    return this.database.db;
  }

  /** Event IDs relating to `eventId` (directly, or up to MAX_RELATION_DEPTH hops with recurse), in stream order. */
  async relations(q: RelationsQuery): Promise<Array<{ eventId: string; streamOrdering: number }>> {
    const depth = q.recurse ? MAX_RELATION_DEPTH : 1;
    const relType = q.relType ?? null;
    const eventType = q.eventType ?? null;
    const backwards = q.dir === 'b';
    const lower = backwards ? (q.to ?? null) : (q.from ?? null);
    const upper = backwards ? (q.from ?? null) : (q.to ?? null);
    const rows = await sql<{ event_id: string; stream_ordering: number | string }>`
      WITH RECURSIVE rel(event_id, depth) AS (
        SELECT event_id, 1 FROM events
          WHERE relates_to = ${q.eventId} AND room_id = ${q.roomId} AND redacted_by IS NULL AND outlier = 0
        UNION
        SELECT e.event_id, rel.depth + 1 FROM events e JOIN rel ON e.relates_to = rel.event_id
          WHERE rel.depth < ${depth} AND e.room_id = ${q.roomId} AND e.redacted_by IS NULL AND e.outlier = 0
      )
      SELECT e.event_id, e.stream_ordering FROM events e
      WHERE e.event_id IN (SELECT event_id FROM rel)
        ${relType !== null ? sql`AND e.rel_type = ${relType}` : sql``}
        ${eventType !== null ? sql`AND e.type = ${eventType}` : sql``}
        ${lower !== null ? sql`AND e.stream_ordering > ${lower}` : sql``}
        ${upper !== null ? sql`AND e.stream_ordering <= ${upper}` : sql``}
      ORDER BY e.stream_ordering ${sql.raw(backwards ? 'DESC' : 'ASC')}
      LIMIT ${q.limit}`.execute(this.db);
    return rows.rows.map((r) => ({ eventId: r.event_id, streamOrdering: Number(r.stream_ordering) }));
  }

  /** Thread summaries of the given roots: reply count, latest reply and whether `viewer` replied. */
  async threadSummaries(rootIds: string[], viewer: string | undefined): Promise<Map<string, ThreadSummaryRow>> {
    const out = new Map<string, ThreadSummaryRow>();
    for (let i = 0; i < rootIds.length; i += 500) {
      const chunk = rootIds.slice(i, i + 500);
      const rows = await this.db
        .selectFrom('events')
        .select((eb) => [
          'relates_to',
          eb.fn.countAll<number | string>().as('n'),
          eb.fn.max('stream_ordering').as('latest'),
          viewer !== undefined
            ? eb.fn.max(eb.case().when('sender', '=', viewer).then(1).else(0).end()).as('mine')
            : eb.val(0).as('mine'),
        ])
        .where('relates_to', 'in', chunk)
        .where('rel_type', '=', 'm.thread')
        .where('redacted_by', 'is', null)
        .where('outlier', '=', 0)
        .groupBy('relates_to')
        .execute();
      for (const r of rows) {
        out.set(r.relates_to!, {
          rootId: r.relates_to!,
          count: Number(r.n),
          latestStream: Number(r.latest),
          participated: Number(r.mine) === 1,
        });
      }
    }
    return out;
  }

  /** Event IDs at the given stream positions. */
  async eventIdsAtStream(positions: number[]): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    for (let i = 0; i < positions.length; i += 500) {
      const rows = await this.db
        .selectFrom('events')
        .select(['event_id', 'stream_ordering'])
        .where('stream_ordering', 'in', positions.slice(i, i + 500))
        .execute();
      for (const r of rows) out.set(Number(r.stream_ordering), r.event_id);
    }
    return out;
  }

  /** Unredacted children of the given events with one of `relTypes`, in stream order. */
  async children(parentIds: string[], relTypes: string[]): Promise<RelationRow[]> {
    const out: RelationRow[] = [];
    for (let i = 0; i < parentIds.length; i += 500) {
      const rows = await this.db
        .selectFrom('events')
        .select(['event_id', 'relates_to', 'rel_type', 'sender', 'stream_ordering'])
        .where('relates_to', 'in', parentIds.slice(i, i + 500))
        .where('rel_type', 'in', relTypes)
        .where('redacted_by', 'is', null)
        .where('outlier', '=', 0)
        .orderBy('stream_ordering')
        .execute();
      for (const r of rows) {
        out.push({ eventId: r.event_id, relatesTo: r.relates_to!, relType: r.rel_type!, sender: r.sender, streamOrdering: Number(r.stream_ordering) });
      }
    }
    return out;
  }

  /**
   * Thread roots of a room, most recently replied-to first: roots whose latest reply is at or
   * before `from`. With `participant`, only threads the user started or replied to.
   */
  async threadRoots(roomId: string, opts: { from?: number; limit: number; participant?: string }): Promise<Array<{ rootId: string; latestStream: number }>> {
    let query = this.db
      .selectFrom('events as t')
      .innerJoin('events as r', 'r.event_id', 't.relates_to')
      .select(['t.relates_to', (eb) => eb.fn.max('t.stream_ordering').as('latest')])
      .where('t.room_id', '=', roomId)
      .where('t.rel_type', '=', 'm.thread')
      .where('t.redacted_by', 'is', null)
      .where('t.outlier', '=', 0)
      .where('r.room_id', '=', roomId)
      .groupBy(['t.relates_to', 'r.sender']);
    if (opts.participant !== undefined) {
      const user = opts.participant;
      query = query.having((eb) =>
        eb.or([
          eb('r.sender', '=', user),
          eb(eb.fn.max(eb.case().when('t.sender', '=', user).then(1).else(0).end()), '=', 1),
        ]),
      );
    }
    if (opts.from !== undefined) query = query.having((eb) => eb.fn.max('t.stream_ordering'), '<=', opts.from);
    const rows = await query.orderBy('latest', 'desc').limit(opts.limit).execute();
    return rows.map((r) => ({ rootId: r.relates_to!, latestStream: Number(r.latest) }));
  }

  /** The closest events to `ts` in a direction ('f': at or after, 'b': at or before), nearest first. */
  async eventsNearTimestamp(roomId: string, ts: number, dir: 'f' | 'b', limit: number): Promise<Array<{ eventId: string; ts: number }>> {
    const forwards = dir === 'f';
    const rows = await this.db
      .selectFrom('events')
      .select(['event_id', 'origin_server_ts'])
      .where('room_id', '=', roomId)
      .where('outlier', '=', 0)
      .where('rejected', 'is', null)
      .where('origin_server_ts', forwards ? '>=' : '<=', ts)
      .orderBy('origin_server_ts', forwards ? 'asc' : 'desc')
      .orderBy('stream_ordering', forwards ? 'asc' : 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ eventId: r.event_id, ts: Number(r.origin_server_ts) }));
  }

  /** Every m.room.history_visibility change of a room: stream position and value, in order. */
  async visibilityHistory(roomId: string): Promise<Array<{ streamOrdering: number; eventId: string }>> {
    const rows = await this.db
      .selectFrom('events')
      .select(['event_id', 'stream_ordering'])
      .where('room_id', '=', roomId)
      .where('type', '=', 'm.room.history_visibility')
      .where('state_key', '=', '')
      .where('outlier', '=', 0)
      .where('rejected', 'is', null)
      .orderBy('stream_ordering')
      .execute();
    return rows.map((r) => ({ streamOrdering: Number(r.stream_ordering), eventId: r.event_id }));
  }

  /** A user's membership changes in a room, in stream order. */
  async membershipHistory(roomId: string, userId: string): Promise<Array<{ streamOrdering: number; membership: string }>> {
    const rows = await this.db
      .selectFrom('room_memberships')
      .select(['membership', 'stream_ordering'])
      .where('room_id', '=', roomId)
      .where('user_id', '=', userId)
      .orderBy('stream_ordering')
      .execute();
    return rows.map((r) => ({ streamOrdering: Number(r.stream_ordering), membership: r.membership }));
  }
}
