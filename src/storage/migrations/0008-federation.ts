import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * Signing keys of other servers, as fetched (directly or through a notary).
 * - `server_signing_keys`: one row per (server, key ID) with the time until which the key may be
 *   used: for a current key min(valid_until_ts, fetch time + 7 days), for an old key expired_ts.
 * - `server_key_responses`: the last self-signed `/_matrix/key/v2/server` response of each
 *   server, served again (re-signed) by our notary endpoints.
 */
export const federation: MigrationStep = {
  name: '0008-federation',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    await db.schema
      .createTable('server_signing_keys')
      .addColumn('server_name', 'text', (c) => c.notNull())
      .addColumn('key_id', 'text', (c) => c.notNull())
      .addColumn('public_key', 'text', (c) => c.notNull())
      .addColumn('valid_until_ts', t.bigint, (c) => c.notNull())
      .addColumn('expired_ts', t.bigint)
      .addColumn('fetched_ts', t.bigint, (c) => c.notNull())
      .addColumn('fetched_from', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('server_signing_keys_pk', ['server_name', 'key_id'])
      .execute();
    await db.schema
      .createTable('server_key_responses')
      .addColumn('server_name', 'text', (c) => c.primaryKey())
      .addColumn('valid_until_ts', t.bigint, (c) => c.notNull())
      .addColumn('fetched_ts', t.bigint, (c) => c.notNull())
      .addColumn('json', 'text', (c) => c.notNull())
      .execute();
  },
};
