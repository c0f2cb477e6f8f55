import { parseStateKey, stateKeyOf } from '../../protocol/event.js';

/**
 * A room's `required_state`, normalised: the (type, state_key) patterns to return (`*` in
 * either place matches anything), patterns to leave out, and whether memberships are
 * lazy-loaded (only the members the timeline needs).
 *
 * Two request forms are accepted: the pairs `[[type, state_key], ...]` sent by current
 * clients to the unstable endpoint (with `$LAZY` and `$ME` state keys), and the
 * `{ include, exclude, lazy_members }` object of the proposal's final text.
 */
export interface RequiredState {
  /** `type\u0000state_key` patterns, sorted and unique. */
  include: string[];
  exclude: string[];
  lazy: boolean;
}

const SEP = '\u0000';
const MEMBER = 'm.room.member';

export type RequiredStateRequest = Array<[string, string]> | { include?: Array<{ type?: string; state_key?: string }>; exclude?: Array<{ type?: string; state_key?: string }>; lazy_members?: boolean };

function pattern(type: string | undefined, stateKey: string | undefined, userId: string): string {
  const key = stateKey === '$ME' ? userId : (stateKey ?? '*');
  return `${type ?? '*'}${SEP}${key}`;
}

export function normaliseRequiredState(req: RequiredStateRequest | undefined, userId: string): RequiredState {
  const include = new Set<string>();
  const exclude = new Set<string>();
  let lazy = false;
  if (Array.isArray(req)) {
    for (const [type, key] of req) {
      if (type === MEMBER && key === '$LAZY') lazy = true;
      else include.add(pattern(type, key, userId));
    }
  } else if (req) {
    for (const e of req.include ?? []) include.add(pattern(e.type, e.state_key, userId));
    for (const e of req.exclude ?? []) exclude.add(pattern(e.type, e.state_key, userId));
    lazy = req.lazy_members === true;
  }
  // Without lazy-loading, a wildcard type also returns every membership: say so explicitly, so
  // that combining with a lazy config keeps those memberships (see `combine`).
  if (!lazy) {
    for (const p of [...include]) {
      const [type, key] = p.split(SEP) as [string, string];
      if (type === '*') include.add(`${MEMBER}${SEP}${key}`);
    }
  }
  return { include: [...include].sort(), exclude: [...exclude].sort(), lazy };
}

/**
 * The superset of several configs: union of the patterns; lazy if any is lazy (configs that
 * return all members keep doing so through their explicit member pattern); an exclusion only
 * when every config excludes it.
 */
export function combine(configs: RequiredState[]): RequiredState {
  if (configs.length === 1) return configs[0]!;
  const include = new Set<string>();
  let lazy = false;
  for (const c of configs) {
    for (const p of c.include) include.add(p);
    lazy ||= c.lazy;
  }
  const exclude = configs.every((c) => c.exclude.length > 0) ? configs[0]!.exclude.filter((p) => configs.every((c) => c.exclude.includes(p))) : [];
  return { include: [...include].sort(), exclude, lazy };
}

function matches(patterns: readonly string[], type: string, stateKey: string): boolean {
  for (const p of patterns) {
    const i = p.indexOf(SEP);
    const t = p.slice(0, i);
    const k = p.slice(i + 1);
    if ((t === '*' || t === type) && (k === '*' || k === stateKey)) return true;
  }
  return false;
}

/**
 * Whether the config asks for this state entry by pattern (lazy-loaded members aside). With
 * lazy-loading, memberships are only returned by an explicit `m.room.member` pattern.
 */
export function wants(rs: RequiredState, type: string, stateKey: string): boolean {
  if (type === MEMBER && rs.lazy) {
    const explicit = rs.include.filter((p) => p.startsWith(MEMBER + SEP));
    if (!matches(explicit, type, stateKey)) return false;
  } else if (!matches(rs.include, type, stateKey)) {
    return false;
  }
  return !matches(rs.exclude, type, stateKey);
}

/** How every membership's state key (see stateKeyOf) begins. */
const MEMBER_KEY_PREFIX = stateKeyOf(MEMBER, '').slice(0, -3);
const anyMemberPattern = new WeakMap<RequiredState, boolean>();

/**
 * Whether the config asks for this state key (as made by stateKeyOf). Memberships are
 * told apart without parsing when no pattern can match one (big rooms have many).
 */
export function wantsKey(rs: RequiredState, key: string): boolean {
  if (key.startsWith(MEMBER_KEY_PREFIX)) {
    let any = anyMemberPattern.get(rs);
    if (any === undefined) {
      any = rs.include.some((p) => p.startsWith(MEMBER + SEP) || (!rs.lazy && p.startsWith('*' + SEP)));
      anyMemberPattern.set(rs, any);
    }
    if (!any) return false;
  }
  const [type, stateKey] = parseStateKey(key);
  return wants(rs, type, stateKey);
}

export function sameRequiredState(a: RequiredState, b: RequiredState): boolean {
  return a.lazy === b.lazy && a.include.join('\n') === b.include.join('\n') && a.exclude.join('\n') === b.exclude.join('\n');
}

/** Whether `next` may return state `prev` did not (a new pattern, a removed exclusion, lazy-loading turned off). */
export function expands(prev: RequiredState, next: RequiredState): boolean {
  if (next.include.some((p) => !prev.include.includes(p))) return true;
  if (prev.exclude.some((p) => !next.exclude.includes(p))) return true;
  return prev.lazy && !next.lazy;
}
