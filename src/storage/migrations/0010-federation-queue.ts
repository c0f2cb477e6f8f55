import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * Outgoing federation and state received over federation.
 * - `federation_outbox`: per destination, the PDUs (by event ID) and EDUs (as JSON) still to be
 *   delivered, in order; rows are deleted once a transaction carrying them is acknowledged.
 * - `federation_destinations`: per destination, the retry state (failures in a row, next attempt)
 *   and the last successful delivery.
 * - `federation_positions`: how far the sender has read the local streams (survives restarts, so
 *   nothing committed before a crash is skipped).
 * - `federation_invites`: stripped state sent with invites from other servers (shown to the
 *   invitee until they join or reject).
 */
export const federationQueue: MigrationStep = {
  name: '0010-federation-queue',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    await db.schema
      .createTable('federation_outbox')
      .addColumn('id', t.autoId, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
      .addColumn('destination', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text')
      .addColumn('edu', 'text')
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('federation_outbox_dest').on('federation_outbox').columns(['destination', 'id']).execute();
    await db.schema
      .createTable('federation_destinations')
      .addColumn('destination', 'text', (c) => c.primaryKey())
      .addColumn('failures', 'integer', (c) => c.notNull())
      .addColumn('retry_at', t.bigint, (c) => c.notNull())
      .addColumn('last_success_ts', t.bigint)
      .execute();
    await db.schema
      .createTable('federation_positions')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('position', t.bigint, (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('federation_invites')
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('room_version', 'text', (c) => c.notNull())
      .addColumn('stripped_state', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('federation_invites_pk', ['room_id', 'user_id'])
      .execute();
  },
};
