/**
 * State resolution version 2 (room versions 2–11) and its room v12 revision
 * ("v2.1": conflicted state subgraph, iterative auth checks from an empty state,
 * creators of infinite power).
 */
import { referenceId, type RoomEvent, type StateMap } from '../event.js';
import type { RoomVersion } from '../room-versions.js';
import { levelOf, parsePowerLevels, type PowerLevels } from '../power-levels.js';
import { authTypesForEvent, POWER_LEVELS_KEY, type Authorizer } from './auth.js';
import { IndexSet, postOrder, walkAuth, type EventGraph } from './graph.js';
import { Heap } from './heap.js';

export type StateIds = ReadonlyMap<string, string>;

/** Splits state sets into the unconflicted map and the conflicted keys (key -> distinct event IDs). */
export function separateStrict(stateSets: readonly StateIds[]): {
  unconflicted: Map<string, string>;
  conflicted: Map<string, string[]>;
} {
  const unconflicted = new Map<string, string>();
  const conflicted = new Map<string, string[]>();
  const n = stateSets.length;
  for (let s = 0; s < n; s++) {
    const set = stateSets[s]!;
    for (const [key, value] of set) {
      // Each key is decided once, by the first state set that holds it.
      let seenEarlier = false;
      for (let t = 0; t < s; t++) {
        if (stateSets[t]!.has(key)) {
          seenEarlier = true;
          break;
        }
      }
      if (seenEarlier) continue;
      let same = s === 0;
      if (same) {
        for (let t = 1; t < n; t++) {
          if (stateSets[t]!.get(key) !== value) {
            same = false;
            break;
          }
        }
      }
      if (same) {
        unconflicted.set(key, value);
      } else {
        const values: string[] = [];
        for (let t = s; t < n; t++) {
          const v = stateSets[t]!.get(key);
          if (v !== undefined && !values.includes(v)) values.push(v);
        }
        conflicted.set(key, values);
      }
    }
  }
  return { unconflicted, conflicted };
}

/** Power events: power levels, join rules, and kicks/bans of someone other than the sender. */
export function isPowerEvent(ev: RoomEvent): boolean {
  if (typeof ev.state_key !== 'string') return false;
  if (ev.type === 'm.room.power_levels' || ev.type === 'm.room.join_rules') return true;
  if (ev.type === 'm.room.member') {
    const m = ev.content['membership'];
    return (m === 'leave' || m === 'ban') && ev.sender !== ev.state_key;
  }
  return false;
}

/** A state being built over a read-only base without copying it. */
class LayeredState {
  readonly delta = new Map<string, string>();
  constructor(private readonly base: StateIds) {}
  get(key: string): string | undefined {
    const v = this.delta.get(key);
    return v !== undefined ? v : this.base.get(key);
  }
  set(key: string, id: string): void {
    this.delta.set(key, id);
  }
}

function iterativeAuthChecks(
  graph: EventGraph,
  order: readonly number[],
  state: LayeredState,
  authorize: Authorizer,
): void {
  const version = graph.version;
  for (const i of order) {
    const ev = graph.event(i);
    const key = graph.stateKey(i);
    if (!ev || key === undefined) continue;
    const authMap: StateMap = new Map<string, RoomEvent>();
    for (const j of graph.authOf(i)) {
      const a = graph.event(j);
      const k = graph.stateKey(j);
      if (a && k !== undefined && !graph.isRejected(j)) authMap.set(k, a);
    }
    for (const k of authTypesForEvent(ev, version)) {
      const id = state.get(k);
      if (id === undefined) continue;
      const j = graph.intern(id);
      const a = graph.event(j);
      if (a && !graph.isRejected(j)) authMap.set(k, a);
    }
    if (authorize(ev, authMap, version)) state.set(key, graph.ids[i]!);
  }
}

/**
 * The reverse topological power ordering of `xs`: Kahn's algorithm over the auth DAG
 * restricted to `xs` (an edge x → y when y is reachable from x through auth events
 * outside `xs`), choosing among ready events the sender of greatest power, then the
 * smallest origin_server_ts, then the smallest event ID.
 */
