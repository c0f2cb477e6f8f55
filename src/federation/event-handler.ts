/**
 * Events received from other servers: the checks of server-server-api "Checks performed on
 * receipt of a PDU" (format, signatures, hashes, auth against the auth events, against the
 * state before the event, soft failure against the current state), fetching what is missing
 * (prev events through get_missing_events, state through /state_ids and /state, auth chains
 * through /event_auth), and persistence as outliers or timeline events with their state groups,
 * forward extremities and current state (state resolution over the extremities).
 */
import type { Logger } from 'pino';
import { authEventKeysFor } from '../protocol/auth-events.js';
import { authorizeEvent } from '../protocol/event-auth.js';
import { withEventId } from '../protocol/event-id.js';
import { authEventIds, prevEventIds, stateKeyOf, type Pdu, type RoomEvent } from '../protocol/event.js';
import { serverNameOf } from '../protocol/identifiers.js';
import type { JsonObject } from '../protocol/json.js';
import { canRedact } from '../protocol/power-levels.js';
import { getRoomVersion, type RoomVersion } from '../protocol/room-versions.js';
import { resolveStateAsync } from '../protocol/state-res/index.js';
import type { Database, Tx } from '../storage/db.js';
import type { EventStore, StateIds, StoredEvent } from '../storage/stores/events.js';
import type { Notifier } from '../streams/notifier.js';
import type { RoomEvents } from '../services/rooms/room-events.js';
import { serverAllowedByAcl } from './acl.js';
import type { FederationClient } from './client.js';
import type { Keyring } from './keyring.js';
import { checkPdu, PduError } from './pdu.js';
import type { PolicyServers } from './policy-server.js';

export interface EventHandlerDeps {
  serverName: string;
  database: Database;
  events: EventStore;
  roomEvents: RoomEvents;
  notifier: Notifier;
  keyring: Keyring;
  client: FederationClient;
  log: Logger;
  /** Policy-server checks of events received with /send (soft failure without its signature). */
  policy?: PolicyServers;
}

/** Missing prev events asked for at once (get_missing_events limit). */
const MISSING_EVENTS_LIMIT = 20;
/** Above this many unknown state events, /state is used instead of one /event per event. */
const EVENT_BY_EVENT_LIMIT = 20;

export type PduOutcome = { ok: true; eventId: string; status: 'accepted' | 'soft_failed' | 'rejected' | 'known' } | { ok: false; error: string; eventId?: string };

/** The event ID of a raw PDU when it can be computed (for error reports). */
function eventIdOf(raw: unknown, version: RoomVersion | undefined): string | undefined {
  if (!version || typeof raw !== 'object' || raw === null) return undefined;
  try {
    return withEventId(raw as Pdu, version).event_id;
  } catch {
    return undefined;
  }
}

function pduRoomId(raw: unknown): string | undefined {
  return typeof raw === 'object' && raw !== null && typeof (raw as JsonObject)['room_id'] === 'string'
    ? ((raw as JsonObject)['room_id'] as string)
    : undefined;
}

/** Orders events so that each comes after the events of the set it names as auth or prev events. */
export function topologicalOrder(events: RoomEvent[]): RoomEvent[] {
  const byId = new Map(events.map((e) => [e.event_id, e]));
  const out: RoomEvent[] = [];
  const state = new Map<string, 1 | 2>();
  const sorted = [...events].sort((a, b) => a.depth - b.depth || (a.event_id < b.event_id ? -1 : 1));
  for (const root of sorted) {
    if (state.has(root.event_id)) continue;
    const stack: Array<{ ev: RoomEvent; i: number; deps: string[] }> = [];
    const push = (ev: RoomEvent) => {
      state.set(ev.event_id, 1);
      stack.push({ ev, i: 0, deps: [...authEventIds(ev), ...prevEventIds(ev)].filter((d) => byId.has(d)) });
    };
    push(root);
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      if (top.i < top.deps.length) {
        const d = byId.get(top.deps[top.i++]!)!;
        if (!state.has(d.event_id)) push(d);
      } else {
        stack.pop();
        state.set(top.ev.event_id, 2);
        out.push(top.ev);
      }
    }
  }
  return out;
}

export class FederationEventHandler {
  constructor(private readonly deps: EventHandlerDeps) {}

