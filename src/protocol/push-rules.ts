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

/** Splits a dot-separated property path (appendices: `\.` is a literal dot, `\\` a backslash). */
export function splitPropertyPath(path: string): string[] {
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
  let cur: JsonValue | undefined = event;
  for (const p of splitPropertyPath(path)) {
    if (!isObject(cur)) return undefined;
    cur = Object.prototype.hasOwnProperty.call(cur, p) ? (cur as JsonObject)[p] : undefined;
  }
  return cur;
}

const regexCache = new Map<string, RegExp>();

/** Glob (`*`, `?`) to a case-insensitive regular expression; `words` matches at word boundaries. */
export function globToRegExp(glob: string, words: boolean): RegExp {
  const cacheKey = `${words ? 'w' : 'x'}${glob}`;
  let re = regexCache.get(cacheKey);
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
  if (regexCache.size > 2000) regexCache.clear();
  regexCache.set(cacheKey, re);
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

function memberCountMatches(is: unknown, count: number): boolean {
  if (typeof is !== 'string') return false;
  const m = MEMBER_COUNT.exec(is);
  if (!m) return false;
  const n = Number(m[2]);
  switch (m[1] ?? '==') {
    case '==':
      return count === n;
    case '<':
      return count < n;
    case '>':
      return count > n;
    case '<=':
      return count <= n;
    case '>=':
      return count >= n;
    default:
      return false;
  }
}

/** Whether one condition holds for an event. Unrecognised conditions never match. */
export function conditionMatches(cond: PushCondition, event: PushEvent, ctx: PushContext): boolean {
  switch (cond.kind) {
    case 'event_match': {
      if (typeof cond.key !== 'string' || typeof cond.pattern !== 'string') return false;
      const v = propertyAt(event as unknown as JsonObject, cond.key);
      if (typeof v !== 'string') return false;
      return globMatches(cond.pattern, v, cond.key === 'content.body');
    }
    case 'event_property_is': {
      if (typeof cond.key !== 'string' || !isNonCompound(cond.value)) return false;
      const v = propertyAt(event as unknown as JsonObject, cond.key);
      return isNonCompound(v) && v === cond.value;
    }
    case 'event_property_contains': {
      if (typeof cond.key !== 'string' || !isNonCompound(cond.value)) return false;
      const v = propertyAt(event as unknown as JsonObject, cond.key);
      return Array.isArray(v) && v.some((x) => isNonCompound(x) && x === cond.value);
    }
    case 'contains_display_name': {
      const body = event.content['body'];
      const name = ctx.displayName?.();
      if (typeof body !== 'string' || !name) return false;
      return wordMatch(name, body);
    }
    case 'room_member_count':
      return memberCountMatches(cond.is, ctx.roomMemberCount);
    case 'sender_notification_permission': {
      if (typeof cond.key !== 'string' || !ctx.senderPowerLevel || !ctx.notificationPowerLevel) return false;
      return ctx.senderPowerLevel() >= ctx.notificationPowerLevel(cond.key);
    }
    default:
      return false;
  }
}

/** The display name as a literal (not a glob) at word boundaries of the body, case-insensitively. */
function wordMatch(name: string, body: string): boolean {
  const escaped = name.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  return new RegExp(`(?:^|[^A-Za-z0-9_])${escaped}(?:[^A-Za-z0-9_]|$)`, 'iu').test(body);
}

function ruleMatches(kind: PushRuleKind, r: PushRule, event: PushEvent, ctx: PushContext): boolean {
  switch (kind) {
    case 'override':
    case 'underride':
      return (r.conditions ?? []).every((c) => conditionMatches(c, event, ctx));
    case 'content': {
      const body = event.content['body'];
      return typeof r.pattern === 'string' && typeof body === 'string' && globMatches(r.pattern, body, true);
    }
    case 'room':
      return event.room_id === r.rule_id;
    case 'sender':
      return event.sender === r.rule_id;
  }
}

export interface PushMatch {
  kind: PushRuleKind;
  ruleId: string;
  actions: PushAction[];
}

/** The first enabled rule that matches, in priority order, or undefined. */
export function evaluatePushRules(rules: PushRuleset, event: PushEvent, ctx: PushContext): PushMatch | undefined {
  for (const kind of PUSH_RULE_KINDS) {
    for (const r of rules[kind]) {
      if (!r.enabled) continue;
      if (ruleMatches(kind, r, event, ctx)) return { kind, ruleId: r.rule_id, actions: cleanActions(r.actions) };
    }
  }
  return undefined;
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
