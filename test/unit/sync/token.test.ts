import { describe, expect, it } from 'vitest';
import { formatSyncToken, parseSyncToken, STREAMS } from '../../../src/services/sync/token.js';

describe('sync tokens', () => {
  it('round-trip, with missing positions read as 0 and extra ones ignored', () => {
    const p = parseSyncToken('s1_2_3_4_5_6_7');
    expect(STREAMS.map((s) => p[s])).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(formatSyncToken(p)).toBe('s1_2_3_4_5_6_7');
    expect(parseSyncToken('s42')).toEqual({ events: 42, account_data: 0, to_device: 0, receipts: 0, typing: 0, presence: 0, device_lists: 0 });
    expect(STREAMS.map((s) => parseSyncToken('s1_2_3_4_5_6_7_8_9')[s])).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(parseSyncToken('s007_010').account_data).toBe(10);
  });

  it('refuses anything but s and runs of digits separated by _', () => {
    for (const bad of ['', 's', 'S1', 't1', 's_1', 's1_', 's1__2', 's-1', 's1a', 's 1', 's1\n', 'x1_2']) {
      expect(() => parseSyncToken(bad), bad).toThrow(/Invalid sync token/);
    }
  });
});
