import { LruCache } from '../../util/lru.js';
import type { Database, Tx } from '../db.js';

export interface AccountDataRow {
  stream_id: number;
  room_id: string | null;
  type: string;
  content: Record<string, unknown>;
}

export interface PresenceRow {
  stream_id: number;
  user_id: string;
  state: string;
  status_msg: string | null;
  last_active_ts: number;
}

/** Filters, account data (global and per room) and presence. */
export class UserDataStore {
  /** Stored filters, once read: a filter never changes or goes away, and clients name one on every /sync. */
  private readonly filters = new LruCache<string, string>(2_000);

  constructor(private readonly database: Database) {}

  async insertFilter(userId: string, filterJson: string): Promise<number> {
    const row = await this.database.db.insertInto('filters').values({ user_id: userId, filter_json: filterJson }).returning('id').executeTakeFirstOrThrow();
    return Number(row.id);
  }

  async getFilter(userId: string, id: number): Promise<string | undefined> {
    const key = `${userId}\u0000${id}`;
    const cached = this.filters.get(key);
    if (cached !== undefined) return cached;
    const row = await this.database.db.selectFrom('filters').select('filter_json').where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
    if (row) this.filters.set(key, row.filter_json);
    return row?.filter_json;
  }

  /** Replaces one account-data entry; returns its new stream position. */
  async putAccountData(tx: Tx, userId: string, roomId: string | null, type: string, content: string): Promise<number> {
    const room = roomId ?? '';
    await tx.db.deleteFrom('account_data').where('user_id', '=', userId).where('room_id', '=', room).where('type', '=', type).execute();
    const row = await tx.db.insertInto('account_data').values({ user_id: userId, room_id: room, type, content }).returning('stream_id').executeTakeFirstOrThrow();
    return Number(row.stream_id);
  }

  async getAccountData(userId: string, roomId: string | null, type: string, tx?: Tx): Promise<Record<string, unknown> | undefined> {
    const row = await (tx?.db ?? this.database.db)
      .selectFrom('account_data')
      .select('content')
      .where('user_id', '=', userId)
      .where('room_id', '=', roomId ?? '')
      .where('type', '=', type)
      .executeTakeFirst();
    return row ? (JSON.parse(row.content) as Record<string, unknown>) : undefined;
  }

  /** Every entry of a user's account data for one room (one per type). */
  async roomAccountData(userId: string, roomId: string): Promise<Array<{ type: string; content: Record<string, unknown> }>> {
    const rows = await this.database.db
      .selectFrom('account_data')
      .select(['type', 'content'])
      .where('user_id', '=', userId)
      .where('room_id', '=', roomId)
      .orderBy('stream_id')
      .execute();
    return rows.map((r) => ({ type: r.type, content: JSON.parse(r.content) as Record<string, unknown> }));
  }

  /** Account data written after stream position `since` (0: all), in stream order. */
  async accountDataSince(userId: string, since: number, limit = 1000): Promise<AccountDataRow[]> {
    const rows = await this.database.db
      .selectFrom('account_data')
      .selectAll()
      .where('user_id', '=', userId)
      .where('stream_id', '>', since)
      .orderBy('stream_id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ stream_id: Number(r.stream_id), room_id: r.room_id === '' ? null : r.room_id, type: r.type, content: JSON.parse(r.content) as Record<string, unknown> }));
  }

  async maxAccountDataPosition(): Promise<number> {
    const row = await this.database.db.selectFrom('account_data').select((eb) => eb.fn.max('stream_id').as('m')).executeTakeFirst();
    return Number(row?.m ?? 0);
  }

  /**
   * Presence rows by user (every /sync request reads its user's). Every presence write is here:
   * it drops the entry when it writes and when it commits, and a read that began before a drop
   * does not store its answer.
   */
  private readonly presenceCache = new LruCache<string, PresenceRow | null>(10_000);
  private presenceGeneration = 0;

  async putPresence(tx: Tx, p: Omit<PresenceRow, 'stream_id'>): Promise<number> {
    const drop = () => {
      this.presenceGeneration++;
      this.presenceCache.delete(p.user_id);
    };
    drop();
    tx.onCommit(drop);
    await tx.db.deleteFrom('presence').where('user_id', '=', p.user_id).execute();
    const row = await tx.db.insertInto('presence').values(p).returning('stream_id').executeTakeFirstOrThrow();
    return Number(row.stream_id);
  }

  async getPresence(userId: string): Promise<PresenceRow | undefined> {
    const hit = this.presenceCache.get(userId);
    if (hit !== undefined) return hit === null ? undefined : { ...hit };
    const generation = this.presenceGeneration;
    const row = await this.database.db.selectFrom('presence').selectAll().where('user_id', '=', userId).executeTakeFirst();
    const out = row ? { ...row, stream_id: Number(row.stream_id) } : undefined;
    if (generation === this.presenceGeneration) this.presenceCache.set(userId, out ? { ...out } : null);
    return out;
  }

  /** Presence of the given users changed after `since`. */
  async presenceSince(userIds: readonly string[], since: number): Promise<PresenceRow[]> {
    if (userIds.length === 0) return [];
    const rows = await this.database.db
      .selectFrom('presence')
      .selectAll()
      .where('user_id', 'in', userIds)
      .where('stream_id', '>', since)
      .orderBy('stream_id')
      .execute();
    return rows.map((r) => ({ ...r, stream_id: Number(r.stream_id) }));
  }

  async maxPresencePosition(): Promise<number> {
    const row = await this.database.db.selectFrom('presence').select((eb) => eb.fn.max('stream_id').as('m')).executeTakeFirst();
    return Number(row?.m ?? 0);
  }
}
