import type { Generated } from 'kysely';

/** Row types of migration 0013-federation-devices (timestamps in ms). */
export interface DeviceListOutboundTable {
  stream_id: Generated<number>;
  user_id: string;
  device_id: string;
  deleted: number;
  created_ts: number;
}

export interface DeviceListSnapshotsTable {
  user_id: string;
  /** Empty for the user's cross-signing keys. */
  device_id: string;
  hash: string;
}

export interface RemoteDeviceListsTable {
  user_id: string;
  stream_id: string;
  /** `{ devices: { [deviceId]: keys }, master_key?, self_signing_key? }` */
  json: string;
  updated_ts: number;
}

export interface FederationDeviceTables {
  device_list_outbound: DeviceListOutboundTable;
  device_list_snapshots: DeviceListSnapshotsTable;
  remote_device_lists: RemoteDeviceListsTable;
}
