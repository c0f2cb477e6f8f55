import { sql, type RawBuilder } from 'kysely';
import type { Database } from '../db.js';

/** The content fields a search can look in. */
export const SEARCH_KEYS = ['content.body', 'content.name', 'content.topic'] as const;
export type SearchKey = (typeof SEARCH_KEYS)[number];

export interface SearchQuery {
  term: string;
  roomIds: string[];
  keys: SearchKey[];
  senders?: string[];
  notSenders?: string[];
  orderBy: 'rank' | 'recent';
  limit: number;
  /** rank order: how many results to skip. */
  offset?: number;
  /** recent order: only events before this stream position. */
  before?: number;
}

export interface SearchHit {
  eventId: string;
  roomId: string;
  streamOrdering: number;
  /** Higher is more relevant. */
  rank: number;
}

/** The words of a search term (letters and digits), lower-cased. */
export function searchWords(term: string): string[] {
  return [...new Set(term.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? [])];
}

/**
 * Full-text search over the `event_search` index (see 0005-messaging): FTS5 with bm25 ranking
 * on SQLite, tsvector/tsquery with ts_rank on PostgreSQL. Every word of the term must match.
 */
export class SearchStore {
  constructor(private readonly database: Database) {}

  async search(q: SearchQuery): Promise<{ hits: SearchHit[]; count: number }> {
    const words = searchWords(q.term);
    if (!words.length || !q.roomIds.length || !q.keys.length) return { hits: [], count: 0 };
    return this.database.dialect === 'sqlite' ? this.searchSqlite(q, words) : this.searchPostgres(q, words);
  }

  private filters(q: SearchQuery, col: (name: string) => RawBuilder<unknown>): RawBuilder<unknown> {
    const parts: RawBuilder<unknown>[] = [
      sql`${col('room_id')} IN (${sql.join(q.roomIds)})`,
      sql`${col('key')} IN (${sql.join(q.keys)})`,
    ];
    if (q.senders) parts.push(q.senders.length ? sql`${col('sender')} IN (${sql.join(q.senders)})` : sql`1 = 0`);
    if (q.notSenders?.length) parts.push(sql`${col('sender')} NOT IN (${sql.join(q.notSenders)})`);
    return sql.join(parts, sql` AND `);
  }

  private async searchSqlite(q: SearchQuery, words: string[]): Promise<{ hits: SearchHit[]; count: number }> {
    // Each word as a quoted FTS5 string: no query syntax from the user reaches the parser.
    const match = words.map((w) => `"${w.replace(/"/g, '""')}"`).join(' ');
    const where = sql`event_search MATCH ${match} AND ${this.filters(q, (c) => sql.ref(c))}`;
    const recent = q.orderBy === 'recent';
    const rows = await sql<{ event_id: string; room_id: string; so: number; score: number }>`
      SELECT event_id, room_id, rowid AS so, bm25(event_search) AS score FROM event_search
      WHERE ${where} ${recent && q.before !== undefined ? sql`AND rowid < ${q.before}` : sql``}
      ORDER BY ${recent ? sql`rowid DESC` : sql`score ASC, rowid DESC`}
      LIMIT ${q.limit} OFFSET ${recent ? 0 : (q.offset ?? 0)}`.execute(this.database.db);
    const count = await sql<{ n: number }>`SELECT count(*) AS n FROM event_search WHERE ${where}`.execute(this.database.db);
    return {
      hits: rows.rows.map((r) => ({ eventId: r.event_id, roomId: r.room_id, streamOrdering: Number(r.so), rank: -Number(r.score) })),
      count: Number(count.rows[0]?.n ?? 0),
    };
  }

  private async searchPostgres(q: SearchQuery, words: string[]): Promise<{ hits: SearchHit[]; count: number }> {
    const tsq = sql`plainto_tsquery('english', ${words.join(' ')})`;
    const where = sql`vector @@ ${tsq} AND ${this.filters(q, (c) => sql.ref(c))}`;
    const recent = q.orderBy === 'recent';
    const rows = await sql<{ event_id: string; room_id: string; stream_ordering: number | string; score: number }>`
      SELECT event_id, room_id, stream_ordering, ts_rank(vector, ${tsq}) AS score FROM event_search
      WHERE ${where} ${recent && q.before !== undefined ? sql`AND stream_ordering < ${q.before}` : sql``}
      ORDER BY ${recent ? sql`stream_ordering DESC` : sql`score DESC, stream_ordering DESC`}
      LIMIT ${q.limit} OFFSET ${recent ? 0 : (q.offset ?? 0)}`.execute(this.database.db);
    const count = await sql<{ n: number | string }>`SELECT count(*) AS n FROM event_search WHERE ${where}`.execute(this.database.db);
    return {
      hits: rows.rows.map((r) => ({ eventId: r.event_id, roomId: r.room_id, streamOrdering: Number(r.stream_ordering), rank: Number(r.score) })),
      count: Number(count.rows[0]?.n ?? 0),
    };
  }
}
