import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compilePushRules,
  compilePushRulesOf,
  evaluateCompiledPushRules,
  PushEvaluation,
  preparePushEvent,
  actionsHighlight,
  actionsNotify,
  cleanActions,
  conditionMatches,
  defaultPushRules,
  evaluatePushRules,
  globMatches,
  mergeRuleset,
  propertyAt,
  rulesetToJson,
  splitPropertyPath,
  tweakValue,
  validateNewRule,
  type CompiledPushRules,
  type PushContext,
  type PushEvent,
} from '../../../src/protocol/push-rules.js';

const ME = '@me:example.org';
const ctx = (over: Partial<PushContext> = {}): PushContext => ({ userId: ME, roomMemberCount: 5, ...over });
const msg = (content: Record<string, unknown>, over: Partial<PushEvent> = {}): PushEvent =>
  ({ type: 'm.room.message', sender: '@other:example.org', room_id: '!r:example.org', content, ...over }) as PushEvent;

describe('property paths (appendices)', () => {
  it('splits on unescaped dots and unescapes \\. and \\\\ only', () => {
    expect(splitPropertyPath('content.body')).toEqual(['content', 'body']);
    expect(splitPropertyPath('content.m\\.relates_to')).toEqual(['content', 'm.relates_to']);
    expect(splitPropertyPath('content.m\\\\foo')).toEqual(['content', 'm\\foo']);
    expect(splitPropertyPath('content.a\\xb')).toEqual(['content', 'a\\xb']);
  });

  it('reads nested values and nothing through non-objects', () => {
    const ev = { content: { 'm.relates_to': { rel_type: 'm.replace' }, body: 'x' } };
    expect(propertyAt(ev, 'content.m\\.relates_to.rel_type')).toBe('m.replace');
    expect(propertyAt(ev, 'content.body.length')).toBeUndefined();
    expect(propertyAt(ev, 'content.missing')).toBeUndefined();
  });
});

describe('event_match (spec examples)', () => {
  const topic = (t: unknown) => ({ type: 'm.room.topic', sender: '@example:example.org', state_key: '', content: { topic: t } }) as PushEvent;
  const cond = { kind: 'event_match', key: 'content.topic', pattern: 'lunc?*' };

  it('matches "Lunch plans" and "LUNCH" with lunc?*', () => {
    expect(conditionMatches(cond, topic('Lunch plans'), ctx())).toBe(true);
    expect(conditionMatches(cond, topic('LUNCH'), ctx())).toBe(true);
  });

  it('does not match " lunch", "lunc" or null', () => {
    expect(conditionMatches(cond, topic(' lunch'), ctx())).toBe(false);
    expect(conditionMatches(cond, topic('lunc'), ctx())).toBe(false);
    expect(conditionMatches(cond, topic(null), ctx())).toBe(false);
  });

  it('content.body matches at word boundaries: ex*ple', () => {
    const c = { kind: 'event_match', key: 'content.body', pattern: 'ex*ple' };
    expect(conditionMatches(c, msg({ body: 'An example event.' }), ctx())).toBe(true);
    expect(conditionMatches(c, msg({ body: 'exple' }), ctx())).toBe(true);
    expect(conditionMatches(c, msg({ body: 'An exciting triple-whammy' }), ctx())).toBe(true);
    expect(conditionMatches(c, msg({ body: 'Anexample' }), ctx())).toBe(false);
    expect(conditionMatches(c, msg({ body: 'examples' }), ctx())).toBe(false);
  });

  it('an absent or non-string property never matches, even with *', () => {
    const c = { kind: 'event_match', key: 'content.nope', pattern: '*' };
    expect(conditionMatches(c, msg({ body: 'x' }), ctx())).toBe(false);
    expect(conditionMatches({ kind: 'event_match', key: 'content.n', pattern: '*' }, msg({ n: 1 }), ctx())).toBe(false);
  });

  it('treats regular-expression characters in patterns literally', () => {
    expect(globMatches('a.b', 'a.b', false)).toBe(true);
    expect(globMatches('a.b', 'axb', false)).toBe(false);
    expect(globMatches('(x)', '(x)', false)).toBe(true);
    expect(globMatches('[a]', 'a', false)).toBe(false);
    // Room IDs (unpadded base64url) contain '-' and '_': a room-muting rule's pattern must compile.
    expect(globMatches('!waG-Xv0r_EC:localhost', '!waG-Xv0r_EC:localhost', false)).toBe(true);
    expect(globMatches('a-b/c', 'a-b/c', true)).toBe(true);
    expect(globMatches('a-b', 'a_b', false)).toBe(false);
  });
});

