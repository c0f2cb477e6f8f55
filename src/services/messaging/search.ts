import { errors } from '../../errors.js';
import type { JsonObject } from '../../protocol/json.js';
import type { EventStore, StoredEvent } from '../../storage/stores/events.js';
import { SEARCH_KEYS, searchWords, type SearchHit, type SearchKey, type SearchStore } from '../../storage/stores/search.js';
import type { ClientEvent, ClientEventFormatter } from '../rooms/client-events.js';
import type { HistoryVisibility } from '../rooms/visibility.js';
import { eventMatches, type EventFilter } from '../sync/filter.js';
import { formatPaginationToken } from '../sync/token.js';

/** The `room_events` criteria of a /search request. */
export interface RoomEventsCriteria {
  search_term: string;
  keys?: string[];
  filter?: EventFilter;
  order_by?: 'rank' | 'recent';
  event_context?: { before_limit?: number; after_limit?: number; include_profile?: boolean };
  include_state?: boolean;
  groupings?: { group_by?: Array<{ key?: string }> };
}

const KEY_TYPES: Record<SearchKey, string> = {
  'content.body': 'm.room.message',
  'content.name': 'm.room.name',
  'content.topic': 'm.room.topic',
};
const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 100;
const MAX_CONTEXT = 20;

export interface SearchDeps {
  store: SearchStore;
  events: EventStore;
  formatter: ClientEventFormatter;
  visibility: HistoryVisibility;
}

interface Batch {
  kind: 'rank' | 'recent';
  /** rank: results skipped; recent: stream position to continue below. */
  value: number;
}

function parseBatch(raw: string | undefined, orderBy: 'rank' | 'recent'): Batch | undefined {
  if (raw === undefined) return undefined;
  const m = /^([rs])(\d+)$/.exec(raw);
  if (!m || (m[1] === 'r') !== (orderBy === 'rank')) throw errors.invalidParam('Invalid next_batch token');
  return { kind: orderBy, value: Number(m[2]) };
}

/** POST /search for the `room_events` category: full-text search of the rooms a user is joined to. */
export class SearchService {
  constructor(private readonly deps: SearchDeps) {}

  async searchRoomEvents(userId: string, c: RoomEventsCriteria, nextBatch: string | undefined): Promise<JsonObject> {
    const { events, store, formatter, visibility } = this.deps;
    const orderBy = c.order_by ?? 'rank';
    if (orderBy !== 'rank' && orderBy !== 'recent') throw errors.invalidParam('order_by must be "rank" or "recent"');
    const keys = (c.keys ?? [...SEARCH_KEYS]) as SearchKey[];
    for (const k of keys) if (!SEARCH_KEYS.includes(k)) throw errors.invalidParam(`Unknown search key ${k}`);
    const filter = c.filter ?? {};
    const limit = Math.min(MAX_LIMIT, Math.max(1, filter.limit ?? DEFAULT_LIMIT));
    const batch = parseBatch(nextBatch, orderBy);
    const groupBy = (c.groupings?.group_by ?? []).map((g) => g.key);
    for (const g of groupBy) if (g !== 'room_id' && g !== 'sender') throw errors.invalidParam(`Unknown grouping key ${String(g)}`);

    const joined = (await events.roomsForUser(userId, ['join'])).map((r) => r.roomId);
    const roomIds = joined.filter((r) => eventMatches({ rooms: filter.rooms, not_rooms: filter.not_rooms }, { type: '', room_id: r }));
    const searchKeys = keys.filter((k) => eventMatches({ types: filter.types, not_types: filter.not_types }, { type: KEY_TYPES[k] }));

    // Pages until `limit` visible results are found (history visibility may hide some hits).
    const results: Array<{ hit: SearchHit; ev: StoredEvent }> = [];
    let offset = batch?.kind === 'rank' ? batch.value : 0;
    let before = batch?.kind === 'recent' ? batch.value : undefined;
    let count = 0;
    let more = false;
    for (let round = 0; round < 20 && results.length < limit; round++) {
      const want = limit - results.length;
      const { hits, count: total } = await store.search({
        term: c.search_term,
        roomIds,
        keys: searchKeys,
        senders: filter.senders,
        notSenders: filter.not_senders,
        orderBy,
        limit: want,
        offset,
        before,
      });
      if (round === 0) count = total;
      const loaded = await events.getEvents(hits.map((h) => h.eventId));
      const stored = hits.map((h) => loaded.get(h.eventId)).filter((s): s is StoredEvent => !!s && !s.redactedBy);
      const visible = new Set(await visibility.filter(userId, stored));
      for (const h of hits) {
        const ev = loaded.get(h.eventId);
        if (ev && visible.has(ev) && eventMatches({ contains_url: filter.contains_url }, { type: ev.event.type, content: ev.event.content })) {
          results.push({ hit: h, ev });
        }
      }
      offset += hits.length;
      if (hits.length) before = hits[hits.length - 1]!.streamOrdering;
      more = hits.length === want && (orderBy === 'recent' || offset < total);
      if (!more) break;
    }

    const viewer = { userId };
    const formatted = await formatter.format(results.map((r) => r.ev), { viewer });
    const out: JsonObject = {
      count,
      highlights: searchWords(c.search_term),
      results: [] as JsonObject[],
    };
    const list = out['results'] as JsonObject[];
    for (let i = 0; i < results.length; i++) {
      const entry: JsonObject = { rank: results[i]!.hit.rank, result: formatted[i] as unknown as JsonObject };
      if (c.event_context) entry['context'] = await this.context(userId, results[i]!.ev, c.event_context);
      list.push(entry);
    }
    if (more) out['next_batch'] = orderBy === 'rank' ? `r${offset}` : `s${before}`;
    if (groupBy.length) {
      const groups: JsonObject = {};
      for (const key of groupBy as Array<'room_id' | 'sender'>) {
        const g: Record<string, { results: string[]; order: number }> = {};
        results.forEach(({ ev }) => {
          const k = key === 'room_id' ? ev.roomId : ev.event.sender;
          (g[k] ??= { results: [], order: Object.keys(g).length + 1 }).results.push(ev.event.event_id);
        });
        const withBatch: JsonObject = {};
        for (const [k, v] of Object.entries(g)) {
          withBatch[k] = { results: v.results, order: v.order, ...(more ? { next_batch: out['next_batch'] as string } : {}) };
        }
        groups[key] = withBatch;
      }
      out['groups'] = groups;
    }
    if (c.include_state) {
      const state: JsonObject = {};
      for (const roomId of new Set(results.map((r) => r.ev.roomId))) {
        const ids = await events.getCurrentStateIds(roomId);
        const stored = [...(await events.getEvents(ids.values())).values()];
        state[roomId] = (await formatter.format(stored, { viewer, bundle: false })) as unknown as JsonObject[];
      }
      out['state'] = state;
    }
    return out;
  }

