import { sql } from 'kysely';
import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

const COLUMNS = sql.raw('user_id, event_id, room_id, stream_ordering, thread_id, notif, highlight, own, actions, ts');

/**
 * `event_push_actions` rebuilt for cheaper writes (one row per notified local member of every
 * event, so the table grows by about the members of a room per message); rows are kept as they are.
 * - Primary key (user_id, room_id, stream_ordering) instead of (user_id, event_id) plus an index
 *   (user_id, room_id, stream_ordering): the key serves unread counts and own-event marks, and an
 *   event has one stream position, so it identifies a row as well. On SQLite the table is
 *   WITHOUT ROWID: rows live in the key's b-tree (one b-tree per row written instead of four).
 * - The (user_id, stream_ordering) index, for /notifications and pushers, holds only notifying
 *   rows (`notif = 1 and own = 0`; queries state both as literals so the planner can use it).
 */
export const pushActionsLayout: MigrationStep = {
  name: '0018-push-actions-layout',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    let create = db.schema
      .createTable('event_push_actions_new')
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
      .addPrimaryKeyConstraint('event_push_actions_user_room_pk', ['user_id', 'room_id', 'stream_ordering']);
    if (dialect === 'sqlite') create = create.modifyEnd(sql`without rowid`);
    await create.execute();
    // `where true`: SQLite needs it to read `on conflict` as the insert's clause.
    await sql`insert into event_push_actions_new (${COLUMNS}) select ${COLUMNS} from event_push_actions where true on conflict do nothing`.execute(db);
    await db.schema.dropTable('event_push_actions').execute();
    await db.schema.alterTable('event_push_actions_new').renameTo('event_push_actions').execute();
    await sql`create index event_push_actions_notifying on event_push_actions (user_id, stream_ordering) where notif = 1 and own = 0`.execute(db);
  },
};
