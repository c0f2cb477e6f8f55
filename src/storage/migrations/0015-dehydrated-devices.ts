import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * Dehydrated devices (MSC3814): at most one per user. The device itself is an ordinary row of
 * `devices` (without access tokens) with its keys in the e2e tables; this table holds the
 * client's encrypted `device_data`, handed back for rehydration.
 */
export const dehydratedDevices: MigrationStep = {
  name: '0015-dehydrated-devices',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    await db.schema
      .createTable('dehydrated_devices')
      .addColumn('user_id', 'text', (c) => c.primaryKey())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('device_data', 'text', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .execute();
  },
};
