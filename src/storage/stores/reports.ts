import type { Database } from '../db.js';

export interface ContentReport {
  kind: 'event' | 'room' | 'user';
  roomId?: string;
  eventId?: string;
  targetUserId?: string;
  reporter: string;
  reason?: string;
}

/** Reports of events, rooms and users, kept for the server's administrators. */
export class ReportStore {
  constructor(private readonly database: Database) {}

  async add(r: ContentReport, now = Date.now()): Promise<number> {
    const row = await this.database.db
      .insertInto('event_reports')
      .values({
        kind: r.kind,
        room_id: r.roomId ?? null,
        event_id: r.eventId ?? null,
        target_user_id: r.targetUserId ?? null,
        reporter: r.reporter,
        reason: r.reason ?? null,
        received_ts: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return Number(row.id);
  }

  async list(limit = 100): Promise<Array<ContentReport & { id: number; receivedTs: number }>> {
    const rows = await this.database.db.selectFrom('event_reports').selectAll().orderBy('id', 'desc').limit(limit).execute();
    return rows.map((r) => ({
      id: Number(r.id),
      kind: r.kind as ContentReport['kind'],
      roomId: r.room_id ?? undefined,
      eventId: r.event_id ?? undefined,
      targetUserId: r.target_user_id ?? undefined,
      reporter: r.reporter,
      reason: r.reason ?? undefined,
      receivedTs: Number(r.received_ts),
    }));
  }
}
