import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * The media repository.
 * - `media`: one row per mxc:// URI, local (server_name is ours) or cached from another server.
 *   The bytes live in the media store, named by their SHA-256; `sha256`/`size` are null while a
 *   media ID from /create waits for its upload (`unused_expires_ts`). `authenticated_only` marks
 *   media uploaded (or cached) while unauthenticated access was frozen.
 * - `media_thumbnails`: generated thumbnails, one per size, method and animation, also stored by
 *   SHA-256.
 */
export const media: MigrationStep = {
  name: '0011-media',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    await db.schema
      .createTable('media')
      .addColumn('server_name', 'text', (c) => c.notNull())
      .addColumn('media_id', 'text', (c) => c.notNull())
      .addColumn('uploader', 'text')
      .addColumn('content_type', 'text')
      .addColumn('filename', 'text')
      .addColumn('size', t.bigint)
      .addColumn('sha256', 'text')
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .addColumn('unused_expires_ts', t.bigint)
      .addColumn('last_access_ts', t.bigint, (c) => c.notNull())
      .addColumn('quarantined', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('authenticated_only', 'integer', (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('media_pk', ['server_name', 'media_id'])
      .execute();
    await db.schema.createIndex('media_uploader_idx').on('media').columns(['uploader', 'created_ts']).execute();
    await db.schema.createIndex('media_sha256_idx').on('media').column('sha256').execute();
    await db.schema.createIndex('media_access_idx').on('media').columns(['server_name', 'last_access_ts']).execute();
    await db.schema
      .createTable('media_thumbnails')
      .addColumn('server_name', 'text', (c) => c.notNull())
      .addColumn('media_id', 'text', (c) => c.notNull())
      .addColumn('width', 'integer', (c) => c.notNull())
      .addColumn('height', 'integer', (c) => c.notNull())
      .addColumn('method', 'text', (c) => c.notNull())
      .addColumn('animated', 'integer', (c) => c.notNull())
      .addColumn('content_type', 'text', (c) => c.notNull())
      .addColumn('size', t.bigint, (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .addPrimaryKeyConstraint('media_thumbnails_pk', ['server_name', 'media_id', 'width', 'height', 'method', 'animated'])
      .execute();
    await db.schema.createIndex('media_thumbnails_sha256_idx').on('media_thumbnails').column('sha256').execute();
  },
};
