import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isProtectedTopLevelKey, redactContent, redactEvent } from '../../../src/protocol/redaction.js';
import { ROOM_VERSIONS, getRoomVersion } from '../../../src/protocol/room-versions.js';

const ALL = [...ROOM_VERSIONS.keys()];
const v = (id: string) => getRoomVersion(id)!;
const range = (from: number, to: number) => ALL.filter((id) => Number(id) >= from && Number(id) <= to);

/** [event type, content key, versions that keep it] */
const CONTENT_CASES: [string, string, string[]][] = [
  ['m.room.member', 'membership', ALL],
  ['m.room.member', 'displayname', []],
  ['m.room.member', 'avatar_url', []],
  ['m.room.member', 'reason', []],
  ['m.room.member', 'is_direct', []],
  ['m.room.member', 'join_authorised_via_users_server', range(9, 99)],
  ['m.room.create', 'creator', ALL],
  ['m.room.create', 'room_version', range(11, 99)],
  ['m.room.create', 'm.federate', range(11, 99)],
  ['m.room.create', 'predecessor', range(11, 99)],
  ['m.room.create', 'additional_creators', range(11, 99)],
  ['m.room.join_rules', 'join_rule', ALL],
  ['m.room.join_rules', 'allow', range(8, 99)],
  ['m.room.power_levels', 'ban', ALL],
  ['m.room.power_levels', 'events', ALL],
  ['m.room.power_levels', 'events_default', ALL],
  ['m.room.power_levels', 'kick', ALL],
  ['m.room.power_levels', 'redact', ALL],
  ['m.room.power_levels', 'state_default', ALL],
  ['m.room.power_levels', 'users', ALL],
  ['m.room.power_levels', 'users_default', ALL],
  ['m.room.power_levels', 'invite', range(11, 99)],
  ['m.room.power_levels', 'notifications', []],
  ['m.room.aliases', 'aliases', range(1, 5)],
  ['m.room.history_visibility', 'history_visibility', ALL],
  ['m.room.redaction', 'redacts', range(11, 99)],
  ['m.room.redaction', 'reason', []],
  ['m.room.message', 'body', []],
  ['m.room.name', 'name', []],
  ['m.room.topic', 'topic', []],
  ['m.room.guest_access', 'guest_access', []],
  ['m.room.encryption', 'algorithm', []],
];

describe('content keys per version', () => {
  const rows = CONTENT_CASES.flatMap(([type, key, keptIn]) => ALL.map((id) => [type, key, id, keptIn.includes(id)] as const));
  it.each(rows)('%s content.%s in v%s kept=%s', (type, key, id, kept) => {
    const content = { [key]: 'value', unrelated_key: 1 };
    const out = redactEvent({ type, sender: '@a:b', content }, v(id)) as { content: Record<string, unknown> };
    if (kept) expect(out.content[key]).toBe('value');
    else expect(out.content).not.toHaveProperty(key);
    if (!(type === 'm.room.create' && Number(id) >= 11)) expect(out.content).not.toHaveProperty('unrelated_key');
  });
});

const TOP_CASES: [string, string[]][] = [
  ['event_id', ALL],
  ['type', ALL],
  ['room_id', ALL],
  ['sender', ALL],
  ['state_key', ALL],
  ['hashes', ALL],
  ['signatures', ALL],
  ['depth', ALL],
  ['prev_events', ALL],
  ['auth_events', ALL],
  ['origin_server_ts', ALL],
  ['prev_state', range(1, 10)],
  ['origin', range(1, 10)],
  ['membership', range(1, 10)],
  ['unsigned', []],
  ['redacts', []],
  ['age_ts', []],
  ['custom_field', []],
];

describe('top-level keys per version', () => {
  const rows = TOP_CASES.flatMap(([key, keptIn]) => ALL.map((id) => [key, id, keptIn.includes(id)] as const));
  it.each(rows)('%s in v%s kept=%s', (key, id, kept) => {
    const ev = { type: 'm.room.message', content: { body: 'x' }, [key]: 'value' };
    const out = redactEvent(ev, v(id)) as Record<string, unknown>;
    if (kept) expect(out[key]).toBe('value');
    else expect(out).not.toHaveProperty(key);
    expect(isProtectedTopLevelKey(key, v(id))).toBe(kept);
  });
});

describe('v11 third_party_invite', () => {
  const content = {
    membership: 'invite',
    third_party_invite: { display_name: 'carol', signed: { mxid: '@c:d', token: 't', signatures: {} } },
  };
  it('v11 keeps only third_party_invite.signed', () => {
    expect(redactContent('m.room.member', content, v('11'))).toEqual({
      membership: 'invite',
      third_party_invite: { signed: { mxid: '@c:d', token: 't', signatures: {} } },
    });
  });
  it('v12 too', () => {
    expect(redactContent('m.room.member', content, v('12'))).toHaveProperty('third_party_invite.signed.token', 't');
  });
  it('v10 drops third_party_invite', () => {
    expect(redactContent('m.room.member', content, v('10'))).toEqual({ membership: 'invite' });
  });
  it('v11 keeps an empty object when signed is absent', () => {
    expect(redactContent('m.room.member', { membership: 'invite', third_party_invite: { display_name: 'x' } }, v('11'))).toEqual({
      membership: 'invite',
      third_party_invite: {},
    });
  });
  it('v11 drops a non-object third_party_invite', () => {
    expect(redactContent('m.room.member', { membership: 'invite', third_party_invite: 'nope' }, v('11'))).toEqual({ membership: 'invite' });
  });
});

