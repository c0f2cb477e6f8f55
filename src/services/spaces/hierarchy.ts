/**
 * Space hierarchies: the client's `GET /rooms/{roomId}/hierarchy` (a depth-first walk over
 * `m.space.child` events, paginated, filtered to the rooms the user may see or join) and the
 * federation's `GET /hierarchy/{roomId}` (one space and its children, filtered to what the
 * requesting server may peek or join). Children held only by other servers are asked about over
 * federation through the `via` servers of their `m.space.child` event; answers are cached.
 */
import { randomBytes } from 'node:crypto';
import { errors, MatrixError } from '../../errors.js';
import { stateKeyOf, type RoomEvent } from '../../protocol/event.js';
import { serverNameOf } from '../../protocol/identifiers.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../../protocol/json.js';
import type { EventStore } from '../../storage/stores/events.js';

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 100;
export const MAX_DEPTH = 50;
/** Rooms visited by one client request at most (pages stop early rather than walk forever). */
const MAX_VISITS_PER_PAGE = 500;
const SESSION_TTL_MS = 5 * 60_000;
const MAX_SESSIONS = 1000;
const REMOTE_CACHE_TTL_MS = 5 * 60_000;
const MAX_REMOTE_CACHE = 1000;
const MAX_VIA = 5;
const MAX_CHILDREN = 200;

/** A room summary as the hierarchy APIs return it (room_summary.yaml). */
export type RoomSummary = JsonObject;

/** What a child `m.space.child` event says, stripped, with `origin_server_ts`. */
export interface ChildLink {
  roomId: string;
  via: string[];
  suggested: boolean;
  order: string | undefined;
  ts: number;
  stripped: JsonObject;
}

/** The federation hierarchy response. */
export interface FederationHierarchy {
  room: RoomSummary;
  children: RoomSummary[];
  inaccessible_children: string[];
}

export interface SpaceHierarchyDeps {
  serverName: string;
  events: EventStore;
  /** GET /_matrix/federation/v1/hierarchy/{roomId} on `server` (absent: federation off). */
  fetchRemote?: (server: string, roomId: string, suggestedOnly: boolean) => Promise<unknown>;
  log?: { info(obj: object, msg: string): void };
  now?: () => number;
}

interface QueueEntry {
  roomId: string;
  via: string[];
  depth: number;
  /** A summary of this room another server sent with its parent (used when we hold nothing). */
  remote?: RoomSummary;
}

interface Session {
  userId: string;
  roomId: string;
  suggestedOnly: boolean;
  maxDepth: number;
  queue: QueueEntry[];
  processed: Set<string>;
  at: number;
}

/** A valid `order`: at most 50 characters, each between U+0020 and U+007E. */
export function validOrder(order: unknown): order is string {
  return typeof order === 'string' && order.length <= 50 && /^[\x20-\x7E]*$/.test(order);
}

/** Code-point comparison of two strings (not locale-aware). */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Orders children as the spec says: those with a valid `order` first, by `order`; then the
 * others; ties by the `m.space.child` event's `origin_server_ts`, then by room ID.
 */
export function orderChildren<T extends Pick<ChildLink, 'roomId' | 'order' | 'ts'>>(children: readonly T[]): T[] {
  return [...children].sort((a, b) => {
    const ao = validOrder(a.order) ? a.order : undefined;
    const bo = validOrder(b.order) ? b.order : undefined;
    if (ao !== undefined && bo === undefined) return -1;
    if (ao === undefined && bo !== undefined) return 1;
    if (ao !== undefined && bo !== undefined && ao !== bo) return cmp(ao, bo);
    if (a.ts !== b.ts) return a.ts - b.ts;
    return cmp(a.roomId, b.roomId);
  });
}

/** The children named by `m.space.child` events (as stripped events), valid ones only, ordered. */
export function childLinks(events: Iterable<JsonObject>, suggestedOnly: boolean): ChildLink[] {
  const out: ChildLink[] = [];
  for (const ev of events) {
    if (ev['type'] !== 'm.space.child' || typeof ev['state_key'] !== 'string' || !ev['state_key'].startsWith('!')) continue;
    const content = isJsonObject(ev['content']) ? ev['content'] : {};
    const viaRaw = content['via'];
    if (!Array.isArray(viaRaw)) continue;
    const via = viaRaw.filter((v): v is string => typeof v === 'string' && v.length > 0);
    if (via.length === 0) continue;
    const suggested = content['suggested'] === true;
    if (suggestedOnly && !suggested) continue;
    out.push({
      roomId: ev['state_key'],
      via: via.slice(0, MAX_VIA),
      suggested,
      order: typeof content['order'] === 'string' ? content['order'] : undefined,
      ts: typeof ev['origin_server_ts'] === 'number' ? ev['origin_server_ts'] : 0,
      stripped: ev,
    });
  }
  return orderChildren(out).slice(0, MAX_CHILDREN);
}