  private get events(): EventStore {
    return this.deps.events;
  }

  async roomVersion(roomId: string): Promise<RoomVersion | undefined> {
    const room = await this.events.getRoom(roomId);
    return room ? getRoomVersion(room.roomVersion) : undefined;
  }

  /** Whether the room's current server ACL lets `server` take part. */
  async serverAllowed(roomId: string, server: string): Promise<boolean> {
    const acl = await this.events.getCurrentStateEvent(roomId, 'm.room.server_acl', '');
    return serverAllowedByAcl(acl?.event.content, server);
  }

  async createEventOf(roomId: string): Promise<RoomEvent | undefined> {
    return (await this.events.getCurrentStateEvent(roomId, 'm.room.create', ''))?.event;
  }

  /** One PDU of a /send transaction: checks, fetches what is missing, persists. Never throws. */
  async receivePdu(origin: string, raw: unknown): Promise<PduOutcome> {
    const roomId = pduRoomId(raw);
    if (!roomId) return { ok: false, error: 'PDU has no room_id' };
    let version: RoomVersion | undefined;
    try {
      version = await this.roomVersion(roomId);
      if (!version) return { ok: false, error: `Unknown room ${roomId}` };
      if (!(await this.serverAllowed(roomId, origin))) return { ok: false, error: 'Server is denied by the room ACL', eventId: eventIdOf(raw, version) };
      const { event } = await checkPdu(raw, version, roomId, this.deps.keyring);
      const sender = serverNameOf(event.sender)!;
      if (!(await this.serverAllowed(roomId, sender))) return { ok: false, error: "Sender's server is denied by the room ACL", eventId: event.event_id };
      const v = version;
      return await this.deps.roomEvents.withRoomLock(roomId, async () => {
        const existing = await this.events.getEvent(event.event_id);
        if (existing) return { ok: true as const, eventId: event.event_id, status: 'known' as const };
        const status = await this.processTimelineEvent(origin, roomId, v, event, true, true);
        return { ok: true as const, eventId: event.event_id, status };
      });
    } catch (err) {
      if (!(err instanceof PduError)) this.deps.log.warn({ err, roomId, origin }, 'could not process a received PDU');
      return { ok: false, error: err instanceof Error ? err.message : String(err), eventId: eventIdOf(raw, version) };
    }
  }

  /**
   * Processes a checked event as a timeline event (caller holds the room lock): fetches missing
   * prev events and state, authorises, persists and updates extremities and current state.
   * `checkPolicy`: events received with /send (and the missing events fetched for them) are
   * also soft-failed without a valid signature of the room's policy server.
   */
  async processTimelineEvent(
    origin: string,
    roomId: string,
    version: RoomVersion,
    received: RoomEvent,
    fetchMissing: boolean,
    checkPolicy = false,
  ): Promise<'accepted' | 'soft_failed' | 'rejected'> {
    let event = received;
    const prevIds = prevEventIds(event);
    if (fetchMissing) {
      const known = await this.statefulEvents(prevIds);
      if (prevIds.some((p) => !known.has(p))) await this.fetchMissingPrevs(origin, roomId, version, event);
    }
    // The state after each prev event: from the store, or fetched from the origin.
    const known = await this.statefulEvents(prevIds);
    const sets: StateIds[] = [];
    for (const p of prevIds) {
      const s = known.has(p) ? await this.events.getStateIdsAfter(p) : await this.fetchStateAfter(origin, roomId, version, p);
      if (s) sets.push(s);
    }
    const stateBefore = sets.length === 0 ? new Map<string, string>() : sets.length === 1 ? new Map(sets[0]) : await this.resolve(version, sets);
    // Prev events still missing (more were missed than get_missing_events returns): a gap in
    // the timeline before this event, filled by backfill when a client pages back to it.
    const gapBefore = prevIds.filter((p) => !known.has(p));

    await this.ensureAuthEvents(origin, roomId, version, [event]);
    let rejected = await this.authAgainstAuthEvents(roomId, version, event);
    if (!rejected) rejected = await this.authAgainstState(roomId, version, event, stateBefore);
    let softFailed = false;
    if (!rejected) {
      const current = await this.events.getCurrentStateIds(roomId);
      softFailed = !!(await this.authAgainstState(roomId, version, event, current));
      if (!softFailed && checkPolicy && this.deps.policy) {
        // Server-server-api "Validating Policy Server signatures": asked once more when the
        // signature is missing or invalid; stored with the new signature when one is given.
        const verdict = await this.deps.policy.checkReceived(event, version);
        event = verdict.event;
        if (!verdict.ok) {
          softFailed = true;
          this.deps.log.info({ roomId, eventId: event.event_id, reason: verdict.reason }, 'no valid policy-server signature on a received event');
        }
      }
    }
    await this.persistTimeline(roomId, version, event, stateBefore, prevIds, { rejected, softFailed, gapBefore });
    if (rejected) this.deps.log.info({ roomId, eventId: event.event_id, reason: rejected }, 'rejected a received event');
    else if (softFailed) this.deps.log.info({ roomId, eventId: event.event_id }, 'soft-failed a received event');
    return rejected ? 'rejected' : softFailed ? 'soft_failed' : 'accepted';
  }