describe('event_property_is / event_property_contains (spec examples)', () => {
  const create = (federate: unknown) =>
    ({ type: 'm.room.create', sender: '@example:example.org', state_key: '', content: { creator: '@example:example.org', 'm.federate': federate } }) as PushEvent;
  const isCond = { kind: 'event_property_is', key: 'content.m\\.federate', value: true };

  it('matches exact values only, without casting', () => {
    expect(conditionMatches(isCond, create(true), ctx())).toBe(true);
    expect(conditionMatches(isCond, create('true'), ctx())).toBe(false);
    expect(conditionMatches(isCond, create(1), ctx())).toBe(false);
    expect(conditionMatches({ kind: 'event_property_is', key: 'content.x', value: null }, msg({ x: null }), ctx())).toBe(true);
    expect(conditionMatches({ kind: 'event_property_is', key: 'content.x', value: null }, msg({}), ctx())).toBe(false);
  });

  it('contains: exact array members only', () => {
    const ev = { type: 'm.room.canonical_alias', sender: '@e:example.org', state_key: '', content: { alias: '#somewhere:localhost', alt_aliases: ['#somewhere:example.org', '#myroom:example.com'] } } as PushEvent;
    expect(conditionMatches({ kind: 'event_property_contains', key: 'content.alt_aliases', value: '#myroom:example.com' }, ev, ctx())).toBe(true);
    expect(conditionMatches({ kind: 'event_property_contains', key: 'content.alt_aliases', value: ':example.com' }, ev, ctx())).toBe(false);
    expect(conditionMatches({ kind: 'event_property_contains', key: 'content.alias', value: '#somewhere:localhost' }, ev, ctx())).toBe(false);
  });
});

describe('other conditions', () => {
  it('room_member_count with every prefix', () => {
    const m = (is: string, n: number) => conditionMatches({ kind: 'room_member_count', is }, msg({}), ctx({ roomMemberCount: n }));
    expect(m('2', 2)).toBe(true);
    expect(m('==2', 3)).toBe(false);
    expect(m('<10', 9)).toBe(true);
    expect(m('<10', 10)).toBe(false);
    expect(m('<=10', 10)).toBe(true);
    expect(m('>2', 3)).toBe(true);
    expect(m('>=3', 2)).toBe(false);
    expect(m('abc', 2)).toBe(false);
  });

  it('contains_display_name matches the name as a word, case-insensitively, literally', () => {
    const c = { kind: 'contains_display_name' };
    const withName = (n: string | undefined) => ctx({ displayName: () => n });
    expect(conditionMatches(c, msg({ body: 'hi Alice!' }), withName('alice'))).toBe(true);
    expect(conditionMatches(c, msg({ body: 'Malice' }), withName('alice'))).toBe(false);
    expect(conditionMatches(c, msg({ body: 'a.b' }), withName('a*'))).toBe(false);
    expect(conditionMatches(c, msg({ body: 'hi' }), withName(undefined))).toBe(false);
  });

  it('sender_notification_permission compares the sender level with notifications.<key>', () => {
    const c = { kind: 'sender_notification_permission', key: 'room' };
    const levels = (sender: number) => ctx({ senderPowerLevel: () => sender, notificationPowerLevel: () => 50 });
    expect(conditionMatches(c, msg({}), levels(50))).toBe(true);
    expect(conditionMatches(c, msg({}), levels(49))).toBe(false);
    expect(conditionMatches(c, msg({}), ctx())).toBe(false);
  });

  it('unknown conditions never match', () => {
    expect(conditionMatches({ kind: 'org.example.future' }, msg({}), ctx())).toBe(false);
  });
});

