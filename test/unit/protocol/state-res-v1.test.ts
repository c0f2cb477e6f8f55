import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { getRoomVersion } from '../../../src/protocol/room-versions.js';
import { resolveState } from '../../../src/protocol/state-res/index.js';
import { JR, PL, RoomBuilder, TOPIC, member, type State } from './state-res-builder.js';

const v1 = getRoomVersion('1')!;
const alice = '@alice:x';
const bob = '@bob:x';
const charlie = '@charlie:x';
const dave = '@dave:x';
const eve = '@eve:x';

function withEntry(state: State, key: string, id: string): State {
  return new Map(state).set(key, id);
}

describe('state resolution, room version 1', () => {
  it('keeps entries missing from some state sets (they are not conflicts)', () => {
    const r = new RoomBuilder(v1);
    const s0 = r.base([bob]);
    const withTopic = r.topic(s0, 't', alice, 'hello');
    const withEve = r.join(s0, eve);
    const resolved = resolveState(v1, [withTopic, withEve], r);
    expect(resolved).toEqual(withEntry(withEntry(s0, TOPIC, r.id('t')), member(eve), r.id('join-eve')));
  });

  describe('power levels: ascending depth, each accepted while it passes auth', () => {
    function race(depthA: number, depthB: number, aliceUsers: Record<string, number>) {
      const r = new RoomBuilder(v1);
      const s0 = r.base([bob, charlie]);
      const s1 = r.powerLevels(s0, 'pl1', alice, { [alice]: 100, [bob]: 100 }, { depth: 5 });
      const forkA = r.powerLevels(s1, 'pl-a', alice, aliceUsers, { depth: depthA });
      const forkB = r.powerLevels(s1, 'pl-b', bob, { [alice]: 100, [bob]: 100, [charlie]: 50 }, { depth: depthB });
      return { r, s1, resolved: resolveState(v1, [forkA, forkB], r), reversed: resolveState(v1, [forkB, forkA], r) };
    }

    it('a demotion of bob first (lower depth) blocks bob’s later change', () => {
      const { r, s1, resolved, reversed } = race(10, 20, { [alice]: 100, [bob]: 50 });
      expect(resolved).toEqual(withEntry(s1, PL, r.id('pl-a')));
      expect(reversed).toEqual(resolved);
    });

    it('bob’s change first (lower depth) blocks alice’s demotion of her equal', () => {
      const { r, s1, resolved } = race(20, 10, { [alice]: 100, [bob]: 50 });
      expect(resolved).toEqual(withEntry(s1, PL, r.id('pl-b')));
    });

    it('when both pass, the deeper one is applied last and wins', () => {
      const { r, s1, resolved } = race(10, 20, { [alice]: 100, [bob]: 100, [dave]: 10 });
      expect(resolved).toEqual(withEntry(s1, PL, r.id('pl-b')));
    });
  });

  it('memberships are resolved against the resolved power levels', () => {
    const r = new RoomBuilder(v1);
    const s0 = r.base([bob, charlie]);
    const s1 = r.powerLevels(s0, 'pl1', alice, { [alice]: 100, [bob]: 50 });
    const forkA = r.send(s1, 'kick', 'm.room.member', bob, charlie, { membership: 'leave' });
    const forkB = r.powerLevels(s1, 'pl2', alice, { [alice]: 100, [bob]: 0 });
    expect(resolveState(v1, [forkA, forkB], r)).toEqual(withEntry(s1, PL, r.id('pl2')));
  });

  it('a kick by a user who keeps their power is applied', () => {
    const r = new RoomBuilder(v1);
    const s0 = r.base([bob, charlie]);
    const s1 = r.powerLevels(s0, 'pl1', alice, { [alice]: 100, [bob]: 50 });
    const forkA = r.send(s1, 'kick', 'm.room.member', bob, charlie, { membership: 'leave' });
    const forkB = r.powerLevels(s1, 'pl2', alice, { [alice]: 100, [bob]: 50, [dave]: 5 });
    expect(resolveState(v1, [forkA, forkB], r)).toEqual(withEntry(withEntry(s1, PL, r.id('pl2')), member(charlie), r.id('kick')));
  });

  it('join rules are resolved before memberships; a join missing from the other state is kept', () => {
    const r = new RoomBuilder(v1);
    const s0 = r.base([bob]);
    const forkA = r.send(s0, 'jr-invite', 'm.room.join_rules', alice, '', { join_rule: 'invite' });
    const forkB = r.join(s0, eve);
    const resolved = resolveState(v1, [forkA, forkB], r);
    expect(resolved).toEqual(withEntry(withEntry(s0, JR, r.id('jr-invite')), member(eve), r.id('join-eve')));
  });

  describe('other events: the deepest that passes auth', () => {
    function topics(opts: { bobLevel: number; depthAlice: number; depthBob: number; nameA?: string; nameB?: string }) {
      const r = new RoomBuilder(v1);
      const s1 = r.powerLevels(r.base([bob]), 'pl1', alice, { [alice]: 100, [bob]: opts.bobLevel });
      const a = opts.nameA ?? 'ta';
      const b = opts.nameB ?? 'tb';
      const forkA = r.topic(s1, a, alice, 'alice', { depth: opts.depthAlice });
      const forkB = r.topic(s1, b, bob, 'bob', { depth: opts.depthBob });
      return { r, a, b, s1, resolved: resolveState(v1, [forkA, forkB], r) };
    }

    it('the deeper topic wins when its sender may set it', () => {
      const { r, s1, resolved } = topics({ bobLevel: 50, depthAlice: 5, depthBob: 9 });
      expect(resolved).toEqual(withEntry(s1, TOPIC, r.id('tb')));
    });

    it('a deeper topic that fails auth loses to a shallower one', () => {
      const { r, s1, resolved } = topics({ bobLevel: 0, depthAlice: 5, depthBob: 9 });
      expect(resolved).toEqual(withEntry(s1, TOPIC, r.id('ta')));
    });

    it('equal depth: the lower sha1(event_id) wins', () => {
      const { r, a, b, resolved } = topics({ bobLevel: 50, depthAlice: 7, depthBob: 7, nameA: 'topic-1', nameB: 'topic-2' });
      const sha = (s: string) => createHash('sha1').update(s).digest('hex');
      const expected = sha(r.id(a)) < sha(r.id(b)) ? r.id(a) : r.id(b);
      expect(resolved.get(TOPIC)).toBe(expected);
    });

    it('when none passes, the shallowest is kept', () => {
      const r = new RoomBuilder(v1);
      const s1 = r.powerLevels(r.base([bob, charlie]), 'pl1', alice, { [alice]: 100 });
      const forkA = r.topic(s1, 'tc', charlie, 'charlie', { depth: 30 });
      const forkB = r.topic(s1, 'tb', bob, 'bob', { depth: 20 });
      expect(resolveState(v1, [forkA, forkB], r).get(TOPIC)).toBe(r.id('tb'));
    });
  });
});
