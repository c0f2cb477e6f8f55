/**
 * The bodies of POST /_matrix/push/v1/notify requests (push gateway API), built from a pusher,
 * an event and its evaluated push actions. Pure: no I/O.
 */
import type { JsonObject, JsonValue } from '../../protocol/json.js';

/** The parts of a pusher a notification names. */
export interface NotifyPusher {
  appId: string;
  pushkey: string;
  /** When the pushkey was last set (ms). */
  createdTs: number;
  data: Record<string, unknown>;
}

export interface NotifyEvent {
  event_id: string;
  room_id: string;
  type: string;
  sender: string;
  state_key?: string;
  content: JsonObject;
}

/** What the server knows about the room and the sender when the notification is sent. */
export interface NotifyRoomInfo {
  senderDisplayName?: string;
  roomName?: string;
  roomAlias?: string;
}

export interface NotifyCounts {
  /** Unread notifications of the user over all their rooms. */
  unread: number;
  missedCalls?: number;
}

/** Event types whose notifications are sent with `prio: high`. */
const HIGH_PRIORITY_TYPES = new Set(['m.room.message', 'm.room.encrypted', 'm.call.invite', 'm.sticker', 'm.poll.start', 'org.matrix.msc3381.poll.start']);

/** Whether the pusher asked for `event_id_only` notifications. */
export function isEventIdOnly(pusher: NotifyPusher): boolean {
  return pusher.data['format'] === 'event_id_only';
}

/**
 * The `tweaks` of a notification: every `set_tweak` action, later ones winning; a `highlight`
 * tweak without a value means true.
 */
export function tweaksOf(actions: readonly unknown[]): Record<string, JsonValue> {
  const tweaks: Record<string, JsonValue> = {};
  for (const a of actions) {
    if (typeof a !== 'object' || a === null || Array.isArray(a)) continue;
    const t = (a as Record<string, unknown>)['set_tweak'];
    if (typeof t !== 'string') continue;
    const value = (a as Record<string, unknown>)['value'] as JsonValue | undefined;
    tweaks[t] = value === undefined ? (t === 'highlight' ? true : null) : value;
  }
  // A highlight tweak of false says nothing the gateway needs.
  if (tweaks['highlight'] === false) delete tweaks['highlight'];
  return tweaks;
}

/**
 * `high` for messages, calls and encrypted events (which may be either), and for anything that
 * plays a sound or is highlighted; `low` otherwise.
 */
export function priorityOf(type: string, tweaks: Record<string, JsonValue>): 'high' | 'low' {
  if (HIGH_PRIORITY_TYPES.has(type)) return 'high';
  if (tweaks['highlight'] === true || (tweaks['sound'] !== undefined && tweaks['sound'] !== null)) return 'high';
  return 'low';
}

/** One entry of `devices`: the pusher's data without `url`. */
export function deviceOf(pusher: NotifyPusher, tweaks: Record<string, JsonValue>): JsonObject {
  const data: JsonObject = {};
  for (const [k, v] of Object.entries(pusher.data)) if (k !== 'url') data[k] = v as JsonValue;
  return {
    app_id: pusher.appId,
    pushkey: pusher.pushkey,
    pushkey_ts: Math.floor(pusher.createdTs / 1000),
    data,
    tweaks,
  };
}

function countsOf(c: NotifyCounts): JsonObject {
  // `unread` is sent even when 0, so that gateways clear the badge; other zero counts are left out.
  const out: JsonObject = { unread: c.unread };
  if (c.missedCalls) out['missed_calls'] = c.missedCalls;
  return out;
}

/** The request body notifying `userId` about an event. */
export function eventNotification(
  pusher: NotifyPusher,
  userId: string,
  event: NotifyEvent,
  actions: readonly unknown[],
  room: NotifyRoomInfo,
  counts: NotifyCounts,
): { notification: JsonObject } {
  const tweaks = tweaksOf(actions);
  const prio = priorityOf(event.type, tweaks);
  const device = deviceOf(pusher, tweaks);
  if (isEventIdOnly(pusher)) {
    return { notification: { event_id: event.event_id, room_id: event.room_id, counts: countsOf(counts), prio, devices: [device] } };
  }
  const n: JsonObject = {
    event_id: event.event_id,
    room_id: event.room_id,
    type: event.type,
    sender: event.sender,
    prio,
  };
  if (room.senderDisplayName !== undefined) n['sender_display_name'] = room.senderDisplayName;
  if (room.roomName !== undefined) n['room_name'] = room.roomName;
  if (room.roomAlias !== undefined) n['room_alias'] = room.roomAlias;
  if (event.type === 'm.room.member' && event.state_key !== undefined) n['user_is_target'] = event.state_key === userId;
  if (Object.keys(event.content).length > 0) n['content'] = event.content;
  n['counts'] = countsOf(counts);
  n['devices'] = [device];
  return { notification: n };
}

/** A badge-only request: the new counts and the device, no event. */
export function countsNotification(pusher: NotifyPusher, counts: NotifyCounts): { notification: JsonObject } {
  return { notification: { prio: 'low', counts: countsOf(counts), devices: [deviceOf(pusher, {})] } };
}
