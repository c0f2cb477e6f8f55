import type { StreamChange } from '../../streams/notifier.js';

/**
 * The last stream position at which something happened to a key (a room, a user), for the
 * keys seen since start-up. Bounded: a key that is dropped, and every key never seen, answer
 * with a floor (the highest position they could have had), so the answer is never lower than
 * the truth — a reader that asks "anything after P?" may be told "maybe" but never a wrong "no".
 */
export class LastPositions<K> {
  private readonly map = new Map<K, number>();
  private floor: number;

  constructor(
    private readonly capacity: number,
    /** The stream's position when tracking started: nothing unseen is later than it. */
    start: number,
  ) {
    this.floor = start;
  }

  /** Records that `key` changed at `position`. */
  note(key: K, position: number): void {
    const prev = this.map.get(key);
    if (prev !== undefined) {
      this.map.delete(key);
      if (prev > position) position = prev;
    } else if (position < this.floor) {
      // Positions are announced in commit order, so this is rare; the key may have been dropped
      // with a higher one.
      position = this.floor;
    }
    this.map.set(key, position);
    if (this.map.size > this.capacity) {
      const [oldKey, oldPos] = this.map.entries().next().value as [K, number];
      this.map.delete(oldKey);
      if (oldPos > this.floor) this.floor = oldPos;
    }
  }

  /** An upper bound of the last position at which `key` changed. */
  last(key: K): number {
    return this.map.get(key) ?? this.floor;
  }

  /**
   * Whether `key` changed since start-up and is still held. Its answer is then exact when
   * positions were noted in increasing order (as the notifier announces them).
   */
  known(key: K): boolean {
    return this.map.has(key);
  }
}

/** The streams whose announcements name every user whose /sync they may change (see Notifier.publish). */
export const WOKEN_STREAMS = ['events', 'account_data', 'to_device', 'receipts', 'typing'] as const;
export type WokenStream = (typeof WOKEN_STREAMS)[number];

/** How many rooms and users each activity table remembers precisely. */
const ACTIVITY_CAPACITY = 20_000;

/**
 * What moved on the streams since start-up, from the notifier: the last event of each room, the
 * last membership event of each room and of each user (as the member), and per-user positions
 * of to-device messages and account data. Sync asks it whether a window can have anything for
 * a user before running any query.
 */
export class StreamActivity {
  readonly roomEvents: LastPositions<string>;
  readonly roomMemberships: LastPositions<string>;
  readonly userMemberships: LastPositions<string>;
  readonly toDevice: LastPositions<string>;
  readonly accountData: LastPositions<string>;
  /**
   * Per stream (of WOKEN_STREAMS), the last position at which each user was woken: a user's
   * /sync can have nothing new on such a stream after a position later than this.
   */
  readonly woken: Record<WokenStream, LastPositions<string>>;

  /** `start`: the positions when tracking starts (a stream left out is never known quiet). */
  constructor(start: { events: number; to_device: number; account_data: number; receipts?: number; typing?: number }) {
    this.roomEvents = new LastPositions(ACTIVITY_CAPACITY, start.events);
    this.roomMemberships = new LastPositions(ACTIVITY_CAPACITY, start.events);
    this.userMemberships = new LastPositions(ACTIVITY_CAPACITY, start.events);
    this.toDevice = new LastPositions(ACTIVITY_CAPACITY, start.to_device);
    this.accountData = new LastPositions(ACTIVITY_CAPACITY, start.account_data);
    this.woken = {
      events: new LastPositions(ACTIVITY_CAPACITY, start.events),
      account_data: new LastPositions(ACTIVITY_CAPACITY, start.account_data),
      to_device: new LastPositions(ACTIVITY_CAPACITY, start.to_device),
      receipts: new LastPositions(ACTIVITY_CAPACITY, start.receipts ?? Number.POSITIVE_INFINITY),
      typing: new LastPositions(ACTIVITY_CAPACITY, start.typing ?? Number.POSITIVE_INFINITY),
    };
  }

  /** Records a change and the users woken for it. */
  observe(c: StreamChange, woken: readonly string[] = []): void {
    if (c.stream !== 'presence' && c.stream !== 'device_lists') {
      const table = this.woken[c.stream];
      for (const u of woken) table.note(u, c.position);
    }
    switch (c.stream) {
      case 'events':
        this.roomEvents.note(c.roomId, c.position);
        if (c.type === 'm.room.member' && c.stateKey !== undefined) {
          this.roomMemberships.note(c.roomId, c.position);
          this.userMemberships.note(c.stateKey, c.position);
        }
        break;
      case 'to_device':
        this.toDevice.note(c.userId, c.position);
        break;
      case 'account_data':
        this.accountData.note(c.userId, c.position);
        break;
      default:
        break;
    }
  }
}