  /** Prev events we hold with a known state (timeline events, soft-failed and rejected ones). */
  private async statefulEvents(ids: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (const id of ids) if ((await this.events.getStateGroupOf(id)) !== undefined) out.add(id);
    return out;
  }

  async resolve(version: RoomVersion, sets: StateIds[], pending: Map<string, RoomEvent> = new Map()): Promise<StateIds> {
    const rejected = new Set<string>();
    return resolveStateAsync(
      version,
      sets,
      async (ids) => {
        const out: RoomEvent[] = [];
        const need = ids.filter((id) => {
          const p = pending.get(id);
          if (p) out.push(p);
          return !p;
        });
        for (const s of (await this.events.getEvents(need)).values()) {
          if (s.rejected) rejected.add(s.event.event_id);
          out.push(s.event);
        }
        return out;
      },
      { isRejected: (id) => rejected.has(id) },
    );
  }

  /** Auth against the event's own auth events (which must all be known and not rejected). */
  private async authAgainstAuthEvents(roomId: string, version: RoomVersion, event: RoomEvent): Promise<string | undefined> {
    const ids = authEventIds(event);
    const stored = await this.events.getEvents(ids);
    for (const id of ids) {
      const s = stored.get(id);
      if (!s) return `auth event ${id} is missing`;
      if (s.rejected) return `auth event ${id} was rejected`;
      if (s.roomId !== roomId) return `auth event ${id} is in another room`;
    }
    const createEvent = version.createEventInAuthEvents ? undefined : await this.createEventOf(roomId);
    const verdict = authorizeEvent(event, [...stored.values()].map((s) => s.event), version, {
      createEvent,
      isRejected: (id) => !!stored.get(id)?.rejected,
    });
    return verdict.allowed ? undefined : `${verdict.reason} (auth rule ${verdict.rule})`;
  }

  /** Auth against a state (the state before the event, or the current state for soft failure). */
  async authAgainstState(roomId: string, version: RoomVersion, event: RoomEvent, state: StateIds): Promise<string | undefined> {
    const keys = authEventKeysFor({ type: event.type, sender: event.sender, state_key: event.state_key, content: event.content }, version);
    const wanted = new Map<string, string>();
    for (const [t, k] of [...keys, ['m.room.create', ''] as [string, string]]) {
      const key = stateKeyOf(t, k);
      const id = state.get(key);
      if (id) wanted.set(key, id);
    }
    const loaded = await this.events.loadStateEvents(wanted);
    const createEvent = loaded.get(stateKeyOf('m.room.create', '')) ?? (await this.createEventOf(roomId));
    const verdict = authorizeEvent(event, loaded, version, { createEvent });
    return verdict.allowed ? undefined : `${verdict.reason} (auth rule ${verdict.rule})`;
  }

  /** Writes a state group holding `state` (a delta over `baseEvent`'s group when there is one). */
  private async stateGroupFor(tx: Tx, roomId: string, state: StateIds, baseEventIds: string[]): Promise<number> {
    for (const id of baseEventIds) {
      const group = await this.events.getStateGroupOf(id, tx.db);
      if (group === undefined) continue;
      const base = await this.events.getStateIdsAtGroup(group, tx.db);
      if ([...base.keys()].some((k) => !state.has(k))) break;
      const delta = [...state].filter(([k, v]) => base.get(k) !== v);
      if (delta.length === 0) return group;
      return this.events.createStateGroup(tx, roomId, group, delta);
    }
    return this.events.createStateGroup(tx, roomId, null, [...state]);
  }

