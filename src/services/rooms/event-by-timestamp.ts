/**
 * The event of a room closest to a timestamp, in one direction (client-server and
 * server-server `timestamp_to_event`): this server's timeline only, filtered by who asks.
 */
import { errors } from '../../errors.js';
import type { EventStore, StoredEvent } from '../../storage/stores/events.js';
import type { RelationStore } from '../../storage/stores/relations.js';

export type TimestampDirection = 'f' | 'b';

/** Candidates read at a time, nearest first. */
const CANDIDATES = 50;

/** `ts` and `dir` of a timestamp_to_event query (400 when missing or malformed). */
export function parseTimestampQuery(q: { ts?: unknown; dir?: unknown }): { ts: number; dir: TimestampDirection } {
  if (q.ts === undefined) throw errors.missingParam('ts is required');
  if (q.dir === undefined) throw errors.missingParam('dir is required');
  const ts = typeof q.ts === 'string' && /^-?\d+$/.test(q.ts) ? Number(q.ts) : NaN;
  if (!Number.isSafeInteger(ts)) throw errors.invalidParam('ts must be an integer (milliseconds since the epoch)');
  if (q.dir !== 'f' && q.dir !== 'b') throw errors.invalidParam('dir must be "f" or "b"');
  return { ts, dir: q.dir };
}

export interface TimestampStores {
  eventStore: EventStore;
  relations: RelationStore;
}

/**
 * The timeline event nearest to `ts` in direction `dir` (at or after it for `f`, at or before
 * it for `b`) among those `keep` lets through (the asker's view), or undefined.
 */
export async function closestEvent(
  stores: TimestampStores,
  roomId: string,
  ts: number,
  dir: TimestampDirection,
  keep: (candidates: StoredEvent[]) => Promise<StoredEvent[]>,
): Promise<StoredEvent | undefined> {
  const candidates = await stores.relations.eventsNearTimestamp(roomId, ts, dir, CANDIDATES);
  const loaded = await stores.eventStore.getEvents(candidates.map((c) => c.eventId));
  const stored = candidates.map((c) => loaded.get(c.eventId)).filter((s): s is StoredEvent => !!s);
  return (await keep(stored))[0];
}

/** The first timeline event strictly after `ts` (any visibility), if this server holds one. */
export async function firstEventAfter(stores: TimestampStores, roomId: string, ts: number): Promise<StoredEvent | undefined> {
  const [next] = await stores.relations.eventsNearTimestamp(roomId, ts + 1, 'f', 1);
  return next ? stores.eventStore.getEvent(next.eventId) : undefined;
}
