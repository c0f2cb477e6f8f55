import type { Database, Tx } from '../db.js';

export interface OutboxRow {
  id: number;
  destination: string;
  eventId: string | null;
  edu: string | null;
}

export interface DestinationState {
  destination: string;
  failures: number;
  retryAt: number;
  lastSuccessTs: number | null;
}

/** Outgoing federation queues, retry state per destination, stream positions, remote invites. */
export class FederationQueueStore {
  constructor(private readonly database: Database) {}

  private get db() {
    return this.database.db;
  }

  async getPosition(name: string): Promise<number | undefined> {
    const row = await this.db.selectFrom('federation_positions').select('position').where('name', '=', name).executeTakeFirst();
    return row ? Number(row.position) : undefined;
  }

  async setPosition(tx: Tx, name: string, position: number): Promise<void> {
    await tx.db
      .insertInto('federation_positions')
      .values({ name, position })
      .onConflict((oc) => oc.column('name').doUpdateSet({ position }))
      .execute();
  }

  /** Timeline events after a stream position and at most `upTo`, in stream order. */
  async eventsAfter(
    position: number,
    upTo: number,
    limit: number,
  ): Promise<Array<{ streamOrdering: number; eventId: string; roomId: string; sender: string; type: string; stateKey: string | null }>> {
    const rows = await this.db
      .selectFrom('events')
      .select(['stream_ordering', 'event_id', 'room_id', 'sender', 'type', 'state_key'])
      .where('stream_ordering', '>', position)
      .where('stream_ordering', '<=', upTo)
      .where('outlier', '=', 0)
      .orderBy('stream_ordering')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ streamOrdering: Number(r.stream_ordering), eventId: r.event_id, roomId: r.room_id, sender: r.sender, type: r.type, stateKey: r.state_key }));
  }

  async enqueue(tx: Tx | undefined, rows: Array<{ destination: string; eventId?: string; edu?: string }>, now: number): Promise<void> {
    if (rows.length === 0) return;
    const q = tx ? tx.db : this.db;
    for (let i = 0; i < rows.length; i += 200) {
      await q
        .insertInto('federation_outbox')
        .values(rows.slice(i, i + 200).map((r) => ({ destination: r.destination, event_id: r.eventId ?? null, edu: r.edu ?? null, created_ts: now })))
        .execute();
    }
  }

  /** The oldest queued PDUs and EDUs of a destination (at most `pdus` / `edus` of each). */
  async peek(destination: string, pdus: number, edus: number): Promise<{ pdus: OutboxRow[]; edus: OutboxRow[] }> {
    const base = this.db.selectFrom('federation_outbox').select(['id', 'destination', 'event_id', 'edu']).where('destination', '=', destination);
    const [p, e] = await Promise.all([
      base.where('event_id', 'is not', null).orderBy('id').limit(pdus).execute(),
      base.where('edu', 'is not', null).orderBy('id').limit(edus).execute(),
    ]);
    const map = (r: (typeof p)[number]): OutboxRow => ({ id: Number(r.id), destination: r.destination, eventId: r.event_id, edu: r.edu });
    return { pdus: p.map(map), edus: e.map(map) };
  }

  async countQueued(destination: string): Promise<number> {
    const row = await this.db
      .selectFrom('federation_outbox')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('destination', '=', destination)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /** Drops the oldest PDUs of a destination beyond `keep` (catch-up then sends the extremities). */
  async trimPdus(destination: string, keep: number): Promise<number> {
    const rows = await this.db
      .selectFrom('federation_outbox')
      .select('id')
      .where('destination', '=', destination)
      .where('event_id', 'is not', null)
      .orderBy('id', 'desc')
      .offset(keep)
      .limit(1)
      .execute();
    if (rows.length === 0) return 0;
    const res = await this.db
      .deleteFrom('federation_outbox')
      .where('destination', '=', destination)
      .where('event_id', 'is not', null)
      .where('id', '<=', rows[0]!.id)
      .executeTakeFirst();
    return Number(res.numDeletedRows ?? 0);
  }

  async remove(ids: number[]): Promise<void> {
    for (let i = 0; i < ids.length; i += 500) {
      await this.db.deleteFrom('federation_outbox').where('id', 'in', ids.slice(i, i + 500)).execute();
    }
  }

  /** Rows in all queues. */
  async countAll(): Promise<number> {
    const row = await this.db.selectFrom('federation_outbox').select((eb) => eb.fn.countAll().as('n')).executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /** Destinations with a retry time set (back-off after failures). */
  async destinationsInBackoff(): Promise<Array<{ destination: string; retryAt: number }>> {
    const rows = await this.db.selectFrom('federation_destinations').select(['destination', 'retry_at']).where('retry_at', '>', 0).execute();
    return rows.map((r) => ({ destination: r.destination, retryAt: Number(r.retry_at) }));
  }

  async destinationsWithQueue(): Promise<string[]> {
    const rows = await this.db.selectFrom('federation_outbox').select('destination').distinct().execute();
    return rows.map((r) => r.destination);
  }

  async getDestination(destination: string): Promise<DestinationState | undefined> {
    const r = await this.db.selectFrom('federation_destinations').selectAll().where('destination', '=', destination).executeTakeFirst();
    return r && { destination: r.destination, failures: r.failures, retryAt: Number(r.retry_at), lastSuccessTs: r.last_success_ts === null ? null : Number(r.last_success_ts) };
  }

  async setDestination(s: DestinationState): Promise<void> {
    const values = { failures: s.failures, retry_at: s.retryAt, last_success_ts: s.lastSuccessTs };
    await this.db
      .insertInto('federation_destinations')
      .values({ destination: s.destination, ...values })
      .onConflict((oc) => oc.column('destination').doUpdateSet(values))
      .execute();
  }

  async saveInvite(roomId: string, userId: string, eventId: string, roomVersion: string, stripped: unknown[]): Promise<void> {
    const values = { event_id: eventId, room_version: roomVersion, stripped_state: JSON.stringify(stripped) };
    await this.db
      .insertInto('federation_invites')
      .values({ room_id: roomId, user_id: userId, ...values })
      .onConflict((oc) => oc.columns(['room_id', 'user_id']).doUpdateSet(values))
      .execute();
  }

  async getInvite(roomId: string, userId: string): Promise<{ eventId: string; roomVersion: string; stripped: unknown[] } | undefined> {
    const r = await this.db.selectFrom('federation_invites').selectAll().where('room_id', '=', roomId).where('user_id', '=', userId).executeTakeFirst();
    return r && { eventId: r.event_id, roomVersion: r.room_version, stripped: JSON.parse(r.stripped_state) as unknown[] };
  }
}
