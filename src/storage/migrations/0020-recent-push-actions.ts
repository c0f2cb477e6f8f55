import { sql } from 'kysely';
import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

const COLUMNS = sql.raw('user_id, event_id, room_id, stream_ordering, thread_id, notif, highlight, own, actions, ts');
const PROGRESS = sql`(select position from push_actions_progress where name = 'events')`;

/**
 * `event_push_actions_recent`: new push action rows are written here first, keyed by
 * (stream_ordering, user_id), so a message's rows land at the end of one b-tree instead of in
 * every member's part of `event_push_actions`. They are moved into `event_push_actions` in
 * large batches (in that table's key order) once evaluated, and reads cover both tables (see
 * PushStore).
 *
 * Rows of `event_push_actions` past the evaluation position (written by an event's write while
 * other events were still being evaluated) move here too: the table keeps only rows up to that
 * position, so evaluating those events again lands on the same rows.
 */
export const recentPushActions: MigrationStep = {
  name: '0020-recent-push-actions',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    let create = db.schema
      .createTable('event_push_actions_recent')
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
      .addPrimaryKeyConstraint('event_push_actions_recent_pk', ['stream_ordering', 'user_id']);
    if (dialect === 'sqlite') create = create.modifyEnd(sql`without rowid`);
    await create.execute();
    await sql`insert into event_push_actions_recent (${COLUMNS}) select ${COLUMNS} from event_push_actions where stream_ordering > ${PROGRESS} on conflict do nothing`.execute(db);
    await sql`delete from event_push_actions where stream_ordering > ${PROGRESS}`.execute(db);
  },
};
