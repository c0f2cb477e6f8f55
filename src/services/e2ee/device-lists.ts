import type { Logger } from 'pino';
import type { Database } from '../../storage/db.js';
import type { E2eeStore } from '../../storage/stores/e2ee.js';
import type { EventStore } from '../../storage/stores/events.js';
import type { Notifier } from '../../streams/notifier.js';
import { KeyedMutex } from '../../util/mutex.js';
import { streamMoved, type SyncExtension, type SyncWindow } from '../sync/sync-service.js';
import type { StreamPositions } from '../sync/token.js';

/**
 * The device_lists stream: every change of a user's devices or keys gets a position, and
 * /sync and /keys/changes tell each user which of the users they share a room with changed
 * (and which they no longer share any room with).
 */
export class DeviceListService {
  /** Changes are written one at a time so positions become visible in order (no gaps later filled). */
  private readonly mutex = new KeyedMutex();

  constructor(
    private readonly database: Database,
    private readonly store: E2eeStore,
    private readonly events: EventStore,
    private readonly notifier: Notifier,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records that these users' devices or keys changed, and wakes everyone who shares a room with them. */
  async markChanged(userIds: Iterable<string>): Promise<void> {
    for (const userId of new Set(userIds)) {
      const position = await this.mutex.run('device_lists', () => this.database.transaction((tx) => this.store.insertDeviceListChange(tx, userId, this.now())));
      // Announced as soon as it commits (sync follows stream positions from the notifier); the
      // users sharing a room are woken once known.
      this.notifier.publish({ stream: 'device_lists', position, userId }, [userId]);
      try {
        const wake = await this.usersSharingRoomsWith(userId);
        wake.delete(userId);
        this.notifier.wake(wake);
      } catch (err) {
        this.log.warn({ err, userId }, 'could not notify a device-list change');
      }
    }
  }

  currentPosition(): Promise<number> {
    return this.store.maxDeviceListPosition();
  }

  async usersSharingRoomsWith(userId: string): Promise<Set<string>> {
    const out = new Set<string>();
    for (const { roomId } of await this.events.roomsForUser(userId, ['join'])) {
      for (const m of await this.events.members(roomId, ['join'])) out.add(m);
    }
    return out;
  }

  /**
   * Users whose device lists `userId` should refetch between two positions (`changed`), and
   * users they no longer share any room with (`left`): key changes of users sharing a room,
   * members who joined one of the user's rooms, everyone in a room the user joined, and
   * `left` for members of rooms the user or they left when no shared room remains.
   */
  async changesBetween(
    userId: string,
    from: StreamPositions,
    to: StreamPositions,
    parts: { keys: boolean; members: boolean } = { keys: true, members: true },
  ): Promise<{ changed: string[]; left: string[] }> {
    const myRooms = new Set((await this.events.roomsForUser(userId, ['join'])).map((r) => r.roomId));
    const sharedCache = new Map<string, boolean>();
    const shares = async (other: string): Promise<boolean> => {
      let v = sharedCache.get(other);
      if (v === undefined) {
        v = (await this.events.roomsForUser(other, ['join'])).some((r) => myRooms.has(r.roomId));
        sharedCache.set(other, v);
      }
      return v;
    };
    const changed = new Set<string>();
    const leftCandidates = new Set<string>();

    if (parts.keys) {
      for (const u of await this.store.usersWithDeviceChanges(from.device_lists, to.device_lists)) {
        if (u === userId || (await shares(u))) changed.add(u);
      }
    }

    if (parts.members && to.events > from.events) {
      for (const ev of await this.store.membershipEventsInRooms([...myRooms], from.events, to.events)) {
        if (ev.userId === userId) continue;
        if (ev.membership === 'join') {
          const before = await this.events.membershipAt(ev.roomId, ev.userId, from.events);
          if (before?.membership !== 'join') changed.add(ev.userId);
        } else if (ev.membership === 'leave' || ev.membership === 'ban') {
          leftCandidates.add(ev.userId);
        }
      }
      for (const c of await this.events.membershipChanges(userId, from.events, to.events)) {
        if (c.membership === 'join' && myRooms.has(c.roomId)) {
          const before = await this.events.membershipAt(c.roomId, userId, from.events);
          if (before?.membership === 'join') continue;
          for (const m of await this.events.members(c.roomId, ['join'])) if (m !== userId) changed.add(m);
        } else if ((c.membership === 'leave' || c.membership === 'ban') && !myRooms.has(c.roomId)) {
          for (const m of await this.events.members(c.roomId, ['join'])) if (m !== userId) leftCandidates.add(m);
        }
      }
    }

    const left: string[] = [];
    for (const u of leftCandidates) {
      if (await shares(u)) continue;
      left.push(u);
      changed.delete(u);
    }
    return { changed: [...changed].sort(), left: left.sort() };
  }

  /** The /sync extension: device_lists on incremental syncs. */
  syncExtension(extra: (w: SyncWindow) => Promise<void>): SyncExtension {
    return {
      stream: 'device_lists',
      currentPosition: () => this.currentPosition(),
      collect: async (w) => {
        await extra(w);
        if (!w.since) return false;
        // Key changes need the device_lists stream to have moved; membership-based changes need
        // a membership event in one of the user's rooms or of the user.
        const since = w.since;
        const keysMoved = streamMoved(w, 'device_lists');
        const membersMoved =
          w.since.events < w.to.events && (w.membershipChanged || w.joinedRoomIds.some((r) => w.activity.roomMemberships.last(r) > since.events));
        if (!keysMoved && !membersMoved) return false;
        const { changed, left } = await this.changesBetween(w.req.userId, w.since, w.to, { keys: keysMoved, members: membersMoved });
        w.response.device_lists = { changed, left };
        return changed.length > 0 || left.length > 0;
      },
    };
  }
}
