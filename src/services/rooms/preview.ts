import type { JsonObject } from '../../protocol/json.js';
import { type EventStore, type StoredEvent, type TimelineKey } from '../../storage/stores/events.js';
import type { Notifier, WaitSignal } from '../../streams/notifier.js';
import type { UserDataService } from '../accounts/user-data.js';
import type { HistoryVisibility } from './visibility.js';

/** Memberships the initialSync answer names (`knock` is not among them). */
const REPORTED_MEMBERSHIPS = new Set(['invite', 'join', 'leave', 'ban']);
/** Timeline events read per page (at least) while looking for the latest ones the user may see. */
const PAGE = 50;
/**
 * Pages read at most for one snapshot: in a room whose history the user may mostly not see,
 * the answer stops there and `start` lets the client page on with /messages.
 */
const MAX_PAGES = 20;
/** New events returned by one /events answer at most; the client asks again from its `end`. */
const EVENTS_PAGE = 100;
const PRESENCE_BATCH = 500;
/** Below every stream position (history fetched with /backfill has negative positions). */
const BOTTOM: TimelineKey = { major: Number.MIN_SAFE_INTEGER, minor: 0 };

export interface RoomSnapshot {
  membership?: string;
  /** The latest events the user may see, oldest first. */
  chunk: StoredEvent[];
  /** Upper end (key) of a backwards read for the events before `chunk`. */
  before: TimelineKey;
  /** The stream position `chunk` ends at. */
  end: number;
  state: StoredEvent[];
  visibility: 'public' | 'private';
  accountData: Array<{ type: string; content: JsonObject }>;
  presence: Array<{ type: 'm.presence'; sender: string; content: JsonObject }>;
}

export interface PreviewDeps {
  events: EventStore;
  /**
   * The end of the event stream as announced to readers: events past it may be committed but
   * not yet on disk, and are not shown (as /sync does not show them).
   */
  eventsPosition(): Promise<number>;
  visibility: HistoryVisibility;
  notifier: Notifier;
  userData: UserDataService;
}

/**
 * Room previews ("peeking", client-server "Room Previews"): a snapshot of a room a user is in,
 * was in (up to their leaving) or may read because it is `world_readable`, and the stream of
 * its new events. What the user may see is decided by HistoryVisibility alone.
 */
export class RoomPreview {
  constructor(private readonly deps: PreviewDeps) {}

  /**
   * The room's state and latest `limit` events as the user may see them: the current ones, or,
   * for a user who left a room they may no longer read, those at their leaving. M_FORBIDDEN
   * when the user may not read the room (unknown rooms included).
   */
  async snapshot(userId: string, roomId: string, limit: number): Promise<RoomSnapshot> {
    const { events, visibility } = this.deps;
    const upTo = await visibility.readableUpTo(userId, roomId);
    const own = await events.getCurrentStateEvent(roomId, 'm.room.member', userId);
    const membership = own?.event.content['membership'];
    const end = Math.min(upTo, await this.deps.eventsPosition());
    const { chunk, before } = await this.latest(userId, roomId, end, limit);
    // Readable only up to the point of leaving: the state then.
    const stateIds = upTo !== Number.MAX_SAFE_INTEGER && own ? await events.getStateIdsAfter(own.event.event_id) : undefined;
    const state = [...(await events.getEvents((stateIds ?? (await events.getCurrentStateIds(roomId))).values())).values()];
    const room = await events.getRoom(roomId);
    return {
      ...(typeof membership === 'string' && REPORTED_MEMBERSHIPS.has(membership) ? { membership } : {}),
      chunk,
      before,
      end,
      state,
      visibility: room?.isPublic ? 'public' : 'private',
      accountData: (await this.deps.userData.store.roomAccountData(userId, roomId)) as RoomSnapshot['accountData'],
      // Presence of the members, for those who see the room as it is now.
      presence: stateIds ? [] : await this.presenceOf(state),
    };
  }

  /** The latest `limit` events at or before stream position `end` the user may see, oldest first. */
  private async latest(userId: string, roomId: string, end: number, limit: number): Promise<{ chunk: StoredEvent[]; before: TimelineKey }> {
    const { events, visibility } = this.deps;
    const picked: StoredEvent[] = [];
    // Events with lower < key <= cursor are read next (see EventStore.roomTimeline).
    let cursor: TimelineKey = { major: end, minor: 0 };
    for (let pages = 0; picked.length < limit && pages < MAX_PAGES; pages++) {
      const want = Math.max(limit - picked.length, PAGE);
      const page = await events.roomTimeline(roomId, BOTTOM, cursor, want, 'backwards');
      const visible = new Set(await visibility.filter(userId, page.map((p) => p.stored)));
      for (const { stored, key } of page) {
        cursor = { major: key.major, minor: key.minor - 1 };
        if (visible.has(stored)) picked.push(stored);
        if (picked.length >= limit) break;
      }
      if (page.length < want) break;
    }
    return { chunk: picked.reverse(), before: cursor };
  }

  /** `m.presence` events of the joined members in `state` whose presence is known. */
  private async presenceOf(state: StoredEvent[]): Promise<RoomSnapshot['presence']> {
    const { userData } = this.deps;
    const members = state
      .filter((s) => s.event.type === 'm.room.member' && s.event.content['membership'] === 'join' && typeof s.event.state_key === 'string')
      .map((s) => s.event.state_key!);
    const out: RoomSnapshot['presence'] = [];
    for (let i = 0; i < members.length; i += PRESENCE_BATCH) {
      for (const row of await userData.store.presenceSince(members.slice(i, i + PRESENCE_BATCH), 0)) {
        const status = await userData.getPresence(row.user_id);
        out.push({ type: 'm.presence', sender: row.user_id, content: { ...status, user_id: row.user_id } as unknown as JsonObject });
      }
    }
    return out;
  }

  /**
   * The room's events after stream position `from` that the user may see, waiting up to
   * `timeoutMs` for one to be committed (woken by the room's own events, so readers who are
   * not members are woken too). Returns the position read up to: `from` when nothing came.
   * M_FORBIDDEN once the user may no longer read the room.
   */
  async eventsAfter(userId: string, roomId: string, from: number, timeoutMs: number, signal?: WaitSignal): Promise<{ chunk: StoredEvent[]; end: number }> {
    const { events, visibility, notifier } = this.deps;
    const deadline = Date.now() + Math.max(0, timeoutMs);
    let cursor = from;
    for (;;) {
      // Listen before reading, so an event committed in between still wakes us.
      const remaining = deadline - Date.now();
      const wait = remaining > 0 ? notifier.waitForRoom(roomId, remaining, signal) : undefined;
      try {
        const upTo = await visibility.readableUpTo(userId, roomId);
        const max = Math.min(upTo, await this.deps.eventsPosition());
        let more = false;
        if (max > cursor) {
          const page = await events.roomEventsBetween(roomId, cursor, max, EVENTS_PAGE, 'forwards');
          more = page.length === EVENTS_PAGE;
          cursor = more ? page[page.length - 1]!.streamOrdering : max;
          const visible = await visibility.filter(userId, page);
          if (visible.length) return { chunk: visible, end: cursor };
        }
        // Only events the user may not see: read on from there.
        if (more) continue;
        if (!wait) return { chunk: [], end: cursor };
        const woken = await wait.woken;
        if (!woken || Date.now() >= deadline || signal?.aborted) return { chunk: [], end: cursor };
      } finally {
        wait?.cancel();
      }
    }
  }
}
