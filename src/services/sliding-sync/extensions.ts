import type { JsonObject } from '../../protocol/json.js';
import type { UserDataService } from '../accounts/user-data.js';
import type { DeviceListService } from '../e2ee/device-lists.js';
import type { KeyService } from '../e2ee/keys.js';
import type { ToDeviceService } from '../e2ee/to-device.js';
import { receiptEvents, type ReceiptService } from '../ephemeral/receipts.js';
import { accountDataExtension, typingExtension } from '../ephemeral/sync-extensions.js';
import type { TypingService } from '../ephemeral/typing.js';
import type { PushRulesService } from '../push/push-rules.js';
import type { StreamActivity } from '../sync/activity.js';
import type { JoinedRoomSync, SyncExtension, SyncResponse, SyncWindow } from '../sync/sync-service.js';
import { zeroPositions, type StreamPositions } from '../sync/token.js';
import type { RoomsExtensionRequest, SlidingSyncRequest, SlidingSyncResponse } from './types.js';

export interface ExtensionDeps {
  userData: UserDataService;
  pushRules: PushRulesService;
  typing: TypingService;
  receipts: ReceiptService;
  keys: KeyService;
  deviceLists: DeviceListService;
  toDevice: ToDeviceService;
}

export interface ExtensionInput {
  req: SlidingSyncRequest;
  from: StreamPositions | undefined;
  to: StreamPositions;
  activity: StreamActivity;
  response: SlidingSyncResponse;
  /** The rooms in each list's ranges. */
  listRooms: Map<string, string[]>;
  subscribed: string[];
  /** Rooms the user is joined to. */
  joined: Set<string>;
  /** Rooms sent whole in this response (their extension data is sent whole too). */
  initialRooms: Set<string>;
}

/** The rooms an extension covers: those of the lists and subscriptions it names (default all). */
function roomsFor(ext: RoomsExtensionRequest, input: ExtensionInput): Set<string> {
  const out = new Set<string>();
  const lists = ext.lists ?? ['*'];
  const rooms = ext.rooms ?? ['*'];
  for (const [name, ids] of input.listRooms) if (lists.includes('*') || lists.includes(name)) for (const id of ids) out.add(id);
  for (const id of input.subscribed) if (rooms.includes('*') || rooms.includes(id)) out.add(id);
  return out;
}

/**
 * Runs a /sync extension over a window of its own, so sliding sync shares its reads: the
 * given rooms play the joined rooms, and the sections it fills are read back from the response.
 */
async function runClassic(
  ext: SyncExtension,
  input: ExtensionInput,
  since: StreamPositions | undefined,
  roomIds: string[],
  to: StreamPositions = input.to,
): Promise<SyncResponse> {
  const response: SyncResponse = {
    next_batch: '',
    rooms: { join: {}, invite: {}, leave: {}, knock: {} },
    account_data: { events: [] },
    presence: { events: [] },
    to_device: { events: [] },
    device_lists: { changed: [], left: [] },
    device_one_time_keys_count: {},
  };
  const w: SyncWindow = {
    req: { userId: input.req.userId, deviceId: input.req.deviceId, since, timeoutMs: 0, fullState: false, filter: {} },
    since,
    to,
    joinedRoomIds: roomIds,
    membershipChanged: false,
    activity: input.activity,
    response,
    joinedRoom: (roomId: string): JoinedRoomSync =>
      (response.rooms.join[roomId] ??= { timeline: { events: [], limited: false, prev_batch: '' }, state: { events: [] }, account_data: { events: [] }, ephemeral: { events: [] } }),
  };
  await ext.collect(w);
  return response;
}

