import { describe, expect, it } from 'vitest';
import { knockAnswer, knockStateOf } from '../../../src/federation/compat.js';

describe('send_knock answers', () => {
  // The answer of Synapse 1.67 to send_knock: the state under MSC2403's field name only.
  const synapse167 = {
    knock_state_events: [
      { type: 'm.room.create', state_key: '', content: { creator: '@bob:127.0.0.3:8448', room_version: '10' }, sender: '@bob:127.0.0.3:8448' },
      { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' }, sender: '@bob:127.0.0.3:8448' },
      'not an event',
    ],
  };

  it('reads the state under knock_state_events when knock_room_state is absent', () => {
    const state = knockStateOf(synapse167);
    expect(state.map((e) => e['type'])).toEqual(['m.room.create', 'm.room.join_rules']);
  });

  it('prefers knock_room_state, and tolerates answers without state', () => {
    const stable = { knock_room_state: [{ type: 'm.room.name', state_key: '', content: { name: 'n' }, sender: '@a:x' }], knock_state_events: [] };
    expect(knockStateOf(stable).map((e) => e['type'])).toEqual(['m.room.name']);
    expect(knockStateOf({})).toEqual([]);
    expect(knockStateOf([])).toEqual([]);
    expect(knockStateOf({ knock_room_state: 'nope' })).toEqual([]);
  });

  it('answers with both names, so servers reading either find the state', () => {
    const state = [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' }, sender: '@a:x' }];
    const answer = knockAnswer(state);
    expect(answer['knock_room_state']).toEqual(state);
    expect(answer['knock_state_events']).toEqual(state);
    expect(knockStateOf(answer)).toEqual(state);
  });
});
