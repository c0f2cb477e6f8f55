/** Row types of the tables added by 0005-messaging (event_search is reached through raw SQL only). */
import type { Generated } from 'kysely';

export interface EventReportsTable {
  id: Generated<number>;
  /** 'event' | 'room' | 'user' */
  kind: string;
  room_id: string | null;
  event_id: string | null;
  target_user_id: string | null;
  reporter: string;
  reason: string | null;
  received_ts: number;
}

export interface MessagingTables {
  event_reports: EventReportsTable;
}
