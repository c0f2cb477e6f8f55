import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * Accounts: users, devices, access/refresh/login tokens (stored as SHA-256 hashes, never in
 * clear), registration tokens, user-interactive-auth sessions, filters, account data and presence.
 * Booleans are integers 0/1. `account_data` and `presence` rows are replaced (deleted and
 * re-inserted) on every write so their autoincrement `stream_id` is the write's stream position.
 */
export const accounts: MigrationStep = {
  name: '0002-accounts',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    const autoPk = (c: any) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey());

    await db.schema
      .createTable('users')
      .addColumn('user_id', 'text', (c) => c.primaryKey())
      .addColumn('password_hash', 'text')
      .addColumn('is_admin', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('is_guest', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('deactivated', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('user_type', 'text')
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .addColumn('displayname', 'text')
      .addColumn('avatar_url', 'text')
      // Other profile fields (m.tz, custom namespaced keys) as a JSON object.
      .addColumn('profile_extra', 'text')
      .execute();

    await db.schema
      .createTable('devices')
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('display_name', 'text')
      .addColumn('last_seen_ts', t.bigint)
      .addColumn('last_seen_ip', 'text')
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .addPrimaryKeyConstraint('devices_pk', ['user_id', 'device_id'])
      .execute();

    await db.schema
      .createTable('refresh_tokens')
      .addColumn('id', t.autoId, autoPk)
      .addColumn('token_hash', 'text', (c) => c.notNull().unique())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('refresh_tokens_device').on('refresh_tokens').columns(['user_id', 'device_id']).execute();

    await db.schema
      .createTable('access_tokens')
      .addColumn('id', t.autoId, autoPk)
      .addColumn('token_hash', 'text', (c) => c.notNull().unique())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      // Set when the token was issued with a refresh token; null means it never expires.
      .addColumn('expires_ts', t.bigint)
      .addColumn('refresh_token_id', t.bigint)
      .execute();
    await db.schema.createIndex('access_tokens_device').on('access_tokens').columns(['user_id', 'device_id']).execute();

    await db.schema
      .createTable('login_tokens')
      .addColumn('token_hash', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('expires_ts', t.bigint, (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('registration_tokens')
      .addColumn('token', 'text', (c) => c.primaryKey())
      .addColumn('uses_allowed', 'integer')
      .addColumn('pending', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('completed', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('expiry_time', t.bigint)
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('uia_sessions')
      .addColumn('session_id', 'text', (c) => c.primaryKey())
      // What the session authorises (e.g. "register", "delete_devices:@u:s"): a session
      // started for one operation cannot complete another.
      .addColumn('purpose', 'text', (c) => c.notNull())
      .addColumn('completed', 'text', (c) => c.notNull())
      .addColumn('data', 'text', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('filters')
      .addColumn('id', t.autoId, autoPk)
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('filter_json', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('account_data')
      .addColumn('stream_id', t.autoId, autoPk)
      .addColumn('user_id', 'text', (c) => c.notNull())
      // '' for global account data.
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('content', 'text', (c) => c.notNull())
      .addUniqueConstraint('account_data_key', ['user_id', 'room_id', 'type'])
      .execute();
    await db.schema.createIndex('account_data_user_stream').on('account_data').columns(['user_id', 'stream_id']).execute();

    await db.schema
      .createTable('presence')
      .addColumn('stream_id', t.autoId, autoPk)
      .addColumn('user_id', 'text', (c) => c.notNull().unique())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('status_msg', 'text')
      .addColumn('last_active_ts', t.bigint, (c) => c.notNull())
      .execute();
  },
};
