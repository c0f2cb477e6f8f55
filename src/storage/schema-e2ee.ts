import type { Generated } from 'kysely';

/** Row types of migration 0006-e2ee. */
export interface E2eDeviceKeysTable {
  user_id: string;
  device_id: string;
  key_json: string;
  updated_ts: number;
}

export interface E2eOneTimeKeysTable {
  id: Generated<number>;
  user_id: string;
  device_id: string;
  algorithm: string;
  key_id: string;
  key_json: string;
}

export interface E2eFallbackKeysTable {
  user_id: string;
  device_id: string;
  algorithm: string;
  key_id: string;
  key_json: string;
  used: Generated<number>;
}

export interface E2eCrossSigningKeysTable {
  user_id: string;
  key_type: string;
  public_key: string;
  key_json: string;
  updated_ts: number;
}

export interface E2eSignaturesTable {
  signer_user_id: string;
  signer_key_id: string;
  target_user_id: string;
  target_key_id: string;
  signature: string;
}

export interface DeviceListChangesTable {
  stream_id: Generated<number>;
  user_id: string;
  created_ts: number;
}

export interface DeviceInboxTable {
  stream_id: Generated<number>;
  user_id: string;
  device_id: string;
  sender: string;
  type: string;
  content: string;
  created_ts: number;
}

export interface ToDeviceTxnsTable {
  user_id: string;
  device_id: string;
  txn_id: string;
  created_ts: number;
}

export interface KeyBackupVersionsTable {
  user_id: string;
  version: number;
  algorithm: string;
  auth_data: string;
  etag: Generated<number>;
  deleted: Generated<number>;
}

export interface KeyBackupSessionsTable {
  user_id: string;
  version: number;
  room_id: string;
  session_id: string;
  first_message_index: number;
  forwarded_count: number;
  is_verified: number;
  session_data: string;
}

/** Row type of migration 0015-dehydrated-devices. */
export interface DehydratedDevicesTable {
  user_id: string;
  device_id: string;
  /** The client's `device_data` object as JSON. */
  device_data: string;
  created_ts: number;
}

export interface E2eeTables {
  e2e_device_keys: E2eDeviceKeysTable;
  e2e_one_time_keys: E2eOneTimeKeysTable;
  e2e_fallback_keys: E2eFallbackKeysTable;
  e2e_cross_signing_keys: E2eCrossSigningKeysTable;
  e2e_signatures: E2eSignaturesTable;
  device_list_changes: DeviceListChangesTable;
  device_inbox: DeviceInboxTable;
  to_device_txns: ToDeviceTxnsTable;
  key_backup_versions: KeyBackupVersionsTable;
  key_backup_sessions: KeyBackupSessionsTable;
  dehydrated_devices: DehydratedDevicesTable;
}
