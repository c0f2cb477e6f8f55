import { describe, expect, it } from 'vitest';
import { SentMembers } from '../../../src/services/sync/sent-members.js';

describe('SentMembers', () => {
  it('counts a member event as sent once the client syncs from the response that carried it', () => {
    const s = new SentMembers();
    s.record('@u:x', 'D', '!r:x', [['@m:x', '$1']], 10);
    expect(s.has('@u:x', 'D', '!r:x', '@m:x', '$1', 9)).toBe(false);
    expect(s.has('@u:x', 'D', '!r:x', '@m:x', '$1', 10)).toBe(true);
    expect(s.has('@u:x', 'D', '!r:x', '@m:x', '$1', 12)).toBe(true);
    // Another member event, member, room or device: not sent.
    expect(s.has('@u:x', 'D', '!r:x', '@m:x', '$2', 12)).toBe(false);
    expect(s.has('@u:x', 'D', '!r:x', '@n:x', '$1', 12)).toBe(false);
    expect(s.has('@u:x', 'D', '!s:x', '@m:x', '$1', 12)).toBe(false);
    expect(s.has('@u:x', 'E', '!r:x', '@m:x', '$1', 12)).toBe(false);
    // The last one sent counts: sent again later, it waits for that response to arrive.
    s.record('@u:x', 'D', '!r:x', [['@m:x', '$2']], 20);
    expect(s.has('@u:x', 'D', '!r:x', '@m:x', '$1', 25)).toBe(false);
    expect(s.has('@u:x', 'D', '!r:x', '@m:x', '$2', 15)).toBe(false);
    expect(s.has('@u:x', 'D', '!r:x', '@m:x', '$2', 20)).toBe(true);
  });

  it('forgets a device or one of its rooms', () => {
    const s = new SentMembers();
    s.record('@u:x', 'D', '!r:x', [['@m:x', '$1']], 1);
    s.record('@u:x', 'D', '!s:x', [['@m:x', '$2']], 1);
    s.record('@u:x', 'E', '!r:x', [['@m:x', '$1']], 1);
    s.clearRoom('@u:x', 'D', '!r:x');
    expect(s.has('@u:x', 'D', '!r:x', '@m:x', '$1', 5)).toBe(false);
    expect(s.has('@u:x', 'D', '!s:x', '@m:x', '$2', 5)).toBe(true);
    s.clearDevice('@u:x', 'D');
    expect(s.has('@u:x', 'D', '!s:x', '@m:x', '$2', 5)).toBe(false);
    expect(s.has('@u:x', 'E', '!r:x', '@m:x', '$1', 5)).toBe(true);
  });

  it('stays within its bounds, forgetting the least recently used rooms and devices first', () => {
    const s = new SentMembers(2, 4);
    s.record('@u:x', 'D', '!a:x', [['@1:x', '$a1'], ['@2:x', '$a2']], 1);
    s.record('@u:x', 'D', '!b:x', [['@1:x', '$b1'], ['@2:x', '$b2']], 1);
    s.record('@u:x', 'D', '!a:x', [['@3:x', '$a3']], 2);
    // Five entries for a bound of four: room b (least recently recorded) goes.
    expect(s.has('@u:x', 'D', '!b:x', '@1:x', '$b1', 5)).toBe(false);
    expect(s.has('@u:x', 'D', '!a:x', '@1:x', '$a1', 5)).toBe(true);
    expect(s.has('@u:x', 'D', '!a:x', '@3:x', '$a3', 5)).toBe(true);
    // One room alone over the bound keeps its most recent members.
    s.record('@u:x', 'D', '!a:x', [['@4:x', '$a4'], ['@5:x', '$a5']], 3);
    expect(s.has('@u:x', 'D', '!a:x', '@1:x', '$a1', 5)).toBe(false);
    expect(s.has('@u:x', 'D', '!a:x', '@5:x', '$a5', 5)).toBe(true);
    expect(s.has('@u:x', 'D', '!a:x', '@2:x', '$a2', 5)).toBe(true);
    // Devices: two at most.
    s.record('@u:x', 'E', '!a:x', [['@1:x', '$a1']], 1);
    s.record('@u:x', 'F', '!a:x', [['@1:x', '$a1']], 1);
    expect(s.deviceCount).toBe(2);
    expect(s.has('@u:x', 'D', '!a:x', '@5:x', '$a5', 5)).toBe(false);
    expect(s.has('@u:x', 'F', '!a:x', '@1:x', '$a1', 5)).toBe(true);
  });
});
