/**
 * `timestamp_to_event` across servers. Answering: the event closest to a timestamp that the
 * asking server may see (server-server `GET /timestamp_to_event/{roomId}`). Asking: when this
 * server's own answer to a client may be incomplete (a gap in the timeline lies between the
 * timestamp and the nearest event held beyond it, as after joining a room over federation),
 * other servers in the room are asked one by one, and an event one of them knows closer to the
 * timestamp is fetched and stored before the lookup runs again. A failing server never spoils
 * the local answer.
 */
import type { AppContext } from '../app.js';
import { prevEventIds } from '../protocol/event.js';
import { isValidEventId, serverNameOf } from '../protocol/identifiers.js';
import { closestEvent, firstEventAfter, type TimestampDirection } from '../services/rooms/event-by-timestamp.js';
import { timelineKeyOf, type StoredEvent } from '../storage/stores/events.js';

/** Servers asked at most, one after the other. */
const MAX_SERVERS = 3;
/** How long one server's timestamp_to_event answer is waited for. */
const ASK_TIMEOUT_MS = 5_000;
/** How long fetching the event it names may take. */
const FETCH_TIMEOUT_MS = 10_000;

type Ctx = Pick<AppContext, 'eventStore' | 'relations' | 'federationRooms' | 'federation' | 'log'>;

/**
 * Refuses a server that may not look into the room: it must be allowed by the room's ACL and
 * have a joined member, unless the room is world_readable (403). Unknown rooms are 404.
 */
export async function requireServerMaySeeRoom(ctx: Ctx, roomId: string, server: string): Promise<void> {
  const { rooms } = ctx.federationRooms;
  await rooms.versionOf(roomId);
  await rooms.requireAclAllows(roomId, server);
  const hv = await ctx.eventStore.getCurrentStateEvent(roomId, 'm.room.history_visibility', '');
  if (hv?.event.content['history_visibility'] === 'world_readable') return;
  await rooms.requireServerInRoom(roomId, server);
}

/** The event closest to `ts` in direction `dir` that `server` may see (history visibility). */
export async function closestEventForServer(ctx: Ctx, roomId: string, ts: number, dir: TimestampDirection, server: string): Promise<StoredEvent | undefined> {
  const { rooms } = ctx.federationRooms;
  return closestEvent(ctx, roomId, ts, dir, async (candidates) => {
    for (const ev of candidates) if (await rooms.serverMaySee(ev, server)) return [ev];
    return [];
  });
}

/**
 * The client's answer: the local lookup (`keep` applies the user's view), completed from other
 * servers in the room when it may miss a closer event.
 */
export async function closestEventWithOthers(
  ctx: Ctx,
  roomId: string,
  ts: number,
  dir: TimestampDirection,
  keep: (candidates: StoredEvent[]) => Promise<StoredEvent[]>,
): Promise<StoredEvent | undefined> {
  const local = await closestEvent(ctx, roomId, ts, dir, keep);
  try {
    if (await fetchCloserFromOthers(ctx, roomId, ts, dir, local)) return (await closestEvent(ctx, roomId, ts, dir, keep)) ?? local;
  } catch (err) {
    ctx.log.info({ err: (err as Error).message, roomId, ts, dir }, 'timestamp_to_event: asking other servers failed');
  }
  return local;
}

/** Whether events may be missing just before `ev`: recorded gaps, or prev events not in the timeline. */
async function gapBefore(ctx: Ctx, ev: StoredEvent): Promise<boolean> {
  const id = ev.event.event_id;
  if ((await ctx.eventStore.backwardExtremitiesOf([id])).get(id)?.length) return true;
  const prevs = prevEventIds(ev.event);
  if (!prevs.length) return false;
  const held = await ctx.eventStore.getEvents(prevs);
  return prevs.some((p) => {
    const s = held.get(p);
    return !s || s.outlier;
  });
}

/** Other servers in the room, the room creator's first (most likely to hold all of it). */
async function serversToAsk(ctx: Ctx, roomId: string): Promise<string[]> {
  const { sender, handler } = ctx.federationRooms;
  const servers = await sender.destinationsForRoom(roomId);
  const create = await handler.createEventOf(roomId);
  const creator = create ? serverNameOf(create.sender) : undefined;
  if (creator && servers.includes(creator)) servers.sort((x, y) => (x === creator ? -1 : y === creator ? 1 : 0));
  return servers.slice(0, MAX_SERVERS);
}

/**
 * Asks other servers for a closer event when the local answer may be incomplete, and stores
 * the one given (fetched with /event, checked like any backfilled event, placed just before the
 * nearest event held beyond the timestamp). Returns whether an event joined the timeline.
 *
 * Nothing is asked when this server holds no event beyond the timestamp in the direction
 * asked: an event newer than all the room's timeline here arrives by the room's transactions,
 * and must not be stored as history.
 */
async function fetchCloserFromOthers(ctx: Ctx, roomId: string, ts: number, dir: TimestampDirection, local: StoredEvent | undefined): Promise<boolean> {
  const farSide = dir === 'f' ? await closestEvent(ctx, roomId, ts, 'f', async (c) => c) : await firstEventAfter(ctx, roomId, ts);
  if (!farSide || (local && !(await gapBefore(ctx, farSide)))) return false;
  const servers = await serversToAsk(ctx, roomId);
  if (!servers.length) return false;
  const { client } = ctx.federation;
  const { handler, rooms } = ctx.federationRooms;
  const version = await rooms.versionOf(roomId);
  const distance = (t: number) => Math.abs(t - ts);
  for (const server of servers) {
    let answer: { event_id?: unknown; origin_server_ts?: unknown };
    try {
      answer = await client.get(server, `/_matrix/federation/v1/timestamp_to_event/${encodeURIComponent(roomId)}`, { query: { ts, dir }, timeoutMs: ASK_TIMEOUT_MS });
    } catch (err) {
      ctx.log.info({ server, roomId, err: (err as Error).message }, 'timestamp_to_event: no answer from a server');
      continue;
    }
    const eventId = answer.event_id;
    const theirTs = answer.origin_server_ts;
    if (typeof eventId !== 'string' || !isValidEventId(eventId) || typeof theirTs !== 'number' || !Number.isSafeInteger(theirTs) || (dir === 'f' ? theirTs < ts : theirTs > ts)) {
      ctx.log.info({ server, roomId }, 'timestamp_to_event: a server gave an invalid answer');
      continue;
    }
    // The local answer stands unless theirs is closer; an event held in the timeline already
    // was considered by the local lookup.
    if (local && distance(theirTs) >= distance(local.event.origin_server_ts)) return false;
    const held = await ctx.eventStore.getEvent(eventId);
    if (held && (!held.outlier || held.rejected)) return false;
    try {
      const res = await client.get<{ pdus?: unknown }>(server, `/_matrix/federation/v1/event/${encodeURIComponent(eventId)}`, { timeoutMs: FETCH_TIMEOUT_MS });
      const pdu = Array.isArray(res.pdus) ? res.pdus[0] : undefined;
      if (pdu === undefined) continue;
      const gap = { anchor: timelineKeyOf(farSide).major, from: [eventId] };
      const stored = await handler.persistBackfill(server, roomId, version, [pdu], gap);
      ctx.log.info({ server, roomId, eventId, stored }, 'timestamp_to_event: fetched a closer event from another server');
      if (stored > 0) return true;
    } catch (err) {
      ctx.log.info({ server, roomId, eventId, err: (err as Error).message }, 'timestamp_to_event: could not fetch the event a server named');
    }
  }
  return false;
}
