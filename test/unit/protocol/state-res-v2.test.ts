import { describe, expect, it } from 'vitest';
import { getRoomVersion, type RoomVersion } from '../../../src/protocol/room-versions.js';
import { resolveState, resolveStateAsync } from '../../../src/protocol/state-res/index.js';
import { EventGraph } from '../../../src/protocol/state-res/graph.js';
import { fullConflictedSet, mainlineOrder, separateStrict } from '../../../src/protocol/state-res/v2.js';
import { JR, PL, RoomBuilder, TOPIC, member, type State } from './state-res-builder.js';

const V = (id: string): RoomVersion => getRoomVersion(id)!;
const alice = '@alice:x';
const bob = '@bob:x';
const charlie = '@charlie:x';
const dave = '@dave:x';
const eve = '@eve:x';

/** Power-level `users` content: alice keeps 100 except where creators are privileged (v12). */
function levels(v: RoomVersion, users: Record<string, number>): Record<string, number> {
  return v.privilegedCreators ? users : { [alice]: 100, ...users };
}

function withEntry(state: State, key: string, id: string | undefined): State {
  const out = new Map(state);
  if (id === undefined) out.delete(key);
  else out.set(key, id);
  return out;
}

const v2Versions = ['2', '6', '10', '11', '12'];

describe.each(v2Versions)('state resolution, room version %s', (vid) => {
  const v = V(vid);

  it('returns the single state set unchanged and resolves identical sets to themselves', () => {
    const r = new RoomBuilder(v);
    const s = r.base([bob]);
    expect(resolveState(v, [s], r)).toEqual(s);
    expect(resolveState(v, [s, new Map(s), s], r)).toEqual(s);
    expect(resolveState(v, [], r)).toEqual(new Map());
  });

  it('a ban races with a power-level demotion of the banner: the demotion wins', () => {
    for (const demoteFirst of [false, true]) {
      const r = new RoomBuilder(v);
      const s0 = r.base([bob, charlie]);
      const s1 = r.powerLevels(s0, 'pl1', alice, levels(v, { [bob]: 50 }));
      let forkA: State;
      let forkB: State;
      if (demoteFirst) {
        forkB = r.powerLevels(s1, 'pl2', alice, levels(v, { [bob]: 0 }));
        forkA = r.send(s1, 'ban', 'm.room.member', bob, charlie, { membership: 'ban' });
      } else {
        forkA = r.send(s1, 'ban', 'm.room.member', bob, charlie, { membership: 'ban' });
        forkB = r.powerLevels(s1, 'pl2', alice, levels(v, { [bob]: 0 }));
      }
      const expected = withEntry(s1, PL, r.id('pl2'));
      expect(resolveState(v, [forkA, forkB], r)).toEqual(expected);
      expect(resolveState(v, [forkB, forkA], r)).toEqual(expected);
    }
  });

  it('the ban stands when the power-level change does not demote the banner', () => {
    const r = new RoomBuilder(v);
    const s0 = r.base([bob, charlie]);
    const s1 = r.powerLevels(s0, 'pl1', alice, levels(v, { [bob]: 50 }));
    const forkA = r.send(s1, 'ban', 'm.room.member', bob, charlie, { membership: 'ban' });
    const forkB = r.powerLevels(s1, 'pl2', alice, levels(v, { [bob]: 50, [dave]: 10 }));
    const resolved = resolveState(v, [forkA, forkB], r);
    expect(resolved).toEqual(withEntry(withEntry(s1, PL, r.id('pl2')), member(charlie), r.id('ban')));
  });

  describe('topic reset by mainline', () => {
    function setup(demote: boolean) {
      const r = new RoomBuilder(v);
      const s0 = r.topic(r.base([bob]), 't0', alice, 'zero', { ts: 10_000_000 });
      const s1 = r.powerLevels(s0, 'pl1', alice, levels(v, { [bob]: 50 }));
      // bob's topic is older by the clock but sits later on the mainline.
      const forkA = r.topic(s1, 't1', bob, 'one', { ts: 1 });
      const forkB = r.powerLevels(s1, 'pl2', alice, levels(v, demote ? { [bob]: 0 } : { [bob]: 50, [dave]: 1 }));
      return { r, s1, forkA, forkB };
    }

    it('reverts to the earlier topic when its setter lost power', () => {
      const { r, s1, forkA, forkB } = setup(true);
      const resolved = resolveState(v, [forkA, forkB], r);
      expect(resolved.get(TOPIC)).toBe(r.id('t0'));
      expect(resolved).toEqual(withEntry(s1, PL, r.id('pl2')));
    });

    it('keeps the newer topic (later on the mainline, despite its smaller timestamp) otherwise', () => {
      const { r, s1, forkA, forkB } = setup(false);
      const resolved = resolveState(v, [forkA, forkB], r);
      expect(resolved).toEqual(withEntry(withEntry(s1, PL, r.id('pl2')), TOPIC, r.id('t1')));
    });
  });

  describe('mainline ordering tie-breaks', () => {
    function twoTopics(tsA: number, tsB: number, nameA = 'ta', nameB = 'tb') {
      const r = new RoomBuilder(v);
      const s1 = r.powerLevels(r.base([bob]), 'pl1', alice, levels(v, { [bob]: 50 }));
      const forkA = r.topic(s1, nameA, bob, 'from bob', { ts: tsA });
      const forkB = r.topic(s1, nameB, alice, 'from alice', { ts: tsB });
      return { r, resolved: resolveState(v, [forkA, forkB], r) };
    }

    it('same mainline position: the later origin_server_ts is applied last and wins', () => {
      let { r, resolved } = twoTopics(5, 3);
      expect(resolved.get(TOPIC)).toBe(r.id('ta'));
      ({ r, resolved } = twoTopics(3, 5));
      expect(resolved.get(TOPIC)).toBe(r.id('tb'));
    });

    it('same position and timestamp: the greater event ID is applied last and wins', () => {
      let { r, resolved } = twoTopics(7, 7, 'ta', 'tb');
      expect(resolved.get(TOPIC)).toBe(r.id('tb'));
      ({ r, resolved } = twoTopics(7, 7, 'tz', 'tb'));
      expect(resolved.get(TOPIC)).toBe(r.id('tz'));
    });

    it('orders by mainline position, then timestamp, then event ID', () => {
      const r = new RoomBuilder(v);
      const s1 = r.powerLevels(r.base([bob]), 'pl1', alice, levels(v, { [bob]: 50 }));
      const s2 = r.powerLevels(s1, 'pl2', alice, levels(v, { [bob]: 60 }));
      r.topic(s2, 'late-b', alice, 'x', { ts: 1 });
      r.topic(s2, 'late-a', alice, 'x', { ts: 1 });
      r.topic(s1, 'mid', alice, 'x', { ts: 50 });
      r.topic(s1, 'mid-early', alice, 'x', { ts: 40 });
      r.send(new Map(), 'orphan', 'm.room.topic', alice, '', { topic: 'x' }, { ts: 99, auth: [] });
      const graph = new EventGraph(r, v);
      const names = ['late-b', 'mid', 'orphan', 'late-a', 'mid-early'];
      const order = mainlineOrder(graph, names.map((n) => graph.intern(r.id(n))), graph.intern(r.id('pl2')));
      expect(order.map((i) => graph.ids[i])).toEqual(['orphan', 'mid-early', 'mid', 'late-a', 'late-b'].map((n) => r.id(n)));
    });
  });

  it('a join races with public→invite join rules: the join is rejected', () => {
    const r = new RoomBuilder(v);
    const s0 = r.base([bob]);
    const forkA = r.send(s0, 'jr-invite', 'm.room.join_rules', alice, '', { join_rule: 'invite' });
    const forkB = r.join(s0, eve);
    const resolved = resolveState(v, [forkA, forkB], r);
    expect(resolved).toEqual(withEntry(s0, JR, r.id('jr-invite')));
    expect(resolved.has(member(eve))).toBe(false);
  });

  it('an invited user’s join survives the switch to invite-only', () => {
    const r = new RoomBuilder(v);
    const s0 = r.base([bob]);
    const sInv = r.send(s0, 'invite-eve', 'm.room.member', alice, eve, { membership: 'invite' });
    const forkA = r.send(sInv, 'jr-invite', 'm.room.join_rules', alice, '', { join_rule: 'invite' });
    const forkB = r.join(sInv, eve);
    const resolved = resolveState(v, [forkA, forkB], r);
    expect(resolved).toEqual(withEntry(withEntry(sInv, JR, r.id('jr-invite')), member(eve), r.id('join-eve')));
  });

  it('competing power-level grants: the more powerful sender is ordered first and the other grant fails', () => {
    for (const bobFirst of [false, true]) {
      const r = new RoomBuilder(v);
      const s0 = r.base([bob, charlie, dave]);
      const s1 = r.powerLevels(s0, 'pl1', alice, levels(v, { [bob]: 50 }));
      const grantA = () => r.powerLevels(s1, 'pl-alice', alice, levels(v, { [bob]: 50, [charlie]: 50 }));
      const grantB = () => r.powerLevels(s1, 'pl-bob', bob, levels(v, { [bob]: 50, [dave]: 50 }));
      const [forkA, forkB] = bobFirst ? [grantB(), grantA()].reverse() : [grantA(), grantB()];
      expect(resolveState(v, [forkA!, forkB!], r)).toEqual(withEntry(s1, PL, r.id('pl-alice')));
    }
  });

  it('competing power-level grants that both pass: the less powerful sender’s is applied last and wins', () => {
    for (const bobFirst of [false, true]) {
      const r = new RoomBuilder(v);
      const s0 = r.base([bob, charlie, dave]);
      const s1 = r.powerLevels(s0, 'pl1', alice, levels(v, { [bob]: 50 }));
      // charlie's 40 is below bob's level, so bob's levels may drop it.
      const grantA = () => r.powerLevels(s1, 'pl-alice', alice, levels(v, { [bob]: 50, [charlie]: 40 }));
      const grantB = () => r.powerLevels(s1, 'pl-bob', bob, levels(v, { [bob]: 50, [dave]: 50 }));
      const [forkA, forkB] = bobFirst ? [grantB(), grantA()].reverse() : [grantA(), grantB()];
      expect(resolveState(v, [forkA!, forkB!], r)).toEqual(withEntry(s1, PL, r.id('pl-bob')));
    }
  });

  it('resolveStateAsync loads auth chains and agrees with resolveState', async () => {
    const r = new RoomBuilder(v);
    const s1 = r.powerLevels(r.base([bob, charlie]), 'pl1', alice, levels(v, { [bob]: 50 }));
    const forkA = r.send(s1, 'ban', 'm.room.member', bob, charlie, { membership: 'ban' });
    const forkB = r.powerLevels(s1, 'pl2', alice, levels(v, { [bob]: 0 }));
    const calls: string[][] = [];
    const got = await resolveStateAsync(
      v,
      [forkA, forkB],
      async (ids) => {
        calls.push(ids);
        return ids.map((id) => r.getEvent(id)).filter((e) => e !== undefined);
      },
      { batchSize: 4 },
    );
    expect(got).toEqual(resolveState(v, [forkA, forkB], r));
    expect(calls.every((c) => c.length <= 4)).toBe(true);
    expect(new Set(calls.flat()).size).toBe(calls.flat().length);
  });

  it('rejected events are not used as auth events', () => {
    const r = new RoomBuilder(v);
    const s0 = r.base([bob]);
    const s1 = r.powerLevels(s0, 'pl1', alice, levels(v, { [bob]: 50 }));
    const forkA = r.topic(s1, 'tb', bob, 'by bob');
    const forkB = r.topic(s0, 'ta', alice, 'by alice', { ts: 1 });
    // bob's join was rejected: he is not a member when his topic is checked.
    const source = { getEvent: (id: string) => r.getEvent(id), isRejected: (id: string) => id === r.id('join-bob') };
    const plain = resolveState(v, [forkA, forkB], r);
    expect(plain.get(TOPIC)).toBe(r.id('tb'));
    const rejected = resolveState(v, [forkA, forkB], source);
    expect(rejected.get(TOPIC)).toBe(r.id('ta'));
  });
});

