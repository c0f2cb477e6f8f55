/**
 * Integer-indexed view of the auth DAG used by state resolution.
 *
 * Event IDs are interned to small integers on first sight; events and their
 * auth-event indices are loaded lazily from the caller's {@link EventSource}.
 * Traversals use growable mark arrays instead of per-event sets so that a room
 * with tens of thousands of members costs a few typed arrays, not a forest of
 * `Set<string>` objects.
 */
import { referenceId, stateKeyOf, type RoomEvent } from '../event.js';
import type { RoomVersion } from '../room-versions.js';

/** Synchronous, in-memory access to the events state resolution may need. */
export interface EventSource {
  getEvent(id: string): RoomEvent | undefined;
  /**
   * Whether the event was rejected (failed authorisation against its auth chain or
   * the state before it). Rejected events are never used as auth events during the
   * iterative auth checks. Omitted: nothing is rejected.
   */
  isRejected?(id: string): boolean;
}

const EMPTY: readonly number[] = Object.freeze([]);

/** The ID of the create event of a room whose ID is the create event's reference hash (room v12). */
export function createEventIdFromRoomId(roomId: string): string {
  return `$${roomId.slice(1)}`;
}

export class EventGraph {
  readonly ids: string[] = [];
  private readonly index = new Map<string, number>();
  private readonly events: (RoomEvent | null | undefined)[] = [];
  private readonly auth: (readonly number[] | undefined)[] = [];
  private readonly keys: (string | undefined)[] = [];
  private readonly rejected: (boolean | undefined)[] = [];

  constructor(
    readonly source: EventSource,
    readonly version: RoomVersion,
  ) {}

  get size(): number {
    return this.ids.length;
  }

  intern(id: string): number {
    let i = this.index.get(id);
    if (i === undefined) {
      i = this.ids.length;
      this.ids.push(id);
      this.index.set(id, i);
      this.events.push(undefined);
      this.auth.push(undefined);
      this.keys.push(undefined);
      this.rejected.push(undefined);
    }
    return i;
  }

  indexOf(id: string): number | undefined {
    return this.index.get(id);
  }

  /** The event, or undefined when the source does not have it. */
  event(i: number): RoomEvent | undefined {
    let ev = this.events[i];
    if (ev === undefined) {
      ev = this.source.getEvent(this.ids[i]!) ?? null;
      this.events[i] = ev;
    }
    return ev ?? undefined;
  }

  has(i: number): boolean {
    return this.event(i) !== undefined;
  }

  isRejected(i: number): boolean {
    let r = this.rejected[i];
    if (r === undefined) {
      r = this.source.isRejected ? this.source.isRejected(this.ids[i]!) : false;
      this.rejected[i] = r;
    }
    return r;
  }

  /** `stateKeyOf(type, state_key)`, or undefined for non-state or missing events. */
  stateKey(i: number): string | undefined {
    let k = this.keys[i];
    if (k === undefined) {
      const ev = this.event(i);
      if (!ev || typeof ev.state_key !== 'string') return undefined;
      k = stateKeyOf(ev.type, ev.state_key);
      this.keys[i] = k;
    }
    return k;
  }

  /**
   * Indices of the event's auth events. In rooms where the create event is not
   * listed in `auth_events` (v12), it is an implicit auth event of every other event,
   * derived from the room ID.
   */
  authOf(i: number): readonly number[] {
    let a = this.auth[i];
    if (a === undefined) {
      const ev = this.event(i);
      if (!ev) {
        a = EMPTY;
      } else {
        const out: number[] = [];
        for (const ref of ev.auth_events) {
          const j = this.intern(referenceId(ref));
          if (!out.includes(j)) out.push(j);
        }
        if (!this.version.createEventInAuthEvents && ev.type !== 'm.room.create' && typeof ev.room_id === 'string') {
          const c = this.intern(createEventIdFromRoomId(ev.room_id));
          if (c !== i && !out.includes(c)) out.push(c);
        }
        a = out.length ? out : EMPTY;
      }
      this.auth[i] = a;
    }
    return a;
  }

  /** The auth events of `i` as present events (missing ones skipped). */
  authEvents(i: number): RoomEvent[] {
    const out: RoomEvent[] = [];
    for (const j of this.authOf(i)) {
      const ev = this.event(j);
      if (ev) out.push(ev);
    }
    return out;
  }

  /** Index of the `m.room.power_levels` event among `i`'s auth events, or -1. */
  powerLevelsAuthOf(i: number): number {
    for (const j of this.authOf(i)) {
      const ev = this.event(j);
      if (ev && ev.type === 'm.room.power_levels' && ev.state_key === '') return j;
    }
    return -1;
  }

  /** Index of the `m.room.create` event among `i`'s auth events, or -1. */
  createAuthOf(i: number): number {
    for (const j of this.authOf(i)) {
      const ev = this.event(j);
      if (ev && ev.type === 'm.room.create' && ev.state_key === '') return j;
    }
    return -1;
  }
}

/** A growable set of small non-negative integers. */
export class IndexSet {
  private bits: Uint8Array;
  private count = 0;
  constructor(capacity = 1024) {
    this.bits = new Uint8Array(Math.max(16, capacity));
  }
  has(i: number): boolean {
    return i < this.bits.length && this.bits[i] === 1;
  }
  /** Adds `i`; returns false when it was already present. */
  add(i: number): boolean {
    if (i >= this.bits.length) {
      let n = this.bits.length * 2;
      while (n <= i) n *= 2;
      const grown = new Uint8Array(n);
      grown.set(this.bits);
      this.bits = grown;
    }
    if (this.bits[i] === 1) return false;
    this.bits[i] = 1;
    this.count++;
    return true;
  }
  get size(): number {
    return this.count;
  }
}

/**
 * Visits every event reachable from `starts` through auth edges (the starts included),
 * skipping nodes for which `stop` returns true (they are neither visited nor expanded).
 * Returns the visited indices in discovery order; `seen` is updated.
 */
export function walkAuth(
  graph: EventGraph,
  starts: Iterable<number>,
  seen: IndexSet,
  stop?: (i: number) => boolean,
): number[] {
  const out: number[] = [];
  const stack: number[] = [];
  for (const s of starts) {
    if (stop?.(s) || !seen.add(s)) continue;
    stack.push(s);
  }
  while (stack.length) {
    const i = stack.pop()!;
    out.push(i);
    for (const j of graph.authOf(i)) {
      if (seen.has(j) || stop?.(j)) continue;
      seen.add(j);
      stack.push(j);
    }
  }
  return out;
}

/**
 * Iterative depth-first post-order over auth edges from `root`: `finish(n)` runs once
 * every auth event of `n` that is not `skip`ped has finished (children first).
 * `isDone` tells which nodes finished in earlier calls. An auth edge back to a node
 * still being explored (a cycle, possible only with forged legacy event IDs) is
 * ignored rather than followed.
 */
export function postOrder(
  graph: EventGraph,
  root: number,
  skip: (i: number) => boolean,
  isDone: (i: number) => boolean,
  finish: (i: number) => void,
): void {
  if (isDone(root)) return;
  const open = new Set<number>();
  const stack = [root];
  while (stack.length) {
    const n = stack[stack.length - 1]!;
    if (isDone(n)) {
      stack.pop();
      continue;
    }
    if (!open.has(n)) {
      open.add(n);
      for (const c of graph.authOf(n)) if (!skip(c) && !open.has(c) && !isDone(c)) stack.push(c);
      continue;
    }
    stack.pop();
    open.delete(n);
    finish(n);
  }
}
