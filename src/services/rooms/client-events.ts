import type { RoomEvent } from '../../protocol/event.js';
import type { JsonObject } from '../../protocol/json.js';
import { redactEvent } from '../../protocol/redaction.js';
import { getRoomVersion } from '../../protocol/room-versions.js';
import type { EventStore, StoredEvent } from '../../storage/stores/events.js';
import type { RelationStore } from '../../storage/stores/relations.js';
import { LruCache } from '../../util/lru.js';

const NO_EVENTS: ReadonlyMap<string, StoredEvent> = new Map();

/** An event as clients see it (client-server API "ClientEvent"). */
export interface ClientEvent {
  event_id: string;
  room_id: string;
  type: string;
  sender: string;
  origin_server_ts: number;
  content: JsonObject;
  state_key?: string;
  redacts?: string;
  unsigned?: JsonObject;
}

export interface FormatOptions {
  /** The user and device asking: `transaction_id` is included for their own sends. */
  viewer?: { userId: string; deviceId?: string };
  /** Leave `room_id` out (sync timelines and state). */
  omitRoomId?: boolean;
  /** Add bundled aggregations (`unsigned.m.relations`); default true. */
  bundle?: boolean;
}

/** Turns stored events into client events: redaction applied, unsigned fields filled. */
export class ClientEventFormatter {
  constructor(
    private readonly events: EventStore,
    private readonly now: () => number = Date.now,
    private readonly relations?: RelationStore,
    /** This server's name: events created here since start-up with no relation written to them skip the aggregation queries. */
    private readonly serverName?: string,
  ) {}

  async format(stored: StoredEvent[], opts: FormatOptions = {}): Promise<ClientEvent[]> {
    let related: Set<string> | undefined;
    // The room version is needed only to redact: known for the rooms of redacted events.
    let redactedRooms: Set<string> | undefined;
    for (const s of stored) {
      if (s.redactedBy) {
        (related ??= new Set()).add(s.redactedBy);
        (redactedRooms ??= new Set()).add(s.roomId);
      }
      if (s.prevStateEventId) (related ??= new Set()).add(s.prevStateEventId);
    }
    const extra = related ? await this.events.getEvents(related) : NO_EVENTS;
    if (redactedRooms) await this.knowVersions(redactedRooms);
    const now = this.now();
    const out = new Array<ClientEvent>(stored.length);
    for (let i = 0; i < stored.length; i++) out[i] = this.one(stored[i]!, extra, now, opts);
    if (opts.bundle !== false && this.relations) {
      const bundles = await this.aggregations(stored, opts);
      if (bundles.size) {
        for (const ev of out) {
          const b = bundles.get(ev.event_id);
          if (b) ev.unsigned = { ...ev.unsigned, 'm.relations': b };
        }
      }
    }
    return out;
  }

  /**
   * Bundled aggregations of the given events (client-server API "Aggregations of child
   * events"): `m.thread` (latest reply, count, whether the viewer took part), `m.replace`
   * (the most recent valid edit) and `m.reference` (the referencing event IDs). Redacted and
   * state events get none. A fixed number of queries whatever the number of events.
   */
  private async aggregations(stored: StoredEvent[], opts: FormatOptions): Promise<Map<string, JsonObject>> {
    const out = new Map<string, JsonObject>();
    const parents = stored.filter((s) => !s.redactedBy && typeof s.event.state_key !== 'string');
    if (!parents.length || !this.relations) return out;
    if (this.serverName !== undefined && !this.events.mayHaveRelations(parents, this.serverName)) return out;
    const ids = parents.map((s) => s.event.event_id);
    const viewer = opts.viewer?.userId;
    const [threads, children] = await Promise.all([
      this.relations.threadSummaries(ids, viewer),
      this.relations.children(ids, ['m.replace', 'm.reference']),
    ]);
    const latestIds = threads.size ? await this.relations.eventIdsAtStream([...threads.values()].map((t) => t.latestStream)) : new Map<number, string>();
    const edits = children.filter((c) => c.relType === 'm.replace');
    const loaded = await this.events.getEvents([...latestIds.values(), ...edits.map((e) => e.eventId)]);
    const nested = new Map<string, ClientEvent>();
    const toFormat = [...loaded.values()];
    if (toFormat.length) {
      const formatted = await this.format(toFormat, { ...opts, bundle: false });
      formatted.forEach((ev) => nested.set(ev.event_id, ev));
    }
    const bundleOf = (id: string): JsonObject => {
      let b = out.get(id);
      if (!b) out.set(id, (b = {}));
      return b;
    };
    const byId = new Map(parents.map((s) => [s.event.event_id, s]));
    for (const t of threads.values()) {
      const root = byId.get(t.rootId);
      const latestId = latestIds.get(t.latestStream);
      const latest = latestId ? nested.get(latestId) : undefined;
      if (!root || !latest) continue;
      bundleOf(t.rootId)['m.thread'] = {
        latest_event: latest as unknown as JsonObject,
        count: t.count,
        current_user_participated: t.participated || (viewer !== undefined && root.event.sender === viewer),
      };
    }
    const bestEdit = new Map<string, StoredEvent>();
    for (const e of edits) {
      const original = byId.get(e.relatesTo);
      const edit = loaded.get(e.eventId);
      if (!original || !edit || !isValidReplacement(original, edit)) continue;
      const best = bestEdit.get(e.relatesTo);
      if (!best || newerEdit(edit, best)) bestEdit.set(e.relatesTo, edit);
    }
    for (const [id, edit] of bestEdit) {
      const ev = nested.get(edit.event.event_id);
      if (ev) bundleOf(id)['m.replace'] = ev as unknown as JsonObject;
    }
    const refs = new Map<string, JsonObject[]>();
    for (const c of children) {
      if (c.relType !== 'm.reference') continue;
      const list = refs.get(c.relatesTo) ?? [];
      list.push({ event_id: c.eventId });
      refs.set(c.relatesTo, list);
    }
    for (const [id, chunk] of refs) bundleOf(id)['m.reference'] = { chunk };
    return out;
  }

