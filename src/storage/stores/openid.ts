import type { Kysely } from 'kysely';
import type { Database } from '../db.js';
import type { Tables } from '../schema.js';

/** OpenID tokens by hash, with their owner and expiry. */
export class OpenIdStore {
  private readonly db: Kysely<Tables>;

  constructor(database: Database) {
    this.db = database.db;
  }

  async insert(t: { token_hash: string; user_id: string; expires_ts: number }): Promise<void> {
    await this.db.insertInto('openid_tokens').values(t).execute();
  }

  /** The token with that hash, expired or not. */
  async find(tokenHash: string): Promise<{ user_id: string; expires_ts: number } | undefined> {
    const row = await this.db.selectFrom('openid_tokens').select(['user_id', 'expires_ts']).where('token_hash', '=', tokenHash).executeTakeFirst();
    return row && { user_id: row.user_id, expires_ts: Number(row.expires_ts) };
  }

  async delete(tokenHash: string): Promise<void> {
    await this.db.deleteFrom('openid_tokens').where('token_hash', '=', tokenHash).execute();
  }

  /** Removes the tokens that expired before `now`; returns how many. */
  async deleteExpired(now: number): Promise<number> {
    const res = await this.db.deleteFrom('openid_tokens').where('expires_ts', '<=', now).executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  async deleteOfUser(userId: string): Promise<void> {
    await this.db.deleteFrom('openid_tokens').where('user_id', '=', userId).execute();
  }
}
