import { errors } from '../../errors.js';
import type { TimelineKey } from '../../storage/stores/events.js';

/** The streams a sync token holds a position in, in token order. */
export const STREAMS = ['events', 'account_data', 'to_device', 'receipts', 'typing', 'presence', 'device_lists'] as const;
export type StreamName = (typeof STREAMS)[number];
export type StreamPositions = Record<StreamName, number>;

export function zeroPositions(): StreamPositions {
  return Object.fromEntries(STREAMS.map((s) => [s, 0])) as StreamPositions;
}

/** `s<events>_<account_data>_<to_device>_<receipts>_<typing>_<presence>_<device_lists>` */
export function formatSyncToken(p: StreamPositions): string {
  return `s${STREAMS.map((s) => p[s]).join('_')}`;
}

export function parseSyncToken(token: string): StreamPositions {
  const m = /^s(\d+(?:_\d+)*)$/.exec(token);
  if (!m) throw errors.invalidParam(`Invalid sync token: ${token}`);
  const parts = m[1]!.split('_').map(Number);
  const out = zeroPositions();
  STREAMS.forEach((s, i) => (out[s] = parts[i] ?? 0));
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