  /** Persists a timeline event; accepted ones move the extremities and the current state. */
  private async persistTimeline(
    roomId: string,
    version: RoomVersion,
    event: RoomEvent,
    stateBefore: StateIds,
    prevIds: string[],
    outcome: { rejected?: string; softFailed: boolean; resetExtremities?: boolean; gapBefore?: string[] },
  ): Promise<number | undefined> {
    const { database, roomEvents, notifier } = this.deps;
    const isState = typeof event.state_key === 'string';
    const key = isState ? stateKeyOf(event.type, event.state_key!) : undefined;
    const accepted = !outcome.rejected && !outcome.softFailed;
    let newCurrent: StateIds | undefined;
    let newExtremities: string[] | undefined;
    if (accepted) {
      const stateAfter = new Map(stateBefore);
      if (key) stateAfter.set(key, event.event_id);
      const prevSet = new Set(prevIds);
      const others = outcome.resetExtremities
        ? []
        : (await this.events.getForwardExtremities(roomId)).filter((id) => !prevSet.has(id) && id !== event.event_id);
      newExtremities = [...others, event.event_id];
      if (others.length === 0) {
        newCurrent = stateAfter;
      } else {
        const sets: StateIds[] = [stateAfter];
        for (const id of others) {
          const s = await this.events.getStateIdsAfter(id);
          if (s) sets.push(s);
        }
        newCurrent = await this.resolve(version, sets, new Map([[event.event_id, event]]));
      }
    }
    let redactTarget: StoredEvent | undefined;
    if (accepted && event.type === 'm.room.redaction') redactTarget = await this.redactionTarget(roomId, version, event, stateBefore);
    const lateRedaction = outcome.rejected ? undefined : await this.heldRedactionOf(roomId, version, event);
    const wake = new Set(await this.events.members(roomId, ['join', 'invite', 'knock']));
    if (event.type === 'm.room.member' && event.state_key) wake.add(event.state_key);

    return roomEvents.withStreamLock(() =>
      database.transaction(async (tx) => {
        const stateGroupBefore = await this.stateGroupFor(tx, roomId, stateBefore, prevIds);
        const { streamOrdering } = await this.events.persist(tx, {
          event,
          roomId,
          stateGroupBefore,
          prevStateEventId: key ? stateBefore.get(key) ?? null : null,
          updateCurrentState: false,
          outlier: !accepted,
          keepState: true,
          rejected: outcome.rejected ?? null,
        });
        if (newExtremities) await this.events.setForwardExtremities(tx, roomId, newExtremities);
        if (newCurrent) await this.events.replaceCurrentState(tx, roomId, newCurrent);
        if (redactTarget) await this.events.markRedacted(tx, redactTarget.event.event_id, event.event_id);
        if (lateRedaction) await this.events.markRedacted(tx, event.event_id, lateRedaction);
        if (accepted && outcome.gapBefore?.length) await this.events.addBackwardExtremities(tx, roomId, event.event_id, outcome.gapBefore);
        if (accepted) {
          tx.onCommit(() =>
            notifier.publish(
              { stream: 'events', position: streamOrdering, roomId, eventId: event.event_id, type: event.type, stateKey: event.state_key, sender: event.sender },
              wake,
            ),
          );
        }
        return streamOrdering;
      }),
    );
  }

  /**
   * Persists our own membership event in a room joined (or knocked, left) through another
   * server, with the state that server returned: the event becomes the only forward extremity.
   */
  async persistWithState(roomId: string, version: RoomVersion, event: RoomEvent, stateBefore: StateIds): Promise<void> {
    const rejected = await this.authAgainstState(roomId, version, event, stateBefore);
    if (rejected) throw new PduError(`The resident server's state does not allow the event: ${rejected}`);
    await this.persistTimeline(roomId, version, event, stateBefore, prevEventIds(event), { softFailed: false, resetExtremities: true });
  }