function strippedChild(ev: RoomEvent): JsonObject {
  return { type: ev.type, state_key: ev.state_key ?? '', content: ev.content, sender: ev.sender, origin_server_ts: ev.origin_server_ts };
}

function allowedRoomIds(joinRules: JsonObject | undefined): string[] {
  const allow = Array.isArray(joinRules?.['allow']) ? (joinRules!['allow'] as JsonValue[]) : [];
  const out: string[] = [];
  for (const a of allow) if (isJsonObject(a) && a['type'] === 'm.room_membership' && typeof a['room_id'] === 'string') out.push(a['room_id']);
  return out;
}

const KNOCKABLE = new Set(['knock', 'knock_restricted']);
const RESTRICTED = new Set(['restricted', 'knock_restricted']);

export class SpaceHierarchy {
  private readonly sessions = new Map<string, Session>();
  private readonly remoteCache = new Map<string, { at: number; value: FederationHierarchy | undefined }>();

  constructor(private readonly deps: SpaceHierarchyDeps) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  private isLocal(id: string): boolean {
    return serverNameOf(id) === this.deps.serverName;
  }

  /** Whether this server holds the room's current state (a local user is joined to it). */
  async holdsRoom(roomId: string): Promise<boolean> {
    if (!(await this.deps.events.getRoom(roomId))) return false;
    return (await this.deps.events.members(roomId, ['join'])).some((m) => this.isLocal(m));
  }

  /** The summary of a room held here, with its `m.space.child` events when it is a space. */
  async localSummary(roomId: string): Promise<{ summary: RoomSummary; children: JsonObject[]; joinRule: string | undefined; worldReadable: boolean; allowed: string[] }> {
    const room = await this.deps.events.getRoom(roomId);
    const state = await this.deps.events.getCurrentState(roomId);
    const get = (type: string) => state.get(stateKeyOf(type, ''))?.content;
    const joinRulesContent = get('m.room.join_rules');
    const joinRule = typeof joinRulesContent?.['join_rule'] === 'string' ? joinRulesContent['join_rule'] : undefined;
    const worldReadable = get('m.room.history_visibility')?.['history_visibility'] === 'world_readable';
    const summary: RoomSummary = {
      room_id: roomId,
      num_joined_members: (await this.deps.events.members(roomId)).length,
      world_readable: worldReadable,
      guest_can_join: get('m.room.guest_access')?.['guest_access'] === 'can_join',
    };
    const str = (type: string, field: string, key: string) => {
      const v = get(type)?.[field];
      if (typeof v === 'string' && v) summary[key] = v;
    };
    str('m.room.name', 'name', 'name');
    str('m.room.topic', 'topic', 'topic');
    str('m.room.avatar', 'url', 'avatar_url');
    str('m.room.canonical_alias', 'alias', 'canonical_alias');
    str('m.room.create', 'type', 'room_type');
    str('m.room.encryption', 'algorithm', 'encryption');
    if (joinRule) summary['join_rule'] = joinRule;
    if (room) summary['room_version'] = room.roomVersion;
    const allowed = joinRule && RESTRICTED.has(joinRule) ? allowedRoomIds(joinRulesContent) : [];
    if (allowed.length) summary['allowed_room_ids'] = allowed;
    const children: JsonObject[] = [];
    if (summary['room_type'] === 'm.space') {
      for (const ev of state.values()) if (ev.type === 'm.space.child' && typeof ev.state_key === 'string') children.push(strippedChild(ev));
    }
    return { summary, children, joinRule, worldReadable, allowed };
  }

