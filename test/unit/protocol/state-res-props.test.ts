import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getRoomVersion, type RoomVersion } from '../../../src/protocol/room-versions.js';
import { resolveState, resolveStateAsync } from '../../../src/protocol/state-res/index.js';
import { RoomBuilder, type State } from './state-res-builder.js';

const users = ['@alice:x', '@bob:x', '@charlie:x', '@dave:x', '@eve:x'];

interface Action {
  kind: 'topic' | 'pl' | 'ban' | 'kick' | 'leave' | 'join' | 'invite' | 'jr' | 'name';
  actor: number;
  target: number;
  level: number;
  ts: number;
}

const action: fc.Arbitrary<Action> = fc.record({
  kind: fc.constantFrom('topic', 'pl', 'ban', 'kick', 'leave', 'join', 'invite', 'jr', 'name'),
  actor: fc.nat(users.length - 1),
  target: fc.nat(users.length - 1),
  level: fc.constantFrom(0, 10, 50, 75, 100),
  // A small range so that timestamp ties (decided by event ID) happen.
  ts: fc.nat(5),
});

/** Two to four forks of up to eight actions each, from a shared base; some forks continue from a fork. */
const scenario = fc.record({
  forks: fc.array(fc.record({ parent: fc.nat(3), actions: fc.array(action, { maxLength: 8 }) }), {
    minLength: 2,
    maxLength: 4,
  }),
  seedA: fc.integer(),
  seedB: fc.integer(),
});

function build(v: RoomVersion, forks: { parent: number; actions: Action[] }[]): { r: RoomBuilder; states: State[] } {
  const r = new RoomBuilder(v);
  let s = r.base(users.slice(1, 4));
  const plUsers = (extra: Record<string, number>) => (v.privilegedCreators ? extra : { [users[0]!]: 100, ...extra });
  s = r.powerLevels(s, 'pl1', users[0]!, plUsers({ [users[1]!]: 50, [users[2]!]: 25 }));
  const states: State[] = [];
  forks.forEach((fork, f) => {
    let st = fork.parent < states.length ? states[fork.parent]! : s;
    fork.actions.forEach((a, k) => {
      const name = `f${f}-${k}`;
      const actor = users[a.actor]!;
      const target = users[a.target]!;
      const opts = { ts: 1000 + a.ts };
      switch (a.kind) {
        case 'topic':
          st = r.topic(st, name, actor, name, opts);
          break;
        case 'name':
          st = r.send(st, name, 'm.room.name', actor, '', { name }, opts);
          break;
        case 'pl':
          st = r.powerLevels(st, name, actor, plUsers({ [target]: a.level, [users[1]!]: 50 }), opts);
          break;
        case 'jr':
          st = r.send(st, name, 'm.room.join_rules', actor, '', { join_rule: a.level >= 50 ? 'invite' : 'public' }, opts);
          break;
        case 'join':
          st = r.send(st, name, 'm.room.member', target, target, { membership: 'join' }, opts);
          break;
        case 'leave':
          st = r.send(st, name, 'm.room.member', target, target, { membership: 'leave' }, opts);
          break;
        default:
          st = r.send(st, name, 'm.room.member', actor, target, { membership: a.kind === 'kick' ? 'leave' : a.kind }, opts);
      }
    });
    states.push(st);
  });
  return { r, states };
}

/** Deterministic shuffle driven by a seed. */
function shuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let x = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const sorted = (m: ReadonlyMap<string, string>) => [...m].sort(([a], [b]) => (a < b ? -1 : 1));

describe.each(['1', '2', '11', '12'])('state resolution properties, room version %s', (vid) => {
  const v = getRoomVersion(vid)!;

  it('does not depend on the order of state sets or of their entries', () => {
    fc.assert(
      fc.property(scenario, ({ forks, seedA, seedB }) => {
        const { r, states } = build(v, forks);
        const expected = sorted(resolveState(v, states, r));
        const permuted = shuffle(states, seedA).map((s) => new Map(shuffle([...s], seedB)));
        expect(sorted(resolveState(v, permuted, r))).toEqual(expected);
        // Events seen through a different source object (fresh caches) give the same answer.
        expect(sorted(resolveState(v, [...states].reverse(), { getEvent: (id) => r.getEvent(id) }))).toEqual(expected);
      }),
      { numRuns: 150 },
    );
  });

  it('is idempotent: duplicating a state set, or resolving the result with itself, changes nothing', () => {
    fc.assert(
      fc.property(scenario, ({ forks }) => {
        const { r, states } = build(v, forks);
        const resolved = resolveState(v, states, r);
        expect(sorted(resolveState(v, [...states, states[0]!], r))).toEqual(sorted(resolved));
        expect(sorted(resolveState(v, [resolved, resolved], r))).toEqual(sorted(resolved));
      }),
      { numRuns: 60 },
    );
  });

  it('only ever picks, for each key, an event that one of the state sets holds (or that is in an auth chain)', () => {
    fc.assert(
      fc.property(scenario, ({ forks }) => {
        const { r, states } = build(v, forks);
        const resolved = resolveState(v, states, r);
        for (const [key, id] of resolved) {
          const ev = r.getEvent(id);
          expect(ev).toBeDefined();
          expect(JSON.stringify([ev!.type, ev!.state_key])).toBe(key);
        }
        // Keys every state set agrees on are kept as they are.
        for (const [key, id] of states[0]!) {
          if (states.every((s) => s.get(key) === id)) expect(resolved.get(key)).toBe(id);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('the async variant agrees with the sync core', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ forks }) => {
        const { r, states } = build(v, forks);
        const got = await resolveStateAsync(v, states, async (ids) => ids.flatMap((id) => r.getEvent(id) ?? []));
        expect(sorted(got)).toEqual(sorted(resolveState(v, states, r)));
      }),
      { numRuns: 30 },
    );
  });
});
