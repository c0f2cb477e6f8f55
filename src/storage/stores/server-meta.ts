import type { Database } from '../db.js';

/** Key/value facts about the server that owns the database. */
export class ServerMetaStore {
  constructor(private readonly database: Database) {}

  async get(key: string): Promise<string | undefined> {
    const row = await this.database.db.selectFrom('server_meta').select('value').where('key', '=', key).executeTakeFirst();
    return row?.value;
  }

  async set(key: string, value: string): Promise<void> {
    await this.database.db
      .insertInto('server_meta')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute();
  }
}
