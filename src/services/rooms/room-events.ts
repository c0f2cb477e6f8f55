import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { errors, MatrixError } from '../../errors.js';
import { authEventKeysFor } from '../../protocol/auth-events.js';
import { authorizeEvent } from '../../protocol/event-auth.js';
import { eventIdFromSignable, generateLegacyEventId, roomIdFromCreateEvent } from '../../protocol/event-id.js';
import { stateKeyOf, type EventReference, type Pdu, type RoomEvent } from '../../protocol/event.js';
import { attachEventSignature, ED25519_SIGNATURE_BASE64_LENGTH, prepareEventSignature } from '../../protocol/event-signing.js';
import type { JsonObject } from '../../protocol/json.js';
import { canRedact } from '../../protocol/power-levels.js';
import { getRoomVersion, type RoomVersion } from '../../protocol/room-versions.js';
import type { SigningKey } from '../../protocol/signing.js';
import type { Database, Tx } from '../../storage/db.js';
import type { EventStore, StateIds, StoredEvent } from '../../storage/stores/events.js';
import type { Notifier } from '../../streams/notifier.js';
import { EventSigner } from './event-signer.js';
import { KeyedMutex } from '../../util/mutex.js';
import { GroupCommitter } from './group-commit.js';

/** At most this many forward extremities are referenced as prev_events. */
const MAX_PREV_EVENTS = 10;
const MAX_DEPTH = Number.MAX_SAFE_INTEGER;
/** Events over 64 KiB are refused (server-server-api "Size limits"). */
export const MAX_PDU_BYTES = 65536;
/** Stands in for this server's signature when measuring an event before it is signed. */
const SIGNATURE_PLACEHOLDER = 'A'.repeat(ED25519_SIGNATURE_BASE64_LENGTH);

/**
 * A local event whose ID, hashes and content are final: `event` lacks only this server's
 * signature, which `signed` resolves with (the event as it is written and returned).
 */
interface PreparedEvent {
  event: RoomEvent;
  signed: Promise<RoomEvent>;
}

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

/**
 * Work done for each local event inside its own write (push-rule evaluation): `prepare` reads
 * what it needs before the write and returns the part that runs in the write's transaction.
 * Events written under `withStreamLock` (by others) are announced with `unsettle` before and
 * `settle` after, which must process them.
 */
export interface LocalEventProcessor {
  prepare(roomId: string, event: RoomEvent, stateAfter: ReadonlyMap<string, string>): Promise<(tx: Tx, streamOrdering: number) => Promise<void>>;
  unsettle(): void;
  settle(): Promise<void>;
}

/**
 * A room's latest local event, queued for writing but not committed: a message with a single
 * extremity, so the room's state and state group after it are those before it, and the next
 * message can be built on it at once (its write checks that this one was written).
 */
/** Where an event's write stands: the transaction of its latest attempt, and whether it committed. */
interface WriteState {
  writtenIn?: Tx;
  committed?: boolean;
}

interface PendingHead {
  event: RoomEvent;
  stateIds: StateIds;
  stateGroup: number;
  done: Promise<StoredEvent>;
  write: WriteState;
  /**
   * Not to be built on (not a message on a single extremity, or events were written by others
   * since): the room's next event waits for it to commit and reads the stored room.
   */
  stale?: boolean;
}

export interface RoomEventsDeps {
  serverName: string;
  signingKey: SigningKey;
  database: Database;
  events: EventStore;
  notifier: Notifier;
  log: Logger;
  now?: () => number;
  /** Makes the events' signatures (with `signingKey`); by default on the main thread. */
  signer?: EventSigner;
}

/**
 * Builds, signs, authorises and persists local events: build → hash → authorise → persist →
 * notify, the signature being made meanwhile (by the signer, maybe on another thread) and
 * attached before the write. Creation in one room is serialised so prev_events never fork locally, and writes to
 * the event stream are serialised so stream positions follow commit order.
 */