describe('server-default rules', () => {
  const rules = defaultPushRules(ME);

  it('are in the spec order', () => {
    expect(rules.override.map((r) => r.rule_id)).toEqual([
      '.m.rule.master',
      '.m.rule.suppress_notices',
      '.m.rule.invite_for_me',
      '.m.rule.member_event',
      '.m.rule.is_user_mention',
      '.m.rule.is_room_mention',
      '.m.rule.tombstone',
      '.m.rule.reaction',
      '.m.rule.room.server_acl',
      '.m.rule.suppress_edits',
    ]);
    expect(rules.underride.map((r) => r.rule_id)).toEqual([
      '.m.rule.call',
      '.m.rule.encrypted_room_one_to_one',
      '.m.rule.room_one_to_one',
      '.m.rule.message',
      '.m.rule.encrypted',
    ]);
    expect(rules.override[0]!.enabled).toBe(false);
    expect(rules.override.concat(rules.underride).every((r) => r.default)).toBe(true);
  });

  const evaluate = (ev: PushEvent, c = ctx()) => evaluatePushRules(rules, ev, c);

  it('plain message in a group: notify without highlight (.m.rule.message)', () => {
    const m = evaluate(msg({ msgtype: 'm.text', body: 'hi' }))!;
    expect(m.ruleId).toBe('.m.rule.message');
    expect(actionsNotify(m.actions)).toBe(true);
    expect(actionsHighlight(m.actions)).toBe(false);
  });

  it('one-to-one rooms: .m.rule.room_one_to_one with a sound', () => {
    const m = evaluate(msg({ msgtype: 'm.text', body: 'hi' }), ctx({ roomMemberCount: 2 }))!;
    expect(m.ruleId).toBe('.m.rule.room_one_to_one');
    expect(tweakValue(m.actions, 'sound')).toBe('default');
  });

  it('encrypted events: .m.rule.encrypted, or encrypted_room_one_to_one with two members', () => {
    const enc = { type: 'm.room.encrypted', sender: '@o:example.org', content: { algorithm: 'm.megolm.v1.aes-sha2' } } as PushEvent;
    expect(evaluate(enc)!.ruleId).toBe('.m.rule.encrypted');
    expect(evaluate(enc, ctx({ roomMemberCount: 2 }))!.ruleId).toBe('.m.rule.encrypted_room_one_to_one');
  });

  it('mentions of the user highlight (.m.rule.is_user_mention)', () => {
    const m = evaluate(msg({ body: 'hey', 'm.mentions': { user_ids: [ME] } }))!;
    expect(m.ruleId).toBe('.m.rule.is_user_mention');
    expect(actionsHighlight(m.actions)).toBe(true);
    expect(evaluate(msg({ body: 'hey', 'm.mentions': { user_ids: ['@x:example.org'] } }))!.ruleId).toBe('.m.rule.message');
  });

  it('@room highlights only when the sender may notify the room', () => {
    const ev = msg({ body: '@room', 'm.mentions': { room: true } });
    const allowed = ctx({ senderPowerLevel: () => 50, notificationPowerLevel: () => 50 });
    const denied = ctx({ senderPowerLevel: () => 0, notificationPowerLevel: () => 50 });
    expect(evaluate(ev, allowed)!.ruleId).toBe('.m.rule.is_room_mention');
    expect(evaluate(ev, denied)!.ruleId).toBe('.m.rule.message');
  });

  it('notices, edits, reactions, ACLs and member events do not notify', () => {
    for (const ev of [
      msg({ msgtype: 'm.notice', body: 'bot' }),
      msg({ body: '* fixed', 'm.relates_to': { rel_type: 'm.replace', event_id: '$x' } }),
      { type: 'm.reaction', sender: '@o:example.org', content: { 'm.relates_to': { rel_type: 'm.annotation', event_id: '$x', key: 'y' } } } as PushEvent,
      { type: 'm.room.server_acl', sender: '@o:example.org', state_key: '', content: {} } as PushEvent,
      { type: 'm.room.member', sender: '@o:example.org', state_key: '@o:example.org', content: { membership: 'join' } } as PushEvent,
    ]) {
      const m = evaluate(ev);
      expect(m && actionsNotify(m.actions)).toBeFalsy();
    }
  });

  it('invites for me notify, tombstones highlight, calls ring', () => {
    const invite = { type: 'm.room.member', sender: '@o:example.org', state_key: ME, content: { membership: 'invite' } } as PushEvent;
    expect(evaluate(invite)!.ruleId).toBe('.m.rule.invite_for_me');
    const tomb = { type: 'm.room.tombstone', sender: '@o:example.org', state_key: '', content: {} } as PushEvent;
    expect(actionsHighlight(evaluate(tomb)!.actions)).toBe(true);
    const call = { type: 'm.call.invite', sender: '@o:example.org', content: {} } as PushEvent;
    expect(tweakValue(evaluate(call)!.actions, 'sound')).toBe('ring');
  });

  it('state events of other types match nothing', () => {
    expect(evaluate({ type: 'm.room.topic', sender: '@o:example.org', state_key: '', content: { topic: 't' } } as PushEvent)).toBeUndefined();
  });
});

