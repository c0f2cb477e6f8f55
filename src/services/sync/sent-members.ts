import { LruCache } from '../../util/lru.js';

/** A member event sent to a device, and the events position of the response that carried it. */
export interface Sent {
  eventId: string;
  at: number;
}

/** One device's record: room → member → the last member event sent (rooms in least-recently-used order). */
interface DeviceRecord {
  rooms: Map<string, Map<string, Sent>>;
  size: number;
}

/**
 * The member events /sync has sent to each device with lazy-loaded members, so incremental
 * responses can leave out those the client already has ("redundant" members: the spec lets the
 * server skip them unless the filter sets `include_redundant_members`).
 *
 * Per (user, device) and room, the last member event sent for each member, with the events
 * position (`next_batch`) of the response that carried it. An entry counts only once the client
 * syncs from that position or later, i.e. it has received that response (or a later one); a
 * response that was lost and is asked for again from an older token sends the members again.
 * A different event ID for the member (a change) is always sent.
 *
 * Bounded: the least recently used devices and, per device, its least recently used rooms are
 * forgotten (forgetting only makes responses send members again). Kept in memory only.
 */
export class SentMembers {
  private readonly devices: LruCache<string, DeviceRecord>;

  constructor(
    maxDevices = 1000,
    private readonly maxPerDevice = 512,
  ) {
    this.devices = new LruCache(maxDevices);
  }

  private static key(userId: string, deviceId: string): string {
    return `${userId}\u0000${deviceId}`;
  }

  /** Forgets everything sent to the device (an initial or full-state sync starts over). */
  clearDevice(userId: string, deviceId: string): void {
    this.devices.delete(SentMembers.key(userId, deviceId));
  }

  /** Forgets what was sent to the device for one room (the room's whole state is being sent). */
  clearRoom(userId: string, deviceId: string, roomId: string): void {
    const d = this.devices.get(SentMembers.key(userId, deviceId));
    const room = d?.rooms.get(roomId);
    if (!d || !room) return;
    d.size -= room.size;
    d.rooms.delete(roomId);
  }

  /**
   * Whether member event `eventId` of `member` is the last one sent for them in `roomId` to the
   * device, in a response the client has received: one at or before `since` (the events position
   * of the request's token).
   */
  has(userId: string, deviceId: string, roomId: string, member: string, eventId: string, since: number): boolean {
    const room = this.roomRecord(userId, deviceId, roomId);
    return room !== undefined && SentMembers.sentIn(room, member, eventId, since);
  }

  /**
   * What was sent to the device for one room (member → last member event sent), to ask
   * `sentIn` about several members; undefined when nothing was.
   */
  roomRecord(userId: string, deviceId: string, roomId: string): ReadonlyMap<string, Sent> | undefined {
    return this.devices.get(SentMembers.key(userId, deviceId))?.rooms.get(roomId);
  }

  /** `has` for a room's record (see roomRecord). */
  static sentIn(room: ReadonlyMap<string, Sent>, member: string, eventId: string, since: number): boolean {
    const sent = room.get(member);
    return sent !== undefined && sent.eventId === eventId && sent.at <= since;
  }

  /** Records member events (member → event ID) sent to the device in a response at events position `at`. */
  record(userId: string, deviceId: string, roomId: string, members: Iterable<readonly [string, string]>, at: number): void {
    const key = SentMembers.key(userId, deviceId);
    let d = this.devices.get(key);
    let room = d?.rooms.get(roomId);
    for (const [member, eventId] of members) {
      if (!d) this.devices.set(key, (d = { rooms: new Map(), size: 0 }));
      if (!room) d.rooms.set(roomId, (room = new Map()));
      const had = room.delete(member);
      room.set(member, { eventId, at });
      if (!had) d.size++;
    }
    if (d && room) this.touch(d, roomId, room);
  }

  /** Moves a room to the end of the eviction order and trims the device's record to its bound. */
  private touch(d: DeviceRecord, roomId: string, room: Map<string, Sent>): void {
    d.rooms.delete(roomId);
    d.rooms.set(roomId, room);
    while (d.size > this.maxPerDevice && d.rooms.size > 0) {
      const [oldestId, oldest] = d.rooms.entries().next().value as [string, Map<string, Sent>];
      if (oldestId === roomId) {
        // The room being recorded is itself over the bound: drop its oldest members.
        for (const m of room.keys()) {
          if (d.size <= this.maxPerDevice) break;
          room.delete(m);
          d.size--;
        }
        break;
      }
      d.rooms.delete(oldestId);
      d.size -= oldest.size;
    }
  }

  /** Devices with a record (for tests and metrics). */
  get deviceCount(): number {
    return this.devices.size;
  }
}
