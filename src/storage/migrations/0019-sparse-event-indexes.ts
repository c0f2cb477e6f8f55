import { sql } from 'kysely';
import type { MigrationStep } from './types.js';

/**
 * The `events` indexes over columns that most events leave empty (relations, redactions,
 * backfilled gap anchors) hold only the rows that have a value. Every query through them names
 * a value (`=`, `in`, a range or a join), which implies "not null" on both engines, so each
 * still serves them; a plain message no longer writes an entry into each.
 */
const SPARSE: ReadonlyArray<{ name: string; columns: string; column: string }> = [
  { name: 'events_relates_to', columns: 'relates_to, rel_type', column: 'relates_to' },
  { name: 'events_room_rel', columns: 'room_id, rel_type, stream_ordering', column: 'rel_type' },
  { name: 'events_redacts', columns: 'redacts', column: 'redacts' },
  { name: 'events_room_anchor', columns: 'room_id, timeline_anchor', column: 'timeline_anchor' },
];

export const sparseEventIndexes: MigrationStep = {
  name: '0019-sparse-event-indexes',
  async up(db) {
    for (const { name, columns, column } of SPARSE) {
      await sql`drop index ${sql.id(name)}`.execute(db);
      await sql`create index ${sql.id(name)} on events (${sql.raw(columns)}) where ${sql.id(column)} is not null`.execute(db);
    }
  },
};
