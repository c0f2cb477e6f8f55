import type { Database, Tx } from '../db.js';

export interface ReceiptRow {
  streamId: number;
  roomId: string;
  receiptType: string;
  userId: string;
  /** '' for an unthreaded receipt. */
  threadId: string;
  eventId: string;
  eventStreamOrdering: number;
  data: Record<string, unknown>;
}

type Raw = {
  stream_id: number;
  room_id: string;
  receipt_type: string;
  user_id: string;
  thread_id: string;
  event_id: string;
  event_stream_ordering: number;
  data: string;
};

function fromRaw(r: Raw): ReceiptRow {
  return {
    streamId: Number(r.stream_id),
    roomId: r.room_id,
    receiptType: r.receipt_type,
    userId: r.user_id,
    threadId: r.thread_id,
    eventId: r.event_id,
    eventStreamOrdering: Number(r.event_stream_ordering),
    data: JSON.parse(r.data) as Record<string, unknown>,
  };
}

/** Read receipts (m.read, m.read.private), one row per room, type, user and thread. */
export class ReceiptStore {
  constructor(private readonly database: Database) {}

  /** Replaces the user's receipt of this type and thread; returns its stream position. */
  async put(tx: Tx, r: Omit<ReceiptRow, 'streamId'>): Promise<number> {
    await tx.db
      .deleteFrom('receipts')
      .where('room_id', '=', r.roomId)
      .where('receipt_type', '=', r.receiptType)
      .where('user_id', '=', r.userId)
      .where('thread_id', '=', r.threadId)
      .execute();
    const row = await tx.db
      .insertInto('receipts')
      .values({
        room_id: r.roomId,
        receipt_type: r.receiptType,
        user_id: r.userId,
        thread_id: r.threadId,
        event_id: r.eventId,
        event_stream_ordering: r.eventStreamOrdering,
        data: JSON.stringify(r.data),
      })
      .returning('stream_id')
      .executeTakeFirstOrThrow();
    return Number(row.stream_id);
  }

  /** Receipts updated in (from, to], in stream order. */
  async between(from: number, to: number, limit = 5000): Promise<ReceiptRow[]> {
    const rows = await this.database.db
      .selectFrom('receipts')
      .selectAll()
      .where('stream_id', '>', from)
      .where('stream_id', '<=', to)
      .orderBy('stream_id')
      .limit(limit)
      .execute();
    return rows.map(fromRaw);
  }

  /** Every current receipt in these rooms at or before stream position `to`. */
  async forRooms(roomIds: readonly string[], to: number): Promise<ReceiptRow[]> {
    const out: ReceiptRow[] = [];
    for (let i = 0; i < roomIds.length; i += 500) {
      const rows = await this.database.db
        .selectFrom('receipts')
        .selectAll()
        .where('room_id', 'in', roomIds.slice(i, i + 500))
        .where('stream_id', '<=', to)
        .orderBy('stream_id')
        .execute();
      out.push(...rows.map(fromRaw));
    }
    return out;
  }

  /** The user's m.read and m.read.private receipts in a room. */
  async readReceipts(userId: string, roomId: string): Promise<ReceiptRow[]> {
    const rows = await this.database.db
      .selectFrom('receipts')
      .selectAll()
      .where('user_id', '=', userId)
      .where('room_id', '=', roomId)
      .where('receipt_type', 'in', ['m.read', 'm.read.private'])
      .execute();
    return rows.map(fromRaw);
  }

  async maxPosition(): Promise<number> {
    const row = await this.database.db.selectFrom('receipts').select((eb) => eb.fn.max('stream_id').as('m')).executeTakeFirst();
    return Number(row?.m ?? 0);
  }
}
