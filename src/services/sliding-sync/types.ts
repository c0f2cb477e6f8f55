import type { JsonObject } from '../../protocol/json.js';
import type { ClientEvent } from '../rooms/client-events.js';
import type { RequiredStateRequest } from './required-state.js';

/** The room filters of a list (all AND-ed; an absent field does not filter). */
export interface SlidingRoomFilters {
  is_dm?: boolean;
  spaces?: string[];
  is_encrypted?: boolean;
  is_invite?: boolean;
  /** The proposal's final name for `is_invite`. */
  is_invited?: boolean;
  room_types?: Array<string | null>;
  not_room_types?: Array<string | null>;
  tags?: string[];
  not_tags?: string[];
}

export interface RoomConfigRequest {
  required_state?: RequiredStateRequest;
  timeline_limit?: number;
}

export interface SlidingListRequest extends RoomConfigRequest {
  ranges?: Array<[number, number]>;
  /** The proposal's final form: one range. */
  range?: [number, number];
  slow_get_all_rooms?: boolean;
  filters?: SlidingRoomFilters;
}

export interface RoomsExtensionRequest {
  enabled?: boolean;
  /** List names (or `*`) whose rooms the extension covers; default all. */
  lists?: string[];
  /** Subscribed room IDs (or `*`) the extension covers; default all. */
  rooms?: string[];
}

export interface SlidingSyncBody {
  conn_id?: string;
  /** Echoed in the response, so the client can tell which request it answers. */
  txn_id?: string;
  lists?: Record<string, SlidingListRequest>;
  room_subscriptions?: Record<string, RoomConfigRequest>;
  extensions?: {
    to_device?: { enabled?: boolean; since?: string; limit?: number };
    e2ee?: { enabled?: boolean };
    account_data?: RoomsExtensionRequest;
    receipts?: RoomsExtensionRequest;
    typing?: RoomsExtensionRequest;
    [other: string]: unknown;
  };
  /** The proposal's final text moves `pos` and `timeout` into the body; the query parameters win. */
  pos?: string;
  timeout?: number;
}

export interface SlidingSyncRequest {
  userId: string;
  deviceId: string;
  pos?: string;
  timeoutMs: number;
  body: SlidingSyncBody;
  signal?: AbortSignal;
}

export interface Hero {
  user_id: string;
  displayname?: string;
  avatar_url?: string;
}

export interface SlidingRoomResult {
  name?: string | null;
  avatar?: string | null;
  heroes?: Hero[];
  is_dm?: boolean;
  initial?: boolean;
  unstable_expanded_timeline?: boolean;
  expanded_timeline?: boolean;
  required_state?: Array<ClientEvent | { type: string; state_key: string }>;
  timeline?: ClientEvent[];
  prev_batch?: string;
  limited?: boolean;
  num_live?: number;
  joined_count?: number;
  invited_count?: number;
  notification_count: number;
  highlight_count: number;
  bump_stamp?: number;
  invite_state?: JsonObject[];
  stripped_state?: JsonObject[];
  membership?: string;
  lists?: string[];
}

export interface SlidingSyncResponse {
  pos: string;
  txn_id?: string;
  lists: Record<string, { count: number; ops?: JsonObject[] }>;
  rooms: Record<string, SlidingRoomResult>;
  extensions: {
    to_device?: { next_batch: string; events: JsonObject[] };
    e2ee?: {
      device_one_time_keys_count: Record<string, number>;
      device_unused_fallback_key_types: string[];
      device_lists?: { changed: string[]; left: string[] };
    };
    account_data?: { global: JsonObject[]; rooms: Record<string, JsonObject[]> };
    receipts?: { rooms: Record<string, JsonObject> };
    typing?: { rooms: Record<string, JsonObject> };
  };
}