  private async redactionTarget(roomId: string, version: RoomVersion, event: RoomEvent, state: StateIds): Promise<StoredEvent | undefined> {
    const target = version.redactsInContent ? event.content['redacts'] : event.redacts;
    if (typeof target !== 'string') return undefined;
    const stored = await this.events.getEvent(target);
    if (!stored || stored.roomId !== roomId) return undefined;
    if (serverNameOf(stored.event.sender) === serverNameOf(event.sender)) return stored;
    const loaded = await this.events.loadStateEvents(state);
    return canRedact(loaded, event.sender, stored.event.sender === event.sender, version) ? stored : undefined;
  }

  /**
   * A redaction already stored for `event` (it arrived first: the event comes later through
   * backfill or federation), when it may redact it: same server as the event's sender, or a
   * sender allowed to redact others in the state before the redaction. Returns its ID.
   */
  private async heldRedactionOf(roomId: string, version: RoomVersion, event: RoomEvent): Promise<string | undefined> {
    for (const r of await this.events.redactionsOf(event.event_id)) {
      if (r.roomId !== roomId) continue;
      if (serverNameOf(r.event.sender) === serverNameOf(event.sender)) return r.event.event_id;
      const state = await this.events.getStateIdsAfter(r.event.event_id);
      if (!state) continue;
      const loaded = await this.events.loadStateEvents(state);
      if (canRedact(loaded, r.event.sender, r.event.sender === event.sender, version)) return r.event.event_id;
    }
    return undefined;
  }

  /** Asks the origin for the events between our extremities and `event` (get_missing_events). */
  private async fetchMissingPrevs(origin: string, roomId: string, version: RoomVersion, event: RoomEvent): Promise<void> {
    const extremities = await this.events.getForwardExtremities(roomId);
    const ext = await this.events.getEvents(extremities);
    const minDepth = Math.max(0, Math.min(...[...ext.values()].map((e) => e.event.depth), event.depth) - 1);
    let res: { events?: unknown[] };
    try {
      res = await this.deps.client.post(origin, `/_matrix/federation/v1/get_missing_events/${encodeURIComponent(roomId)}`, {
        earliest_events: extremities,
        latest_events: [event.event_id],
        limit: MISSING_EVENTS_LIMIT,
        min_depth: minDepth,
      });
    } catch (err) {
      this.deps.log.info({ err, origin, roomId }, 'get_missing_events failed; fetching state instead');
      return;
    }
    const checked: RoomEvent[] = [];
    for (const raw of Array.isArray(res.events) ? res.events : []) {
      try {
        checked.push((await checkPdu(raw, version, roomId, this.deps.keyring)).event);
      } catch (err) {
        this.deps.log.info({ err: (err as Error).message, origin, roomId }, 'dropped a missing event');
      }
    }
    for (const ev of topologicalOrder(checked)) {
      if (ev.event_id === event.event_id || (await this.events.getEvent(ev.event_id))) continue;
      await this.processTimelineEvent(origin, roomId, version, ev, false, true);
    }
  }

  /** The state after `eventId`, from the origin's /state_ids (fetching unknown events as outliers). */
  private async fetchStateAfter(origin: string, roomId: string, version: RoomVersion, eventId: string): Promise<StateIds | undefined> {
    return this.fetchState(origin, roomId, version, eventId, true);
  }

