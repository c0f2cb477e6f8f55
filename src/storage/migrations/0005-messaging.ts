import { sql } from 'kysely';
import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * Content reports and full-text search of room events.
 *
 * `event_search` holds the searchable text of `m.room.message` (content.body), `m.room.name`
 * (content.name) and `m.room.topic` (content.topic) events, one row per event keyed by its
 * stream position. Triggers on `events` keep it current: a row is added when such an event is
 * inserted (not for outliers) and removed when the event is redacted.
 * - SQLite: an FTS5 virtual table (rowid = stream_ordering), tokenised with porter + unicode61.
 * - PostgreSQL: a plain table with a `tsvector` column (english configuration) and a GIN index.
 */
export const messaging: MigrationStep = {
  name: '0005-messaging',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    await db.schema
      .createTable('event_reports')
      .addColumn('id', t.autoId, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('room_id', 'text')
      .addColumn('event_id', 'text')
      .addColumn('target_user_id', 'text')
      .addColumn('reporter', 'text', (c) => c.notNull())
      .addColumn('reason', 'text')
      .addColumn('received_ts', t.bigint, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('event_reports_ts').on('event_reports').column('received_ts').execute();
    // Thread lists: replies of a room by relation type, newest first.
    await db.schema.createIndex('events_room_rel').on('events').columns(['room_id', 'rel_type', 'stream_ordering']).execute();

    if (dialect === 'sqlite') {
      await sql`CREATE VIRTUAL TABLE event_search USING fts5(
        value, key UNINDEXED, event_id UNINDEXED, room_id UNINDEXED, sender UNINDEXED, origin_server_ts UNINDEXED,
        tokenize = 'porter unicode61 remove_diacritics 2'
      )`.execute(db);
      for (const [type, key, field] of SEARCHABLE) {
        await sql`CREATE TRIGGER ${sql.raw(`event_search_${field}`)} AFTER INSERT ON events
          WHEN new.outlier = 0 AND new.type = ${sql.lit(type)} AND json_type(new.json, ${sql.lit(`$.content.${field}`)}) = 'text'
          BEGIN
            INSERT INTO event_search (rowid, value, key, event_id, room_id, sender, origin_server_ts)
            VALUES (new.stream_ordering, json_extract(new.json, ${sql.lit(`$.content.${field}`)}), ${sql.lit(key)},
                    new.event_id, new.room_id, new.sender, new.origin_server_ts);
          END`.execute(db);
      }
      await sql`CREATE TRIGGER event_search_redacted AFTER UPDATE OF redacted_by ON events
        WHEN new.redacted_by IS NOT NULL
        BEGIN
          DELETE FROM event_search WHERE rowid = new.stream_ordering;
        END`.execute(db);
    } else {
      await sql`CREATE TABLE event_search (
        stream_ordering bigint PRIMARY KEY,
        event_id text NOT NULL,
        room_id text NOT NULL,
        sender text NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        origin_server_ts bigint NOT NULL,
        vector tsvector NOT NULL
      )`.execute(db);
      await sql`CREATE INDEX event_search_vector ON event_search USING GIN (vector)`.execute(db);
      await sql`CREATE INDEX event_search_room ON event_search (room_id, stream_ordering)`.execute(db);
      // Event JSON with an escaped NUL cannot be read as jsonb: such events are not indexed.
      await sql`CREATE FUNCTION myelin_event_search_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
          k text;
          f text;
          v jsonb;
        BEGIN
          IF NEW.outlier <> 0 THEN RETURN NEW; END IF;
          IF NEW.type = 'm.room.message' THEN k := 'content.body'; f := 'body';
          ELSIF NEW.type = 'm.room.name' THEN k := 'content.name'; f := 'name';
          ELSIF NEW.type = 'm.room.topic' THEN k := 'content.topic'; f := 'topic';
          ELSE RETURN NEW;
          END IF;
          IF position('\\u0000' in NEW.json) > 0 THEN RETURN NEW; END IF;
          v := (NEW.json::jsonb) -> 'content' -> f;
          IF v IS NULL OR jsonb_typeof(v) <> 'string' THEN RETURN NEW; END IF;
          INSERT INTO event_search (stream_ordering, event_id, room_id, sender, key, value, origin_server_ts, vector)
          VALUES (NEW.stream_ordering, NEW.event_id, NEW.room_id, NEW.sender, k, v #>> '{}', NEW.origin_server_ts,
                  to_tsvector('english', v #>> '{}'));
          RETURN NEW;
        END $$`.execute(db);
      await sql`CREATE TRIGGER event_search_insert AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION myelin_event_search_insert()`.execute(db);
      await sql`CREATE FUNCTION myelin_event_search_redacted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          DELETE FROM event_search WHERE stream_ordering = NEW.stream_ordering;
          RETURN NEW;
        END $$`.execute(db);
      await sql`CREATE TRIGGER event_search_redacted AFTER UPDATE OF redacted_by ON events
        FOR EACH ROW WHEN (NEW.redacted_by IS NOT NULL) EXECUTE FUNCTION myelin_event_search_redacted()`.execute(db);
    }
  },
};

/** Event type, search key and content field of the searchable events. */
const SEARCHABLE: ReadonlyArray<readonly [string, string, string]> = [
  ['m.room.message', 'content.body', 'body'],
  ['m.room.name', 'content.name', 'name'],
  ['m.room.topic', 'content.topic', 'topic'],
];
