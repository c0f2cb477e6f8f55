import type { SlidingSyncStore } from '../../storage/stores/sliding-sync.js';
import type { Notifier } from '../../streams/notifier.js';
import { LruCache } from '../../util/lru.js';

/** Event types that move a room up the list ("proper" activity, as the proposal names them). */
export const BUMP_TYPES = ['m.room.create', 'm.room.message', 'm.room.encrypted', 'm.sticker', 'm.call.invite', 'm.poll.start', 'm.beacon_info'] as const;
const BUMP = new Set<string>(BUMP_TYPES);

/**
 * Each room's bump stamp: the stream position of its last event of a bump type. Read once
 * from the database per room, then followed from the notifier.
 */
export class BumpStamps {
  private readonly cache = new LruCache<string, number | null>(50_000);

  constructor(
    private readonly store: SlidingSyncStore,
    notifier: Notifier,
  ) {
    notifier.on('change', (c) => {
      if (c.stream === 'events' && BUMP.has(c.type)) this.cache.set(c.roomId, c.position);
    });
  }

  async get(roomId: string): Promise<number | undefined> {
    const hit = this.cache.get(roomId);
    if (hit !== undefined) return hit ?? undefined;
    const found = (await this.store.lastEventOfTypes(roomId, BUMP_TYPES, Number.MAX_SAFE_INTEGER)) ?? null;
    // An event announced while the query ran is newer than its answer.
    const now = this.cache.get(roomId);
    const value = now !== undefined && now !== null && (found === null || now > found) ? now : found;
    this.cache.set(roomId, value);
    return value ?? undefined;
  }
}
