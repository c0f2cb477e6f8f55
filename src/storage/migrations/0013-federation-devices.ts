import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * Device lists over federation:
 * - `device_list_outbound`: one row per `m.device_list_update` this server announced for a local
 *   user's device (`stream_id` orders them; a user's previous row is the update's `prev_id`, and
 *   the user's newest row is the `stream_id` of `/user/devices`).
 * - `device_list_snapshots`: what was last announced per local device (a hash of its keys; the
 *   row with an empty device ID stands for the user's cross-signing keys), so a change is
 *   announced as exactly the devices that differ.
 * - `remote_device_lists`: the device keys and cross-signing keys of users of other servers,
 *   with the last `stream_id` seen, kept up to date from their updates (resynced through
 *   `/user/devices` on a gap).
 */
export const federationDevices: MigrationStep = {
  name: '0013-federation-devices',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    await db.schema
      .createTable('device_list_outbound')
      .addColumn('stream_id', t.autoId, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('deleted', 'integer', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('device_list_outbound_user').on('device_list_outbound').columns(['user_id', 'stream_id']).execute();
    await db.schema
      .createTable('device_list_snapshots')
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('device_list_snapshots_pk', ['user_id', 'device_id'])
      .execute();
    await db.schema
      .createTable('remote_device_lists')
      .addColumn('user_id', 'text', (c) => c.primaryKey())
      .addColumn('stream_id', 'text', (c) => c.notNull())
      .addColumn('json', 'text', (c) => c.notNull())
      .addColumn('updated_ts', t.bigint, (c) => c.notNull())
      .execute();
  },
};
