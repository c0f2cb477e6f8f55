import { sql } from 'kysely';
import type { MigrationStep } from './types.js';

/**
 * Redactions whose target arrives later, and search of history that arrives later:
 * - `events.redacts`: the event a stored `m.room.redaction` redacts (from `redacts` or, in newer
 *   room versions, `content.redacts`), indexed, so an event stored after its redaction (through
 *   backfill or federation) is redacted on arrival. Filled for the redactions already stored.
 * - full-text search also indexes an event that stops being an outlier (state received with a
 *   join that later takes its place in the timeline through backfill), not only new rows.
 */
export const lateRedactions: MigrationStep = {
  name: '0014-late-redactions',
  async up(db, dialect) {
    await db.schema.alterTable('events').addColumn('redacts', 'text').execute();
    await db.schema.createIndex('events_redacts').on('events').column('redacts').execute();
    if (dialect === 'sqlite') {
      await sql`UPDATE events SET redacts = COALESCE(json_extract(json, '$.redacts'), json_extract(json, '$.content.redacts'))
        WHERE type = 'm.room.redaction'`.execute(db);
      for (const [type, key, field] of SEARCHABLE) {
        await sql`CREATE TRIGGER ${sql.raw(`event_search_promoted_${field}`)} AFTER UPDATE OF outlier ON events
          WHEN old.outlier <> 0 AND new.outlier = 0 AND new.rejected IS NULL AND new.redacted_by IS NULL
            AND new.type = ${sql.lit(type)} AND json_type(new.json, ${sql.lit(`$.content.${field}`)}) = 'text'
          BEGIN
            INSERT INTO event_search (rowid, value, key, event_id, room_id, sender, origin_server_ts)
            VALUES (new.stream_ordering, json_extract(new.json, ${sql.lit(`$.content.${field}`)}), ${sql.lit(key)},
                    new.event_id, new.room_id, new.sender, new.origin_server_ts);
          END`.execute(db);
      }
    } else {
      await sql`UPDATE events SET redacts = COALESCE((json::jsonb) ->> 'redacts', (json::jsonb) -> 'content' ->> 'redacts')
        WHERE type = 'm.room.redaction' AND position('\\u0000' in json) = 0`.execute(db);
      // The insert function of 0005 reads only NEW, so it serves the promotion of an outlier too.
      await sql`CREATE TRIGGER event_search_promoted AFTER UPDATE OF outlier ON events
        FOR EACH ROW WHEN (OLD.outlier <> 0 AND NEW.outlier = 0 AND NEW.rejected IS NULL AND NEW.redacted_by IS NULL)
        EXECUTE FUNCTION myelin_event_search_insert()`.execute(db);
    }
  },
};

/** Event type, search key and content field of the searchable events (as in 0005). */
const SEARCHABLE: ReadonlyArray<readonly [string, string, string]> = [
  ['m.room.message', 'content.body', 'body'],
  ['m.room.name', 'content.name', 'name'],
  ['m.room.topic', 'content.topic', 'topic'],
];