/** Fills `extensions` of the response; true if any carries something new. */
export async function collectExtensions(deps: ExtensionDeps, input: ExtensionInput): Promise<boolean> {
  const { req, from, to, response } = input;
  const userId = req.userId;
  const deviceId = req.deviceId;
  const exts = req.body.extensions ?? {};
  let hasData = false;

  // To-device: its own position (`since` / `next_batch`); what `since` covers is acknowledged (deleted).
  if (exts.to_device?.enabled) {
    const since = exts.to_device.since;
    const sinceNum = since === undefined ? undefined : Number(since);
    if (sinceNum !== undefined && sinceNum > to.to_device) {
      // Ahead of the stream (an earlier run of the server): nothing to give yet.
      response.extensions.to_device = { next_batch: String(sinceNum), events: [] };
    } else {
      const sincePos = sinceNum === undefined ? undefined : { ...zeroPositions(), to_device: sinceNum };
      const window = { ...zeroPositions(), to_device: to.to_device };
      const r = await runClassic(deps.toDevice.syncExtension(), input, sincePos, [], window);
      response.extensions.to_device = { next_batch: String(window.to_device), events: r.to_device.events };
      if (r.to_device.events.length) hasData = true;
    }
  }

  if (exts.e2ee?.enabled) {
    const e2ee: NonNullable<SlidingSyncResponse['extensions']['e2ee']> = {
      device_one_time_keys_count: await deps.keys.oneTimeKeyCounts(userId, deviceId),
      device_unused_fallback_key_types: await deps.keys.unusedFallbackKeyTypes(userId, deviceId),
    };
    if (from) {
      const keysMoved = from.device_lists < to.device_lists;
      const membersMoved =
        from.events < to.events && (input.activity.userMemberships.last(userId) > from.events || [...input.joined].some((r) => input.activity.roomMemberships.last(r) > from.events));
      const lists = keysMoved || membersMoved ? await deps.deviceLists.changesBetween(userId, from, to, { keys: keysMoved, members: membersMoved }) : { changed: [], left: [] };
      e2ee.device_lists = lists;
      if (lists.changed.length || lists.left.length) hasData = true;
    }
    response.extensions.e2ee = e2ee;
  }

  if (exts.account_data?.enabled) {
    const rooms = [...roomsFor(exts.account_data, input)];
    const ext = accountDataExtension(deps.userData, deps.pushRules);
    // Global account data and rooms already sent: what changed; rooms sent whole: all of it.
    const whole = rooms.filter((r) => input.initialRooms.has(r));
    const live = await runClassic(ext, input, from, from ? rooms.filter((r) => !input.initialRooms.has(r)) : rooms);
    const out = { global: live.account_data.events, rooms: {} as Record<string, JsonObject[]> };
    const add = (r: SyncResponse) => {
      for (const [roomId, room] of Object.entries(r.rooms.join)) if (room.account_data.events.length) out.rooms[roomId] = room.account_data.events;
    };
    add(live);
    if (from && whole.length) add(await runClassic(ext, input, undefined, whole));
    if (out.global.length || Object.keys(out.rooms).length) hasData = true;
    response.extensions.account_data = out;
  }

  if (exts.receipts?.enabled) {
    const rooms = roomsFor(exts.receipts, input);
    // Rooms sent whole, or with an expanded timeline: the receipts of the events in their
    // timeline, and the user's own; other rooms: the receipts that changed.
    const whole = [...rooms].filter((r) => !from || input.initialRooms.has(r) || response.rooms[r]?.unstable_expanded_timeline);
    const inTimeline = new Set(whole.flatMap((r) => (response.rooms[r]?.timeline ?? []).map((e) => e.event_id)));
    const rows = (await deps.receipts.store.forRooms(whole, to.receipts)).filter((r) => r.userId === userId || inTimeline.has(r.eventId));
    if (from && from.receipts < to.receipts) {
      for (const r of await deps.receipts.store.between(from.receipts, to.receipts)) if (rooms.has(r.roomId) && !input.initialRooms.has(r.roomId)) rows.push(r);
    }
    const out: Record<string, JsonObject> = {};
    for (const [roomId, content] of receiptEvents(rows, userId)) out[roomId] = { type: 'm.receipt', content: content as JsonObject };
    if (Object.keys(out).length) hasData = true;
    response.extensions.receipts = { rooms: out };
  }

  if (exts.typing?.enabled) {
    const rooms = [...roomsFor(exts.typing, input)].filter((r) => input.joined.has(r));
    const ext = typingExtension(deps.typing);
    const out: Record<string, JsonObject> = {};
    const add = (r: SyncResponse) => {
      for (const [roomId, room] of Object.entries(r.rooms.join)) for (const e of room.ephemeral.events) out[roomId] = e;
    };
    const whole = rooms.filter((r) => !from || input.initialRooms.has(r));
    if (from) add(await runClassic(ext, input, from, rooms.filter((r) => !input.initialRooms.has(r))));
    if (whole.length) add(await runClassic(ext, input, undefined, whole));
    if (Object.keys(out).length) hasData = true;
    response.extensions.typing = { rooms: out };
  }
  return hasData;
}
