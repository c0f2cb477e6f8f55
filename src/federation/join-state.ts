/**
 * The state and auth chain of a room joined through another server (the send_join answer),
 * taken in as it arrives: events are checked in chunks (format, signatures with keys looked up
 * once per chunk, content hash), authorised against their own auth events in auth order, and
 * written in one bounded transaction per chunk. Only a chunk, the room's non-member auth events
 * and a bounded cache of member events stay in memory; auth events of earlier chunks are read
 * back from the store. Events whose auth events have not arrived yet wait (and are retried when
 * those arrive); what never gets its auth events is stored as rejected, like any outlier whose
 * auth events are missing (server-server-api "Joining Rooms": every event of the state and the
 * auth chain is checked).
 *
 * Progress (events received, checked, stored) is reported to `onProgress` and logged every few
 * seconds.
 */
import type { Logger } from 'pino';
import { authorizeEvent } from '../protocol/event-auth.js';
import { authEventIds, stateKeyOf, type RoomEvent } from '../protocol/event.js';
import type { RoomVersion } from '../protocol/room-versions.js';
import type { Database } from '../storage/db.js';
import type { EventStore, StateIds } from '../storage/stores/events.js';
import type { RoomEvents } from '../services/rooms/room-events.js';
import { LruCache } from '../util/lru.js';
import { topologicalOrder } from './event-handler.js';
import type { Keyring } from './keyring.js';
import { checkPduBatch, PduError } from './pdu.js';

/**
 * Events checked and written per chunk (one transaction each). Smaller chunks keep fewer
 * events alive across young-generation collections, so fewer reach the old generation (which
 * is not collected during a join): 500 left B's heap ≈ 10 MB bigger at 20,000 members than 200.
 */
export const JOIN_CHUNK = 200;
/** Member events kept in memory as possible auth events (others are read back from the store). */
const MEMBER_CACHE = 2000;
const LOG_EVERY_MS = 2000;

export interface JoinProgress {
  roomId: string;
  /** Events parsed from the answer (state and auth chain, duplicates included). */
  received: number;
  /** Events whose signatures and hashes were checked (dropped ones included). */
  checked: number;
  /** Events written (accepted or rejected outliers). */
  persisted: number;
  done: boolean;
}

export interface JoinStateDeps {
  database: Database;
  events: EventStore;
  roomEvents: RoomEvents;
  keyring: Keyring;
  log: Logger;
  onProgress?: (p: JoinProgress) => void;
  /** Events per chunk (default JOIN_CHUNK). */
  chunkSize?: number;
}

interface Known {
  event: RoomEvent;
  rejected: boolean;
}

export class JoinStateIngest {
  private pending: Array<{ raw: unknown; inState: boolean }> = [];
  /** Checked events waiting for auth events, and the IDs they wait for. */
  private deferred: RoomEvent[] = [];
  private waitingFor = new Set<string>();
  /** State candidates (from the `state` array), filtered by rejection at the end. */
  private readonly state: StateIds = new Map();
  private readonly rejected = new Set<string>();
  /** IDs that were stored before this join (their rejection is read from the store). */
  private readonly preexisting = new Set<string>();
  private readonly seen = new Set<string>();
  /** Non-member auth events (create, power levels, join rules, third-party invites…). */
  private readonly authEvents = new Map<string, Known>();
  private readonly members = new LruCache<string, Known>(MEMBER_CACHE);
  private createEvent: RoomEvent | undefined;
  /** Events wait for the create event (room versions whose auth events leave it out). */
  private needCreate = false;
  private readonly progress: JoinProgress;
  private lastLog = Date.now();
  private readonly started = Date.now();
  private dropped = 0;

  constructor(
    private readonly deps: JoinStateDeps,
    private readonly roomId: string,
    private readonly version: RoomVersion,
    private readonly origin: string,
    /** Called once, before the first write, with the room's create event (e.g. to insert the room). */
    private readonly onCreate: (create: RoomEvent) => Promise<void>,
  ) {
    this.progress = { roomId, received: 0, checked: 0, persisted: 0, done: false };
    deps.onProgress?.({ ...this.progress });
  }

