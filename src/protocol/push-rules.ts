/**
 * Push rules (client-server API "Push Notifications"): the server-default rules, merging a
 * user's stored ruleset with them, and evaluating a ruleset against an event. Pure: the
 * room facts a condition needs (member count, display name, power levels) come in a context.
 */
import type { JsonObject, JsonValue } from './json.js';

export const PUSH_RULE_KINDS = ['override', 'content', 'room', 'sender', 'underride'] as const;
export type PushRuleKind = (typeof PUSH_RULE_KINDS)[number];

export type PushAction = string | { set_tweak: string; value?: JsonValue; [k: string]: JsonValue | undefined };

export interface PushCondition {
  kind: string;
  key?: string;
  pattern?: string;
  value?: JsonValue;
  is?: string;
  [k: string]: JsonValue | undefined;
}

export interface PushRule {
  rule_id: string;
  default: boolean;
  enabled: boolean;
  actions: PushAction[];
  conditions?: PushCondition[];
  /** Content rules only. */
  pattern?: string;
}

export type PushRuleset = Record<PushRuleKind, PushRule[]>;

/** What a condition may need to know about the room and the user the rules belong to. */
export interface PushContext {
  /** The user whose rules these are. */
  userId: string;
  /** Joined members of the room. */
  roomMemberCount: number;
  /** The user's display name in the room (only asked for by `contains_display_name`). */
  displayName?: () => string | undefined;
  /** The sender's power level in the room. */
  senderPowerLevel?: () => number;
  /** The level needed to trigger a notification of this type (`notifications.<key>`). */
  notificationPowerLevel?: (key: string) => number;
}

export interface PushEvent {
  type: string;
  sender: string;
  room_id?: string;
  state_key?: string;
  content: JsonObject;
  [k: string]: JsonValue | undefined;
}

const SOUND_DEFAULT: PushAction = { set_tweak: 'sound', value: 'default' };
const HIGHLIGHT: PushAction = { set_tweak: 'highlight' };

function rule(rule_id: string, conditions: PushCondition[], actions: PushAction[], enabled = true): PushRule {
  return { rule_id, default: true, enabled, conditions, actions };
}

/**
 * The server-default rules for a user, in the spec's order. `.m.rule.master` is the first
 * override rule and always stays ahead of user rules; the other defaults come after them.
 */
