import { describe, expect, it } from 'vitest';
import { PushActions, type PushActionsDeps } from '../../../src/services/push/push-actions.js';

/** Stand-ins that record which store calls were made and let one call hang until released. */
function deps(recentRows = 0) {
  const calls: string[] = [];
  let recent = recentRows;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const d = {
    serverName: 'example.org',
    log: { error: () => undefined, warn: () => undefined, debug: () => undefined },
    store: {
      progress: async () => {
        calls.push('progress');
        await gate;
        return 10;
      },
      eventsBetween: async () => {
        calls.push('eventsBetween');
        return [];
      },
      insertActions: async () => undefined,
      setProgress: async () => undefined,
      recentCounts: async () => {
        calls.push('recentCounts');
        return new Map(recent ? [['@a:example.org', recent]] : []);
      },
      foldRecent: async (_tx: unknown, upTo: number, users: string[]) => {
        calls.push(`foldRecent ${upTo} ${users.join()}`);
        const moved = recent;
        recent = 0;
        return moved;
      },
    },
    events: {
      maxStreamOrdering: async () => {
        calls.push('maxStreamOrdering');
        return 10;
      },
      getEvents: async () => new Map(),
    },
    database: { transaction: async (fn: (tx: unknown) => Promise<unknown>) => fn({ onCommit: () => undefined }) },
  };
  return { deps: d as unknown as PushActionsDeps, calls, release };
}

describe('PushActions.stop', () => {
  it('waits for the evaluation in progress, then lets no other run touch the database', async () => {
    const { deps: d, calls, release } = deps();
    const pa = new PushActions(d);
    const running = pa.catchUp();
    const queued = pa.catchUp(20);
    await new Promise((r) => setTimeout(r, 10));
    expect(calls).toEqual(['progress']);
    let stopped = false;
    const stopping = pa.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(stopped).toBe(false); // the run in progress holds it
    release();
    await stopping;
    await Promise.all([running, queued]);
    // The run in progress finished its read; the queued one and later ones did nothing.
    expect(calls).toEqual(['progress', 'recentCounts', 'maxStreamOrdering']);
    await pa.catchUp();
    await pa.settle();
    expect(calls).toEqual(['progress', 'recentCounts', 'maxStreamOrdering']);
  });

  it('moves many recent rows soon, up to the evaluation position, and none after stop', async () => {
    const { deps: d, calls, release } = deps(5000);
    const pa = new PushActions(d);
    release();
    await pa.catchUp();
    for (let i = 0; i < 50 && !calls.includes('foldRecent 10 @a:example.org'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(calls).toEqual(['progress', 'recentCounts', 'maxStreamOrdering', 'foldRecent 10 @a:example.org']);
    await pa.stop();
  });

  it('moves a few recent rows after a while', async () => {
    const { deps: d, calls, release } = deps(3);
    const pa = new PushActions(d);
    release();
    await pa.catchUp();
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).not.toContain('foldRecent 10 @a:example.org'); // waits for more first
    for (let i = 0; i < 300 && !calls.includes('foldRecent 10 @a:example.org'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(calls).toContain('foldRecent 10 @a:example.org');
    await pa.stop();
  });
});
