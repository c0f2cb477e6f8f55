import { randomBytes } from 'node:crypto';
import { MatrixError } from '../../errors.js';
import { LruCache } from '../../util/lru.js';
import type { StreamPositions } from '../sync/token.js';
import type { RequiredState } from './required-state.js';

/** What a connection has been sent of one room. */
export interface RoomSent {
  membership: string;
  /** The user's membership event when the room was last sent (a new one resends the room). */
  membershipEventId: string;
  /** Events up to this stream position have been sent (timeline and state changes). */
  sentUpTo: number;
  requiredState: RequiredState;
  timelineLimit: number;
  /** Whether the last timeline sent left events out (a larger limit then sends more). */
  limited: boolean;
  /** Members whose membership event was sent because of lazy-loading. */
  lazyMembers: ReadonlySet<string>;
  /** Whether the room was last sent as a direct chat (`is_dm`). */
  isDm: boolean;
}

/** The state of a connection at one `pos`: stream positions and what each room was sent. */
export interface ConnectionState {
  positions: StreamPositions;
  rooms: ReadonlyMap<string, RoomSent>;
}

interface Connection {
  /** States by `pos`: the latest ones issued, and the one the client last used. */
  states: Map<string, ConnectionState>;
}

/** How many states a connection keeps: the one the client used, and responses it may not have received. */
const STATES_PER_CONNECTION = 3;
/** Connections remembered (least recently used are forgotten: their next request gets M_UNKNOWN_POS). */
const MAX_CONNECTIONS = 10_000;
/** Connections (`conn_id`s) one device may hold; starting another forgets its oldest. */
const CONNECTIONS_PER_DEVICE = 10;

export function unknownPos(): MatrixError {
  return new MatrixError('M_UNKNOWN_POS', 400, 'Unknown or expired position: start the connection again');
}

/**
 * Per-connection state of simplified sliding sync, in memory: a restart (or eviction) makes
 * every `pos` unknown, and clients start the connection again.
 */
export class ConnectionStore {
  private readonly connections = new LruCache<string, Connection>(MAX_CONNECTIONS);
  /** Distinguishes this process's positions from those of an earlier run. */
  private readonly instance = randomBytes(4).toString('hex');
  private counter = 0;
  /** Per device (`user\0device`): its connections' keys, oldest first. */
  private readonly byDevice = new Map<string, string[]>();

  private static key(userId: string, deviceId: string, connId: string): string {
    return `${userId}\u0000${deviceId}\u0000${connId}`;
  }

  /**
   * The state at `pos` of this user's and device's connection (M_UNKNOWN_POS if it is not one
   * issued to them or has expired). Older states than `pos` are dropped: the client has the
   * response that issued it.
   */
  get(userId: string, deviceId: string, connId: string, pos: string): ConnectionState {
    const conn = this.connections.get(ConnectionStore.key(userId, deviceId, connId));
    const state = conn?.states.get(pos);
    if (!conn || !state) throw unknownPos();
    for (const [p] of conn.states) {
      if (p === pos) break;
      conn.states.delete(p);
    }
    return state;
  }

  /**
   * Records the state after a response and returns its `pos`. `base` is the `pos` the request
   * used; a request without one starts the connection afresh.
   */
  put(userId: string, deviceId: string, connId: string, state: ConnectionState, base: string | undefined): string {
    const key = ConnectionStore.key(userId, deviceId, connId);
    let conn = base === undefined ? undefined : this.connections.get(key);
    if (!conn) {
      this.connections.set(key, (conn = { states: new Map() }));
      this.track(`${userId}\u0000${deviceId}`, key);
    }
    const pos = `${this.instance}_${++this.counter}`;
    conn.states.set(pos, state);
    // The state the client used stays (it may retry with it); the oldest others go.
    for (const p of [...conn.states.keys()]) {
      if (conn.states.size <= STATES_PER_CONNECTION) break;
      if (p !== base && p !== pos) conn.states.delete(p);
    }
    return pos;
  }

  /** Notes a device's new connection, forgetting its oldest beyond the limit (and keys evicted meanwhile). */
  private track(device: string, key: string): void {
    const keys = (this.byDevice.get(device) ?? []).filter((k) => k !== key && this.connections.get(k) !== undefined);
    keys.push(key);
    while (keys.length > CONNECTIONS_PER_DEVICE) this.connections.delete(keys.shift()!);
    this.byDevice.set(device, keys);
    // Devices whose connections were all evicted are dropped now and then.
    if (this.byDevice.size > MAX_CONNECTIONS * 2) {
      for (const [d, ks] of this.byDevice) if (!ks.some((k) => this.connections.get(k) !== undefined)) this.byDevice.delete(d);
    }
  }
}
