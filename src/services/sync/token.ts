import { errors } from '../../errors.js';
import type { TimelineKey } from '../../storage/stores/events.js';

/** The streams a sync token holds a position in, in token order. */
export const STREAMS = ['events', 'account_data', 'to_device', 'receipts', 'typing', 'presence', 'device_lists'] as const;
export type StreamName = (typeof STREAMS)[number];
export type StreamPositions = Record<StreamName, number>;

export function zeroPositions(): StreamPositions {
  return { events: 0, account_data: 0, to_device: 0, receipts: 0, typing: 0, presence: 0, device_lists: 0 };
}

/** `s<events>_<account_data>_<to_device>_<receipts>_<typing>_<presence>_<device_lists>` (in STREAMS order) */
export function formatSyncToken(p: StreamPositions): string {
  return `s${p.events}_${p.account_data}_${p.to_device}_${p.receipts}_${p.typing}_${p.presence}_${p.device_lists}`;
}

/**
 * `s` then one or more runs of digits separated by `_`: the positions in STREAMS order (missing
 * ones are 0, extra ones are ignored).
 */
export function parseSyncToken(token: string): StreamPositions {
  const out = zeroPositions();
  const n = token.length;
  let ok = n > 1 && token.charCodeAt(0) === 0x73; // 's'
  let part = 0;
  let start = 1;
  for (let i = 1; ok && i <= n; i++) {
    const c = i < n ? token.charCodeAt(i) : 0x5f;
    if (c >= 0x30 && c <= 0x39) continue;
    // A separator (or the end): the run before it must not be empty.
    if (c !== 0x5f || i === start) ok = false;
    else {
      if (part < STREAMS.length) out[STREAMS[part]!] = Number(token.slice(start, i));
      part++;
      start = i + 1;
    }
  }
  if (!ok) throw errors.invalidParam(`Invalid sync token: ${token}`);
  return out;
}

/**
 * Pagination tokens for /messages: `t<stream position>`. A sync token is accepted too
 * (its events position is used).
 */
export function formatPaginationToken(position: number): string {
  return `t${position}`;
}

export function parsePaginationToken(token: string): number {
  const t = /^t(-?\d+)$/.exec(token);
  if (t) return Number(t[1]);
  const k = TIMELINE_KEY.exec(token);
  if (k) return Number(k[2]) >= 0 ? Number(k[1]) : Number(k[1]) - 1;
  return parseSyncToken(token).events;
}

/**
 * /messages tokens: a stream position (`t42`, or a sync token), or an exact point of the
 * timeline (`t42_-7`: after the event with timeline key [42, -7]), needed between the events
 * backfilled into a gap (which all sit just before one stream position).
 */
export type TimelineToken = { position: number } | { key: TimelineKey };

const TIMELINE_KEY = /^t(-?\d+)_(-?\d+)$/;

export function parseTimelineToken(token: string): TimelineToken {
  const k = TIMELINE_KEY.exec(token);
  if (k) return { key: { major: Number(k[1]), minor: Number(k[2]) } };
  return { position: parsePaginationToken(token) };
}

/**
 * A token as the upper end of a range (events with key <= it). A stream position N keeps the
 * events backfilled into a gap just before position N + 1 (they were never seen by /sync).
 */
export function tokenUpperKey(t: TimelineToken): TimelineKey {
  return 'key' in t ? t.key : { major: t.position + 1, minor: -1 };
}

/** A token as the lower end of a range (events with key > it). */
export function tokenLowerKey(t: TimelineToken): TimelineKey {
  return 'key' in t ? t.key : { major: t.position, minor: 0 };
}

/** The token of an upper end (paginating backwards): `t<N>` when it is the stream position N. */
export function formatUpperToken(k: TimelineKey): string {
  return k.minor === -1 ? `t${k.major - 1}` : `t${k.major}_${k.minor}`;
}

/** The token of a lower end (paginating forwards): `t<N>` when it is the stream position N. */
export function formatLowerToken(k: TimelineKey): string {
  return k.minor === 0 ? `t${k.major}` : `t${k.major}_${k.minor}`;
}