  /**
   * The state at `eventId` from the origin's /state_ids: before the event, or after it
   * (`after`: the event itself, fetched when unknown, added when it is a state event).
   */
  private async fetchState(origin: string, roomId: string, version: RoomVersion, eventId: string, after: boolean): Promise<StateIds | undefined> {
    const res = await this.deps.client.get<{ pdu_ids?: unknown; auth_chain_ids?: unknown }>(
      origin,
      `/_matrix/federation/v1/state_ids/${encodeURIComponent(roomId)}`,
      { query: { event_id: eventId } },
    );
    const stateIds = Array.isArray(res.pdu_ids) ? res.pdu_ids.filter((x): x is string => typeof x === 'string') : [];
    const authIds = Array.isArray(res.auth_chain_ids) ? res.auth_chain_ids.filter((x): x is string => typeof x === 'string') : [];
    const wanted = [...new Set([...stateIds, ...authIds, ...(after ? [eventId] : [])])];
    const have = await this.events.haveEvents(wanted);
    const missing = wanted.filter((id) => !have.has(id));
    if (missing.length > EVENT_BY_EVENT_LIMIT) {
      const full = await this.deps.client.get<{ pdus?: unknown[]; auth_chain?: unknown[] }>(
        origin,
        `/_matrix/federation/v1/state/${encodeURIComponent(roomId)}`,
        { query: { event_id: eventId } },
      );
      await this.persistOutliers(origin, roomId, version, [...(full.pdus ?? []), ...(full.auth_chain ?? [])]);
    }
    const still = missing;
    const have2 = await this.events.haveEvents(still);
    const raws: unknown[] = [];
    for (const id of still.filter((x) => !have2.has(x))) {
      try {
        const r = await this.deps.client.get<{ pdus?: unknown[] }>(origin, `/_matrix/federation/v1/event/${encodeURIComponent(id)}`);
        if (Array.isArray(r.pdus) && r.pdus[0]) raws.push(r.pdus[0]);
      } catch (err) {
        this.deps.log.info({ err: (err as Error).message, origin, id }, 'could not fetch a state event');
      }
    }
    await this.persistOutliers(origin, roomId, version, raws);
    const evs = await this.events.getEvents([...stateIds, eventId]);
    const state: StateIds = new Map();
    for (const id of stateIds) {
      const e = evs.get(id);
      if (e && typeof e.event.state_key === 'string' && !e.rejected) state.set(stateKeyOf(e.event.type, e.event.state_key), id);
    }
    const prev = after ? evs.get(eventId) : undefined;
    if (prev && typeof prev.event.state_key === 'string' && !prev.rejected) state.set(stateKeyOf(prev.event.type, prev.event.state_key), eventId);
    return state;
  }

  /** The next free backfill positions (below every stored event), reserved in memory. */
  private backfillFloor: number | undefined;

  private async reserveBackfillPositions(n: number): Promise<number> {
    const dbMin = await this.events.minStreamOrdering();
    const floor = Math.min(this.backfillFloor ?? dbMin, dbMin);
    this.backfillFloor = floor - n;
    return floor - n;
  }