  /** One event of the answer; checks and writes a chunk when one is full. */
  async add(raw: unknown, inState: boolean): Promise<void> {
    this.pending.push({ raw, inState });
    this.progress.received++;
    if (this.pending.length >= this.chunk) await this.flush();
  }

  /** Whether a chunk is full (the caller may pause reading until `flush` is done). */
  get full(): boolean {
    return this.pending.length >= this.chunk;
  }

  private get chunk(): number {
    return this.deps.chunkSize ?? JOIN_CHUNK;
  }

  async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const results = await checkPduBatch(
      batch.map((b) => b.raw),
      this.version,
      this.roomId,
      this.deps.keyring,
    );
    const fresh: RoomEvent[] = [];
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!;
      if (r instanceof PduError) {
        this.dropped++;
        if (this.dropped <= 20) this.deps.log.info({ err: r.message, roomId: this.roomId }, 'dropped a received event');
        continue;
      }
      const ev = r.event;
      if (batch[i]!.inState && typeof ev.state_key === 'string') this.state.set(stateKeyOf(ev.type, ev.state_key), ev.event_id);
      if (this.seen.has(ev.event_id)) continue;
      this.seen.add(ev.event_id);
      fresh.push(ev);
    }
    this.progress.checked += batch.length;
    const have = await this.deps.events.haveEvents(fresh.map((e) => e.event_id));
    for (const id of have) this.preexisting.add(id);
    const todo = fresh.filter((e) => !have.has(e.event_id));
    const decided = await this.decideAndWrite(todo);
    if (this.deferred.length && ((this.needCreate && this.createEvent) || decided.some((id) => this.waitingFor.has(id)))) await this.retryDeferred();
    this.report();
  }

  /** Ends the answer: writes what is left, retries waiting events; returns the room state. */
  async finish(): Promise<StateIds> {
    await this.flush();
    await this.retryDeferred();
    if (this.deferred.length) {
      // Their auth events never came: stored as rejected (they are never state).
      const left = this.deferred;
      this.deferred = [];
      await this.write(left.map((event) => ({ event, rejected: 'auth events missing' })));
    }
    const state: StateIds = new Map();
    const old = [...this.state.values()].filter((id) => this.preexisting.has(id));
    const oldRejected = new Set<string>();
    for (let i = 0; i < old.length; i += JOIN_CHUNK) {
      for (const s of (await this.deps.events.getEvents(old.slice(i, i + JOIN_CHUNK))).values()) if (s.rejected) oldRejected.add(s.event.event_id);
    }
    for (const [key, id] of this.state) if (!this.rejected.has(id) && !oldRejected.has(id)) state.set(key, id);
    // The answer's IDs are not needed any more (the join's storing step holds the room's state).
    this.state.clear();
    this.seen.clear();
    this.progress.done = true;
    this.report(true);
    if (this.rejected.size || this.dropped) {
      this.deps.log.info({ roomId: this.roomId, origin: this.origin, rejected: this.rejected.size, dropped: this.dropped }, 'rejected or dropped events of a joined room state');
    }
    return state;
  }

  private async retryDeferred(): Promise<void> {
    while (this.deferred.length) {
      const before = this.deferred.length;
      const list = this.deferred;
      this.deferred = [];
      this.waitingFor = new Set();
      this.needCreate = false;
      await this.decideAndWrite(list);
      if (this.deferred.length >= before) return;
    }
  }

  private known(id: string): Known | undefined {
    return this.authEvents.get(id) ?? this.members.get(id);
  }

  private remember(event: RoomEvent, rejected: boolean): void {
    const k = { event, rejected };
    if (event.type === 'm.room.member') this.members.set(event.event_id, k);
    else if (typeof event.state_key === 'string') this.authEvents.set(event.event_id, k);
  }

  /**
   * Authorises `events` (in auth order) against their auth events: from this chunk, memory, or
   * the store. Events missing some wait in `deferred`. Writes the decided ones; returns their IDs.
   */
  private async decideAndWrite(events: RoomEvent[]): Promise<string[]> {
    if (events.length === 0) return [];
    const ordered = topologicalOrder(events);
    if (!this.createEvent) {
      const create = ordered.find((e) => e.type === 'm.room.create' && e.state_key === '');
      if (create) this.createEvent = create;
    }
    const inBatch = new Set(ordered.map((e) => e.event_id));
    const lookup = new Set<string>();
    for (const ev of ordered) for (const id of authEventIds(ev)) if (!inBatch.has(id) && !this.known(id)) lookup.add(id);
    const fromStore = new Map<string, Known>();
    if (lookup.size) {
      for (const s of (await this.deps.events.getEvents(lookup)).values()) {
        if (s.roomId !== this.roomId) continue;
        fromStore.set(s.event.event_id, { event: s.event, rejected: !!s.rejected });
        if (!this.createEvent && s.event.type === 'm.room.create' && s.event.state_key === '') this.createEvent = s.event;
      }
    }
    if (!this.createEvent && !this.version.createEventInAuthEvents) {
      // Nothing can be authorised without the create event yet.
      this.needCreate = true;
      for (const ev of ordered) this.deferred.push(ev);
      return [];
    }
    const decided = new Map<string, Known>();
    const decisions: Array<{ event: RoomEvent; rejected?: string }> = [];
    for (const ev of ordered) {
      const ids = authEventIds(ev);
      const auth = ids.map((id) => decided.get(id) ?? this.known(id) ?? fromStore.get(id));
      if (auth.some((a) => !a)) {
        this.deferred.push(ev);
        for (let j = 0; j < ids.length; j++) if (!auth[j]) this.waitingFor.add(ids[j]!);
        continue;
      }
      let rejected: string | undefined;
      if (auth.some((a) => a!.rejected)) rejected = 'auth event rejected';
      else {
        const verdict = authorizeEvent(ev, auth.map((a) => a!.event), this.version, {
          createEvent: this.version.createEventInAuthEvents ? undefined : this.createEvent,
        });
        if (!verdict.allowed) rejected = `${verdict.reason} (auth rule ${verdict.rule})`;
      }
      decided.set(ev.event_id, { event: ev, rejected: !!rejected });
      decisions.push({ event: ev, rejected });
    }
    await this.write(decisions);
    return decisions.map((d) => d.event.event_id);
  }

  private createdRoom = false;

  /** Writes decided events as outliers in one transaction. */
  private async write(decisions: Array<{ event: RoomEvent; rejected?: string }>): Promise<void> {
    if (decisions.length === 0) return;
    if (!this.createdRoom) {
      const create = this.createEvent ?? decisions.find((d) => d.event.type === 'm.room.create' && d.event.state_key === '')?.event;
      if (create) {
        await this.onCreate(create);
        this.createdRoom = true;
      }
    }
    const { events, roomEvents, database } = this.deps;
    await roomEvents.withStreamLock(() =>
      database.transaction(async (tx) => {
        const already = await events.haveEvents(
          decisions.map((d) => d.event.event_id),
          tx.db,
        );
        const items = decisions.filter((d) => !already.has(d.event.event_id)).map((d) => ({ event: d.event, rejected: d.rejected ?? null }));
        await events.persistOutliers(tx, this.roomId, items);
      }),
    );
    for (const d of decisions) {
      if (d.rejected) this.rejected.add(d.event.event_id);
      this.remember(d.event, !!d.rejected);
    }
    this.progress.persisted += decisions.length;
  }

  private report(force = false): void {
    this.deps.onProgress?.({ ...this.progress });
    const now = Date.now();
    if (!force && now - this.lastLog < LOG_EVERY_MS) return;
    this.lastLog = now;
    this.deps.log.info(
      {
        roomId: this.roomId,
        origin: this.origin,
        received: this.progress.received,
        checked: this.progress.checked,
        persisted: this.progress.persisted,
        waiting: this.deferred.length,
        ms: now - this.started,
        rssMb: Math.round(process.memoryUsage.rss() / 1048576),
        heapMb: Math.round(process.memoryUsage().heapUsed / 1048576),
        done: this.progress.done,
      },
      this.progress.done ? 'joined room state stored' : 'joining a room: storing its state',
    );
  }
}
