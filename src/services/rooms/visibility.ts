import { errors } from '../../errors.js';
import type { EventStore, StoredEvent } from '../../storage/stores/events.js';
import type { RelationStore } from '../../storage/stores/relations.js';
import { LruCache } from '../../util/lru.js';

/** Values of m.room.history_visibility; anything else counts as `shared`. */
export type HistoryVisibilityValue = 'world_readable' | 'shared' | 'invited' | 'joined';

function normalise(v: unknown): HistoryVisibilityValue {
  return v === 'world_readable' || v === 'invited' || v === 'joined' ? v : 'shared';
}

interface Change<T> {
  streamOrdering: number;
  value: T;
}

/** The value in force just before (`inclusive` false) or just after (true) stream position `p`. */
function valueAt<T>(changes: Change<T>[], p: number, inclusive: boolean, dflt: T): T {
  let v = dflt;
  for (const c of changes) {
    if (c.streamOrdering < p || (inclusive && c.streamOrdering === p)) v = c.value;
    else break;
  }
  return v;
}

/** The client-server "History visibility" rules for one user and one room. */
function allowed(hv: HistoryVisibilityValue, membership: string | undefined, joinsAfter: boolean): boolean {
  if (hv === 'world_readable') return true;
  if (membership === 'join') return true;
  if (hv === 'shared' && joinsAfter) return true;
  if (hv === 'invited' && membership === 'invite') return true;
  return false;
}

/**
 * Who may read which events of a room: the one place every reader (/messages, /context,
 * /event, relations, threads, search, timestamp lookup, /sync) asks. The state "at an event" is
 * the room's history in stream order (events here are ordered by the server's event stream).
 */
export class HistoryVisibility {
  /**
   * Rooms' history-visibility events and users' membership histories, each with the room's
   * history generation it was read at (`EventStore.historyGeneration`): used only while that
   * is unchanged, so every write to them makes the next read go to the database.
   */
  private readonly hvCache = new LruCache<string, { gen: number; rows: Array<{ streamOrdering: number; eventId: string }> }>(1000);
  private readonly membershipCache = new LruCache<string, { gen: number; rows: Array<{ streamOrdering: number; membership: string }> }>(10_000);

  constructor(
    private readonly events: EventStore,
    private readonly relations: RelationStore,
  ) {}

  private async visibilityHistory(roomId: string): Promise<Array<{ streamOrdering: number; eventId: string }>> {
    const gen = this.events.historyGeneration(roomId);
    const hit = this.hvCache.get(roomId);
    if (hit && hit.gen === gen) return hit.rows;
    const rows = await this.relations.visibilityHistory(roomId);
    this.hvCache.set(roomId, { gen, rows });
    return rows;
  }

  private async membershipHistory(roomId: string, userId: string): Promise<Array<{ streamOrdering: number; membership: string }>> {
    const gen = this.events.historyGeneration(roomId);
    const key = `${roomId}\u0000${userId}`;
    const hit = this.membershipCache.get(key);
    if (hit && hit.gen === gen) return hit.rows;
    const rows = await this.relations.membershipHistory(roomId, userId);
    this.membershipCache.set(key, { gen, rows });
    return rows;
  }

  /** The current history visibility of a room. */
  async current(roomId: string): Promise<HistoryVisibilityValue> {
    const ev = await this.events.getCurrentStateEvent(roomId, 'm.room.history_visibility', '');
    return normalise(ev && !ev.redactedBy ? ev.event.content['history_visibility'] : undefined);
  }

  /**
   * The highest stream position the user may read in the room: everything while joined (or
   * invited to an `invited` room, or anyone for a `world_readable` one); up to the moment of
   * leaving for a user who left or was banned. M_FORBIDDEN otherwise.
   */
  async readableUpTo(userId: string, roomId: string): Promise<number> {
    if (!(await this.events.getRoom(roomId))) throw errors.forbidden(`You are not in room ${roomId}`);
    const current = await this.events.getCurrentStateEvent(roomId, 'm.room.member', userId);
    const membership = current?.event.content['membership'];
    if (membership === 'join') return Number.MAX_SAFE_INTEGER;
    const hv = await this.current(roomId);
    if (hv === 'world_readable') return Number.MAX_SAFE_INTEGER;
    if (membership === 'invite' && hv === 'invited') return Number.MAX_SAFE_INTEGER;
    if ((membership === 'leave' || membership === 'ban') && current) {
      const history = await this.membershipHistory(roomId, userId);
      if (history.some((h) => h.membership === 'join' && h.streamOrdering < current.streamOrdering)) return current.streamOrdering;
    }
    throw errors.forbidden(`You are not in room ${roomId}`);
  }

  /** Whether the user may read the room at all (see readableUpTo). */
  async canRead(userId: string, roomId: string): Promise<boolean> {
    try {
      await this.readableUpTo(userId, roomId);
      return true;
    } catch {
      return false;
    }
  }

  /** The events of `stored` (all of one room, or of several) that the user may see, in the given order. */
  async filter(userId: string, stored: StoredEvent[]): Promise<StoredEvent[]> {
    if (!stored.length) return stored;
    const byRoom = new Map<string, StoredEvent[]>();
    for (const s of stored) {
      const list = byRoom.get(s.roomId) ?? [];
      list.push(s);
      byRoom.set(s.roomId, list);
    }
    const visible = new Set<StoredEvent>();
    for (const [roomId, list] of byRoom) {
      for (const s of await this.filterRoom(userId, roomId, list)) visible.add(s);
    }
    return stored.filter((s) => visible.has(s));
  }

  private async filterRoom(userId: string, roomId: string, stored: StoredEvent[]): Promise<StoredEvent[]> {
    const hvEvents = await this.visibilityHistory(roomId);
    const hvStored = await this.events.getEvents(hvEvents.map((h) => h.eventId));
    const hv: Change<HistoryVisibilityValue>[] = hvEvents.map((h) => {
      const s = hvStored.get(h.eventId);
      return { streamOrdering: h.streamOrdering, value: normalise(s && !s.redactedBy ? s.event.content['history_visibility'] : undefined) };
    });
    const memberships: Change<string | undefined>[] = (await this.membershipHistory(roomId, userId)).map((m) => ({
      streamOrdering: m.streamOrdering,
      value: m.membership,
    }));
    const joins = memberships.filter((m) => m.value === 'join').map((m) => m.streamOrdering);
    const lastJoin = joins.length ? Math.max(...joins) : -1;
    return stored.filter((s) => {
      // Events backfilled into a gap of the timeline count as just before the event they precede.
      const p = s.timelineAnchor !== undefined ? s.timelineAnchor - 0.5 : s.streamOrdering;
      const hvBefore = valueAt(hv, p, false, 'shared' as HistoryVisibilityValue);
      const memBefore = valueAt(memberships, p, false, undefined);
      const joinsAfter = lastJoin > p;
      if (allowed(hvBefore, memBefore, joinsAfter)) return true;
      const ev = s.event;
      // A history visibility change is visible if the value before or after it allows it.
      if (ev.type === 'm.room.history_visibility' && ev.state_key === '') {
        return allowed(valueAt(hv, p, true, 'shared' as HistoryVisibilityValue), memBefore, joinsAfter);
      }
      // The user's own membership events: membership before or after.
      if (ev.type === 'm.room.member' && ev.state_key === userId) {
        return allowed(hvBefore, valueAt(memberships, p, true, undefined), joinsAfter);
      }
      return false;
    });
  }
}
