import type { Generated } from 'kysely';

/** Row types of migration 0010-federation-queue (timestamps in ms). */
export interface FederationOutboxTable {
  id: Generated<number>;
  destination: string;
  /** A PDU to send (one of event_id / edu is set). */
  event_id: string | null;
  /** An EDU as JSON `{ edu_type, content }`. */
  edu: string | null;
  created_ts: number;
}

export interface FederationDestinationsTable {
  destination: string;
  failures: number;
  retry_at: number;
  last_success_ts: number | null;
}

export interface FederationPositionsTable {
  name: string;
  position: number;
}

export interface FederationInvitesTable {
  room_id: string;
  user_id: string;
  event_id: string;
  room_version: string;
  /** JSON array of stripped state events. */
  stripped_state: string;
}

export interface FederationQueueTables {
  federation_outbox: FederationOutboxTable;
  federation_destinations: FederationDestinationsTable;
  federation_positions: FederationPositionsTable;
  federation_invites: FederationInvitesTable;
}
