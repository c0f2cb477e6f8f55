import { sql } from 'kysely';
import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * Delivery state of each pusher, on its `pushers` row:
 * - `push_position`: the stream position (`event_push_actions.stream_ordering`) of the last
 *   notification handled for this pusher: sent, skipped (already read) or given up on. The
 *   sender resumes after it, so a restart loses nothing. Existing pushers start at the current
 *   evaluation position (no old history is pushed).
 * - `failing_since`: when delivery of the notification after `push_position` first failed
 *   (null while delivery works); notifications are given up on once this is old enough.
 */
export const pusherDelivery: MigrationStep = {
  name: '0012-pusher-delivery',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    await db.schema.alterTable('pushers').addColumn('push_position', t.bigint, (c) => c.notNull().defaultTo(0)).execute();
    await db.schema.alterTable('pushers').addColumn('failing_since', t.bigint).execute();
    await sql`update pushers set push_position = coalesce((select position from push_actions_progress where name = 'events'), 0)`.execute(db);
  },
};
