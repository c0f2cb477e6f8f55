import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * Application services.
 * - `appservice_state`: per service, the last event-stream position already turned into
 *   transactions, and the last transaction ID handed out.
 * - `appservice_txns`: transactions built but not yet acknowledged, retried with the same ID
 *   until the service answers 200 (event IDs and ephemeral data as JSON arrays).
 * - `appservice_room_networks`: rooms published in a service's per-network room directory.
 */
export const appservice: MigrationStep = {
  name: '0009-appservice',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    await db.schema
      .createTable('appservice_state')
      .addColumn('appservice_id', 'text', (c) => c.primaryKey())
      .addColumn('stream_position', t.bigint, (c) => c.notNull())
      .addColumn('last_txn_id', t.bigint, (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('appservice_txns')
      .addColumn('appservice_id', 'text', (c) => c.notNull())
      .addColumn('txn_id', t.bigint, (c) => c.notNull())
      .addColumn('event_ids', 'text', (c) => c.notNull())
      .addColumn('ephemeral', 'text', (c) => c.notNull())
      .addColumn('to_device', 'text', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .addPrimaryKeyConstraint('appservice_txns_pk', ['appservice_id', 'txn_id'])
      .execute();
    await db.schema
      .createTable('appservice_room_networks')
      .addColumn('appservice_id', 'text', (c) => c.notNull())
      .addColumn('network_id', 'text', (c) => c.notNull())
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('appservice_room_networks_pk', ['appservice_id', 'network_id', 'room_id'])
      .execute();
  },
};