  /** Events around a search result, with tokens and optionally the senders' profiles. */
  private async context(
    userId: string,
    target: StoredEvent,
    opts: { before_limit?: number; after_limit?: number; include_profile?: boolean },
  ): Promise<JsonObject> {
    const { events, formatter, visibility } = this.deps;
    const beforeLimit = Math.min(MAX_CONTEXT, Math.max(0, opts.before_limit ?? 5));
    const afterLimit = Math.min(MAX_CONTEXT, Math.max(0, opts.after_limit ?? 5));
    const max = await events.maxStreamOrdering();
    const before = beforeLimit ? await visibility.filter(userId, await events.roomEventsBetween(target.roomId, 0, target.streamOrdering - 1, beforeLimit, 'backwards')) : [];
    const after = afterLimit ? await visibility.filter(userId, await events.roomEventsBetween(target.roomId, target.streamOrdering, max, afterLimit, 'forwards')) : [];
    const viewer = { userId };
    const out: JsonObject = {
      start: formatPaginationToken((before[before.length - 1]?.streamOrdering ?? target.streamOrdering) - 1),
      end: formatPaginationToken(after[after.length - 1]?.streamOrdering ?? target.streamOrdering),
      events_before: (await formatter.format(before, { viewer })) as unknown as JsonObject[],
      events_after: (await formatter.format(after, { viewer })) as unknown as JsonObject[],
    };
    if (opts.include_profile) {
      const senders = new Set([target, ...before, ...after].map((s) => s.event.sender));
      const ids = await events.getCurrentStateIds(target.roomId);
      const members = await events.getEvents([...senders].map((u) => ids.get(JSON.stringify(['m.room.member', u]))).filter((x): x is string => !!x));
      const profiles: JsonObject = {};
      for (const m of members.values()) {
        const p: JsonObject = {};
        if (typeof m.event.content['displayname'] === 'string') p['displayname'] = m.event.content['displayname'];
        if (typeof m.event.content['avatar_url'] === 'string') p['avatar_url'] = m.event.content['avatar_url'];
        profiles[m.event.state_key!] = p;
      }
      out['profile_info'] = profiles;
    }
    return out;
  }
}

export type { ClientEvent };
