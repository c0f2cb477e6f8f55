/**
 * State resolution: the state of a room before an event, from the states after
 * each of its prev_events.
 *
 * State sets map `stateKeyOf(type, state_key)` to event IDs. Resolution is pure and
 * deterministic: the result does not depend on the order of the state sets, of the
 * entries within them, or of events in the source.
 *
 * Readings of the spec where its text leaves room (rooms/v1.md, fragments/v2-state-res.md,
 * rooms/v12.md):
 *  - v2: the "full auth chain" of a state set includes the set's own events, so an
 *    unconflicted event is never part of the auth difference.
 *  - v2 step 1 enlarges the power events with their whole auth chain intersected with the
 *    full conflicted set, and the topological order respects auth reachability within
 *    that set (also through events outside it).
 *  - Rejected events (`EventSource.isRejected`) go through the iterative auth checks like
 *    any other, but are never used as auth events there.
 *  - Events the source does not have are left out of the conflicted sets.
 *  - v12: the create event, not listed in `auth_events`, is treated as an auth event of
 *    every other event (it is derived from the room ID).
 *  - v1: a key missing from some state sets is not a conflict; for "other" keys where no
 *    candidate passes auth, the shallowest candidate is kept.
 */
import { referenceId, type RoomEvent } from '../event.js';
import type { RoomVersion } from '../room-versions.js';
import { defaultAuthorizer, type Authorizer } from './auth.js';
import { createEventIdFromRoomId, EventGraph, type EventSource } from './graph.js';
import { resolveV1 } from './v1.js';
import { resolveV2, type StateIds } from './v2.js';

export type { EventSource } from './graph.js';
export type { Authorizer } from './auth.js';
export type { StateIds } from './v2.js';
export { authTypesForEvent, senderPowerLevel } from './auth.js';
export { isPowerEvent } from './v2.js';

export interface ResolveOptions {
  /** Replaces the authorisation rules (defaults to `authorizeEvent`). */
  authorize?: Authorizer;
}

export function resolveState(
  version: RoomVersion,
  stateSets: readonly StateIds[],
  source: EventSource,
  options: ResolveOptions = {},
): Map<string, string> {
  if (stateSets.length === 0) return new Map();
  if (stateSets.length === 1) return new Map(stateSets[0]);
  const authorize = options.authorize ?? defaultAuthorizer;
  const graph = new EventGraph(source, version);
  switch (version.stateResolution) {
    case 'v1':
      return resolveV1(graph, stateSets, authorize);
    case 'v2':
    case 'v2.1':
      return resolveV2(graph, stateSets, authorize);
  }
}

export interface AsyncResolveOptions extends ResolveOptions {
  /** Whether a loaded event was rejected. */
  isRejected?: (id: string) => boolean;
  /** Largest number of IDs asked for in one `getEvents` call (default 1000). */
  batchSize?: number;
}

/**
 * Loads every event of the state sets and of their auth chains through `getEvents`
 * (which may return fewer events than asked for: unknown ones are skipped), then
 * resolves synchronously.
 */
export async function resolveStateAsync(
  version: RoomVersion,
  stateSets: readonly StateIds[],
  getEvents: (ids: string[]) => Promise<RoomEvent[]>,
  options: AsyncResolveOptions = {},
): Promise<Map<string, string>> {
  const loaded = new Map<string, RoomEvent>();
  const asked = new Set<string>();
  let wanted: string[] = [];
  const want = (id: string): void => {
    if (!asked.has(id)) {
      asked.add(id);
      wanted.push(id);
    }
  };
  for (const set of stateSets) for (const id of set.values()) want(id);
  const batch = Math.max(1, options.batchSize ?? 1000);
  while (wanted.length) {
    const ids = wanted;
    wanted = [];
    for (let k = 0; k < ids.length; k += batch) {
      const got = await getEvents(ids.slice(k, k + batch));
      for (const ev of got) {
        if (!asked.has(ev.event_id) || loaded.has(ev.event_id)) continue;
        loaded.set(ev.event_id, ev);
        for (const ref of ev.auth_events) want(referenceId(ref));
        if (!version.createEventInAuthEvents && ev.type !== 'm.room.create' && typeof ev.room_id === 'string') {
          want(createEventIdFromRoomId(ev.room_id));
        }
      }
    }
  }
  const source: EventSource = {
    getEvent: (id) => loaded.get(id),
    ...(options.isRejected ? { isRejected: options.isRejected } : {}),
  };
  return resolveState(version, stateSets, source, options);
}
