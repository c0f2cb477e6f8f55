import type { Database } from '../db.js';
import type { ServerSigningKeysTable } from '../schema-federation.js';

export type StoredServerKey = ServerSigningKeysTable;

/** Signing keys of other servers and their last key responses (for the notary endpoints). */
export class ServerKeyStore {
  constructor(private readonly database: Database) {}

  async getKeys(serverName: string): Promise<StoredServerKey[]> {
    return this.database.db.selectFrom('server_signing_keys').selectAll().where('server_name', '=', serverName).execute();
  }

  /**
   * Stores keys and (optionally) the response they came from, in one transaction. A key's
   * validity only ever grows: a stale response (e.g. from a notary cache) cannot shorten it.
   */
  async storeKeys(keys: StoredServerKey[], response?: { serverName: string; validUntilTs: number; fetchedTs: number; json: string }): Promise<void> {
    await this.database.transaction(async ({ db }) => {
      for (const k of keys) {
        const existing = await db
          .selectFrom('server_signing_keys')
          .select(['valid_until_ts', 'public_key'])
          .where('server_name', '=', k.server_name)
          .where('key_id', '=', k.key_id)
          .executeTakeFirst();
        if (!existing) {
          await db.insertInto('server_signing_keys').values(k).execute();
        } else if (existing.public_key !== k.public_key || k.valid_until_ts >= existing.valid_until_ts) {
          await db
            .updateTable('server_signing_keys')
            .set({
              public_key: k.public_key,
              valid_until_ts: existing.public_key === k.public_key ? Math.max(existing.valid_until_ts, k.valid_until_ts) : k.valid_until_ts,
              expired_ts: k.expired_ts,
              fetched_ts: k.fetched_ts,
              fetched_from: k.fetched_from,
            })
            .where('server_name', '=', k.server_name)
            .where('key_id', '=', k.key_id)
            .execute();
        }
      }
      if (response) {
        const prev = await db
          .selectFrom('server_key_responses')
          .select('valid_until_ts')
          .where('server_name', '=', response.serverName)
          .executeTakeFirst();
        const row = {
          server_name: response.serverName,
          valid_until_ts: response.validUntilTs,
          fetched_ts: response.fetchedTs,
          json: response.json,
        };
        if (!prev) await db.insertInto('server_key_responses').values(row).execute();
        else if (response.validUntilTs >= prev.valid_until_ts) {
          await db.updateTable('server_key_responses').set(row).where('server_name', '=', response.serverName).execute();
        }
      }
    });
  }

  async getResponse(serverName: string): Promise<{ validUntilTs: number; fetchedTs: number; json: string } | undefined> {
    const row = await this.database.db
      .selectFrom('server_key_responses')
      .selectAll()
      .where('server_name', '=', serverName)
      .executeTakeFirst();
    return row && { validUntilTs: row.valid_until_ts, fetchedTs: row.fetched_ts, json: row.json };
  }
}