describe('merging stored rules with the defaults', () => {
  it('keeps user rules in order, master first, defaults after user rules', () => {
    const stored = {
      global: {
        override: [
          { rule_id: '.m.rule.master', enabled: true, actions: [], default: true },
          { rule_id: 'mine', enabled: true, actions: ['notify'], conditions: [{ kind: 'event_match', key: 'type', pattern: 'x' }] },
        ],
        content: [{ rule_id: 'cake', pattern: 'cake', actions: ['notify', 'dont_notify'] }],
        room: [],
        sender: [],
        underride: [{ rule_id: '.m.rule.message', enabled: false, actions: ['notify'], default: true }],
      },
    };
    const rs = mergeRuleset(stored, ME);
    expect(rs.override.slice(0, 3).map((r) => r.rule_id)).toEqual(['.m.rule.master', 'mine', '.m.rule.suppress_notices']);
    expect(rs.override[0]!.enabled).toBe(true);
    expect(rs.content).toEqual([{ rule_id: 'cake', default: false, enabled: true, pattern: 'cake', actions: ['notify'] }]);
    expect(rs.underride.find((r) => r.rule_id === '.m.rule.message')!.enabled).toBe(false);
    // The master rule being enabled silences everything.
    expect(evaluatePushRules(rs, msg({ body: 'cake' }), ctx())!.ruleId).toBe('.m.rule.master');
    // Round trip through the account-data form.
    expect(mergeRuleset(rulesetToJson(rs), ME)).toEqual(rs);
  });

  it('unknown stored defaults are dropped, new defaults appear, junk is ignored', () => {
    const rs = mergeRuleset({ global: { override: [{ rule_id: '.m.rule.gone', actions: [] }, 'junk'], content: [{ rule_id: 'nopattern', actions: [] }] } }, ME);
    expect(rs.override.some((r) => r.rule_id === '.m.rule.gone')).toBe(false);
    expect(rs.override).toHaveLength(defaultPushRules(ME).override.length);
    expect(rs.content).toEqual([]);
    expect(mergeRuleset(undefined, ME)).toEqual(defaultPushRules(ME));
  });
});