  /** Whether a user may see a room's summary: joined or invited, or the room is public, knockable, world-readable, or restricted with a condition the user meets. */
  private async userMaySee(userId: string, roomId: string, info: { joinRule: string | undefined; worldReadable: boolean; allowed: string[] }): Promise<boolean> {
    const membership = await this.deps.events.getMembership(roomId, userId).catch(() => undefined);
    if (membership === 'join' || membership === 'invite') return true;
    if (membership === 'ban') return false;
    if (info.joinRule === 'public' || (info.joinRule && KNOCKABLE.has(info.joinRule)) || info.worldReadable) return true;
    if (info.joinRule && RESTRICTED.has(info.joinRule)) {
      for (const r of info.allowed) if ((await this.deps.events.getMembership(r, userId)) === 'join') return true;
    }
    return false;
  }

  /** Whether a server may peek or join a room held here (federation hierarchy). */
  private async serverMaySee(server: string, roomId: string, info: { joinRule: string | undefined; worldReadable: boolean; allowed: string[] }): Promise<boolean> {
    if (info.joinRule === 'public' || (info.joinRule && KNOCKABLE.has(info.joinRule)) || info.worldReadable) return true;
    const members = await this.deps.events.members(roomId, ['join', 'invite']);
    if (members.some((m) => serverNameOf(m) === server)) return true;
    if (info.joinRule && RESTRICTED.has(info.joinRule)) {
      // The requesting server filters per user with allowed_room_ids; it must be in one of them.
      for (const r of info.allowed) {
        if ((await this.deps.events.members(r, ['join'])).some((m) => serverNameOf(m) === server)) return true;
      }
    }
    return false;
  }

  // ---------------------------------------------------------------------------------------
  // Federation side

  /** GET /_matrix/federation/v1/hierarchy/{roomId} for `origin`. */
  async forServer(origin: string, roomId: string, suggestedOnly: boolean): Promise<FederationHierarchy> {
    if (!(await this.holdsRoom(roomId))) throw errors.notFound('Unknown room');
    const root = await this.localSummary(roomId);
    if (!(await this.serverMaySee(origin, roomId, root))) throw errors.notFound('The room is not accessible');
    const children: RoomSummary[] = [];
    const inaccessible: string[] = [];
    for (const link of childLinks(root.children, suggestedOnly)) {
      if (!(await this.holdsRoom(link.roomId))) continue;
      const child = await this.localSummary(link.roomId);
      if (await this.serverMaySee(origin, link.roomId, child)) children.push(child.summary);
      else inaccessible.push(link.roomId);
    }
    return { room: { ...root.summary, children_state: root.children }, children, inaccessible_children: inaccessible };
  }

  // ---------------------------------------------------------------------------------------
  // Client side

  /**
   * GET /_matrix/client/v1/room_summary/{roomIdOrAlias}: a room's summary for `userId`, or for an
   * unauthenticated caller (`undefined`: only rooms that are public, knockable or world-readable).
   * Rooms this server does not hold are asked about through the federation hierarchy of the
   * `via` servers (and the room ID's server) — for authenticated callers only, so anonymous
   * requests never make this server send federation requests. Rooms the caller may not see are
   * 404, like unknown ones.
   */
  async roomSummary(userId: string | undefined, roomId: string, via: readonly string[]): Promise<RoomSummary> {
    const notFound = () => errors.notFound('Room not found');
    let summary: RoomSummary;
    let info: { joinRule: string | undefined; worldReadable: boolean; allowed: string[] };
    if (await this.holdsRoom(roomId)) {
      const local = await this.localSummary(roomId);
      summary = local.summary;
      info = local;
    } else {
      if (userId === undefined) throw notFound();
      const servers = [...via];
      const own = serverNameOf(roomId);
      if (own) servers.push(own);
      const remote = await this.remoteHierarchy(roomId, servers, false);
      if (!remote) throw notFound();
      const { children_state: _children, ...rest } = remote.room;
      summary = rest;
      info = remoteInfo(remote.room);
    }
    if (userId === undefined) {
      const open = info.joinRule === 'public' || (info.joinRule !== undefined && KNOCKABLE.has(info.joinRule)) || info.worldReadable;
      if (!open) throw notFound();
      return summary;
    }
    if (!(await this.userMaySee(userId, roomId, info))) throw notFound();
    const membership = await this.deps.events.getMembership(roomId, userId).catch(() => undefined);
    return { ...summary, membership: membership ?? 'leave' };
  }

