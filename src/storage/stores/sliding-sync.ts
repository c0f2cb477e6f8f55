import type { Database } from '../db.js';

/** Reads for simplified sliding sync that no other store answers. */
export class SlidingSyncStore {
  constructor(private readonly database: Database) {}

  /**
   * The stream position of the room's last timeline event of one of `types` at or before `to`
   * (the room's "bump stamp"), or undefined when it has none.
   */
  async lastEventOfTypes(roomId: string, types: readonly string[], to: number): Promise<number | undefined> {
    const row = await this.database.db
      .selectFrom('events')
      .select('stream_ordering')
      .where('room_id', '=', roomId)
      .where('outlier', '=', 0)
      .where('rejected', 'is', null)
      .where('type', 'in', [...types])
      .where('stream_ordering', '<=', to)
      .orderBy('stream_ordering', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? Number(row.stream_ordering) : undefined;
  }
}
