import type { Generated } from 'kysely';

/** Row types of migration 0004-receipts-push. */
export interface ReceiptsTable {
  stream_id: Generated<number>;
  room_id: string;
  receipt_type: string;
  user_id: string;
  /** '' for an unthreaded receipt, else `main` or a thread root's event ID. */
  thread_id: string;
  event_id: string;
  event_stream_ordering: number;
  /** JSON object: `{ ts, thread_id? }` as clients see it. */
  data: string;
}

export interface EventPushActionsTable {
  user_id: string;
  event_id: string;
  room_id: string;
  stream_ordering: number;
  /** `main` or the thread root's event ID. */
  thread_id: string;
  notif: number;
  highlight: number;
  /** 1: the user's own event (a read mark, never counted). */
  own: Generated<number>;
  /** JSON array of push actions. */
  actions: string;
  ts: number;
}

export interface PushActionsProgressTable {
  name: string;
  position: number;
}

export interface PushersTable {
  id: Generated<number>;
  user_id: string;
  device_id: string | null;
  app_id: string;
  pushkey: string;
  kind: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag: string | null;
  lang: string;
  /** JSON object. */
  data: string;
  created_ts: number;
  /** Migration 0012: the last notification position handled for this pusher. */
  push_position: Generated<number>;
  /** Migration 0012: when delivery of the next notification first failed (null: not failing). */
  failing_since: number | null;
}

export interface ReceiptPushTables {
  receipts: ReceiptsTable;
  event_push_actions: EventPushActionsTable;
  push_actions_progress: PushActionsProgressTable;
  pushers: PushersTable;
}