  /** Asks the `via` servers (not this one) for a room's hierarchy; cached for a while. */
  private async remoteHierarchy(roomId: string, via: string[], suggestedOnly: boolean): Promise<FederationHierarchy | undefined> {
    if (!this.deps.fetchRemote) return undefined;
    const key = `${roomId}\u0000${suggestedOnly ? 1 : 0}`;
    const cached = this.remoteCache.get(key);
    if (cached && this.now() - cached.at < REMOTE_CACHE_TTL_MS) return cached.value;
    let value: FederationHierarchy | undefined;
    for (const server of [...new Set(via)].filter((s) => s !== this.deps.serverName).slice(0, MAX_VIA)) {
      try {
        const res = await this.deps.fetchRemote(server, roomId, suggestedOnly);
        value = parseFederationHierarchy(res, roomId);
        if (value) break;
      } catch (err) {
        this.deps.log?.info({ server, roomId, err: (err as Error).message }, 'space hierarchy request failed');
      }
    }
    this.remoteCache.set(key, { at: this.now(), value });
    if (this.remoteCache.size > MAX_REMOTE_CACHE) this.remoteCache.delete(this.remoteCache.keys().next().value!);
    return value;
  }

  private expireSessions(): void {
    const now = this.now();
    for (const [k, s] of this.sessions) if (now - s.at > SESSION_TTL_MS) this.sessions.delete(k);
    while (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
  }

  /** GET /_matrix/client/v1/rooms/{roomId}/hierarchy. */
  async forUser(
    userId: string,
    roomId: string,
    opts: { suggestedOnly?: boolean; maxDepth?: number; limit?: number; from?: string },
  ): Promise<{ rooms: RoomSummary[]; next_batch?: string }> {
    this.expireSessions();
    const suggestedOnly = opts.suggestedOnly ?? false;
    const maxDepth = Math.min(opts.maxDepth ?? MAX_DEPTH, MAX_DEPTH);
    const limit = Math.min(opts.limit ?? DEFAULT_LIMIT, MAX_LIMIT);
    let session: Session;
    if (opts.from !== undefined) {
      const s = this.sessions.get(opts.from);
      if (!s || s.userId !== userId || s.roomId !== roomId) throw errors.invalidParam('Unknown pagination token');
      if (s.suggestedOnly !== suggestedOnly || (opts.maxDepth !== undefined && s.maxDepth !== maxDepth)) {
        throw errors.invalidParam('suggested_only and max_depth cannot change on paginated requests');
      }
      this.sessions.delete(opts.from);
      session = s;
    } else {
      // The requested space itself must be visible to the user.
      let visible = false;
      if (await this.holdsRoom(roomId)) visible = await this.userMaySee(userId, roomId, await this.localSummary(roomId));
      else {
        const server = serverNameOf(roomId);
        const remote = server ? await this.remoteHierarchy(roomId, [server], suggestedOnly) : undefined;
        visible = !!remote && (await this.userMaySee(userId, roomId, remoteInfo(remote.room)));
      }
      if (!visible) throw new MatrixError('M_FORBIDDEN', 403, 'You are not allowed to view this room');
      const via = serverNameOf(roomId) ? [serverNameOf(roomId)!] : [];
      session = { userId, roomId, suggestedOnly, maxDepth, queue: [{ roomId, via, depth: 0 }], processed: new Set(), at: this.now() };
    }

    const rooms: RoomSummary[] = [];
    let visits = 0;
    while (session.queue.length && rooms.length < limit && visits < MAX_VISITS_PER_PAGE) {
      const entry = session.queue.shift()!;
      if (session.processed.has(entry.roomId)) continue;
      session.processed.add(entry.roomId);
      visits++;
      const found = await this.summaryForUser(userId, entry, suggestedOnly);
      if (!found) continue;
      rooms.push({ ...found.summary, children_state: found.children });
      if (entry.depth < maxDepth && found.summary['room_type'] === 'm.space') {
        const next: QueueEntry[] = [];
        for (const link of childLinks(found.children, suggestedOnly)) {
          if (session.processed.has(link.roomId)) continue;
          next.push({ roomId: link.roomId, via: link.via, depth: entry.depth + 1, remote: found.childSummaries?.get(link.roomId) });
        }
        // Depth first: this space's children come before the rest of the queue.
        session.queue.unshift(...next);
      }
    }
    const out: { rooms: RoomSummary[]; next_batch?: string } = { rooms };
    if (session.queue.some((e) => !session.processed.has(e.roomId))) {
      const token = randomBytes(12).toString('base64url');
      session.at = this.now();
      this.sessions.set(token, session);
      out.next_batch = token;
    }
    return out;
  }

  /** A room's summary and child events as the user may see them, from here or from the `via` servers. */
  private async summaryForUser(
    userId: string,
    entry: QueueEntry,
    suggestedOnly: boolean,
  ): Promise<{ summary: RoomSummary; children: JsonObject[]; childSummaries?: Map<string, RoomSummary> } | undefined> {
    if (await this.holdsRoom(entry.roomId)) {
      const local = await this.localSummary(entry.roomId);
      if (!(await this.userMaySee(userId, entry.roomId, local))) return undefined;
      return { summary: local.summary, children: local.children };
    }
    // A room that is not a space needs nothing more than what its parent's server told us.
    if (entry.remote && entry.remote['room_type'] !== 'm.space') {
      if (!(await this.userMaySee(userId, entry.roomId, remoteInfo(entry.remote)))) return undefined;
      return { summary: entry.remote, children: [] };
    }
    const remote = await this.remoteHierarchy(entry.roomId, entry.via, suggestedOnly);
    if (!remote) return undefined;
    if (!(await this.userMaySee(userId, entry.roomId, remoteInfo(remote.room)))) return undefined;
    const { children_state: cs, ...summary } = remote.room;
    const children = Array.isArray(cs) ? cs.filter(isJsonObject) : [];
    const childSummaries = new Map<string, RoomSummary>();
    for (const c of remote.children) childSummaries.set(String(c['room_id']), c);
    // Children the remote server says nobody can reach are dropped here.
    const blocked = new Set(remote.inaccessible_children);
    return { summary, children: children.filter((c) => !blocked.has(String(c['state_key']))), childSummaries };
  }
}

function remoteInfo(summary: RoomSummary): { joinRule: string | undefined; worldReadable: boolean; allowed: string[] } {
  return {
    joinRule: typeof summary['join_rule'] === 'string' ? summary['join_rule'] : undefined,
    worldReadable: summary['world_readable'] === true,
    allowed: Array.isArray(summary['allowed_room_ids']) ? summary['allowed_room_ids'].filter((x): x is string => typeof x === 'string') : [],
  };
}

function cleanSummary(raw: unknown): RoomSummary | undefined {
  if (!isJsonObject(raw) || typeof raw['room_id'] !== 'string' || !raw['room_id'].startsWith('!')) return undefined;
  const out: RoomSummary = {
    room_id: raw['room_id'],
    num_joined_members: typeof raw['num_joined_members'] === 'number' ? raw['num_joined_members'] : 0,
    world_readable: raw['world_readable'] === true,
    guest_can_join: raw['guest_can_join'] === true,
  };
  for (const k of ['name', 'topic', 'avatar_url', 'canonical_alias', 'join_rule', 'room_type', 'encryption', 'room_version']) {
    if (typeof raw[k] === 'string') out[k] = raw[k];
  }
  if (Array.isArray(raw['allowed_room_ids'])) out['allowed_room_ids'] = raw['allowed_room_ids'].filter((x): x is string => typeof x === 'string');
  return out;
}

/** Checks and trims another server's hierarchy response; undefined when it is not one for `roomId`. */
export function parseFederationHierarchy(raw: unknown, roomId: string): FederationHierarchy | undefined {
  if (!isJsonObject(raw)) return undefined;
  const room = cleanSummary(raw['room']);
  if (!room || room['room_id'] !== roomId) return undefined;
  const rawRoom = raw['room'] as JsonObject;
  const cs = Array.isArray(rawRoom['children_state']) ? rawRoom['children_state'].filter(isJsonObject).slice(0, MAX_CHILDREN) : [];
  room['children_state'] = cs.filter((c) => c['type'] === 'm.space.child' && typeof c['state_key'] === 'string');
  const children = (Array.isArray(raw['children']) ? raw['children'] : []).slice(0, MAX_CHILDREN).map(cleanSummary).filter((c): c is RoomSummary => !!c);
  const inaccessible = (Array.isArray(raw['inaccessible_children']) ? raw['inaccessible_children'] : []).filter((x): x is string => typeof x === 'string');
  return { room, children, inaccessible_children: inaccessible };
}
