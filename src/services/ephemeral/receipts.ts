import { errors } from '../../errors.js';
import { isValidEventId } from '../../protocol/identifiers.js';
import type { Database } from '../../storage/db.js';
import type { EventStore } from '../../storage/stores/events.js';
import type { ReceiptRow, ReceiptStore } from '../../storage/stores/receipts.js';
import type { Notifier } from '../../streams/notifier.js';
import { threadOf } from '../push/threads.js';

export const RECEIPT_TYPES = ['m.read', 'm.read.private'] as const;
export type ReceiptType = (typeof RECEIPT_TYPES)[number];

/** Read receipts: storing them, announcing them, and the m.receipt events sync shows. */
export class ReceiptService {
  constructor(
    private readonly database: Database,
    readonly store: ReceiptStore,
    private readonly events: EventStore,
    private readonly notifier: Notifier,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Sets the user's receipt of this type (and thread) to an event of the room. `threadId`
   * must be `main` or a thread root's event ID, and must be the thread the event is in.
   */
  async setReceipt(userId: string, roomId: string, type: ReceiptType, eventId: string, threadId?: string): Promise<void> {
    if (threadId !== undefined && threadId !== 'main' && !isValidEventId(threadId)) {
      throw errors.invalidParam('thread_id must be "main" or the event ID of a thread root');
    }
    const stored = await this.events.getEvent(eventId);
    if (!stored || stored.roomId !== roomId || stored.outlier) throw errors.notFound(`Unknown event ${eventId} in ${roomId}`);
    if (threadId !== undefined) {
      const thread = await threadOf(this.events, stored.event);
      // A thread's root belongs to the main timeline, but receipts on it may name its own thread.
      const ok = thread === threadId || (threadId === eventId && thread === 'main');
      if (!ok) throw errors.invalidParam(`${eventId} is not in thread ${threadId}`);
    }
    const data: Record<string, unknown> = { ts: this.now() };
    if (threadId !== undefined) data['thread_id'] = threadId;
    const wake = type === 'm.read' ? await this.events.members(roomId, ['join']) : [];
    await this.database.transaction(async (tx) => {
      const position = await this.store.put(tx, {
        roomId,
        receiptType: type,
        userId,
        threadId: threadId ?? '',
        eventId,
        eventStreamOrdering: stored.streamOrdering,
        data,
      });
      tx.onCommit(() => this.notifier.publish({ stream: 'receipts', position, roomId, userId }, [userId, ...wake]));
    });
  }

  position(): Promise<number> {
    return this.store.maxPosition();
  }
}

/**
 * Groups receipts into one m.receipt content per room: `{ eventId: { type: { userId: data } } }`.
 * Private receipts are kept only for `viewer`.
 */
export function receiptEvents(rows: readonly ReceiptRow[], viewer: string): Map<string, Record<string, Record<string, Record<string, unknown>>>> {
  const byRoom = new Map<string, Record<string, Record<string, Record<string, unknown>>>>();
  for (const r of rows) {
    if (r.receiptType === 'm.read.private' && r.userId !== viewer) continue;
    let content = byRoom.get(r.roomId);
    if (!content) byRoom.set(r.roomId, (content = {}));
    const byType = (content[r.eventId] ??= {});
    const byUser = (byType[r.receiptType] ??= {}) as Record<string, unknown>;
    byUser[r.userId] = r.data;
  }
  return byRoom;
}
