import type { MigrationStep } from './types.js';

/**
 * The user agent a device was last seen with (`devices.last_seen_user_agent`), kept with its
 * last IP and time: shown to the user in their list of sessions (`last_seen_user_agent`, MSC3852)
 * and to administrators by `/admin/whois`.
 */
export const deviceUserAgent: MigrationStep = {
  name: '0021-device-user-agent',
  async up(db) {
    await db.schema.alterTable('devices').addColumn('last_seen_user_agent', 'text').execute();
  },
};