export function reverseTopologicalPowerOrder(graph: EventGraph, xs: readonly number[]): number[] {
  const inX = new IndexSet(graph.size);
  for (const x of xs) inX.add(x);

  // Nearest members of X below a node outside X (memoised, iterative post-order).
  const frontier = new Map<number, readonly number[]>();
  const frontierOf = (root: number): readonly number[] => {
    postOrder(
      graph,
      root,
      (c) => inX.has(c),
      (c) => frontier.has(c),
      (n) => {
        const out: number[] = [];
        for (const c of graph.authOf(n)) {
          if (inX.has(c)) {
            if (!out.includes(c)) out.push(c);
          } else {
            for (const d of frontier.get(c) ?? []) if (!out.includes(d)) out.push(d);
          }
        }
        frontier.set(n, out);
      },
    );
    return frontier.get(root)!;
  };

  const pos = new Map<number, number>();
  xs.forEach((x, k) => pos.set(x, k));
  const outDeg = new Int32Array(xs.length);
  const parents: number[][] = xs.map(() => []);
  const power = new Float64Array(xs.length);
  const ts = new Float64Array(xs.length);
  const version = graph.version;
  const levelsCache = new Map<string, PowerLevels>();

  xs.forEach((x, k) => {
    const children = new Set<number>();
    for (const c of graph.authOf(x)) {
      if (inX.has(c)) children.add(c);
      else for (const d of frontierOf(c)) children.add(d);
    }
    outDeg[k] = children.size;
    for (const c of children) parents[pos.get(c)!]!.push(k);
    const ev = graph.event(x)!;
    const pl = graph.powerLevelsAuthOf(x);
    const cr = graph.createAuthOf(x);
    const cacheKey = `${pl},${cr}`;
    let levels = levelsCache.get(cacheKey);
    if (!levels) {
      levels = parsePowerLevels(pl >= 0 ? graph.event(pl) : undefined, cr >= 0 ? graph.event(cr) : undefined, version);
      levelsCache.set(cacheKey, levels);
    }
    power[k] = levelOf(levels, ev.sender);
    ts[k] = ev.origin_server_ts;
  });

  const less = (a: number, b: number): boolean => {
    if (power[a] !== power[b]) return power[a]! > power[b]!;
    if (ts[a] !== ts[b]) return ts[a]! < ts[b]!;
    return graph.ids[xs[a]!]! < graph.ids[xs[b]!]!;
  };
  const ready = new Heap<number>(less);
  for (let k = 0; k < xs.length; k++) if (outDeg[k] === 0) ready.push(k);
  const out: number[] = [];
  const emitted = new Uint8Array(xs.length);
  for (;;) {
    while (ready.size) {
      const k = ready.pop()!;
      emitted[k] = 1;
      out.push(xs[k]!);
      for (const p of parents[k]!) if (--outDeg[p]! === 0) ready.push(p);
    }
    if (out.length === xs.length) return out;
    // Only a cycle of auth events (forged legacy event IDs) gets here: release the
    // smallest remaining event as if its dependencies were met.
    let best = -1;
    for (let k = 0; k < xs.length; k++) {
      if (!emitted[k] && outDeg[k]! > 0 && (best < 0 || less(k, best))) best = k;
    }
    outDeg[best] = 0;
    ready.push(best);
  }
}

/**
 * Mainline ordering of `events` based on the power-levels event `pl` (index, or -1
 * when the partial state has none): greater mainline position first, then
 * origin_server_ts, then event ID.
 */