describe('room v12 changes (state resolution v2.1)', () => {
  const v11 = V('11');
  const v12 = V('12');

  function creatorRace(v: RoomVersion) {
    const r = new RoomBuilder(v);
    const s0 = r.base([bob, charlie]);
    const s1 = r.powerLevels(s0, 'pl1', alice, levels(v, { [bob]: 50 }));
    // alice raises bob to 100; bob then grants charlie; meanwhile alice demotes bob.
    const s2 = r.powerLevels(s1, 'pl2', alice, levels(v, { [bob]: 100 }));
    const forkA = r.powerLevels(s2, 'pl3', bob, levels(v, { [bob]: 100, [charlie]: 50 }));
    const forkB = r.powerLevels(s1, 'pl4', alice, levels(v, { [bob]: 0 }));
    return { r, s1, forkA, forkB };
  }

  it('v11: an admin equal in power to the room creator wins the race by timestamp', () => {
    const { r, s1, forkA, forkB } = creatorRace(v11);
    expect(resolveState(v11, [forkA, forkB], r)).toEqual(withEntry(s1, PL, r.id('pl3')));
  });

  it('v12: the creator cannot be out-powered; their demotion is ordered first', () => {
    const { r, s1, forkA, forkB } = creatorRace(v12);
    expect(resolveState(v12, [forkA, forkB], r)).toEqual(withEntry(s1, PL, r.id('pl4')));
    expect(resolveState(v12, [forkB, forkA], r)).toEqual(withEntry(s1, PL, r.id('pl4')));
  });

  it('v12: additional creators have infinite power too', () => {
    for (const additional of [true, false]) {
      const r = new RoomBuilder(v12);
      const s0 = r.base([bob, charlie], { createContent: additional ? { additional_creators: [bob] } : {} });
      const s1 = r.powerLevels(s0, 'pl1', alice, additional ? { [charlie]: 100 } : { [bob]: 100, [charlie]: 100 });
      // charlie's grant is older; bob's demotion of charlie is newer.
      const forkA = r.powerLevels(s1, 'pl-charlie', charlie, { [charlie]: 100, [dave]: 50, ...(additional ? {} : { [bob]: 100 }) }, { ts: 1 });
      const forkB = r.powerLevels(s1, 'pl-bob', bob, { [charlie]: 0, ...(additional ? {} : { [bob]: 100 }) }, { ts: 2 });
      const resolved = resolveState(v12, [forkA, forkB], r);
      // A creator's demotion is ordered first and sticks; between equals, the older grant wins
      // and bob (100) cannot then demote charlie (100).
      expect(resolved.get(PL)).toBe(r.id(additional ? 'pl-bob' : 'pl-charlie'));
    }
  });

  function leftAfterGrant(v: RoomVersion) {
    const r = new RoomBuilder(v);
    const s0 = r.base([bob, charlie]);
    const s1 = r.powerLevels(s0, 'pl1', alice, levels(v, { [bob]: 100 }));
    const sA = r.powerLevels(s1, 'pl-bob', bob, levels(v, { [bob]: 100, [charlie]: 50 }));
    const leave = r.make(sA, 'bob-leave', 'm.room.member', bob, bob, { membership: 'leave' });
    const forkA = withEntry(sA, member(bob), leave.event_id);
    const forkB = withEntry(s1, member(bob), leave.event_id);
    return { r, s1, forkA, forkB };
  }

  it('v11: iterative auth checks start from the unconflicted state, so a grant by a user who later left is lost', () => {
    const { r, forkA, forkB } = leftAfterGrant(v11);
    expect(resolveState(v11, [forkA, forkB], r).get(PL)).toBe(r.id('pl1'));
  });

  it('v12: iterative auth checks start from an empty state, so the grant is kept', () => {
    const { r, forkA, forkB } = leftAfterGrant(v12);
    expect(resolveState(v12, [forkA, forkB], r)).toEqual(forkA);
  });

  it('the conflicted state subgraph joins the full conflicted set only in v12', () => {
    for (const v of [v11, v12]) {
      const r = new RoomBuilder(v);
      const s1 = r.powerLevels(r.base([bob]), 'pl1', alice, levels(v, { [bob]: 50 }));
      const s2 = r.join(s1, charlie); // auth: pl1
      const s3 = r.powerLevels(s2, 'pl2', alice, levels(v, { [bob]: 50, [charlie]: 50 }));
      const forkA = r.topic(s3, 'tc', charlie, 'by charlie'); // auth: pl2, charlie's join
      const forkB = s2;
      const graph = new EventGraph(r, v);
      const { unconflicted, conflicted } = separateStrict([forkA, forkB]);
      const fcs = fullConflictedSet(graph, unconflicted, conflicted, [forkA, forkB], v.stateResolution === 'v2.1');
      const names = fcs.map((i) => graph.ids[i]!).sort();
      const expected = ['pl1', 'pl2', 'tc', ...(v === v12 ? ['join-charlie'] : [])].map((n) => r.id(n)).sort();
      expect(names).toEqual(expected);
      expect(resolveState(v, [forkA, forkB], r)).toEqual(forkA);
    }
  });
});

