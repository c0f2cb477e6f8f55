import type { MigrationStep } from './types.js';

/**
 * Account moderation by server administrators (client-server API v1.18 `/admin/suspend` and
 * `/admin/lock`): `users.suspended` (the user may read but not act: 403 M_USER_SUSPENDED) and
 * `users.locked` (every request but logout answers 401 M_USER_LOCKED), both 0/1, reversible.
 */
export const accountModeration: MigrationStep = {
  name: '0016-account-moderation',
  async up(db) {
    await db.schema.alterTable('users').addColumn('suspended', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    await db.schema.alterTable('users').addColumn('locked', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  },
};
