import { describe, expect, it } from 'vitest';
import {
  formatLowerToken,
  formatPaginationToken,
  formatUpperToken,
  parsePaginationToken,
  parseTimelineToken,
  tokenLowerKey,
  tokenUpperKey,
} from '../../../src/services/sync/token.js';
import { compareTimelineKeys, timelineKeyOf, type StoredEvent, type TimelineKey } from '../../../src/storage/stores/events.js';

const key = (major: number, minor: number): TimelineKey => ({ major, minor });
/** Whether `k` lies in the range (lower, upper]. */
const within = (k: TimelineKey, lower: TimelineKey, upper: TimelineKey) => compareTimelineKeys(k, lower) > 0 && compareTimelineKeys(k, upper) <= 0;

describe('timeline keys and /messages tokens', () => {
  it('orders events filled into a gap just before the event after the gap, older batches lower', () => {
    const ev = (streamOrdering: number, timelineAnchor?: number) => ({ streamOrdering, ...(timelineAnchor !== undefined ? { timelineAnchor } : {}) }) as StoredEvent;
    const timeline = [ev(-50), ev(10), ev(-30, 11), ev(-21, 11), ev(-20, 11), ev(11), ev(12)];
    const keys = timeline.map(timelineKeyOf);
    const sorted = [...keys].sort(compareTimelineKeys);
    expect(sorted).toEqual(keys);
  });

  it('a stream position keeps the gap before the next position inside both ends of a range', () => {
    const t = parseTimelineToken('t10');
    expect(t).toEqual({ position: 10 });
    const gapOf11 = key(11, -20);
    // Paging backwards from position 10 (e.g. /sync prev_batch before event 11): the gap is before.
    expect(within(gapOf11, key(Number.MIN_SAFE_INTEGER, 0), tokenUpperKey(t))).toBe(true);
    expect(within(key(11, 0), key(Number.MIN_SAFE_INTEGER, 0), tokenUpperKey(t))).toBe(false);
    expect(within(key(10, 0), key(Number.MIN_SAFE_INTEGER, 0), tokenUpperKey(t))).toBe(true);
    // Paging forwards from position 10: the gap is ahead.
    expect(within(gapOf11, tokenLowerKey(t), key(100, 0))).toBe(true);
    expect(within(key(10, 0), tokenLowerKey(t), key(100, 0))).toBe(false);
    // Sync tokens work as their events position.
    expect(parseTimelineToken('s10_0_0_0_0_0_0')).toEqual({ position: 10 });
  });

  it('formats ordinary positions as before and exact points inside gaps with both parts', () => {
    // Backwards past the ordinary event 12: everything below it, gap of 12 included.
    expect(formatUpperToken(key(12, -1))).toBe('t11');
    expect(tokenUpperKey(parseTimelineToken('t11'))).toEqual(key(12, -1));
    // Forwards past the ordinary event 12.
    expect(formatLowerToken(key(12, 0))).toBe('t12');
    expect(tokenLowerKey(parseTimelineToken('t12'))).toEqual(key(12, 0));
    // Inside a gap.
    for (const k of [key(12, -21), key(12, -1), key(-3, -7)]) {
      const back = parseTimelineToken(formatLowerToken(k));
      expect(tokenLowerKey(back)).toEqual(k);
      expect(tokenUpperKey(back)).toEqual(k);
    }
    expect(formatUpperToken(key(12, -21))).toBe('t12_-21');
    expect(tokenUpperKey(parseTimelineToken('t12_-21'))).toEqual(key(12, -21));
    expect(formatPaginationToken(-4)).toBe('t-4');
  });

  it('other endpoints read an exact point as the stream position before it', () => {
    expect(parsePaginationToken('t12_-21')).toBe(11);
    expect(parsePaginationToken('t12_0')).toBe(12);
    expect(parsePaginationToken('t-4')).toBe(-4);
    expect(() => parseTimelineToken('t12_x')).toThrow();
  });
});