describe('priority between kinds (spec examples)', () => {
  const base = defaultPushRules(ME);
  it('room rule silences a room; sender rule silences a user; content rule sets a sound', () => {
    const rs = mergeRuleset(
      {
        global: {
          ...base,
          room: [{ rule_id: '!dj234r78wl45Gh4D:matrix.org', actions: [] }],
          sender: [{ rule_id: '@spambot:matrix.org', actions: [] }],
          content: [
            { rule_id: 'U3BvbmdlIGNha2UgaXMgYmVzdA', pattern: 'cake*lie', actions: ['notify'] },
            { rule_id: 'SSByZWFsbHkgbGlrZSBjYWtl', pattern: 'cake', actions: ['notify', { set_tweak: 'sound', value: 'cakealarm.wav' }] },
          ],
          override: [
            ...base.override,
            {
              rule_id: 'U2VlIHlvdSBpbiBUaGUgRHVrZQ',
              conditions: [
                { kind: 'event_match', key: 'content.body', pattern: 'beer' },
                { kind: 'room_member_count', is: '<=10' },
              ],
              actions: ['notify', { set_tweak: 'sound', value: 'beeroclock.wav' }],
            },
          ],
        },
      },
      ME,
    );
    expect(evaluatePushRules(rs, msg({ body: 'x' }, { room_id: '!dj234r78wl45Gh4D:matrix.org' }), ctx())!.ruleId).toBe('!dj234r78wl45Gh4D:matrix.org');
    expect(evaluatePushRules(rs, msg({ body: 'x' }, { sender: '@spambot:matrix.org' }), ctx())!.actions).toEqual([]);
    expect(tweakValue(evaluatePushRules(rs, msg({ body: 'I want cake' }), ctx())!.actions, 'sound')).toBe('cakealarm.wav');
    expect(evaluatePushRules(rs, msg({ body: 'the cake is a lie' }), ctx())!.ruleId).toBe('U3BvbmdlIGNha2UgaXMgYmVzdA');
    expect(tweakValue(evaluatePushRules(rs, msg({ body: 'beer time, cake' }), ctx({ roomMemberCount: 8 }))!.actions, 'sound')).toBe('beeroclock.wav');
    expect(tweakValue(evaluatePushRules(rs, msg({ body: 'beer time, cake' }), ctx({ roomMemberCount: 11 }))!.actions, 'sound')).toBe('cakealarm.wav');
  });
});

describe('actions and validation', () => {
  it('strips historical actions; highlight without value is true', () => {
    expect(cleanActions(['dont_notify'])).toEqual([]);
    expect(cleanActions(['notify', 'coalesce'])).toEqual(['notify']);
    expect(tweakValue([{ set_tweak: 'highlight' }], 'highlight')).toBe(true);
    expect(tweakValue([{ set_tweak: 'highlight', value: false }], 'highlight')).toBe(false);
  });

  it('validates new rules per kind', () => {
    expect(validateNewRule('content', 'x', { actions: ['notify'] })).toBe('Content rules need a pattern');
    expect(validateNewRule('override', 'x', { actions: 'notify' })).toBe('actions must be an array');
    expect(validateNewRule('override', 'x', { actions: ['fly'] })).toMatch(/Unknown action/);
    expect(validateNewRule('override', 'x', { actions: [], conditions: [{}] })).toMatch(/conditions/);
    expect(validateNewRule('room', '!r:x', { actions: ['notify'] })).toEqual({ rule_id: '!r:x', default: false, enabled: true, actions: ['notify'] });
  });
});