export function mainlineOrder(graph: EventGraph, events: readonly number[], pl: number): number[] {
  const mainline = new Map<number, number>();
  for (let p = pl, i = 0; p >= 0 && !mainline.has(p); p = graph.powerLevelsAuthOf(p), i++) mainline.set(p, i);

  // Memoised: the mainline position reached by walking power-levels auth events from a PL event.
  const memo = new Map<number, number>();
  const positionFromPl = (start: number): number => {
    const path: number[] = [];
    const onPath = new Set<number>();
    let p = start;
    let result = Infinity;
    while (p >= 0) {
      const m = mainline.get(p);
      if (m !== undefined) {
        result = m;
        break;
      }
      const known = memo.get(p);
      if (known !== undefined) {
        result = known;
        break;
      }
      if (onPath.has(p)) break; // a cycle of power-levels events: no mainline position
      onPath.add(p);
      path.push(p);
      p = graph.powerLevelsAuthOf(p);
    }
    for (const q of path) memo.set(q, result);
    return result;
  };

  const keyed = events.map((e) => ({
    e,
    position: positionFromPl(graph.powerLevelsAuthOf(e)),
    ts: graph.event(e)!.origin_server_ts,
    id: graph.ids[e]!,
  }));
  keyed.sort((a, b) => {
    if (a.position !== b.position) return a.position > b.position ? -1 : 1;
    if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
  return keyed.map((k) => k.e);
}

/** The full conflicted set (as present events) for the given state sets. */
export function fullConflictedSet(
  graph: EventGraph,
  unconflicted: StateIds,
  conflicted: ReadonlyMap<string, readonly string[]>,
  stateSets: readonly StateIds[],
  withSubgraph: boolean,
): number[] {
  const conflictedIdx = new IndexSet();
  const conflictedList: number[] = [];
  for (const ids of conflicted.values()) {
    for (const id of ids) {
      const i = graph.intern(id);
      if (conflictedIdx.add(i)) conflictedList.push(i);
    }
  }

  // Auth difference. The unconflicted events, and everything in their auth chains,
  // are in every state set's full auth chain (which here includes the set's own
  // events), so each set's walk from its conflicted entries stops there; an event
  // reached by fewer than all of those walks is in the difference. The unconflicted
  // events themselves are recognised through the unconflicted map rather than
  // interned: in a large room they are the bulk of the state.
  const common = new IndexSet(graph.size * 2);
  for (const id of unconflicted.values()) {
    const ev = graph.source.getEvent(id);
    if (!ev) continue;
    for (const ref of ev.auth_events) {
      const j = graph.intern(referenceId(ref));
      if (!common.has(j)) walkAuth(graph, [j], common);
    }
  }
  const isUnconflictedEvent = (i: number): boolean => {
    const k = graph.stateKey(i);
    return k !== undefined && unconflicted.get(k) === graph.ids[i];
  };
  const isCommon = (i: number): boolean => common.has(i) || isUnconflictedEvent(i);
  const reachCount = new Map<number, number>();
  for (const set of stateSets) {
    const starts: number[] = [];
    for (const key of conflicted.keys()) {
      const id = set.get(key);
      if (id !== undefined) starts.push(graph.intern(id));
    }
    const seen = new IndexSet(graph.size);
    for (const i of walkAuth(graph, starts, seen, isCommon)) {
      reachCount.set(i, (reachCount.get(i) ?? 0) + 1);
    }
  }

  const fcs = new IndexSet(graph.size);
  const out: number[] = [];
  const add = (i: number): void => {
    if (graph.has(i) && fcs.add(i)) out.push(i);
  };
  for (const i of conflictedList) add(i);
  for (const [i, c] of reachCount) if (c < stateSets.length) add(i);

  if (withSubgraph) {
    // Conflicted state subgraph: events on an auth path between two conflicted events.
    // Below = reachable from a conflicted event through at least one auth edge.
    const belowSeen = new IndexSet(graph.size);
    const starts: number[] = [];
    for (const c of conflictedList) for (const a of graph.authOf(c)) starts.push(a);
    const below = walkAuth(graph, starts, belowSeen);
    // reachesConflicted, computed children-first over `below` (closed under auth edges).
    const reaches = new Map<number, boolean>();
    for (const root of below) {
      postOrder(
        graph,
        root,
        () => false,
        (c) => reaches.has(c),
        (n) => {
          let r = conflictedIdx.has(n);
          if (!r) for (const c of graph.authOf(n)) if (reaches.get(c)) r = true;
          reaches.set(n, r);
        },
      );
    }
    for (const n of below) if (reaches.get(n)) add(n);
  }
  // A canonical order, so that every later traversal is independent of input order.
  const ids = graph.ids;
  return out.sort((a, b) => (ids[a]! < ids[b]! ? -1 : ids[a]! > ids[b]! ? 1 : 0));
}

export function resolveV2(
  graph: EventGraph,
  stateSets: readonly StateIds[],
  authorize: Authorizer,
): Map<string, string> {
  const version: RoomVersion = graph.version;
  const v21 = version.stateResolution === 'v2.1';
  const { unconflicted, conflicted } = separateStrict(stateSets);
  if (conflicted.size === 0) return unconflicted;

  const fcsList = fullConflictedSet(graph, unconflicted, conflicted, stateSets, v21);
  const inFcs = new IndexSet(graph.size);
  for (const i of fcsList) inFcs.add(i);

  // 1. Power events of the full conflicted set, plus the members of the full
  //    conflicted set in their auth chains.
  const powerEvents = fcsList.filter((i) => isPowerEvent(graph.event(i)!));
  const inX = new IndexSet(graph.size);
  const xs: number[] = [];
  for (const p of powerEvents) if (inX.add(p)) xs.push(p);
  const starts: number[] = [];
  for (const p of powerEvents) for (const a of graph.authOf(p)) starts.push(a);
  for (const i of walkAuth(graph, starts, new IndexSet(graph.size))) {
    if (inFcs.has(i) && inX.add(i)) xs.push(i);
  }
  const sortedPower = reverseTopologicalPowerOrder(graph, xs);

  // 2. Iterative auth checks from the unconflicted state (v2) or an empty state (v2.1).
  const state = new LayeredState(v21 ? new Map() : unconflicted);
  iterativeAuthChecks(graph, sortedPower, state, authorize);

  // 3. Remaining events by mainline ordering on the partially resolved power levels.
  const plId = state.get(POWER_LEVELS_KEY);
  const leftover = fcsList.filter((i) => !inX.has(i));
  const sortedRest = mainlineOrder(graph, leftover, plId === undefined ? -1 : graph.intern(plId));

  // 4. Iterative auth checks on the partial state.
  iterativeAuthChecks(graph, sortedRest, state, authorize);

  // 5. The unconflicted state map wins. (`unconflicted` is ours: extend it in place.)
  const result = unconflicted;
  for (const [k, v] of state.delta) if (!result.has(k)) result.set(k, v);
  return result;
}
