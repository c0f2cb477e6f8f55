import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { eventClass, EVENT_CLASSES, Metrics } from '../../../src/metrics/registry.js';
import { TopRooms } from '../../../src/metrics/top-rooms.js';
import { StatsSampler } from '../../../src/stats/sampler.js';
import { parsePrometheusText } from '../../_util/prom-text.js';

describe('event classes', () => {
  it('maps types to a fixed, small set', () => {
    expect(eventClass('m.room.message', undefined)).toBe('message');
    expect(eventClass('m.sticker', undefined)).toBe('message');
    expect(eventClass('m.room.encrypted', undefined)).toBe('encrypted');
    expect(eventClass('m.room.member', '@a:b')).toBe('membership');
    expect(eventClass('m.room.name', '')).toBe('state');
    expect(eventClass('m.room.message', '')).toBe('state');
    expect(eventClass('m.reaction', undefined)).toBe('reaction');
    expect(eventClass('m.room.redaction', undefined)).toBe('redaction');
    expect(eventClass('com.example.custom', undefined)).toBe('other');
    fc.assert(fc.property(fc.string(), fc.option(fc.string(), { nil: undefined }), (t, sk) => EVENT_CLASSES.includes(eventClass(t, sk))));
  });
});

describe('TopRooms', () => {
  it('is exact while under capacity', () => {
    const t = new TopRooms(10);
    for (const [r, n] of [['!a', 3], ['!b', 7], ['!c', 1]] as const) for (let i = 0; i < n; i++) t.add(r);
    expect(t.top(2)).toEqual([['!b', 7], ['!a', 3]]);
    expect(t.top(5)).toEqual([['!b', 7], ['!a', 3], ['!c', 1]]);
  });

  it('keeps memory bounded and always finds the heavy rooms (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 3000 }), fc.integer({ min: 5, max: 50 }), (stream, cap) => {
        const t = new TopRooms(cap);
        const exact = new Map<string, number>();
        for (const r of stream) {
          t.add(`!${r}`);
          exact.set(`!${r}`, (exact.get(`!${r}`) ?? 0) + 1);
          if (t.size > cap) return false;
        }
        const reported = new Map(t.top(cap));
        for (const [room, n] of exact) {
          // Space-saving guarantee: any room above total/capacity is tracked, never under-counted.
          if (n > stream.length / cap) {
            if (!reported.has(room)) return false;
            if (reported.get(room)! < n) return false;
          }
        }
        return true;
      }),
      { numRuns: 100 },
    );
  });
});

describe('Metrics registry', () => {
  it('keeps label cardinality bounded with 10,000 rooms', async () => {
    const m = new Metrics({ version: '0.0.0-test', topRooms: 10 });
    for (let i = 0; i < 10_000; i++) {
      const room = `!room${i}:example.org`;
      m.eventPersisted(room, 'm.room.message', undefined);
      if (i % 100 === 0) for (let k = 0; k < 50; k++) m.eventPersisted(room, 'm.room.message', undefined);
      m.eventPersisted(room, 'm.room.member', '@u:example.org');
    }
    const text = await m.text();
    const fams = parsePrometheusText(text);
    const rooms = fams.get('myelin_room_messages')!.samples;
    expect(rooms).toHaveLength(10);
    // The hundred rooms with 51 messages are the busiest: the top 10 all come from them.
    for (const s of rooms) {
      expect(Number(/room(\d+)/.exec(s.labels.room_id!)![1]) % 100).toBe(0);
      expect(s.value).toBeGreaterThanOrEqual(51);
    }
    expect(fams.get('myelin_events_persisted_total')!.samples).toHaveLength(EVENT_CLASSES.length);
    const series = [...fams.values()].reduce((n, f) => n + f.samples.length, 0);
    expect(series).toBeLessThan(400);
    expect(text.length).toBeLessThan(64 * 1024);
    m.close();
  });

  it('counts messages of the last minute without a timer', async () => {
    let now = 1_000_000;
    const m = new Metrics({ version: 't', now: () => now });
    for (let i = 0; i < 30; i++) {
      m.eventPersisted('!r', 'm.room.message', undefined);
      now += 1000;
    }
    expect(await m.value('messages_last_minute')).toBe(30);
    now += 45_000; // messages were sent at seconds 1000..1029; now is 1075: those of 1016..1029 remain
    expect(await m.value('messages_last_minute')).toBe(14);
    now += 60_000;
    expect(await m.value('messages_last_minute')).toBe(0);
    m.close();
  });

  it('reads gauges from sources given by subsystems', async () => {
    const m = new Metrics({ version: 't' });
    let depth = 4;
    m.source(m.federationQueueDepth, () => depth);
    expect(await m.value('federation_queue_depth')).toBe(4);
    depth = 9;
    expect(await m.value('federation_queue_depth')).toBe(9);
    m.federationTxnOut.inc({ result: 'ok' });
    m.federationTxnOut.inc({ result: 'error' }, 2);
    expect(await m.value('federation_transactions_out_total', { result: 'error' })).toBe(2);
    expect(await m.value('federation_transactions_out_total')).toBe(3);
    m.close();
  });

  it('runs the event-loop monitor only after a read, and stops it when idle', async () => {
    const m = new Metrics({ version: 't', loopMonitorIdleMs: 200 });
    expect(m.loopMonitorRunning).toBe(false);
    await m.text();
    expect(m.loopMonitorRunning).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    expect(m.loopMonitorRunning).toBe(false);
    m.close();
  });
});

describe('StatsSampler', () => {
  it('runs a timer only while someone watches', async () => {
    const m = new Metrics({ version: 't' });
    const s = new StatsSampler(m, { intervalMs: 50, historySize: 5 });
    expect(s.running).toBe(false);
    const got: number[] = [];
    const off1 = s.subscribe((x) => got.push(x.t));
    const off2 = s.subscribe(() => {});
    expect(s.running).toBe(true);
    await new Promise((r) => setTimeout(r, 400));
    off1();
    expect(s.running).toBe(true);
    off2();
    expect(s.running).toBe(false);
    const n = got.length;
    expect(n).toBeGreaterThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 200));
    expect(got.length).toBe(n);
    expect(s.history().length).toBeLessThanOrEqual(5);
    m.close();
  });

  it('turns counters into rates and reads the registry', async () => {
    let now = 10_000_000;
    const m = new Metrics({ version: 't', now: () => now });
    const s = new StatsSampler(m, { intervalMs: 60_000, historySize: 10, now: () => now });
    const off = s.subscribe(() => {});
    await new Promise((r) => setTimeout(r, 50));
    now += 30_000;
    m.federationTxnIn.inc({ result: 'ok' }, 10);
    for (let i = 0; i < 4; i++) m.eventPersisted('!r', 'm.room.message', undefined);
    const sample = (await s.tick())!;
    off();
    expect(sample.fedTxnInPerMin).toBeCloseTo(20, 5);
    expect(sample.messagesPerMin).toBe(4);
    expect(sample.messagesTotal).toBe(4);
    expect(sample.rssBytes).toBeGreaterThan(1e6);
    expect(sample.heapBytes).toBeGreaterThan(1e5);
    expect(sample.tunnelEnabled).toBe(false);
    m.close();
  });
});
