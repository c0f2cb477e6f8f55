import { columnTypes } from '../dialect.js';
import type { MigrationStep } from './types.js';

/**
 * End-to-end encryption: device identity keys, one-time and fallback keys, cross-signing keys
 * and signatures, the device-list change stream, the to-device inbox with its transaction IDs,
 * and server-side key backups. Key objects are stored as the JSON the client uploaded.
 */
export const e2ee: MigrationStep = {
  name: '0006-e2ee',
  async up(db, dialect) {
    const t = columnTypes(dialect);
    const autoPk = (c: any) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey());

    await db.schema
      .createTable('e2e_device_keys')
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('key_json', 'text', (c) => c.notNull())
      .addColumn('updated_ts', t.bigint, (c) => c.notNull())
      .addPrimaryKeyConstraint('e2e_device_keys_pk', ['user_id', 'device_id'])
      .execute();

    // `id` orders one-time keys by upload, so claims hand out the oldest first.
    await db.schema
      .createTable('e2e_one_time_keys')
      .addColumn('id', t.autoId, autoPk)
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('algorithm', 'text', (c) => c.notNull())
      .addColumn('key_id', 'text', (c) => c.notNull())
      .addColumn('key_json', 'text', (c) => c.notNull())
      .addUniqueConstraint('e2e_one_time_keys_key', ['user_id', 'device_id', 'algorithm', 'key_id'])
      .execute();
    await db.schema.createIndex('e2e_one_time_keys_claim').on('e2e_one_time_keys').columns(['user_id', 'device_id', 'algorithm', 'id']).execute();

    await db.schema
      .createTable('e2e_fallback_keys')
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('algorithm', 'text', (c) => c.notNull())
      .addColumn('key_id', 'text', (c) => c.notNull())
      .addColumn('key_json', 'text', (c) => c.notNull())
      .addColumn('used', 'integer', (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('e2e_fallback_keys_pk', ['user_id', 'device_id', 'algorithm'])
      .execute();

    // key_type: master, self_signing or user_signing.
    await db.schema
      .createTable('e2e_cross_signing_keys')
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('key_type', 'text', (c) => c.notNull())
      .addColumn('public_key', 'text', (c) => c.notNull())
      .addColumn('key_json', 'text', (c) => c.notNull())
      .addColumn('updated_ts', t.bigint, (c) => c.notNull())
      .addPrimaryKeyConstraint('e2e_cross_signing_keys_pk', ['user_id', 'key_type'])
      .execute();

    // Signatures uploaded through /keys/signatures/upload. target_key_id is a device ID or the
    // unpadded base64 public key of a master key.
    await db.schema
      .createTable('e2e_signatures')
      .addColumn('signer_user_id', 'text', (c) => c.notNull())
      .addColumn('signer_key_id', 'text', (c) => c.notNull())
      .addColumn('target_user_id', 'text', (c) => c.notNull())
      .addColumn('target_key_id', 'text', (c) => c.notNull())
      .addColumn('signature', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('e2e_signatures_pk', ['target_user_id', 'target_key_id', 'signer_user_id', 'signer_key_id'])
      .execute();

    // One row per change of a user's devices or keys; stream_id is the device_lists position.
    await db.schema
      .createTable('device_list_changes')
      .addColumn('stream_id', t.autoId, autoPk)
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('device_list_changes_user').on('device_list_changes').columns(['user_id', 'stream_id']).execute();

    // Pending to-device messages; stream_id is the to_device position. Rows are deleted once
    // the recipient device acknowledges them (syncs with a token past them).
    await db.schema
      .createTable('device_inbox')
      .addColumn('stream_id', t.autoId, autoPk)
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('sender', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('content', 'text', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('device_inbox_device').on('device_inbox').columns(['user_id', 'device_id', 'stream_id']).execute();

    await db.schema
      .createTable('to_device_txns')
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('txn_id', 'text', (c) => c.notNull())
      .addColumn('created_ts', t.bigint, (c) => c.notNull())
      .addPrimaryKeyConstraint('to_device_txns_pk', ['user_id', 'device_id', 'txn_id'])
      .execute();

    // Key backup versions are numbered per user; deleted ones are kept (deleted = 1) so that
    // deleting them again succeeds and their numbers are never reused.
    await db.schema
      .createTable('key_backup_versions')
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('version', t.bigint, (c) => c.notNull())
      .addColumn('algorithm', 'text', (c) => c.notNull())
      .addColumn('auth_data', 'text', (c) => c.notNull())
      .addColumn('etag', t.bigint, (c) => c.notNull().defaultTo(0))
      .addColumn('deleted', 'integer', (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('key_backup_versions_pk', ['user_id', 'version'])
      .execute();

    await db.schema
      .createTable('key_backup_sessions')
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('version', t.bigint, (c) => c.notNull())
      .addColumn('room_id', 'text', (c) => c.notNull())
      .addColumn('session_id', 'text', (c) => c.notNull())
      .addColumn('first_message_index', t.bigint, (c) => c.notNull())
      .addColumn('forwarded_count', t.bigint, (c) => c.notNull())
      .addColumn('is_verified', 'integer', (c) => c.notNull())
      .addColumn('session_data', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('key_backup_sessions_pk', ['user_id', 'version', 'room_id', 'session_id'])
      .execute();
  },
};
