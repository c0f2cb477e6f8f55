import type { RoomEvent } from '../../protocol/event.js';
import type { JsonObject } from '../../protocol/json.js';
import { redactEvent } from '../../protocol/redaction.js';
import { getRoomVersion } from '../../protocol/room-versions.js';
import type { EventStore, StoredEvent } from '../../storage/stores/events.js';
import { LruCache } from '../../util/lru.js';

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
}

/** Turns stored events into client events: redaction applied, unsigned fields filled. */
export class ClientEventFormatter {
  constructor(
    private readonly events: EventStore,
    private readonly now: () => number = Date.now,
  ) {}

  async format(stored: StoredEvent[], opts: FormatOptions = {}): Promise<ClientEvent[]> {
    const related = new Set<string>();
    for (const s of stored) {
      if (s.redactedBy) related.add(s.redactedBy);
      if (s.prevStateEventId) related.add(s.prevStateEventId);
    }
    const extra = related.size ? await this.events.getEvents(related) : new Map<string, StoredEvent>();
    await this.knowVersions(stored.map((s) => s.roomId));
    const now = this.now();
    return stored.map((s) => this.one(s, extra, now, opts));
  }

  async formatOne(s: StoredEvent, opts: FormatOptions = {}): Promise<ClientEvent> {
    return (await this.format([s], opts))[0]!;
  }

  private one(s: StoredEvent, extra: Map<string, StoredEvent>, now: number, opts: FormatOptions): ClientEvent {
    let ev: RoomEvent = s.event;
    const version = getRoomVersion(this.versions.get(s.roomId) ?? '');
    const unsigned: JsonObject = {};
    const redaction = s.redactedBy ? extra.get(s.redactedBy) : undefined;
    if (redaction && version) {
      ev = redactEvent(ev, version);
      unsigned['redacted_because'] = this.one(redaction, new Map(), now, opts) as unknown as JsonObject;
    }
    const out: ClientEvent = {
      event_id: ev.event_id,
      room_id: s.roomId,
      type: ev.type,
      sender: ev.sender,
      origin_server_ts: ev.origin_server_ts,
      content: ev.content,
    };
    if (opts.omitRoomId) delete (out as Partial<ClientEvent>).room_id;
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

/** Stripped state for invites and knocks: type, state_key, sender, content. */
export function strippedState(ev: RoomEvent): JsonObject {
  return { type: ev.type, state_key: ev.state_key ?? '', sender: ev.sender, content: ev.content };
}
