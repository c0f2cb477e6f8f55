import type { EventStore } from '../../storage/stores/events.js';
import type { Notifier } from '../../streams/notifier.js';

/** The longest a typing notification lasts, whatever the client asks. */
export const MAX_TYPING_TIMEOUT_MS = 120_000;

interface Typist {
  expires: number;
  timer: NodeJS.Timeout;
}

/**
 * Typing notifications, held in memory only. Every change gets a position in the `typing`
 * stream; positions start from the clock at start-up so that tokens handed out before a
 * restart stay behind the positions handed out after it.
 */
export class TypingService {
  private readonly rooms = new Map<string, Map<string, Typist>>();
  /** Room → position of its last change. */
  private readonly changed = new Map<string, number>();
  private pos: number;

  constructor(
    private readonly events: EventStore,
    private readonly notifier: Notifier,
    private readonly now: () => number = Date.now,
  ) {
    this.pos = now();
  }

  position(): number {
    return this.pos;
  }

  /** Starts (with a timeout) or stops the user's typing notification in the room. */
  async setTyping(roomId: string, userId: string, typing: boolean, timeoutMs = 30_000): Promise<void> {
    let room = this.rooms.get(roomId);
    const current = room?.get(userId);
    if (current) clearTimeout(current.timer);
    if (typing) {
      const ms = Math.max(0, Math.min(MAX_TYPING_TIMEOUT_MS, timeoutMs));
      if (!room) this.rooms.set(roomId, (room = new Map()));
      const timer = setTimeout(() => void this.expire(roomId, userId), ms);
      timer.unref();
      room.set(userId, { expires: this.now() + ms, timer });
      // A renewal of an ongoing notification changes nothing clients can see.
      if (current) return;
    } else {
      if (!current) return;
      room!.delete(userId);
      if (room!.size === 0) this.rooms.delete(roomId);
    }
    await this.announce(roomId);
  }

  private async expire(roomId: string, userId: string): Promise<void> {
    const room = this.rooms.get(roomId);
    if (!room?.has(userId)) return;
    room.delete(userId);
    if (room.size === 0) this.rooms.delete(roomId);
    await this.announce(roomId).catch(() => {});
  }

  private async announce(roomId: string): Promise<void> {
    const position = ++this.pos;
    this.changed.set(roomId, position);
    const members = await this.events.members(roomId, ['join']);
    this.notifier.publish({ stream: 'typing', position, roomId }, members);
  }

  /** Users typing in the room now. */
  typing(roomId: string): string[] {
    return [...(this.rooms.get(roomId)?.keys() ?? [])].sort();
  }

  /** Whether the room's typing list changed in (since, to]. */
  changedBetween(roomId: string, since: number, to: number): boolean {
    const p = this.changed.get(roomId);
    return p !== undefined && p > since && p <= to;
  }

  /** Stops every timer (shutdown). */
  close(): void {
    for (const room of this.rooms.values()) for (const t of room.values()) clearTimeout(t.timer);
    this.rooms.clear();
  }
}
