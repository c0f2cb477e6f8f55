import type { AppContext } from '../../app.js';
import { parseStateKey, stateKeyOf } from '../../protocol/event.js';
import type { ClientEvent } from '../../services/rooms/client-events.js';
import { eventMatches, type Filter } from '../../services/sync/filter.js';
import type { SyncResponse } from '../../services/sync/sync-service.js';
import { parseSyncToken, type StreamPositions } from '../../services/sync/token.js';

type RoomWithState = { timeline: { events: ClientEvent[] }; state?: { events: ClientEvent[] }; state_after?: { events: ClientEvent[] } };

/**
 * `use_state_after=true` on /sync (spec v1.16, MSC4222): each joined and left room carries
 * `state_after` — the state changes between `since` and the END of the timeline (all of it on an
 * initial or full-state sync), state events of the timeline included — instead of `state`.
 * Lazy-loaded members are limited to the timeline's senders, the user and the members `state`
 * already carried; the state filter's type and sender conditions apply.
 */
export async function applyStateAfter(
  ctx: AppContext,
  req: { userId: string; deviceId: string; since: StreamPositions | undefined; fullState: boolean; filter: Filter },
  response: SyncResponse,
): Promise<void> {
  const to = parseSyncToken(response.next_batch).events;
  const whole = !req.since || req.fullState;
  const sf = req.filter.room?.state;
  const viewer = { userId: req.userId, deviceId: req.deviceId };

  const stateAfter = async (roomId: string, room: RoomWithState, end: number): Promise<void> => {
    const atEnd = await ctx.eventStore.stateIdsAtStream(roomId, end);
    let ids = [...atEnd];
    if (!whole) {
      const atSince = await ctx.eventStore.stateIdsAtStream(roomId, Math.min(req.since!.events, end));
      ids = ids.filter(([k, id]) => atSince.get(k) !== id);
    }
    if (sf?.lazy_load_members) {
      const members = new Set<string>([req.userId]);
      for (const ev of room.timeline.events) members.add(ev.sender);
      for (const ev of room.state?.events ?? []) if (ev.type === 'm.room.member' && ev.state_key !== undefined) members.add(ev.state_key);
      ids = ids.filter(([k]) => {
        const [type, key] = parseStateKey(k);
        return type !== 'm.room.member' || members.has(key) || k === stateKeyOf('m.room.member', req.userId);
      });
    }
    const stored = [...(await ctx.eventStore.getEvents(ids.map(([, id]) => id))).values()].filter((s) =>
      eventMatches(sf, { type: s.event.type, sender: s.event.sender, room_id: roomId }),
    );
    room.state_after = { events: await ctx.formatter.format(stored, { viewer, omitRoomId: true }) };
    delete room.state;
  };

  for (const [roomId, room] of Object.entries(response.rooms.join)) await stateAfter(roomId, room, to);
  if (Object.keys(response.rooms.leave).length) {
    const left = new Map((await ctx.eventStore.roomsForUser(req.userId, ['leave', 'ban'])).map((m) => [m.roomId, m.eventId]));
    for (const [roomId, room] of Object.entries(response.rooms.leave)) {
      const leaveId = left.get(roomId);
      const leave = leaveId ? await ctx.eventStore.getEvent(leaveId) : undefined;
      await stateAfter(roomId, room, leave ? Math.min(leave.streamOrdering, to) : to);
    }
  }
}
