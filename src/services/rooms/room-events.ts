import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { errors, MatrixError } from '../../errors.js';
import { authEventKeysFor } from '../../protocol/auth-events.js';
import { authorizeEvent } from '../../protocol/event-auth.js';
import { generateLegacyEventId, roomIdFromCreateEvent, withEventId } from '../../protocol/event-id.js';
import { stateKeyOf, type EventReference, type Pdu, type RoomEvent } from '../../protocol/event.js';
import { signEvent } from '../../protocol/event-signing.js';
import type { JsonObject } from '../../protocol/json.js';
import { canRedact } from '../../protocol/power-levels.js';
import { getRoomVersion, type RoomVersion } from '../../protocol/room-versions.js';
import type { SigningKey } from '../../protocol/signing.js';
import type { Database } from '../../storage/db.js';
import type { EventStore, StoredEvent } from '../../storage/stores/events.js';
import type { Notifier } from '../../streams/notifier.js';
import { KeyedMutex } from '../../util/mutex.js';
import { GroupCommitter } from './group-commit.js';

/** At most this many forward extremities are referenced as prev_events. */
const MAX_PREV_EVENTS = 10;
const MAX_DEPTH = Number.MAX_SAFE_INTEGER;
/** Events over 64 KiB are refused (server-server-api "Size limits"). */
export const MAX_PDU_BYTES = 65536;

export interface NewEvent {
  roomId: string;
  type: string;
  sender: string;
  content: JsonObject;
  stateKey?: string;
  /** Event being redacted (m.room.redaction). */
  redacts?: string;
  /** Transaction ID of the request; `scope` names its endpoint (the request path without the ID). */
  txn?: { deviceId: string; txnId: string; scope?: readonly string[] };
  /** origin_server_ts override (appservice timestamp massaging); defaults to now. */
  ts?: number;
  /**
   * Runs after authorisation, before persisting; may return the event with more signatures
   * (an invite countersigned by the invitee's server). Throwing aborts the send.
   */
  beforePersist?: (event: RoomEvent, version: RoomVersion) => Promise<RoomEvent>;
}

export interface RoomEventsDeps {
  serverName: string;
  signingKey: SigningKey;
  database: Database;
  events: EventStore;
  notifier: Notifier;
  log: Logger;
  now?: () => number;
}

/**
 * Builds, signs, authorises and persists local events: build → sign → authorise → persist →
 * notify. Creation in one room is serialised so prev_events never fork locally, and writes to
 * the event stream are serialised so stream positions follow commit order.
 */
export class RoomEvents {
  private readonly roomLocks = new KeyedMutex();
  private readonly committer: GroupCommitter;
  private readonly now: () => number;

  constructor(private readonly deps: RoomEventsDeps) {
    this.now = deps.now ?? Date.now;
    this.committer = new GroupCommitter(deps.database);
  }

  /** Runs `fn` holding the room's creation lock (for multi-event operations like createRoom). */
  withRoomLock<T>(roomId: string, fn: () => Promise<T>): Promise<T> {
    return this.roomLocks.run(roomId, fn);
  }