export class RoomEvents {
  private readonly roomLocks = new KeyedMutex();
  private readonly committer: GroupCommitter;
  private readonly now: () => number;
  private readonly signer: EventSigner;
  private processor: LocalEventProcessor | undefined;
  /**
   * Set by federation wiring: runs for every event made by send(), after authorisation and
   * before the event's own beforePersist (the room's policy server signs it there). It gets
   * the event without this server's signature, and `signed` for the event with it; it returns
   * `event` itself to keep the event as it is, or the signed event with more signatures.
   * Throwing aborts the send.
   */
  beforePersist?: (event: RoomEvent, version: RoomVersion, signed: () => Promise<RoomEvent>) => Promise<RoomEvent>;
  /** Per room, the latest local event submitted for writing and not yet committed. */
  private readonly heads = new Map<string, PendingHead>();
  /** Sends in progress by transaction ID: a retransmission meanwhile gets the same answer. */
  private readonly inflight = new Map<string, Promise<StoredEvent>>();

  constructor(private readonly deps: RoomEventsDeps) {
    this.now = deps.now ?? Date.now;
    this.committer = new GroupCommitter(deps.database);
    this.signer = deps.signer ?? new EventSigner({ key: deps.signingKey, log: deps.log, backend: 'inline' });
  }

  /** Ends the signer's thread; events made later are signed on the main thread. */
  stop(): Promise<void> {
    return this.signer.stop();
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
    const processor = this.processor;
    return this.committer.exclusive(async () => {
      processor?.unsettle();
      try {
        return await fn();
      } finally {
        // The room state may have changed: messages queued meanwhile are not built on further.
        for (const head of this.heads.values()) head.stale = true;
        await processor?.settle().catch((err: unknown) => this.deps.log.error({ err }, 'processing events written by others failed'));
      }
    });
  }

  /**
   * Sets what runs inside every local event's write, and lets it catch up (holding the
   * stream lock) with what was written before.
   */
  setLocalEventProcessor(processor: LocalEventProcessor): Promise<void> {
    this.processor = processor;
    return this.committer.exclusive(() => processor.settle());
  }

  async roomVersionOf(roomId: string): Promise<RoomVersion> {
    const room = await this.deps.events.getRoom(roomId);
    if (!room) throw errors.notFound(`Unknown room ${roomId}`);
    const version = getRoomVersion(room.roomVersion);
    if (!version) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', 400, `Room version ${room.roomVersion} is not supported`);
    return version;
  }

  /**
   * Creates and persists an event in an existing room; the caller must not hold the room lock.
   * The lock is held only until the event is queued for writing: the room's next event can be
   * built on it meanwhile (see PendingHead), and the promise resolves once it is committed.
   */
  send(ev: NewEvent): Promise<StoredEvent> {
    const key = ev.txn && [ev.sender, ev.txn.deviceId, ...(ev.txn.scope ?? []), ev.txn.txnId].join('\u0000');
    const running = key !== undefined ? this.inflight.get(key) : undefined;
    if (running) return running;
    const p = this.roomLocks.run(ev.roomId, () => this.submitLocked(ev)).then((s) => s.done);
    if (key !== undefined) {
      this.inflight.set(key, p);
      const forget = () => {
        if (this.inflight.get(key) === p) this.inflight.delete(key);
      };
      p.then(forget, forget);
    }
    return p;
  }

  /** As send(), for a caller that already holds the room lock; resolves once committed. */
  async sendLocked(ev: NewEvent): Promise<StoredEvent> {
    return (await this.submitLocked(ev)).done;
  }

