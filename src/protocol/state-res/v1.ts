/**
 * The original state resolution algorithm (room version 1).
 *
 * A key is conflicted when two state sets hold different events for it (a key
 * missing from some sets is not a conflict). Conflicts are resolved in passes over
 * R, the union of the unconflicted entries: power levels, then join rules, then
 * memberships (each key against R as it stood after the join rules), then every
 * other key.
 */
import { createHash } from 'node:crypto';
import type { RoomEvent, StateMap } from '../event.js';
import { parseStateKey } from '../event.js';
import { authTypesForEvent, type Authorizer } from './auth.js';
import type { EventGraph } from './graph.js';
import type { StateIds } from './v2.js';

function sha1Hex(s: string): string {
  return createHash('sha1').update(s, 'utf8').digest('hex');
}

export function separateLenient(stateSets: readonly StateIds[]): {
  unconflicted: Map<string, string>;
  conflicted: Map<string, string[]>;
} {
  const unconflicted = new Map<string, string>();
  const conflicted = new Map<string, string[]>();
  for (const set of stateSets) {
    for (const [key, value] of set) {
      const ls = conflicted.get(key);
      if (ls) {
        if (!ls.includes(value)) ls.push(value);
        continue;
      }
      const u = unconflicted.get(key);
      if (u === undefined) unconflicted.set(key, value);
      else if (u !== value) {
        unconflicted.delete(key);
        conflicted.set(key, [u, value]);
      }
    }
  }
  return { unconflicted, conflicted };
}

export function resolveV1(
  graph: EventGraph,
  stateSets: readonly StateIds[],
  authorize: Authorizer,
): Map<string, string> {
  const version = graph.version;
  const { unconflicted, conflicted } = separateLenient(stateSets);
  if (conflicted.size === 0) return unconflicted;

  const r = unconflicted; // R, updated in place
  const eventOf = (id: string): RoomEvent | undefined => graph.event(graph.intern(id));
  const allowedIn = (ev: RoomEvent, state: ReadonlyMap<string, string>, overlay?: [string, RoomEvent]): boolean => {
    const authMap: StateMap = new Map<string, RoomEvent>();
    for (const k of authTypesForEvent(ev, version)) {
      if (overlay && overlay[0] === k) {
        authMap.set(k, overlay[1]);
        continue;
      }
      const id = state.get(k);
      const a = id === undefined ? undefined : eventOf(id);
      if (a) authMap.set(k, a);
    }
    return authorize(ev, authMap, version);
  };

  const sortKeys = new Map<string, string>();
  const sha = (id: string): string => {
    let h = sortKeys.get(id);
    if (h === undefined) sortKeys.set(id, (h = sha1Hex(id)));
    return h;
  };
  /** Ascending depth, then descending sha1(event_id). */
  const ascending = (ids: readonly string[]): RoomEvent[] => {
    const evs = ids.map(eventOf).filter((e): e is RoomEvent => e !== undefined);
    return evs.sort((a, b) => {
      if (a.depth !== b.depth) return a.depth < b.depth ? -1 : 1;
      const ha = sha(a.event_id);
      const hb = sha(b.event_id);
      return ha > hb ? -1 : ha < hb ? 1 : 0;
    });
  };

  /** Power levels / join rules / membership: accept in order until one fails. */
  const resolveAuthKey = (key: string, ids: readonly string[]): string | undefined => {
    const evs = ascending(ids);
    if (evs.length === 0) return undefined;
    let current = evs[0]!;
    for (let k = 1; k < evs.length; k++) {
      const ev = evs[k]!;
      if (!allowedIn(ev, r, [key, current])) break;
      current = ev;
    }
    return current.event_id;
  };

  const typeOf = (key: string): string => parseStateKey(key)[0];
  const keys = [...conflicted.keys()].sort();
  const pass = (match: (type: string) => boolean): void => {
    const decided: [string, string][] = [];
    for (const key of keys) {
      if (!match(typeOf(key))) continue;
      const id = resolveAuthKey(key, conflicted.get(key)!);
      if (id !== undefined) decided.push([key, id]);
    }
    for (const [k, v] of decided) r.set(k, v);
  };
  pass((t) => t === 'm.room.power_levels');
  pass((t) => t === 'm.room.join_rules');
  pass((t) => t === 'm.room.member');

  // Everything else: the highest depth, lowest sha1(event_id) that passes auth in R;
  // if none passes, the lowest of them.
  const decided: [string, string][] = [];
  for (const key of keys) {
    const t = typeOf(key);
    if (t === 'm.room.power_levels' || t === 'm.room.join_rules' || t === 'm.room.member') continue;
    const evs = ascending(conflicted.get(key)!).reverse();
    if (evs.length === 0) continue;
    const chosen = evs.find((ev) => allowedIn(ev, r)) ?? evs[evs.length - 1]!;
    decided.push([key, chosen.event_id]);
  }
  for (const [k, v] of decided) r.set(k, v);
  return r;
}
