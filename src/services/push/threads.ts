import type { RoomEvent } from '../../protocol/event.js';
import type { EventStore } from '../../storage/stores/events.js';

/** Relations followed to find an event's thread (the spec recommends at most 3 hops). */
const MAX_HOPS = 3;

/**
 * The thread an event belongs to: the root's event ID if it relates (directly or through up to
 * three relations) to a thread root with `m.thread`, else `main`. Thread roots are in `main`.
 */
export async function threadOf(events: EventStore, event: Pick<RoomEvent, 'content'>): Promise<string> {
  let cur: Pick<RoomEvent, 'content'> | undefined = event;
  for (let hop = 0; hop < MAX_HOPS && cur; hop++) {
    const rel = cur.content['m.relates_to'] as { rel_type?: unknown; event_id?: unknown } | undefined;
    if (!rel || typeof rel !== 'object' || typeof rel.event_id !== 'string') return 'main';
    if (rel.rel_type === 'm.thread') return rel.event_id;
    cur = (await events.getEvent(rel.event_id))?.event;
  }
  return 'main';
}