  async formatOne(s: StoredEvent, opts: FormatOptions = {}): Promise<ClientEvent> {
    return (await this.format([s], opts))[0]!;
  }

  private one(s: StoredEvent, extra: ReadonlyMap<string, StoredEvent>, now: number, opts: FormatOptions): ClientEvent {
    let ev: RoomEvent = s.event;
    const unsigned: JsonObject = {};
    const redaction = s.redactedBy ? extra.get(s.redactedBy) : undefined;
    const version = redaction ? getRoomVersion(this.versions.get(s.roomId) ?? '') : undefined;
    if (redaction && version) {
      ev = redactEvent(ev, version);
      unsigned['redacted_because'] = this.one(redaction, NO_EVENTS, now, opts) as unknown as JsonObject;
    }
    // Built in one shape (no property deleted afterwards, which would make a slow object).
    const out: ClientEvent = opts.omitRoomId
      ? ({ event_id: ev.event_id, type: ev.type, sender: ev.sender, origin_server_ts: ev.origin_server_ts, content: ev.content } as ClientEvent)
      : { event_id: ev.event_id, room_id: s.roomId, type: ev.type, sender: ev.sender, origin_server_ts: ev.origin_server_ts, content: ev.content };
    if (typeof ev.state_key === 'string') out.state_key = ev.state_key;
    if (ev.type === 'm.room.redaction') {
      const r = typeof ev.redacts === 'string' ? ev.redacts : ev.content['redacts'];
      if (typeof r === 'string') out.redacts = r;
    }
    unsigned['age'] = Math.max(0, now - ev.origin_server_ts);
    if (s.prevStateEventId) {
      unsigned['replaces_state'] = s.prevStateEventId;
      const prev = extra.get(s.prevStateEventId);
      if (prev) {
        unsigned['prev_content'] = prev.redactedBy ? {} : prev.event.content;
        unsigned['prev_sender'] = prev.event.sender;
      }
    }
    if (s.txnId && opts.viewer && opts.viewer.userId === ev.sender && opts.viewer.deviceId === s.txnDeviceId) {
      unsigned['transaction_id'] = s.txnId;
    }
    out.unsigned = unsigned;
    return out;
  }

  /** Room ID → room version (never changes for a room). */
  private readonly versions = new LruCache<string, string>(10000);

  private async knowVersions(roomIds: Iterable<string>): Promise<void> {
    for (const id of new Set(roomIds)) {
      if (this.versions.get(id) !== undefined) continue;
      const room = await this.events.getRoom(id);
      if (room) this.versions.set(id, room.roomVersion);
    }
  }
}

function relTypeOf(ev: RoomEvent): unknown {
  const rel = ev.content['m.relates_to'];
  return rel && typeof rel === 'object' && !Array.isArray(rel) ? (rel as JsonObject)['rel_type'] : undefined;
}

/** Replacement validity (client-server API "Validity of replacement events"). */
export function isValidReplacement(original: StoredEvent, edit: StoredEvent): boolean {
  const o = original.event;
  const e = edit.event;
  if (original.roomId !== edit.roomId || o.sender !== e.sender || o.type !== e.type) return false;
  if (o.state_key !== undefined || e.state_key !== undefined) return false;
  if (relTypeOf(o) === 'm.replace') return false;
  // Encrypted edits carry m.new_content inside the ciphertext.
  if (e.type !== 'm.room.encrypted') {
    const nc = e.content['m.new_content'];
    if (!nc || typeof nc !== 'object' || Array.isArray(nc)) return false;
  }
  return true;
}

/** The most recent edit: larger origin_server_ts, then the lexicographically larger event ID. */
function newerEdit(a: StoredEvent, b: StoredEvent): boolean {
  if (a.event.origin_server_ts !== b.event.origin_server_ts) return a.event.origin_server_ts > b.event.origin_server_ts;
  return a.event.event_id > b.event.event_id;
}

/** Stripped state for invites and knocks: type, state_key, sender, content. */
export function strippedState(ev: RoomEvent): JsonObject {
  return { type: ev.type, state_key: ev.state_key ?? '', sender: ev.sender, content: ev.content };
}
