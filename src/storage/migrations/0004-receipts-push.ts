import { sql } from 'kysely';
import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * Receipts, notification counts and pushers.
 * - `receipts`: one row per (room, receipt type, user, thread) — `thread_id` is '' for an
 *   unthreaded receipt. A row is replaced (deleted and re-inserted) on every update so its
 *   autoincrement `stream_id` is the position of the update in the receipts stream.
 *   `event_stream_ordering` is the stream position of the acknowledged event (read-up-to mark).
 * - `event_push_actions`: the result of evaluating a local user's push rules against an
 *   event that notifies them (and, with `own = 1`, the user's own events, which count as
 *   read marks). Counts are derived from these rows and the receipts when read.
 * - `push_actions_progress`: how far the event stream has been evaluated. Evaluation
 *   resumes from here after a restart, so no event is skipped; starts at the stream's end
 *   when this migration runs (earlier history is not evaluated).
 * - `pushers`: pushers set through /pushers/set.
 */
export const receiptsPush: MigrationStep = {
  name: '0004-receipts-push',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    const autoPk = (c: any) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey());

    await db.schema
      .createTable('receipts')
      .addColumn('stream_id', t.autoId, autoPk)
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addColumn('receipt_type', 'text', (c) => c.notNull())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('thread_id', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('event_stream_ordering', t.bigint, (c) => c.notNull())
      .addColumn('data', 'text', (c) => c.notNull())
      .addUniqueConstraint('receipts_key', ['room_id', 'receipt_type', 'user_id', 'thread_id'])
      .execute();
    await db.schema.createIndex('receipts_room_stream').on('receipts').columns(['room_id', 'stream_id']).execute();
    await db.schema.createIndex('receipts_user_room').on('receipts').columns(['user_id', 'room_id']).execute();

    await db.schema
      .createTable('event_push_actions')
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addColumn('stream_ordering', t.bigint, (c) => c.notNull())
      .addColumn('thread_id', 'text', (c) => c.notNull())
      .addColumn('notif', 'integer', (c) => c.notNull())
      .addColumn('highlight', 'integer', (c) => c.notNull())
      .addColumn('own', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('actions', 'text', (c) => c.notNull())
      .addColumn('ts', t.bigint, (c) => c.notNull())
      .addPrimaryKeyConstraint('event_push_actions_pk', ['user_id', 'event_id'])
      .execute();
    await db.schema.createIndex('event_push_actions_room').on('event_push_actions').columns(['user_id', 'room_id', 'stream_ordering']).execute();
    await db.schema.createIndex('event_push_actions_user').on('event_push_actions').columns(['user_id', 'stream_ordering']).execute();

    await db.schema
      .createTable('push_actions_progress')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('position', t.bigint, (c) => c.notNull())
      .execute();
    await sql`insert into push_actions_progress (name, position) select 'events', coalesce(max(stream_ordering), 0) from events`.execute(db);

    await db.schema
      .createTable('pushers')
      .addColumn('id', t.autoId, autoPk)
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text')
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('pushkey', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('app_display_name', 'text', (c) => c.notNull())
      .addColumn('device_display_name', 'text', (c) => c.notNull())
      .addColumn('profile_tag', 'text')
      .addColumn('lang', 'text', (c) => c.notNull())
      .addColumn('data', 'text', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .addUniqueConstraint('pushers_key', ['app_id', 'pushkey', 'user_id'])
      .execute();
    await db.schema.createIndex('pushers_user').on('pushers').column('user_id').execute();
  },
};
