import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * Gaps in the middle of a room's timeline (events missed while this server was unreachable,
 * more than get_missing_events returned):
 * - `backward_extremities`: an event in the timeline (`child_event_id`) names a prev event
 *   (`event_id`) this server does not hold in the timeline; /messages asks other servers for the
 *   events before the child (/backfill) when a client pages back to it.
 * - `events.timeline_anchor`: events backfilled into such a gap keep a negative stream position
 *   (never reported by /sync) and are placed in /messages just before the stream position
 *   `timeline_anchor` (the child's), ordered among themselves by their stream positions.
 */
export const timelineGaps: MigrationStep = {
  name: '0017-timeline-gaps',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    await db.schema.alterTable('events').addColumn('timeline_anchor', t.bigint).execute();
    await db.schema.createIndex('events_room_anchor').on('events').columns(['room_id', 'timeline_anchor']).execute();
    await db.schema
      .createTable('backward_extremities')
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('child_event_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('backward_extremities_pk', ['child_event_id', 'event_id'])
      .execute();
    await db.schema.createIndex('backward_extremities_event').on('backward_extremities').column('event_id').execute();
  },
};