  /**
   * Builds, signs and authorises the event and queues its write. A message following a
   * pending message of the room is built on it directly; anything else first waits for the
   * room's pending event to commit (it needs the stored state, extremities or target).
   */
  private async submitLocked(ev: NewEvent): Promise<{ done: Promise<StoredEvent> }> {
    const { events } = this.deps;
    let head = this.heads.get(ev.roomId);
    const chainable = ev.stateKey === undefined && ev.type !== 'm.room.redaction' && !ev.beforePersist;
    if (head && (!chainable || head.stale)) {
      await head.done.catch(() => undefined);
      head = this.heads.get(ev.roomId);
      if (head) throw new Error('a pending event remained after its commit');
    }
    const version = await this.roomVersionOf(ev.roomId);
    const stateIds = head ? head.stateIds : await events.getCurrentStateIds(ev.roomId);
    const extremities = head ? [head.event.event_id] : await events.getForwardExtremities(ev.roomId);
    const prevIds = extremities.slice(-MAX_PREV_EVENTS);
    const prevs = head ? new Map([[head.event.event_id, head.event]]) : new Map([...(await events.getEvents(prevIds))].map(([id, s]) => [id, s.event]));
    const keys = authEventKeysFor(
      { type: ev.type, sender: ev.sender, state_key: ev.stateKey, content: ev.content },
      version,
    );
    const authIds = keys.map(([t, k]) => stateIds.get(stateKeyOf(t, k))).filter((id): id is string => !!id);
    const authStored = await events.getEvents(authIds);
    const depth = Math.min(MAX_DEPTH, Math.max(0, ...[...prevs.values()].map((p) => p.depth)) + 1);

    const pdu: Pdu = {
      room_id: ev.roomId,
      type: ev.type,
      sender: ev.sender,
      content: ev.content,
      origin_server_ts: ev.ts ?? this.now(),
      prev_events: prevIds.map((id) => this.reference(prevs.get(id), id, version)),
      auth_events: authIds.map((id) => this.reference(authStored.get(id)?.event, id, version)),
      depth,
      hashes: { sha256: '' },
      signatures: {},
    };
    if (ev.stateKey !== undefined) pdu.state_key = ev.stateKey;
    if (ev.redacts !== undefined && !version.redactsInContent) pdu.redacts = ev.redacts;
    const { event, signed } = this.finish(pdu, version);

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
    const stateGroupBefore = head ? head.stateGroup : prevIds.length ? (await events.getStateGroupOf(prevIds[prevIds.length - 1]!)) ?? null : null;
    let final: RoomEvent = event;
    let finalSigned = signed;
    if (this.beforePersist) {
      const checked = await this.beforePersist(event, version, () => signed);
      if (checked !== event) {
        final = checked;
        finalSigned = Promise.resolve(checked);
      }
    }
    if (ev.beforePersist) {
      final = await ev.beforePersist(await finalSigned, version);
      finalSigned = Promise.resolve(final);
    }
    if (final.event_id !== event.event_id) throw new Error('beforePersist changed the event');
    let stateAfter: ReadonlyMap<string, string> = stateIds;
    if (final.state_key !== undefined) stateAfter = new Map(stateIds).set(stateKeyOf(final.type, final.state_key), final.event_id);
    const extremitiesAfter = [...extremities.filter((id) => !prevIds.includes(id)), final.event_id];
    return this.submit(ev.roomId, { event: final, signed: finalSigned }, {
      stateBefore: prevIds.length > 1 ? stateIds : undefined,
      stateGroupBefore,
      prevStateEventId,
      txn: ev.txn && { userId: ev.sender, ...ev.txn },
      redactTarget,
      stateAfter,
      after: head?.write,
      // Only a message on a single extremity keeps the state group it starts from, which the
      // next message needs before this one is written.
      head: final.state_key === undefined && prevIds.length <= 1 && stateGroupBefore !== null && extremitiesAfter.length === 1
        ? { stateIds, stateGroup: stateGroupBefore }
        : undefined,
    });
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
    const prepared = this.finish(pdu, version);
    const { event } = prepared;
    const finalRoomId = version.roomIdIsCreateEventHash ? roomIdFromCreateEvent(event, version) : roomId!;
    const verdict = authorizeEvent(event, [], version);
    if (!verdict.allowed) throw errors.badJson(`Invalid room creation: ${verdict.reason}`);
    return this.roomLocks.run(finalRoomId, async () => {
      if (await this.deps.events.getRoom(finalRoomId)) throw new MatrixError('M_ROOM_IN_USE', 400, 'Room already exists');
      const stateAfter = new Map([[stateKeyOf('m.room.create', ''), event.event_id]]);
      const { done } = await this.submit(finalRoomId, prepared, { stateGroupBefore: null, prevStateEventId: null, room: { version, creator: sender }, stateAfter });
      return done;
    });
  }

  private reference(event: RoomEvent | undefined, id: string, version: RoomVersion): EventReference {
    if (version.eventFormat !== 1) return id;
    return [id, { sha256: event?.hashes.sha256 ?? '' }];
  }

