import { errors } from '../../errors.js';

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
  return parseSyncToken(token).events;
}
