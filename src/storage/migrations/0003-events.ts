import { sql } from 'kysely';
import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * Rooms, events and room state.
 * - `events.stream_ordering` is the position of an event in the server-wide event stream.
 * - State is stored as groups: a group is a delta over `prev_group` (or a full snapshot),
 *   `event_state` maps each event to the group of the state *after* it.
 * - `current_state` is the materialised state of each room, updated in the same transaction.
 */
export const events: MigrationStep = {
  name: '0003-events',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    await db.schema
      .createTable('rooms')
      .addColumn('room_id', 'text', (c) => c.primaryKey())
      .addColumn('room_version', 'text', (c) => c.notNull())
      .addColumn('creator', 'text', (c) => c.notNull())
      .addColumn('is_public', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('events')
      .addColumn('stream_ordering', t.autoId, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
      .addColumn('event_id', 'text', (c) => c.notNull().unique())
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('state_key', 'text')
      .addColumn('sender', 'text', (c) => c.notNull())
      .addColumn('origin_server_ts', t.bigint, (c) => c.notNull())
      .addColumn('depth', t.bigint, (c) => c.notNull())
      .addColumn('json', 'text', (c) => c.notNull())
      .addColumn('outlier', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('rejected', 'text')
      .addColumn('prev_state_event_id', 'text')
      .addColumn('redacted_by', 'text')
      .addColumn('txn_id', 'text')
      .addColumn('txn_device_id', 'text')
      .addColumn('relates_to', 'text')
      .addColumn('rel_type', 'text')
      .addColumn('received_ts', t.bigint, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('events_room_stream').on('events').columns(['room_id', 'stream_ordering']).execute();
    await db.schema.createIndex('events_relates_to').on('events').columns(['relates_to', 'rel_type']).execute();
    await db.schema.createIndex('events_room_ts').on('events').columns(['room_id', 'origin_server_ts']).execute();

    await db.schema
      .createTable('event_edges')
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('prev_event_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('event_edges_pk', ['event_id', 'prev_event_id'])
      .execute();
    await db.schema.createIndex('event_edges_prev').on('event_edges').column('prev_event_id').execute();

    await db.schema
      .createTable('event_txns')
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('txn_id', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .addPrimaryKeyConstraint('event_txns_pk', ['user_id', 'device_id', 'txn_id'])
      .execute();

    await db.schema
      .createTable('state_groups')
      .addColumn('id', t.autoId, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addColumn('prev_group', t.bigint)
      .addColumn('delta_depth', 'integer', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('state_group_entries')
      .addColumn('state_group', t.bigint, (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('state_key', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('state_group_entries_pk', ['state_group', 'type', 'state_key'])
      .execute();
    await db.schema
      .createTable('event_state')
      .addColumn('event_id', 'text', (c) => c.primaryKey())
      .addColumn('state_group', t.bigint, (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('current_state')
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('state_key', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('membership', 'text')
      .addPrimaryKeyConstraint('current_state_pk', ['room_id', 'type', 'state_key'])
      .execute();
    await db.schema
      .createIndex('current_state_members')
      .on('current_state')
      .columns(['state_key', 'type', 'membership'])
      .execute();

    await db.schema
      .createTable('forward_extremities')
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('forward_extremities_pk', ['room_id', 'event_id'])
      .execute();

    // Membership history: every membership event, for sync (joins/leaves since a token).
    await db.schema
      .createTable('room_memberships')
      .addColumn('event_id', 'text', (c) => c.primaryKey())
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('sender', 'text', (c) => c.notNull())
      .addColumn('membership', 'text', (c) => c.notNull())
      .addColumn('stream_ordering', t.bigint, (c) => c.notNull())
      .addColumn('forgotten', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema
      .createIndex('room_memberships_user')
      .on('room_memberships')
      .columns(['user_id', 'stream_ordering'])
      .execute();

    await db.schema
      .createTable('room_aliases')
      .addColumn('alias', 'text', (c) => c.primaryKey())
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addColumn('creator', 'text', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('room_aliases_room').on('room_aliases').column('room_id').execute();
    void sql;
  },
};
