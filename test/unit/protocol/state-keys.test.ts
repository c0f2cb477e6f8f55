import { describe, expect, it } from 'vitest';
import { memberStateKey, parseStateKey, stateKeyOf } from '../../../src/protocol/event.js';

describe('state keys', () => {
  it('builds a member event key exactly as stateKeyOf does, for any user ID', () => {
    for (const u of ['@alice:example.org', '', '@quote"back\\slash:x', '@ünï\u2028côde:x', '@\u0001:x']) {
      expect(memberStateKey(u)).toBe(stateKeyOf('m.room.member', u));
      expect(parseStateKey(memberStateKey(u))).toEqual(['m.room.member', u]);
    }
  });
});