  /**
   * Runs `fn` holding the event-stream write lock, so events persisted elsewhere (received over
   * federation) get stream positions in commit order like local ones.
   */
  withStreamLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.committer.exclusive(fn);
  }

  async roomVersionOf(roomId: string): Promise<RoomVersion> {
    const room = await this.deps.events.getRoom(roomId);
    if (!room) throw errors.notFound(`Unknown room ${roomId}`);
    const version = getRoomVersion(room.roomVersion);
    if (!version) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', 400, `Room version ${room.roomVersion} is not supported`);
    return version;
  }

  /** Creates and persists an event in an existing room; the caller must not hold the room lock. */
  send(ev: NewEvent): Promise<StoredEvent> {
    return this.roomLocks.run(ev.roomId, () => this.sendLocked(ev));
  }

  /** As send(), for a caller that already holds the room lock. */
  async sendLocked(ev: NewEvent): Promise<StoredEvent> {
    const { events } = this.deps;
    const version = await this.roomVersionOf(ev.roomId);
    const stateIds = await events.getCurrentStateIds(ev.roomId);
    const prevIds = (await events.getForwardExtremities(ev.roomId)).slice(-MAX_PREV_EVENTS);
    const prevs = await events.getEvents(prevIds);
    const keys = authEventKeysFor(
      { type: ev.type, sender: ev.sender, state_key: ev.stateKey, content: ev.content },
      version,
    );
    const authIds = keys.map(([t, k]) => stateIds.get(stateKeyOf(t, k))).filter((id): id is string => !!id);
    const authStored = await events.getEvents(authIds);
    const depth = Math.min(MAX_DEPTH, Math.max(0, ...[...prevs.values()].map((p) => p.event.depth)) + 1);

    const pdu: Pdu = {
      room_id: ev.roomId,
      type: ev.type,
      sender: ev.sender,
      content: ev.content,
      origin_server_ts: ev.ts ?? this.now(),
      prev_events: prevIds.map((id) => this.reference(prevs.get(id), id, version)),
      auth_events: authIds.map((id) => this.reference(authStored.get(id), id, version)),
      depth,
      hashes: { sha256: '' },
      signatures: {},
    };
    if (ev.stateKey !== undefined) pdu.state_key = ev.stateKey;
    if (ev.redacts !== undefined && !version.redactsInContent) pdu.redacts = ev.redacts;
    const event = this.finish(pdu, version);

    const authEvents = [...authStored.values()].map((s) => s.event);
    const createId = stateIds.get(stateKeyOf('m.room.create', ''));
    const createEvent = createId ? (await events.getEvent(createId))?.event : undefined;
    const verdict = authorizeEvent(event, authEvents, version, { createEvent });
    if (!verdict.allowed) {
      throw errors.forbidden(`${verdict.reason} (auth rule ${verdict.rule})`);
    }

    let redactTarget: StoredEvent | undefined;
    if (ev.type === 'm.room.redaction' && ev.redacts) {
      redactTarget = await events.getEvent(ev.redacts);
      if (redactTarget && redactTarget.roomId === ev.roomId) {
        const state = await events.loadStateEvents(stateIds);
        if (!canRedact(state, ev.sender, redactTarget.event.sender === ev.sender, version)) {
          throw errors.forbidden('You do not have permission to redact this event');
        }
      } else {
        redactTarget = undefined;
      }
    }

    const prevStateEventId = ev.stateKey !== undefined ? stateIds.get(stateKeyOf(ev.type, ev.stateKey)) ?? null : null;
    const stateGroupBefore = prevIds.length ? (await events.getStateGroupOf(prevIds[prevIds.length - 1]!)) ?? null : null;
    const final = ev.beforePersist ? await ev.beforePersist(event, version) : event;
    if (final.event_id !== event.event_id) throw new Error('beforePersist changed the event');
    return this.persist(ev.roomId, final, {
      stateBefore: prevIds.length > 1 ? stateIds : undefined, stateGroupBefore, prevStateEventId, txn: ev.txn && { userId: ev.sender, ...ev.txn }, redactTarget });
  }

  /**
   * Creates a room's m.room.create event and persists it with the room row. For v12 rooms
   * the room ID is derived from the event; otherwise `roomId` is used.
   */
  async createRoomEvent(version: RoomVersion, sender: string, content: JsonObject, roomId: string | undefined): Promise<StoredEvent> {
    const pdu: Pdu = {
      type: 'm.room.create',
      sender,
      content,
      state_key: '',
      origin_server_ts: this.now(),
      prev_events: [],
      auth_events: [],
      depth: 1,
      hashes: { sha256: '' },
      signatures: {},
    };
    if (!version.roomIdIsCreateEventHash) {
      if (!roomId) throw new Error('room ID required for this room version');
      pdu.room_id = roomId;
    }
    const event = this.finish(pdu, version);
    const finalRoomId = version.roomIdIsCreateEventHash ? roomIdFromCreateEvent(event, version) : roomId!;
    const verdict = authorizeEvent(event, [], version);
    if (!verdict.allowed) throw errors.badJson(`Invalid room creation: ${verdict.reason}`);
    return this.roomLocks.run(finalRoomId, async () => {
      if (await this.deps.events.getRoom(finalRoomId)) throw new MatrixError('M_ROOM_IN_USE', 400, 'Room already exists');
      return this.persist(finalRoomId, event, { stateGroupBefore: null, prevStateEventId: null, room: { version, creator: sender } });
    });
  }

  private reference(stored: StoredEvent | undefined, id: string, version: RoomVersion): EventReference {
    if (version.eventFormat !== 1) return id;
    return [id, { sha256: stored?.event.hashes.sha256 ?? '' }];
  }

  /** Adds the legacy event ID where needed, hashes and signs, and returns the event with its ID. */
  private finish(pdu: Pdu, version: RoomVersion): RoomEvent {
    const { serverName, signingKey } = this.deps;
    if (version.eventIdFormat === 'legacy') {
      pdu.event_id = generateLegacyEventId(randomBytes(12).toString('base64url').replace(/[-_]/g, 'x'), serverName);
    }
    const { hashes: _h, ...unhashed } = pdu;
    const signed = signEvent(unhashed as Pdu, version, serverName, signingKey);
    const size = Buffer.byteLength(JSON.stringify(signed), 'utf8');
    if (size > MAX_PDU_BYTES) throw new MatrixError('M_TOO_LARGE', 413, `Event is ${size} bytes; the limit is ${MAX_PDU_BYTES}`);
    return withEventId(signed, version);
  }

  private async persist(
    roomId: string,
    event: RoomEvent,
    opts: {
      stateGroupBefore: number | null;
      prevStateEventId: string | null;
      txn?: { userId: string; deviceId: string; txnId: string; scope?: readonly string[] };
      redactTarget?: StoredEvent;
      room?: { version: RoomVersion; creator: string };
      stateBefore?: Map<string, string>;
    },
  ): Promise<StoredEvent> {
    const { events, notifier } = this.deps;
    const wake = new Set(await events.members(roomId, ['join', 'invite', 'knock']));
    if (event.type === 'm.room.member' && event.state_key) wake.add(event.state_key);
    // Events of different rooms committed meanwhile share a transaction (one disk sync).
    return this.committer.submit(async (tx) => {
      if (opts.room) {
        await events.insertRoom(tx, {
          roomId,
          roomVersion: opts.room.version.id,
          creator: opts.room.creator,
          isPublic: false,
          createdTs: event.origin_server_ts,
        });
      }
      const { streamOrdering } = await events.persist(tx, {
        event,
        roomId,
        stateGroupBefore: opts.stateGroupBefore,
        prevStateEventId: opts.prevStateEventId,
        txn: opts.txn,
        updateCurrentState: true,
        stateBefore: opts.stateBefore,
      });
      if (opts.redactTarget) await events.markRedacted(tx, opts.redactTarget.event.event_id, event.event_id);
      tx.onCommit(() =>
        notifier.publish(
          {
            stream: 'events',
            position: streamOrdering,
            roomId,
            eventId: event.event_id,
            type: event.type,
            stateKey: event.state_key,
            sender: event.sender,
          },
          wake,
        ),
      );
      return {
        event,
        roomId,
        streamOrdering,
        prevStateEventId: opts.prevStateEventId,
        redactedBy: null,
        txnId: opts.txn?.txnId ?? null,
        txnDeviceId: opts.txn?.deviceId ?? null,
        rejected: null,
        outlier: false,
      } satisfies StoredEvent;
    });
  }
}