describe('forged auth cycles (legacy event IDs)', () => {
  it('resolve without throwing and independently of input order', () => {
    const v = V('2');
    const r = new RoomBuilder(v);
    const s0 = r.base([bob]);
    const base = ['create', 'alice-join'];
    // Two power-levels events citing each other, and a topic citing both.
    const a = r.make(s0, 'pl-a', 'm.room.power_levels', alice, '', { users: { [alice]: 100, [bob]: 50 } }, { auth: [...base, 'pl-b'] });
    const b = r.make(s0, 'pl-b', 'm.room.power_levels', alice, '', { users: { [alice]: 100 } }, { auth: [...base, 'pl-a'] });
    const t = r.make(s0, 'topic', 'm.room.topic', bob, '', { topic: 'x' }, { auth: [...base, 'pl-a', 'pl-b', 'join-bob'] });
    const forkA = withEntry(withEntry(s0, PL, a.event_id), TOPIC, t.event_id);
    const forkB = withEntry(s0, PL, b.event_id);
    const one = resolveState(v, [forkA, forkB], r);
    const two = resolveState(v, [forkB, forkA], { getEvent: (id) => r.getEvent(id) });
    expect([...one].sort()).toEqual([...two].sort());
    expect([a.event_id, b.event_id, s0.get(PL)]).toContain(one.get(PL));
  });
});