describe('general behaviour', () => {
  it('adds empty content when missing or malformed', () => {
    expect(redactEvent({ type: 'm.room.message' }, v('10'))).toEqual({ type: 'm.room.message', content: {} });
    expect(redactEvent({ type: 'm.room.message', content: [1] }, v('10'))).toEqual({ type: 'm.room.message', content: {} });
  });
  it('does not modify its input', () => {
    const ev = { type: 'm.room.member', content: { membership: 'join', displayname: 'A' }, unsigned: { age: 1 } };
    const copy = structuredClone(ev);
    redactEvent(ev, v('11'));
    expect(ev).toEqual(copy);
  });
  it('is idempotent', () => {
    for (const id of ALL) {
      const ev = {
        type: 'm.room.power_levels',
        state_key: '',
        origin: 'x',
        content: { ban: 50, invite: 0, notifications: { room: 50 } },
        unsigned: {},
      };
      const once = redactEvent(ev, v(id));
      expect(redactEvent(once, v(id))).toEqual(once);
    }
  });
  it('works on a client-format event', () => {
    const ev = {
      event_id: '$e',
      type: 'm.room.message',
      room_id: '!r:s',
      sender: '@u:s',
      origin_server_ts: 5,
      content: { body: 'hi' },
      unsigned: { age: 1, transaction_id: 't' },
    };
    expect(redactEvent(ev, v('11'))).toEqual({
      event_id: '$e',
      type: 'm.room.message',
      room_id: '!r:s',
      sender: '@u:s',
      origin_server_ts: 5,
      content: {},
    });
  });
  it('keeps the full v11 create content including nested values', () => {
    const content = { room_version: '11', 'm.federate': false, predecessor: { room_id: '!old:s' }, custom: [1, 2] };
    expect(redactEvent({ type: 'm.room.create', content }, v('11'))).toEqual({ type: 'm.room.create', content });
  });
  it('does not keep prototype keys named like protected keys', () => {
    const content = Object.create({ membership: 'join' }) as Record<string, unknown>;
    expect(redactContent('m.room.member', content, v('10'))).toEqual({});
  });
});

describe('properties', () => {
  const types = fc.constantFrom('m.room.member', 'm.room.create', 'm.room.join_rules', 'm.room.power_levels', 'm.room.aliases',
    'm.room.history_visibility', 'm.room.redaction', 'm.room.message', 'x.custom');
  const keys = fc.constantFrom('membership', 'creator', 'join_rule', 'allow', 'ban', 'invite', 'aliases', 'history_visibility',
    'redacts', 'join_authorised_via_users_server', 'third_party_invite', 'body', 'other');
  const topKeys = fc.constantFrom('event_id', 'room_id', 'sender', 'origin', 'membership', 'prev_state', 'unsigned', 'age_ts', 'redacts', 'depth', 'x');
  const event = fc.record({
    type: types,
    content: fc.dictionary(keys, fc.oneof(fc.string(), fc.record({ signed: fc.string(), other: fc.string() }))),
    extra: fc.dictionary(topKeys, fc.string()),
  }).map(({ type, content, extra }) => ({ ...extra, type, content }));
  const version = fc.constantFrom(...ALL).map((id) => v(id));

  it('redaction is idempotent and only removes keys', () => {
    fc.assert(fc.property(event, version, (ev, rv) => {
      const once = redactEvent(ev, rv) as Record<string, unknown>;
      expect(redactEvent(once, rv)).toEqual(once);
      for (const k of Object.keys(once)) expect(k in ev).toBe(true);
      for (const [k, val] of Object.entries(once.content as Record<string, unknown>)) {
        if (k !== 'third_party_invite') expect(val).toBe((ev.content as Record<string, unknown>)[k]);
      }
      expect(once).not.toHaveProperty('unsigned');
    }), { numRuns: 300 });
  });
  it('later rule sets keep a superset of v6 content (except m.room.aliases and m.room.create)', () => {
    fc.assert(fc.property(event, (ev) => {
      if (ev.type === 'm.room.create') return;
      const base = Object.keys(redactEvent(ev, v('6')).content);
      for (const id of ['8', '9', '11']) {
        const later = Object.keys(redactEvent(ev, v(id)).content);
        for (const k of base) expect(later).toContain(k);
      }
    }), { numRuns: 300 });
  });
});
