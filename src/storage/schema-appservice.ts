/** Row types of migration 0009-appservice. */
export interface AppserviceStateTable {
  appservice_id: string;
  stream_position: number;
  last_txn_id: number;
}

export interface AppserviceTxnsTable {
  appservice_id: string;
  txn_id: number;
  /** JSON array of event IDs, in stream order. */
  event_ids: string;
  /** JSON array of ephemeral events. */
  ephemeral: string;
  /** JSON array of to-device messages. */
  to_device: string;
  created_ts: number;
}

export interface AppserviceRoomNetworksTable {
  appservice_id: string;
  network_id: string;
  room_id: string;
}

export interface AppserviceTables {
  appservice_state: AppserviceStateTable;
  appservice_txns: AppserviceTxnsTable;
  appservice_room_networks: AppserviceRoomNetworksTable;
}
