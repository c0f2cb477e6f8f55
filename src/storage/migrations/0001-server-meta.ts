import type { MigrationStep } from './types.js';

/** Facts about the server the database belongs to (e.g. its server_name), as key/value rows. */
export const serverMeta: MigrationStep = {
  name: '0001-server-meta',
  async up(db) {
    await db.schema
      .createTable('server_meta')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .execute();
  },
};
