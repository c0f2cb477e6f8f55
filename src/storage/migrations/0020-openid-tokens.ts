import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * OpenID tokens (client-server `/user/{userId}/openid/request_token`, server-server
 * `/openid/userinfo`): short-lived tokens a user hands to a third party (widgets, integration
 * managers, calls) which that party exchanges with this server for the user's ID. Stored by
 * their hash, with their expiry; the expiry index makes removing the expired ones cheap.
 */
export const openIdTokens: MigrationStep = {
  name: '0020-openid-tokens',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    await db.schema
      .createTable('openid_tokens')
      .addColumn('token_hash', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('expires_ts', t.bigint, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('openid_tokens_expires').on('openid_tokens').column('expires_ts').execute();
    await db.schema.createIndex('openid_tokens_user').on('openid_tokens').column('user_id').execute();
  },
};
