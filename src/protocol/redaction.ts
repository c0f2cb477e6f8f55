/**
 * The redaction algorithm of every room version (rooms/fragments/*-redactions.md, vN.md
 * "Redactions"). The algorithm is selected by `RoomVersion.redaction`:
 *
 * - `v1` (v1–v5): the original list, `m.room.aliases` keeps `aliases`.
 * - `v6` (v6, v7): `m.room.aliases` is no longer special.
 * - `v8`: `m.room.join_rules` also keeps `allow`.
 * - `v9` (v9, v10): `m.room.member` also keeps `join_authorised_via_users_server`.
 * - `v11` (v11+): top-level `origin`, `membership` and `prev_state` are no longer kept;
 *   `m.room.create` keeps its whole content; `m.room.power_levels` keeps `invite`;
 *   `m.room.redaction` keeps `redacts` in content; `m.room.member` keeps
 *   `third_party_invite.signed`.
 */
import type { RoomVersion } from './room-versions.js';

type RedactionRules = RoomVersion['redaction'];

const TOP_LEVEL_COMMON = [
  'event_id',
  'type',
  'room_id',
  'sender',
  'state_key',
  'content',
  'hashes',
  'signatures',
  'depth',
  'prev_events',
  'auth_events',
  'origin_server_ts',
] as const;
const TOP_LEVEL_PRE_V11 = ['prev_state', 'origin', 'membership'] as const;

const TOP_LEVEL: Record<RedactionRules, ReadonlySet<string>> = {
  v1: new Set([...TOP_LEVEL_COMMON, ...TOP_LEVEL_PRE_V11]),
  v6: new Set([...TOP_LEVEL_COMMON, ...TOP_LEVEL_PRE_V11]),
  v8: new Set([...TOP_LEVEL_COMMON, ...TOP_LEVEL_PRE_V11]),
  v9: new Set([...TOP_LEVEL_COMMON, ...TOP_LEVEL_PRE_V11]),
  v11: new Set(TOP_LEVEL_COMMON),
};

const POWER_LEVELS_KEYS = ['ban', 'events', 'events_default', 'kick', 'redact', 'state_default', 'users', 'users_default'];

/** Content keys kept per event type; `'*'` keeps the whole content. */
function contentKeys(rules: RedactionRules, type: string): readonly string[] | '*' | undefined {
  const v8plus = rules === 'v8' || rules === 'v9' || rules === 'v11';
  const v9plus = rules === 'v9' || rules === 'v11';
  const v11 = rules === 'v11';
  switch (type) {
    case 'm.room.member':
      return v9plus ? ['membership', 'join_authorised_via_users_server'] : ['membership'];
    case 'm.room.create':
      return v11 ? '*' : ['creator'];
    case 'm.room.join_rules':
      return v8plus ? ['join_rule', 'allow'] : ['join_rule'];
    case 'm.room.power_levels':
      return v11 ? [...POWER_LEVELS_KEYS, 'invite'] : POWER_LEVELS_KEYS;
    case 'm.room.aliases':
      return rules === 'v1' ? ['aliases'] : undefined;
    case 'm.room.history_visibility':
      return ['history_visibility'];
    case 'm.room.redaction':
      return v11 ? ['redacts'] : undefined;
    default:
      return undefined;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** The redacted `content` of an event of `type` under `version`'s rules. */
export function redactContent(type: string, content: unknown, version: RoomVersion): Record<string, unknown> {
  if (!isPlainObject(content)) return {};
  const keep = contentKeys(version.redaction, type);
  if (keep === '*') return { ...content };
  const out: Record<string, unknown> = {};
  if (keep) {
    for (const k of keep) if (hasOwn(content, k)) out[k] = content[k];
  }
  if (version.redaction === 'v11' && type === 'm.room.member' && isPlainObject(content['third_party_invite'])) {
    const tpi = content['third_party_invite'];
    out['third_party_invite'] = hasOwn(tpi, 'signed') ? { signed: tpi['signed'] } : {};
  }
  return out;
}

/**
 * Returns the redacted form of `event` (a PDU or a client-format event) under `version`'s
 * rules: a new object holding only the protected top-level keys and the protected content.
 * `unsigned` is always dropped (callers re-add `redacted_because` etc. themselves). Nested
 * values are shared with the input, not copied.
 */
export function redactEvent<T extends object>(event: T, version: RoomVersion): T {
  const src = event as Record<string, unknown>;
  const allowed = TOP_LEVEL[version.redaction];
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(src)) {
    if (k !== 'content' && allowed.has(k)) out[k] = src[k];
  }
  out['content'] = redactContent(typeof src['type'] === 'string' ? src['type'] : '', src['content'], version);
  return out as T;
}

/** Whether `key` survives redaction at the top level under `version`'s rules. */
export function isProtectedTopLevelKey(key: string, version: RoomVersion): boolean {
  return TOP_LEVEL[version.redaction].has(key);
}
