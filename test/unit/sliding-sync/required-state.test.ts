import { describe, expect, it } from 'vitest';
import { stateKeyOf } from '../../../src/protocol/event.js';
import { combine, expands, normaliseRequiredState, wants, wantsKey } from '../../../src/services/sliding-sync/required-state.js';

const ME = '@me:x';

describe('sliding sync required_state', () => {
  it('pairs: exact entries, type wildcards, $ME and $LAZY', () => {
    const rs = normaliseRequiredState(
      [
        ['m.room.name', ''],
        ['m.space.child', '*'],
        ['m.room.member', '$ME'],
        ['m.room.member', '$LAZY'],
      ],
      ME,
    );
    expect(rs.lazy).toBe(true);
    expect(wants(rs, 'm.room.name', '')).toBe(true);
    expect(wants(rs, 'm.room.name', 'x')).toBe(false);
    expect(wants(rs, 'm.space.child', '!a:x')).toBe(true);
    expect(wants(rs, 'm.room.member', ME)).toBe(true);
    expect(wants(rs, 'm.room.member', '@other:x')).toBe(false);
    expect(wants(rs, 'm.room.topic', '')).toBe(false);
  });

  it('["*","*"] is everything, members too unless lazy-loading', () => {
    const all = normaliseRequiredState([['*', '*']], ME);
    expect(wants(all, 'm.room.member', '@a:x')).toBe(true);
    expect(wants(all, 'anything', 'at all')).toBe(true);
    const lazy = normaliseRequiredState([['*', '*'], ['m.room.member', '$LAZY']], ME);
    expect(wants(lazy, 'm.room.topic', '')).toBe(true);
    expect(wants(lazy, 'm.room.member', '@a:x')).toBe(false);
  });

  it('the object form: include, exclude and lazy_members', () => {
    const rs = normaliseRequiredState({ include: [{}], exclude: [{ type: 'm.room.create', state_key: '' }], lazy_members: true }, ME);
    expect(wants(rs, 'm.room.topic', '')).toBe(true);
    expect(wants(rs, 'm.room.create', '')).toBe(false);
    expect(wants(rs, 'm.room.member', '@a:x')).toBe(false);
    const byKey = normaliseRequiredState({ include: [{ state_key: '$ME' }] }, ME);
    expect(wants(byKey, 'm.room.member', ME)).toBe(true);
    expect(wants(byKey, 'x.custom', ME)).toBe(true);
    expect(wants(byKey, 'm.room.name', '')).toBe(false);
  });

  it('combining takes the superset: a config returning all members wins over lazy-loading', () => {
    const lazy = normaliseRequiredState([['m.room.name', ''], ['m.room.member', '$LAZY']], ME);
    const all = normaliseRequiredState([['*', '*']], ME);
    const c = combine([lazy, all]);
    expect(c.lazy).toBe(true);
    expect(wants(c, 'm.room.member', '@a:x')).toBe(true);
    expect(wants(c, 'm.room.topic', '')).toBe(true);
    const two = combine([lazy, normaliseRequiredState([['m.room.topic', '']], ME)]);
    expect(wants(two, 'm.room.topic', '')).toBe(true);
    expect(wants(two, 'm.room.name', '')).toBe(true);
    expect(wants(two, 'm.room.member', '@a:x')).toBe(false);
  });

  it('expansion: a new pattern or lazy-loading turned off; a narrower config is not one', () => {
    const a = normaliseRequiredState([['m.room.name', '']], ME);
    const b = normaliseRequiredState([['m.room.name', ''], ['m.room.topic', '']], ME);
    expect(expands(a, b)).toBe(true);
    expect(expands(b, a)).toBe(false);
    const lazyAll = normaliseRequiredState([['*', '*'], ['m.room.member', '$LAZY']], ME);
    expect(expands(lazyAll, all())).toBe(true);
    function all() {
      return normaliseRequiredState([['*', '*']], ME);
    }
  });

  it('wantsKey answers as wants for stored state keys, memberships included', () => {
    const configs = [
      normaliseRequiredState([['m.room.name', '']], ME),
      normaliseRequiredState([['*', '*'], ['m.room.member', '$LAZY']], ME),
      normaliseRequiredState([['*', '*']], ME),
      normaliseRequiredState([['m.room.member', '$ME'], ['m.room.member', '$LAZY']], ME),
      normaliseRequiredState({ include: [{ state_key: '@a:x' }] }, ME),
    ];
    const keys: Array<[string, string]> = [
      ['m.room.member', ME],
      ['m.room.member', '@a:x'],
      ['m.room.name', ''],
      ['m.room.membership.custom', ''],
      ['x', '@a:x'],
    ];
    for (const rs of configs) for (const [t, k] of keys) expect(wantsKey(rs, stateKeyOf(t, k)), `${t}|${k}`).toBe(wants(rs, t, k));
  });
});