export function defaultPushRules(userId: string): PushRuleset {
  return {
    override: [
      rule('.m.rule.master', [], [], false),
      rule('.m.rule.suppress_notices', [{ kind: 'event_match', key: 'content.msgtype', pattern: 'm.notice' }], []),
      rule(
        '.m.rule.invite_for_me',
        [
          { kind: 'event_match', key: 'type', pattern: 'm.room.member' },
          { kind: 'event_match', key: 'content.membership', pattern: 'invite' },
          { kind: 'event_match', key: 'state_key', pattern: userId },
        ],
        ['notify', SOUND_DEFAULT],
      ),
      rule('.m.rule.member_event', [{ kind: 'event_match', key: 'type', pattern: 'm.room.member' }], []),
      rule(
        '.m.rule.is_user_mention',
        [{ kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: userId }],
        ['notify', SOUND_DEFAULT, HIGHLIGHT],
      ),
      rule(
        '.m.rule.is_room_mention',
        [
          { kind: 'event_property_is', key: 'content.m\\.mentions.room', value: true },
          { kind: 'sender_notification_permission', key: 'room' },
        ],
        ['notify', HIGHLIGHT],
      ),
      rule(
        '.m.rule.tombstone',
        [
          { kind: 'event_match', key: 'type', pattern: 'm.room.tombstone' },
          { kind: 'event_match', key: 'state_key', pattern: '' },
        ],
        ['notify', HIGHLIGHT],
      ),
      rule('.m.rule.reaction', [{ kind: 'event_match', key: 'type', pattern: 'm.reaction' }], []),
      rule(
        '.m.rule.room.server_acl',
        [
          { kind: 'event_match', key: 'type', pattern: 'm.room.server_acl' },
          { kind: 'event_match', key: 'state_key', pattern: '' },
        ],
        [],
      ),
      rule('.m.rule.suppress_edits', [{ kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.replace' }], []),
    ],
    content: [],
    room: [],
    sender: [],
    underride: [
      rule('.m.rule.call', [{ kind: 'event_match', key: 'type', pattern: 'm.call.invite' }], ['notify', { set_tweak: 'sound', value: 'ring' }]),
      rule(
        '.m.rule.encrypted_room_one_to_one',
        [
          { kind: 'room_member_count', is: '2' },
          { kind: 'event_match', key: 'type', pattern: 'm.room.encrypted' },
        ],
        ['notify', SOUND_DEFAULT],
      ),
      rule(
        '.m.rule.room_one_to_one',
        [
          { kind: 'room_member_count', is: '2' },
          { kind: 'event_match', key: 'type', pattern: 'm.room.message' },
        ],
        ['notify', SOUND_DEFAULT],
      ),
      rule('.m.rule.message', [{ kind: 'event_match', key: 'type', pattern: 'm.room.message' }], ['notify']),
      rule('.m.rule.encrypted', [{ kind: 'event_match', key: 'type', pattern: 'm.room.encrypted' }], ['notify']),
    ],
  };
}

export function emptyRuleset(): PushRuleset {
  return { override: [], content: [], room: [], sender: [], underride: [] };
}

export function isServerDefaultRuleId(ruleId: string): boolean {
  return ruleId.startsWith('.');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Drops the historical `dont_notify` and `coalesce` actions (spec: "Historical Actions"). */
export function cleanActions(actions: readonly PushAction[]): PushAction[] {
  return actions.filter((a) => a !== 'dont_notify' && a !== 'coalesce');
}

/**
 * A user's effective ruleset: the stored user-defined rules in their stored order, and the
 * current server-default rules with the `enabled` flag and `actions` the user stored for them.
 * `stored` is the content of the user's `m.push_rules` account data (or undefined).
 */
export function mergeRuleset(stored: unknown, userId: string): PushRuleset {
  const defaults = defaultPushRules(userId);
  const global = isObject(stored) && isObject(stored.global) ? stored.global : {};
  const out = emptyRuleset();
  for (const kind of PUSH_RULE_KINDS) {
    const storedRules = Array.isArray(global[kind]) ? (global[kind] as unknown[]).filter(isObject) : [];
    const storedById = new Map(storedRules.map((r) => [String(r.rule_id), r]));
    const userRules: PushRule[] = [];
    for (const r of storedRules) {
      if (typeof r.rule_id !== 'string' || isServerDefaultRuleId(r.rule_id)) continue;
      const parsed = parseStoredRule(kind, r);
      if (parsed) userRules.push(parsed);
    }
    const defs = defaults[kind].map((d) => {
      const s = storedById.get(d.rule_id);
      if (!s) return d;
      return {
        ...d,
        enabled: typeof s.enabled === 'boolean' ? s.enabled : d.enabled,
        actions: Array.isArray(s.actions) ? cleanActions(s.actions as PushAction[]) : d.actions,
      };
    });
    if (kind === 'override') {
      const master = defs.filter((d) => d.rule_id === '.m.rule.master');
      out.override = [...master, ...userRules, ...defs.filter((d) => d.rule_id !== '.m.rule.master')];
    } else {
      out[kind] = [...userRules, ...defs];
    }
  }
  return out;
}

function parseStoredRule(kind: PushRuleKind, r: Record<string, unknown>): PushRule | undefined {
  if (typeof r.rule_id !== 'string' || !Array.isArray(r.actions)) return undefined;
  const out: PushRule = {
    rule_id: r.rule_id,
    default: false,
    enabled: typeof r.enabled === 'boolean' ? r.enabled : true,
    actions: cleanActions(r.actions as PushAction[]),
  };
  if (kind === 'override' || kind === 'underride') out.conditions = Array.isArray(r.conditions) ? (r.conditions.filter(isObject) as PushCondition[]) : [];
  if (kind === 'content') {
    if (typeof r.pattern !== 'string') return undefined;
    out.pattern = r.pattern;
  }
  return out;
}

/** The ruleset in the form the client API returns and `m.push_rules` carries: `{ global: … }`. */
export function rulesetToJson(rs: PushRuleset): JsonObject {
  return { global: rs as unknown as JsonObject };
}

// ---------------------------------------------------------------------------------------------
// Evaluation

const pathCache = new Map<string, readonly string[]>();

/** Splits a dot-separated property path (appendices: `\.` is a literal dot, `\\` a backslash). */
export function splitPropertyPath(path: string): string[] {
  return [...splitPathCached(path)];
}

/** splitPropertyPath, remembered (rules name the same few paths over and over). */
function splitPathCached(path: string): readonly string[] {
  let parts = pathCache.get(path);
  if (parts === undefined) {
    parts = splitPath(path);
    if (pathCache.size >= 2000) pathCache.clear();
    pathCache.set(path, parts);
  }
  return parts;
}

function splitPath(path: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!;
    if (c === '\\' && (path[i + 1] === '.' || path[i + 1] === '\\')) {
      cur += path[i + 1];
      i++;
    } else if (c === '.') {
      parts.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  parts.push(cur);
  return parts;
}

/** The value at a dot-separated path of the event, or undefined. */
export function propertyAt(event: JsonObject, path: string): JsonValue | undefined {
  return propertyAtParts(event, splitPathCached(path));
}

function propertyAtParts(event: JsonObject, parts: readonly string[]): JsonValue | undefined {
  let cur: JsonValue | undefined = event;
  for (const p of parts) {
    if (!isObject(cur)) return undefined;
    cur = Object.prototype.hasOwnProperty.call(cur, p) ? (cur as JsonObject)[p] : undefined;
  }
  return cur;
}

/** Compiled globs: whole-value matches and word matches (`content.body`). */
const regexCache = { whole: new Map<string, RegExp>(), words: new Map<string, RegExp>() };

/** Glob (`*`, `?`) to a case-insensitive regular expression; `words` matches at word boundaries. */
export function globToRegExp(glob: string, words: boolean): RegExp {
  const cache = words ? regexCache.words : regexCache.whole;
  let re = cache.get(glob);
  if (re) return re;
  let body = '';
  for (const ch of glob) {
    if (ch === '*') body += '.*?';
    else if (ch === '?') body += '.';
    // Only syntax characters are escaped: other escapes (`\-`) are errors in unicode mode.
    else body += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  const source = words ? `(?:^|[^A-Za-z0-9_])${body}(?:[^A-Za-z0-9_]|$)` : `^${body}$`;
  re = new RegExp(source, 'isu');
  if (cache.size > 2000) cache.clear();
  cache.set(glob, re);
  return re;
}

/** Whether a string matches a glob: the whole value, or for `content.body` a substring at word boundaries. */
export function globMatches(glob: string, value: string, words: boolean): boolean {
  return globToRegExp(glob, words).test(value);
}

function isNonCompound(v: JsonValue | undefined): v is string | number | boolean | null {
  return v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isSafeInteger(v));
}

const MEMBER_COUNT = /^(==|<=|>=|<|>)?([0-9]+)$/;

/** A room_member_count `is` as a test of the count, or undefined when it is malformed. */
function memberCountTest(is: unknown): ((count: number) => boolean) | undefined {
  if (typeof is !== 'string') return undefined;
  const m = MEMBER_COUNT.exec(is);
  if (!m) return undefined;
  const n = Number(m[2]);
  switch (m[1] ?? '==') {
    case '==':
      return (count) => count === n;
    case '<':
      return (count) => count < n;
    case '>':
      return (count) => count > n;
    case '<=':
      return (count) => count <= n;
    case '>=':
      return (count) => count >= n;
    default:
      return undefined;
  }
}

/**
 * An event being evaluated against many users' rules: each property path is looked up once,
 * whoever's rules ask for it.
 */
export class PreparedPushEvent {
  private readonly properties = new Map<string, JsonValue | undefined>();

  constructor(readonly event: PushEvent) {}

  /** The value at a dot-separated path of the event (`parts` is the path split). */
  property(path: string, parts: readonly string[]): JsonValue | undefined {
    if (this.properties.has(path)) return this.properties.get(path);
    const v = propertyAtParts(this.event as unknown as JsonObject, parts);
    this.properties.set(path, v);
    return v;
  }
}

export function preparePushEvent(event: PushEvent): PreparedPushEvent {
  return new PreparedPushEvent(event);
}

type CompiledTest = (ev: PreparedPushEvent, ctx: PushContext) => boolean;

const never: CompiledTest = () => false;

/**
 * Set by a compiled test whose outcome depended on whose rules are evaluated (it compared a
 * value with the user's ID or display name); cleared by `PushEvaluation.match` before it
 * evaluates. Evaluation is synchronous, so one flag serves every evaluation.
 */
let userDependent = false;

/**
 * Which value of a condition is its owner's user ID (and is read from the context when
 * evaluating), if any: conditions naming their owner compile alike for every user.
 */
function ownerField(cond: PushCondition, owner: string | undefined): 'pattern' | 'value' | undefined {
  if (owner === undefined) return undefined;
  if (cond.kind === 'event_match' && cond.pattern === owner) return 'pattern';
  if ((cond.kind === 'event_property_is' || cond.kind === 'event_property_contains') && cond.value === owner) return 'value';
  return undefined;
}

/**
 * A condition as a test, with its path split and its glob compiled. Unrecognised conditions
 * never match. With `owner` (the user the rules belong to), a value equal to the owner's ID is
 * compared with `ctx.userId` instead, which is the same for the owner.
 */
function compileCondition(cond: PushCondition, owner?: string): CompiledTest {
  const byOwner = ownerField(cond, owner);
  switch (cond.kind) {
    case 'event_match': {
      const { key, pattern } = cond;
      if (typeof key !== 'string' || typeof pattern !== 'string') return never;
      const parts = splitPathCached(key);
      const words = key === 'content.body';
      if (byOwner) {
        return (ev, ctx) => {
          const v = ev.property(key, parts);
          if (typeof v !== 'string') return false;
          userDependent = true;
          return globToRegExp(ctx.userId, words).test(v);
        };
      }
      const re = globToRegExp(pattern, words);
      return (ev) => {
        const v = ev.property(key, parts);
        return typeof v === 'string' && re.test(v);
      };
    }
    case 'event_property_is': {
      const { key, value } = cond;
      if (typeof key !== 'string' || !isNonCompound(value)) return never;
      const parts = splitPathCached(key);
      if (byOwner) {
        // The owner's ID is a string: only a string can equal it.
        return (ev, ctx) => {
          const v = ev.property(key, parts);
          if (typeof v !== 'string') return false;
          userDependent = true;
          return v === ctx.userId;
        };
      }
      return (ev) => {
        const v = ev.property(key, parts);
        return isNonCompound(v) && v === value;
      };
    }
    case 'event_property_contains': {
      const { key, value } = cond;
      if (typeof key !== 'string' || !isNonCompound(value)) return never;
      const parts = splitPathCached(key);
      if (byOwner) {
        return (ev, ctx) => {
          const v = ev.property(key, parts);
          if (!Array.isArray(v)) return false;
          userDependent = true;
          return v.includes(ctx.userId);
        };
      }
      return (ev) => {
        const v = ev.property(key, parts);
        return Array.isArray(v) && v.some((x) => isNonCompound(x) && x === value);
      };
    }
    case 'contains_display_name':
      return (ev, ctx) => {
        const body = ev.event.content['body'];
        if (typeof body !== 'string') return false;
        userDependent = true;
        const name = ctx.displayName?.();
        return !!name && wordMatch(name, body);
      };
    case 'room_member_count': {
      const test = memberCountTest(cond.is);
      return test ? (_ev, ctx) => test(ctx.roomMemberCount) : never;
    }
    case 'sender_notification_permission': {
      const key = cond.key;
      if (typeof key !== 'string') return never;
      return (_ev, ctx) => !!ctx.senderPowerLevel && !!ctx.notificationPowerLevel && ctx.senderPowerLevel() >= ctx.notificationPowerLevel(key);
    }
    default:
      return never;
  }
}

/** Whether one condition holds for an event. Unrecognised conditions never match. */
export function conditionMatches(cond: PushCondition, event: PushEvent, ctx: PushContext): boolean {
  return compileCondition(cond)(preparePushEvent(event), ctx);
}

/** The display name as a literal (not a glob) at word boundaries of the body, case-insensitively. */
function wordMatch(name: string, body: string): boolean {
  const escaped = name.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  return new RegExp(`(?:^|[^A-Za-z0-9_])${escaped}(?:[^A-Za-z0-9_]|$)`, 'iu').test(body);
}

function compileRule(kind: PushRuleKind, r: PushRule, owner: string | undefined): CompiledTest {
  switch (kind) {
    case 'override':
    case 'underride': {
      const tests = (r.conditions ?? []).map((c) => compileCondition(c, owner));
      if (tests.length === 0) return () => true;
      if (tests.length === 1) return tests[0]!;
      return (ev, ctx) => {
        for (const t of tests) if (!t(ev, ctx)) return false;
        return true;
      };
    }
    case 'content': {
      if (typeof r.pattern !== 'string') return never;
      const re = globToRegExp(r.pattern, true);
      return (ev) => {
        const body = ev.event.content['body'];
        return typeof body === 'string' && re.test(body);
      };
    }
    case 'room': {
      const roomId = r.rule_id;
      return (ev) => ev.event.room_id === roomId;
    }
    case 'sender': {
      const sender = r.rule_id;
      return (ev) => ev.event.sender === sender;
    }
  }
}

export interface PushMatch {
  kind: PushRuleKind;
  ruleId: string;
  actions: PushAction[];
}

/** A compiled rule, as `PushEvaluation.match` returns it: shared by every match, never to be changed. */
export interface CompiledRule {
  readonly kind: PushRuleKind;
  readonly ruleId: string;
  /** Without the historical actions. */
  readonly actions: readonly PushAction[];
  /** `actions` as JSON. */
  readonly actionsJson: string;
  /** Whether the actions notify, and whether they highlight. */
  readonly notify: boolean;
  readonly highlight: boolean;
  readonly test: CompiledTest;
}

/**
 * A ruleset ready to evaluate many events: its enabled rules in priority order, each with its
 * conditions compiled (paths split, globs turned into regular expressions). It is a snapshot:
 * compile the ruleset again after changing it.
 */
export interface CompiledPushRules {
  readonly rules: readonly CompiledRule[];
  /** Whether an enabled rule has a `contains_display_name` condition (only then is the name needed). */
  readonly usesDisplayName: boolean;
  /**
   * The same for rulesets that compile to the same tests. Compiled for their owner (`owner`
   * given), conditions naming the owner's ID read the user from the context, so the rules of
   * users who differ only there have the same shape, and either's compiled rules serve both.
   */
  readonly shape: string;
}

export function compilePushRules(rules: PushRuleset): CompiledPushRules {
  return compilePushRulesOf(rules, undefined);
}

/**
 * The ruleset of `owner` compiled (see `CompiledPushRules.shape`): conditions naming the owner
 * read the user from the context, so the result serves whoever has rules of the same shape.
 */
export function compilePushRulesOf(rules: PushRuleset, owner: string | undefined): CompiledPushRules {
  const out: CompiledRule[] = [];
  const shape: unknown[] = [];
  let usesDisplayName = false;
  for (const kind of PUSH_RULE_KINDS) {
    for (const r of rules[kind]) {
      if (!r.enabled) continue;
      const conditional = kind === 'override' || kind === 'underride';
      if (conditional && r.conditions?.some((c) => c.kind === 'contains_display_name')) usesDisplayName = true;
      const actions = cleanActions(r.actions);
      out.push({
        kind,
        ruleId: r.rule_id,
        actions,
        actionsJson: JSON.stringify(actions),
        notify: actionsNotify(actions),
        highlight: actionsHighlight(actions),
        test: compileRule(kind, r, owner),
      });
      // Everything compileRule reads; a value read from the context is left out and marked.
      const conditions = conditional ? (r.conditions ?? []).map((c) => {
        const f = ownerField(c, owner);
        return f ? [{ ...c, [f]: null }, f] : [c];
      }) : undefined;
      shape.push([kind, r.rule_id, r.pattern, actions, conditions]);
    }
  }
  return { rules: out, usesDisplayName, shape: JSON.stringify(shape) };
}

/** The first enabled rule that matches, in priority order, or undefined. */
export function evaluateCompiledPushRules(rules: CompiledPushRules, event: PreparedPushEvent, ctx: PushContext): PushMatch | undefined {
  for (const r of rules.rules) {
    if (r.test(event, ctx)) return { kind: r.kind, ruleId: r.ruleId, actions: [...r.actions] };
  }
  return undefined;
}

/** The first enabled rule that matches, in priority order, or undefined. */
export function evaluatePushRules(rules: PushRuleset, event: PushEvent, ctx: PushContext): PushMatch | undefined {
  return evaluateCompiledPushRules(compilePushRules(rules), preparePushEvent(event), ctx);
}

/**
 * One event evaluated for many users of a room: the room facts (member count, power levels)
 * are the same for all of them. An outcome that did not depend on whose rules were evaluated
 * (no condition compared a value with the user's ID or display name) is kept per compiled
 * ruleset and given to every later user with the same compiled rules without evaluating
 * again — with the server-default rules, a message that mentions nobody is evaluated once.
 */
export class PushEvaluation {
  private readonly outcomes = new Map<CompiledPushRules, CompiledRule | null>();
  private readonly ctx: PushContext;

  constructor(
    readonly event: PreparedPushEvent,
    roomMemberCount: number,
    senderPowerLevel?: () => number,
    notificationPowerLevel?: (key: string) => number,
  ) {
    this.ctx = { userId: '', roomMemberCount, displayName: undefined, senderPowerLevel, notificationPowerLevel };
  }

  /** Whether the outcome for these rules is known whoever they belong to (no display name is needed then). */
  knows(rules: CompiledPushRules): boolean {
    return this.outcomes.has(rules);
  }

  /**
   * The first enabled rule of `rules` (the rules of `userId`) that matches, or undefined.
   * `displayName` is the user's display name in the room (needed when `rules.usesDisplayName`).
   */
  match(rules: CompiledPushRules, userId: string, displayName?: () => string | undefined): CompiledRule | undefined {
    const known = this.outcomes.get(rules);
    if (known !== undefined) return known ?? undefined;
    const ctx = this.ctx;
    ctx.userId = userId;
    ctx.displayName = displayName;
    userDependent = false;
    let hit: CompiledRule | null = null;
    for (const r of rules.rules) {
      if (r.test(this.event, ctx)) {
        hit = r;
        break;
      }
    }
    if (!userDependent) this.outcomes.set(rules, hit);
    return hit ?? undefined;
  }
}

/** Whether the actions notify. */
export function actionsNotify(actions: readonly PushAction[]): boolean {
  return actions.includes('notify');
}

/** The value of a tweak (`highlight` with no value is true); undefined when not set. */
export function tweakValue(actions: readonly PushAction[], tweak: string): JsonValue | undefined {
  for (const a of actions) {
    if (typeof a === 'object' && a.set_tweak === tweak) return a.value === undefined ? (tweak === 'highlight' ? true : null) : a.value;
  }
  return undefined;
}

export function actionsHighlight(actions: readonly PushAction[]): boolean {
  return tweakValue(actions, 'highlight') === true;
}

// ---------------------------------------------------------------------------------------------
// Validation of rules written through the client API

/** Checks the body of PUT /pushrules/global/{kind}/{ruleId}; returns an error message or the rule. */
export function validateNewRule(kind: PushRuleKind, ruleId: string, body: unknown): string | PushRule {
  if (!isObject(body)) return 'The body must be a JSON object';
  const actions = body.actions;
  const bad = checkActions(actions);
  if (bad) return bad;
  const r: PushRule = { rule_id: ruleId, default: false, enabled: true, actions: cleanActions(actions as PushAction[]) };
  if (kind === 'override' || kind === 'underride') {
    const conditions = body.conditions ?? [];
    if (!Array.isArray(conditions) || !conditions.every((c) => isObject(c) && typeof c.kind === 'string')) {
      return 'conditions must be an array of objects with a kind';
    }
    r.conditions = conditions as PushCondition[];
  }
  if (kind === 'content') {
    if (typeof body.pattern !== 'string') return 'Content rules need a pattern';
    r.pattern = body.pattern;
  }
  return r;
}

/** Checks an actions array; returns an error message or undefined. */
export function checkActions(actions: unknown): string | undefined {
  if (!Array.isArray(actions)) return 'actions must be an array';
  for (const a of actions) {
    if (typeof a === 'string') {
      if (!['notify', 'dont_notify', 'coalesce'].includes(a)) return `Unknown action ${a}`;
    } else if (!isObject(a) || typeof a.set_tweak !== 'string') {
      return 'Actions are strings or objects with set_tweak';
    }
  }
  return undefined;
}
