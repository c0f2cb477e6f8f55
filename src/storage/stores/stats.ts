import { sql } from 'kysely';
import type { Database } from '../db.js';

/** Counts for metrics and the stats page: a few aggregate queries, run only when someone reads them. */
export class StatsStore {
  constructor(private readonly database: Database) {}

  async counts(onlineSinceTs: number): Promise<{ users: number; devices: number; rooms: number; onlineUsers: number }> {
    const db = this.database.db;
    const n = sql<number>`count(*)`;
    const [users, devices, rooms, online] = await Promise.all([
      db.selectFrom('users').select(n.as('n')).where('deactivated', '=', 0).executeTakeFirstOrThrow(),
      db.selectFrom('devices').select(n.as('n')).executeTakeFirstOrThrow(),
      db.selectFrom('rooms').select(n.as('n')).executeTakeFirstOrThrow(),
      db
        .selectFrom('devices')
        .select(sql<number>`count(distinct user_id)`.as('n'))
        .where('last_seen_ts', '>=', onlineSinceTs)
        .executeTakeFirstOrThrow(),
    ]);
    return { users: Number(users.n), devices: Number(devices.n), rooms: Number(rooms.n), onlineUsers: Number(online.n) };
  }
}