describe('compiled rules and prepared events (one event, many users)', () => {
  const users = ['@me:example.org', '@you:example.org', '@them:example.org'];
  // Each user's rules: the defaults, plus rules of every kind that some events match.
  const rulesetOf = (u: string, i: number) =>
    mergeRuleset(
      {
        global: {
          override: [{ rule_id: `o${i}`, actions: ['notify', { set_tweak: 'sound', value: `s${i}` }], conditions: [{ kind: 'event_match', key: 'content.tag', pattern: `t${i}*` }] }],
          content: [{ rule_id: `c${i}`, pattern: i === 0 ? 'lunch' : 'dinner', actions: ['notify', { set_tweak: 'highlight' }] }],
          room: i === 1 ? [{ rule_id: '!quiet:example.org', actions: [] }] : [],
          sender: i === 2 ? [{ rule_id: '@loud:example.org', actions: ['notify', { set_tweak: 'highlight', value: false }] }] : [],
          underride: [
            { rule_id: `u${i}`, actions: ['notify'], conditions: [{ kind: 'contains_display_name' }, { kind: 'room_member_count', is: '>2' }] },
            { rule_id: '.m.rule.message', actions: ['notify', { set_tweak: 'sound', value: 'x' }] },
          ],
        },
      },
      u,
    );
  const rulesets = users.map(rulesetOf);
  const compiled = rulesets.map(compilePushRules);
  const event = fc.record({
    type: fc.constantFrom('m.room.message', 'm.room.member', 'm.reaction', 'm.room.encrypted', 'm.call.invite', 'm.room.tombstone'),
    sender: fc.constantFrom('@other:example.org', '@loud:example.org', ...users),
    room_id: fc.constantFrom('!r:example.org', '!quiet:example.org'),
    state_key: fc.option(fc.constantFrom('', ...users), { nil: undefined }),
    content: fc.record(
      {
        msgtype: fc.constantFrom('m.text', 'm.notice'),
        body: fc.constantFrom('lunch?', 'Dinner at 8', 'hello Me there', 'nothing', 'you, them'),
        tag: fc.constantFrom('t0x', 't1', 'T2yy', 'x'),
        membership: fc.constantFrom('invite', 'join'),
        'm.mentions': fc.record({ user_ids: fc.subarray(users), room: fc.boolean() }, { requiredKeys: [] }),
        'm.relates_to': fc.record({ rel_type: fc.constantFrom('m.replace', 'm.thread') }),
      },
      { requiredKeys: [] },
    ),
  });
  const ctxOf = (u: string, members: number): PushContext => ({
    userId: u,
    roomMemberCount: members,
    displayName: () => u.slice(1, u.indexOf(':')),
    senderPowerLevel: () => 50,
    notificationPowerLevel: () => 50,
  });

  it('one prepared event gives every user what evaluating it for them alone gives', () => {
    fc.assert(
      fc.property(event, fc.integer({ min: 1, max: 4 }), fc.shuffledSubarray([0, 1, 2], { minLength: 1 }), (ev, members, order) => {
        const shared = preparePushEvent(ev as PushEvent);
        for (const i of order) {
          const alone = evaluatePushRules(rulesets[i]!, ev as PushEvent, ctxOf(users[i]!, members));
          expect(evaluateCompiledPushRules(compiled[i]!, shared, ctxOf(users[i]!, members))).toEqual(alone);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('matches the rules of every kind in priority order', () => {
    const c = compiled[0]!;
    const at = (ev: PushEvent, members = 5) => evaluateCompiledPushRules(c, preparePushEvent(ev), ctxOf(users[0]!, members))?.ruleId;
    expect(at(msg({ body: 'lunch', tag: 't0' }))).toBe('o0');
    expect(at(msg({ body: 'lunch?' }))).toBe('c0');
    expect(at(msg({ body: 'hi me', 'm.mentions': { user_ids: [users[0]] } }))).toBe('.m.rule.is_user_mention');
    expect(at(msg({ body: 'hi me' }))).toBe('u0');
    expect(at(msg({ body: 'hi me' }), 2)).toBe('.m.rule.room_one_to_one');
    expect(at(msg({ body: 'hi' }))).toBe('.m.rule.message');
    expect(evaluateCompiledPushRules(compiled[1]!, preparePushEvent(msg({ body: 'hi' }, { room_id: '!quiet:example.org' })), ctxOf(users[1]!, 5))).toMatchObject({
      kind: 'room',
      actions: [],
    });
  });

  it('is a snapshot of the enabled rules, and says whether the display name is needed', () => {
    const rs = defaultPushRules(ME);
    const before = compilePushRules(rs);
    expect(before.usesDisplayName).toBe(false);
    expect(before.rules.map((r) => r.ruleId)).not.toContain('.m.rule.master');
    rs.override[0]!.enabled = true;
    rs.underride.unshift({ rule_id: 'name', default: false, enabled: true, actions: ['notify'], conditions: [{ kind: 'contains_display_name' }] });
    const after = compilePushRules(rs);
    expect(after.usesDisplayName).toBe(true);
    expect(evaluateCompiledPushRules(before, preparePushEvent(msg({ body: 'x' })), ctx())?.ruleId).toBe('.m.rule.message');
    expect(evaluateCompiledPushRules(after, preparePushEvent(msg({ body: 'x' })), ctx())).toMatchObject({ ruleId: '.m.rule.master', actions: [] });
    rs.underride[0]!.enabled = false;
    expect(compilePushRules(rs).usesDisplayName).toBe(false);
  });

  it('a prepared event reads each path once and keeps escaped dots apart', () => {
    const content: Record<string, unknown> = { 'm.mentions': { room: true }, m: { mentions: { room: false } } };
    let reads = 0;
    const ev = msg(
      new Proxy(content, {
        get(t, k, r) {
          if (k === 'm.mentions' || k === 'm') reads++;
          return Reflect.get(t, k, r) as unknown;
        },
      }),
    );
    const p = preparePushEvent(ev);
    expect(p.property('content.m\\.mentions.room', splitPropertyPath('content.m\\.mentions.room'))).toBe(true);
    expect(p.property('content.m.mentions.room', splitPropertyPath('content.m.mentions.room'))).toBe(false);
    expect(p.property('content.m\\.mentions.room', splitPropertyPath('content.m\\.mentions.room'))).toBe(true);
    expect(reads).toBe(2);
    expect(p.property('content.absent.x', ['content', 'absent', 'x'])).toBeUndefined();
  });

  it('returns actions the caller may change without changing the rules', () => {
    const c = compilePushRules(defaultPushRules(ME));
    const m = evaluateCompiledPushRules(c, preparePushEvent(msg({ body: 'x' })), ctx())!;
    m.actions.push('coalesce');
    expect(evaluateCompiledPushRules(c, preparePushEvent(msg({ body: 'x' })), ctx())!.actions).toEqual(['notify']);
  });
});

describe('shared evaluation (one event, users with rules of the same shape)', () => {
  const users = ['@a:example.org', '@b:example.org', '@c:example.org', '@d:example.org', '@e:example.org', '@f:example.org'];
  // a, b, c: the defaults. d, e: a rule naming themselves (same shape). f: a rule naming d, and one on the display name.
  const selfRule = (u: string) => ({
    global: {
      override: [
        { rule_id: 'self', actions: ['notify', { set_tweak: 'sound', value: 'me' }], conditions: [{ kind: 'event_match', key: 'content.to', pattern: u }] },
        { rule_id: 'is', actions: ['notify', { set_tweak: 'sound', value: 'is' }], conditions: [{ kind: 'event_property_is', key: 'content.who', value: u }] },
      ],
    },
  });
  const stored = [undefined, undefined, undefined, selfRule(users[3]!), selfRule(users[4]!), {
    global: {
      ...selfRule(users[3]!).global,
      underride: [{ rule_id: 'name', actions: ['notify', { set_tweak: 'highlight' }], conditions: [{ kind: 'contains_display_name' }] }],
    },
  }];
  const rulesets = users.map((u, i) => mergeRuleset(stored[i], u));
  /** As PushRulesService keeps them: one compiled object per shape. */
  const compileShared = () => {
    const shapes = new Map<string, CompiledPushRules>();
    return users.map((u, i) => {
      const c = compilePushRulesOf(rulesets[i]!, u);
      if (!shapes.has(c.shape)) shapes.set(c.shape, c);
      return shapes.get(c.shape)!;
    });
  };
  const displayName = (u: string) => () => u.slice(1, u.indexOf(':'));
  const event = fc.record({
    type: fc.constantFrom('m.room.message', 'm.room.member', 'm.room.encrypted', 'm.reaction'),
    sender: fc.constantFrom('@other:example.org', ...users),
    room_id: fc.constant('!r:example.org'),
    state_key: fc.option(fc.constantFrom('', ...users), { nil: undefined }),
    content: fc.record(
      {
        msgtype: fc.constantFrom('m.text', 'm.notice'),
        body: fc.constantFrom('hi', 'hi a there', 'f: look', 'nothing'),
        membership: fc.constantFrom('invite', 'join'),
        to: fc.constantFrom(...users, 'nobody'),
        who: fc.constantFrom(...users, 7, true),
        'm.mentions': fc.record({ user_ids: fc.subarray(users), room: fc.boolean() }, { requiredKeys: [] }),
      },
      { requiredKeys: [] },
    ),
  });

  it('compiles rules that differ only in naming their owner to one shape', () => {
    const c = compileShared();
    expect(c[1]).toBe(c[0]);
    expect(c[2]).toBe(c[0]);
    expect(c[4]).toBe(c[3]);
    expect(c[3]).not.toBe(c[0]);
    expect(c[5]).not.toBe(c[3]);
    // Naming someone else is not naming oneself.
    const other = compilePushRulesOf(mergeRuleset(selfRule(users[3]!), users[4]!), users[4]!);
    expect(other.shape).not.toBe(c[3]!.shape);
    expect(compilePushRulesOf(mergeRuleset(undefined, users[0]!), undefined).shape).not.toBe(c[0]!.shape);
  });

  it('gives every user what evaluating their own rules alone gives, in any order', () => {
    const compiled = compileShared();
    fc.assert(
      fc.property(event, fc.integer({ min: 1, max: 4 }), fc.boolean(), fc.shuffledSubarray([0, 1, 2, 3, 4, 5], { minLength: 1 }), (ev, members, powerful, order) => {
        const level = () => (powerful ? 100 : 0);
        const evaluation = new PushEvaluation(preparePushEvent(ev as PushEvent), members, level, () => 50);
        for (const i of order) {
          const u = users[i]!;
          const alone = evaluatePushRules(rulesets[i]!, ev as PushEvent, {
            userId: u,
            roomMemberCount: members,
            displayName: displayName(u),
            senderPowerLevel: level,
            notificationPowerLevel: () => 50,
          });
          const m = evaluation.match(compiled[i]!, u, displayName(u));
          expect(m && { kind: m.kind, ruleId: m.ruleId, actions: [...m.actions] }).toEqual(alone);
          if (m) {
            expect(m.notify).toBe(actionsNotify(m.actions));
            expect(m.highlight).toBe(actionsHighlight(m.actions));
            expect(JSON.parse(m.actionsJson)).toEqual(m.actions);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('keeps an outcome only when it did not depend on the user', () => {
    const compiled = compileShared();
    const plain = new PushEvaluation(preparePushEvent(msg({ body: 'hi', 'm.mentions': {} })), 5);
    expect(plain.knows(compiled[0]!)).toBe(false);
    expect(plain.match(compiled[0]!, users[0]!)?.ruleId).toBe('.m.rule.message');
    expect(plain.knows(compiled[0]!)).toBe(true);
    expect(plain.match(compiled[1]!, users[1]!)?.ruleId).toBe('.m.rule.message');
    // A mention compares the user's ID: evaluated for each user.
    const mention = new PushEvaluation(preparePushEvent(msg({ body: 'hi', 'm.mentions': { user_ids: [users[1]] } })), 5);
    expect(mention.match(compiled[0]!, users[0]!)?.ruleId).toBe('.m.rule.message');
    expect(mention.knows(compiled[0]!)).toBe(false);
    expect(mention.match(compiled[1]!, users[1]!)).toMatchObject({ ruleId: '.m.rule.is_user_mention', highlight: true });
    // The display name is read for rules that ask for it, unless the body cannot match.
    const named = new PushEvaluation(preparePushEvent(msg({ body: 'f: look' })), 5);
    expect(named.match(compiled[5]!, users[5]!, displayName(users[5]!))?.ruleId).toBe('name');
    expect(named.knows(compiled[5]!)).toBe(false);
    const bodiless = new PushEvaluation(preparePushEvent(msg({ msgtype: 'm.text' })), 5);
    expect(bodiless.match(compiled[5]!, users[5]!, displayName(users[5]!))?.ruleId).toBe('.m.rule.message');
    expect(bodiless.knows(compiled[5]!)).toBe(true);
  });

  it('keeps nothing from an evaluation that failed (power levels not yet read), and evaluates again', () => {
    const compiled = compileShared();
    let levels: number | undefined;
    const fail = new Error('levels');
    const sender = () => {
      if (levels === undefined) throw fail;
      return levels;
    };
    const evaluation = new PushEvaluation(preparePushEvent(msg({ body: '@room', 'm.mentions': { room: true } })), 5, sender, () => 50);
    expect(() => evaluation.match(compiled[0]!, users[0]!)).toThrow(fail);
    expect(evaluation.knows(compiled[0]!)).toBe(false);
    levels = 100;
    expect(evaluation.match(compiled[0]!, users[0]!)).toMatchObject({ ruleId: '.m.rule.is_room_mention', highlight: true });
    expect(evaluation.match(compiled[1]!, users[1]!)?.ruleId).toBe('.m.rule.is_room_mention');
  });
});