  /**
   * Adds the legacy event ID where needed and the content hash, computes the event ID, checks
   * the size of the signed event (the signature has a fixed length) and has it signed.
   */
  private finish(pdu: Pdu, version: RoomVersion): PreparedEvent {
    const { serverName, signingKey } = this.deps;
    if (version.eventIdFormat === 'legacy') {
      pdu.event_id = generateLegacyEventId(randomBytes(12).toString('base64url').replace(/[-_]/g, 'x'), serverName);
    }
    const { hashes: _h, ...unhashed } = pdu;
    const { hashed, signable } = prepareEventSignature(unhashed as Pdu, version);
    const size = Buffer.byteLength(JSON.stringify(attachEventSignature(hashed, serverName, signingKey.keyId, SIGNATURE_PLACEHOLDER)), 'utf8');
    if (size > MAX_PDU_BYTES) throw new MatrixError('M_TOO_LARGE', 413, `Event is ${size} bytes; the limit is ${MAX_PDU_BYTES}`);
    const eventId = eventIdFromSignable(hashed, signable, version);
    const event: RoomEvent = { ...hashed, event_id: eventId };
    const signed = this.signer.sign(signable).then((sig): RoomEvent => ({ ...attachEventSignature(hashed, serverName, signingKey.keyId, sig), event_id: eventId }));
    // Awaited by the write; an event refused before it never looks at its signature.
    signed.catch(() => undefined);
    return { event, signed };
  }

  /** Queues the event's write; `done` resolves once it is committed (and announced). */
  private async submit(
    roomId: string,
    { event, signed }: PreparedEvent,
    opts: {
      stateGroupBefore: number | null;
      prevStateEventId: string | null;
      txn?: { userId: string; deviceId: string; txnId: string; scope?: readonly string[] };
      redactTarget?: StoredEvent;
      room?: { version: RoomVersion; creator: string };
      stateBefore?: Map<string, string>;
      /** The room's state including this event. */
      stateAfter: ReadonlyMap<string, string>;
      /** The pending event this one is built on: it must be written first. */
      after?: WriteState;
      /** Set when the room's next message may be built on this one before it commits. */
      head?: { stateIds: StateIds; stateGroup: number };
    },
  ): Promise<{ done: Promise<StoredEvent> }> {
    const { events, notifier } = this.deps;
    const wake = new Set(await events.members(roomId, ['join', 'invite', 'knock']));
    if (event.type === 'm.room.member' && event.state_key) wake.add(event.state_key);
    const processed = this.processor ? await this.processor.prepare(roomId, event, opts.stateAfter) : undefined;
    const written: WriteState = {};
    // Events committed meanwhile share a transaction (one disk sync).
    const done = this.committer.submit(async (tx) => {
      // Made meanwhile, on the signer's thread: usually ready by the time the write runs.
      const signedEvent = await signed;
      // Writes run in submission order: the predecessor is committed or written in this very
      // transaction, unless it failed.
      if (opts.after && !opts.after.committed && opts.after.writtenIn !== tx) {
        throw new MatrixError('M_UNKNOWN', 500, 'The previous event of the room could not be written');
      }
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
        event: signedEvent,
        roomId,
        stateGroupBefore: opts.stateGroupBefore,
        prevStateEventId: opts.prevStateEventId,
        txn: opts.txn,
        updateCurrentState: true,
        stateBefore: opts.stateBefore,
      });
      if (opts.redactTarget) await events.markRedacted(tx, opts.redactTarget.event.event_id, event.event_id);
      written.writtenIn = tx;
      tx.onCommit(() => (written.committed = true));
      // Before the announcement, so whoever it wakes finds the event processed.
      if (processed) await processed(tx, streamOrdering);
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
        event: signedEvent,
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
    // Anything else is not built on: the room's next event waits for this one to commit.
    const head: PendingHead = opts.head
      ? { event, stateIds: opts.head.stateIds, stateGroup: opts.head.stateGroup, done, write: written }
      : { event, stateIds: opts.stateAfter as StateIds, stateGroup: 0, done, write: written, stale: true };
    this.heads.set(roomId, head);
    const clear = () => {
      if (this.heads.get(roomId) === head) this.heads.delete(roomId);
    };
    done.then(clear, clear);
    return { done };
  }
}