  /**
   * Stores history fetched with /backfill (events older than the room's known timeline). Each
   * event is checked (format, signatures, content hash), its auth events fetched when missing,
   * authorised against them and against the state before it (the states after its prev events,
   * or the origin's /state_ids when a prev event is unknown), and written with a negative stream
   * position below every stored event: /messages serves it before the known timeline while
   * /sync, which only reads forwards, never sees it. Known outliers (state received with a
   * join) become timeline events the same way. Returns how many events joined the timeline.
   *
   * `gap`: the events fill a gap in the middle of the timeline, just before the event at stream
   * position `anchor` (see EventStore.roomTimeline). Only the events reached from `from` (the
   * missing prev events) without passing an event already in the timeline are taken: the
   * answer may go on past the gap into older history, which stays where it belongs. Their prev
   * events still missing become backward extremities in turn, and the ones they fill are forgotten.
   */
  async persistBackfill(origin: string, roomId: string, version: RoomVersion, raws: unknown[], gap?: { anchor: number; from: string[] }): Promise<number> {
    const anchor = gap?.anchor;
    const checked = await this.checkMany(raws, version, roomId);
    return this.deps.roomEvents.withRoomLock(roomId, async () => {
      const stored = await this.events.getEvents(checked.map((e) => e.event_id));
      const seen = new Set<string>();
      let fresh = checked.filter((e) => {
        if (seen.has(e.event_id)) return false;
        seen.add(e.event_id);
        const s = stored.get(e.event_id);
        return !s || (s.outlier && !s.rejected && s.roomId === roomId);
      });
      if (gap) {
        const byId = new Map(fresh.map((e) => [e.event_id, e]));
        const reached = new Set<string>();
        const stack = gap.from.filter((id) => byId.has(id));
        while (stack.length) {
          const id = stack.pop()!;
          if (reached.has(id)) continue;
          reached.add(id);
          for (const p of prevEventIds(byId.get(id)!)) if (byId.has(p) && !reached.has(p)) stack.push(p);
        }
        fresh = fresh.filter((e) => reached.has(e.event_id));
      }
      if (!fresh.length) return 0;
      await this.ensureAuthEvents(origin, roomId, version, fresh.filter((e) => !stored.has(e.event_id)));
      const ordered = topologicalOrder(fresh);
      // Oldest first; the newest gets the highest of the reserved (negative) positions.
      const base = await this.reserveBackfillPositions(ordered.length);
      const batchAfter = new Map<string, StateIds>();
      const pending = new Map(ordered.map((e) => [e.event_id, e]));
      let count = 0;
      const placed: RoomEvent[] = [];
      for (const [i, ev] of ordered.entries()) {
        const prevs = prevEventIds(ev);
        const sets: StateIds[] = [];
        let missing = false;
        for (const p of prevs) {
          const inBatch = batchAfter.get(p);
          if (inBatch) {
            sets.push(inBatch);
            continue;
          }
          const s = (await this.events.getStateGroupOf(p)) !== undefined ? await this.events.getStateIdsAfter(p) : undefined;
          if (s) sets.push(s);
          else missing = true;
        }
        let stateBefore: StateIds | undefined;
        if (prevs.length === 0) stateBefore = new Map();
        else if (missing) {
          stateBefore = await this.fetchState(origin, roomId, version, ev.event_id, false).catch((err: unknown) => {
            this.deps.log.info({ err: (err as Error).message, origin, roomId, eventId: ev.event_id }, 'could not fetch the state of a backfilled event');
            return undefined;
          });
        } else if (sets.length === 1) stateBefore = new Map(sets[0]);
        else stateBefore = await this.resolve(version, sets, pending);
        if (!stateBefore) continue;
        let rejected = await this.authAgainstAuthEvents(roomId, version, ev);
        if (!rejected) rejected = await this.authAgainstState(roomId, version, ev, stateBefore);
        const key = typeof ev.state_key === 'string' ? stateKeyOf(ev.type, ev.state_key) : undefined;
        const after = new Map(stateBefore);
        if (key && !rejected) after.set(key, ev.event_id);
        batchAfter.set(ev.event_id, after);
        const redactTarget = !rejected && ev.type === 'm.room.redaction' ? await this.redactionTarget(roomId, version, ev, stateBefore) : undefined;
        const lateRedaction = rejected ? undefined : await this.heldRedactionOf(roomId, version, ev);
        const position = base + i;
        const existing = stored.get(ev.event_id);
        await this.deps.roomEvents.withStreamLock(() =>
          this.deps.database.transaction(async (tx) => {
            const now = await this.events.getEvent(ev.event_id, tx.db);
            if (now && !now.outlier) return;
            const groupBefore = await this.stateGroupFor(tx, roomId, stateBefore!, prevs);
            if (existing && now) {
              if (rejected) return;
              const group = key ? await this.events.createStateGroup(tx, roomId, groupBefore, [[key, ev.event_id]]) : groupBefore;
              await this.events.promoteOutlier(tx, ev.event_id, position, group, key ? stateBefore!.get(key) ?? null : null, anchor);
            } else {
              await this.events.persist(tx, {
                event: ev,
                roomId,
                stateGroupBefore: groupBefore,
                prevStateEventId: key ? stateBefore!.get(key) ?? null : null,
                updateCurrentState: false,
                outlier: !!rejected,
                keepState: true,
                rejected: rejected ?? null,
                streamOrdering: position,
                ...(anchor !== undefined ? { timelineAnchor: anchor } : {}),
              });
            }
            if (redactTarget) await this.events.markRedacted(tx, redactTarget.event.event_id, ev.event_id);
            if (lateRedaction) await this.events.markRedacted(tx, ev.event_id, lateRedaction);
            if (!rejected) {
              count++;
              placed.push(ev);
            }
          }),
        );
        if (rejected) this.deps.log.info({ roomId, eventId: ev.event_id, reason: rejected }, 'rejected a backfilled event');
      }
      if (anchor !== undefined && placed.length) await this.updateBackwardExtremities(roomId, placed);
      return count;
    });
  }

  /**
   * After events joined a gap of the timeline: they are no longer backward extremities, and
   * their prev events not held (absent, or only known as outliers) become ones.
   */
  private async updateBackwardExtremities(roomId: string, placed: RoomEvent[]): Promise<void> {
    const prevs = [...new Set(placed.flatMap((e) => prevEventIds(e)))];
    const held = await this.events.getEvents(prevs);
    const missing = (id: string) => {
      const s = held.get(id);
      return !s || (s.outlier && !s.rejected);
    };
    await this.deps.database.transaction(async (tx) => {
      await this.events.removeBackwardExtremities(tx, placed.map((e) => e.event_id));
      for (const ev of placed) await this.events.addBackwardExtremities(tx, roomId, ev.event_id, prevEventIds(ev).filter(missing));
    });
  }

