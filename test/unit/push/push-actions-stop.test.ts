import { describe, expect, it } from 'vitest';
import { PushActions, type PushActionsDeps } from '../../../src/services/push/push-actions.js';

/** Stand-ins that record which store calls were made and let one call hang until released. */
function deps() {
  const calls: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const d = {
    serverName: 'example.org',
    log: { error: () => undefined, warn: () => undefined },
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
    expect(calls).toEqual(['progress', 'maxStreamOrdering']);
    await pa.catchUp();
    await pa.settle();
    expect(calls).toEqual(['progress', 'maxStreamOrdering']);
  });
});
