import type { Database } from '../db.js';

/** Local room aliases. */
export class AliasStore {
  constructor(private readonly database: Database) {}

  async resolve(alias: string): Promise<string | undefined> {
    const row = await this.database.db.selectFrom('room_aliases').select('room_id').where('alias', '=', alias).executeTakeFirst();
    return row?.room_id;
  }

  async create(alias: string, roomId: string, creator: string): Promise<boolean> {
    const res = await this.database.db
      .insertInto('room_aliases')
      .values({ alias, room_id: roomId, creator, created_ts: Date.now() })
      .onConflict((oc) => oc.column('alias').doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  async get(alias: string): Promise<{ roomId: string; creator: string } | undefined> {
    const row = await this.database.db.selectFrom('room_aliases').selectAll().where('alias', '=', alias).executeTakeFirst();
    return row && { roomId: row.room_id, creator: row.creator };
  }

  async delete(alias: string): Promise<void> {
    await this.database.db.deleteFrom('room_aliases').where('alias', '=', alias).execute();
  }

  async forRoom(roomId: string): Promise<string[]> {
    const rows = await this.database.db.selectFrom('room_aliases').select('alias').where('room_id', '=', roomId).orderBy('alias').execute();
    return rows.map((r) => r.alias);
  }
}
