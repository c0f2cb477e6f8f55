import type { JsonObject } from '../../protocol/json.js';

/** An event filter (client-server API "EventFilter" / "RoomEventFilter"). */
export interface EventFilter {
  limit?: number;
  types?: string[];
  not_types?: string[];
  senders?: string[];
  not_senders?: string[];
  rooms?: string[];
  not_rooms?: string[];
  lazy_load_members?: boolean;
  include_redundant_members?: boolean;
  contains_url?: boolean;
  /** Room timeline filters: count notifications per thread. */
  unread_thread_notifications?: boolean;
}

export interface Filter {
  event_fields?: string[];
  event_format?: 'client' | 'federation';
  presence?: EventFilter;
  account_data?: EventFilter;
  room?: {
    rooms?: string[];
    not_rooms?: string[];
    include_leave?: boolean;
    timeline?: EventFilter;
    state?: EventFilter;
    ephemeral?: EventFilter;
    account_data?: EventFilter;
  };
}

/** `*` matches any sequence of characters. */
function globMatch(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(value);
}

/** Whether an event passes a filter's type/sender/room/url conditions. */
export function eventMatches(
  f: EventFilter | undefined,
  ev: { type: string; sender?: string; room_id?: string; content?: JsonObject },
): boolean {
  if (!f) return true;
  if (f.not_types?.some((t) => globMatch(t, ev.type))) return false;
  if (f.types && !f.types.some((t) => globMatch(t, ev.type))) return false;
  if (ev.sender !== undefined) {
    if (f.not_senders?.includes(ev.sender)) return false;
    if (f.senders && !f.senders.includes(ev.sender)) return false;
  }
  if (ev.room_id !== undefined) {
    if (f.not_rooms?.includes(ev.room_id)) return false;
    if (f.rooms && !f.rooms.includes(ev.room_id)) return false;
  }
  if (f.contains_url !== undefined) {
    const has = typeof ev.content?.['url'] === 'string';
    if (has !== f.contains_url) return false;
  }
  return true;
}

export function roomAllowed(filter: Filter, roomId: string): boolean {
  const r = filter.room;
  if (!r) return true;
  if (r.not_rooms?.includes(roomId)) return false;
  if (r.rooms && !r.rooms.includes(roomId)) return false;
  return true;
}

/** Keeps only the listed dotted fields of a client event (`event_fields`). */
export function applyEventFields<T extends object>(ev: T, fields: string[] | undefined): T {
  if (!fields?.length) return ev;
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    const path = field.split(/(?<!\\)\./).map((p) => p.replace(/\\\./g, '.'));
    let src: unknown = ev;
    for (const p of path) src = src && typeof src === 'object' ? (src as Record<string, unknown>)[p] : undefined;
    if (src === undefined) continue;
    let dst = out;
    path.slice(0, -1).forEach((p) => {
      dst[p] = (dst[p] as Record<string, unknown>) ?? {};
      dst = dst[p] as Record<string, unknown>;
    });
    dst[path[path.length - 1]!] = src;
  }
  return out as T;
}
