/**
 * Table types for Kysely. Each migration that adds a table adds its row type here.
 * Column types are those both dialects agree on: integers as number, text as string.
 */
import type { Generated } from 'kysely';
import type { AccountTables } from './schema-accounts.js';
import type { ReceiptPushTables } from './schema-receipts-push.js';
import type { MessagingTables } from './schema-messaging.js';
import type { AppserviceTables } from './schema-appservice.js';
import type { FederationTables } from './schema-federation.js';
import type { E2eeTables } from './schema-e2ee.js';
import type { MediaTables } from './schema-media.js';
import type { FederationQueueTables } from './schema-federation-queue.js';
import type { FederationDeviceTables } from './schema-federation-devices.js';
import type { OpenIdTables } from './schema-openid.js';

export interface ServerMetaTable {
  key: string;
  value: string;
}

export interface RoomsTable {
  room_id: string;
  room_version: string;
  creator: string;
  is_public: number;
  created_ts: number;
}

export interface EventsTable {
  stream_ordering: Generated<number>;
  event_id: string;
  room_id: string;
  type: string;
  state_key: string | null;
  sender: string;
  origin_server_ts: number;
  depth: number;
  /** The PDU as JSON (federation form). */
  json: string;
  outlier: number;
  rejected: string | null;
  prev_state_event_id: string | null;
  redacted_by: string | null;
  /** For m.room.redaction: the event it redacts. */
  redacts: string | null;
  txn_id: string | null;
  txn_device_id: string | null;
  relates_to: string | null;
  rel_type: string | null;
  received_ts: number;
  /** Events backfilled into a gap of the timeline: the stream position they are placed before. */
  timeline_anchor: Generated<number | null>;
}

/** A prev event (`event_id`) of a timeline event (`child_event_id`) missing from the timeline. */
export interface BackwardExtremitiesTable {
  room_id: string;
  event_id: string;
  child_event_id: string;
}

export interface EventEdgesTable {
  event_id: string;
  prev_event_id: string;
}

export interface EventTxnsTable {
  user_id: string;
  device_id: string;
  txn_id: string;
  event_id: string;
  created_ts: number;
}

export interface StateGroupsTable {
  id: Generated<number>;
  room_id: string;
  prev_group: number | null;
  delta_depth: number;
}

export interface StateGroupEntriesTable {
  state_group: number;
  type: string;
  state_key: string;
  event_id: string;
}

export interface EventStateTable {
  event_id: string;
  state_group: number;
}

export interface CurrentStateTable {
  room_id: string;
  type: string;
  state_key: string;
  event_id: string;
  membership: string | null;
}

export interface ForwardExtremitiesTable {
  room_id: string;
  event_id: string;
}

export interface RoomMembershipsTable {
  event_id: string;
  room_id: string;
  user_id: string;
  sender: string;
  membership: string;
  stream_ordering: number;
  forgotten: number;
}

export interface RoomAliasesTable {
  alias: string;
  room_id: string;
  creator: string;
  created_ts: number;
}

export interface Tables extends AccountTables, ReceiptPushTables, MessagingTables, E2eeTables, FederationTables, AppserviceTables, FederationQueueTables, MediaTables, FederationDeviceTables, OpenIdTables {
  server_meta: ServerMetaTable;
  rooms: RoomsTable;
  events: EventsTable;
  event_edges: EventEdgesTable;
  event_txns: EventTxnsTable;
  state_groups: StateGroupsTable;
  state_group_entries: StateGroupEntriesTable;
  event_state: EventStateTable;
  current_state: CurrentStateTable;
  forward_extremities: ForwardExtremitiesTable;
  backward_extremities: BackwardExtremitiesTable;
  room_memberships: RoomMembershipsTable;
  room_aliases: RoomAliasesTable;
}