  /** Makes sure the auth events of `events` are stored, fetching auth chains through /event_auth. */
  async ensureAuthEvents(origin: string, roomId: string, version: RoomVersion, events: RoomEvent[]): Promise<void> {
    for (const ev of events) {
      const ids = authEventIds(ev);
      const have = await this.events.haveEvents(ids);
      if (ids.every((id) => have.has(id))) continue;
      try {
        const res = await this.deps.client.get<{ auth_chain?: unknown[] }>(
          origin,
          `/_matrix/federation/v1/event_auth/${encodeURIComponent(roomId)}/${encodeURIComponent(ev.event_id)}`,
        );
        await this.persistOutliers(origin, roomId, version, res.auth_chain ?? []);
      } catch (err) {
        this.deps.log.info({ err: (err as Error).message, origin, roomId }, 'could not fetch an auth chain');
      }
    }
  }

  /**
   * Checks and stores events as outliers (state and auth chains): each is authorised against its
   * own auth events, in auth order; failures are stored as rejected. Returns the checked events.
   */
  async persistOutliers(origin: string, roomId: string, version: RoomVersion, raws: unknown[]): Promise<RoomEvent[]> {
    const checked = await this.checkMany(raws, version, roomId);
    const fresh: RoomEvent[] = [];
    const have = await this.events.haveEvents(checked.map((e) => e.event_id));
    for (const e of checked) if (!have.has(e.event_id)) fresh.push(e);
    if (fresh.length === 0) return checked;
    const ordered = topologicalOrder(fresh);
    const known = new Map<string, { event: RoomEvent; rejected: boolean }>();
    const authIds = new Set(ordered.flatMap((e) => authEventIds(e)));
    for (const s of (await this.events.getEvents(authIds)).values()) known.set(s.event.event_id, { event: s.event, rejected: !!s.rejected });
    const createEvent =
      ordered.find((e) => e.type === 'm.room.create' && e.state_key === '') ?? (await this.createEventOf(roomId));
    const decisions: Array<{ event: RoomEvent; rejected?: string }> = [];
    for (const ev of ordered) {
      const ids = authEventIds(ev);
      const auth = ids.map((id) => known.get(id));
      let rejected: string | undefined;
      if (auth.some((a) => !a)) rejected = 'auth events missing';
      else if (auth.some((a) => a!.rejected)) rejected = 'auth event rejected';
      else {
        const verdict = authorizeEvent(ev, auth.map((a) => a!.event), version, { createEvent: version.createEventInAuthEvents ? undefined : createEvent });
        if (!verdict.allowed) rejected = `${verdict.reason} (auth rule ${verdict.rule})`;
      }
      known.set(ev.event_id, { event: ev, rejected: !!rejected });
      decisions.push({ event: ev, rejected });
    }
    await this.deps.roomEvents.withStreamLock(() =>
      this.deps.database.transaction(async (tx) => {
        for (const d of decisions) {
          if (await this.events.getEvent(d.event.event_id, tx.db)) continue;
          await this.events.persist(tx, {
            event: d.event,
            roomId,
            stateGroupBefore: null,
            prevStateEventId: null,
            updateCurrentState: false,
            outlier: true,
            rejected: d.rejected ?? null,
          });
        }
      }),
    );
    const rejectedCount = decisions.filter((d) => d.rejected).length;
    if (rejectedCount) this.deps.log.info({ roomId, origin, rejected: rejectedCount }, 'rejected events of a received state or auth chain');
    return checked;
  }

  /** Checks many PDUs (signatures in parallel batches); drops the ones that fail. */
  async checkMany(raws: unknown[], version: RoomVersion, roomId: string): Promise<RoomEvent[]> {
    const out: RoomEvent[] = [];
    const BATCH = 64;
    for (let i = 0; i < raws.length; i += BATCH) {
      const results = await Promise.allSettled(raws.slice(i, i + BATCH).map((r) => checkPdu(r, version, roomId, this.deps.keyring)));
      for (const r of results) {
        if (r.status === 'fulfilled') out.push(r.value.event);
        else this.deps.log.info({ err: (r.reason as Error).message, roomId }, 'dropped a received event');
      }
    }
    return out;
  }
}
