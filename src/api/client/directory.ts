import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors, MatrixError } from '../../errors.js';
import { isValidRoomAlias, isValidServerName, serverNameOf } from '../../protocol/identifiers.js';
import { queryRemotePublicRooms } from '../../federation/public-rooms.js';
import type { JsonObject } from '../../protocol/json.js';
import { canSendEvent } from '../../protocol/power-levels.js';
import { optionalUser, requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

type P = Record<string, string>;

/** The entry of a room in the public room directory. */
async function publicRoomChunk(ctx: AppContext, roomId: string): Promise<JsonObject> {
  const state = await ctx.eventStore.getCurrentState(roomId);
  const get = (type: string) => state.get(JSON.stringify([type, '']))?.content;
  const chunk: JsonObject = {
    room_id: roomId,
    num_joined_members: (await ctx.eventStore.members(roomId)).length,
    world_readable: get('m.room.history_visibility')?.['history_visibility'] === 'world_readable',
    guest_can_join: get('m.room.guest_access')?.['guest_access'] === 'can_join',
  };
  const name = get('m.room.name')?.['name'];
  if (typeof name === 'string' && name) chunk['name'] = name;
  const topic = get('m.room.topic')?.['topic'];
  if (typeof topic === 'string' && topic) chunk['topic'] = topic;
  const avatar = get('m.room.avatar')?.['url'];
  if (typeof avatar === 'string' && avatar) chunk['avatar_url'] = avatar;
  const alias = get('m.room.canonical_alias')?.['alias'];
  if (typeof alias === 'string' && alias) chunk['canonical_alias'] = alias;
  const joinRule = get('m.room.join_rules')?.['join_rule'];
  if (typeof joinRule === 'string') chunk['join_rule'] = joinRule;
  const roomType = get('m.room.create')?.['type'];
  if (typeof roomType === 'string') chunk['room_type'] = roomType;
  return chunk;
}

/**
 * The other server whose directory a `server` query parameter asks for, or undefined for this
 * server's own. Asking another server needs an access token (this server does the asking).
 */
function remoteServerOf(ctx: AppContext, server: string | undefined, authenticated: boolean): string | undefined {
  if (server === undefined || server === '' || server === ctx.config.server_name) return undefined;
  if (!isValidServerName(server)) throw errors.invalidParam(`${JSON.stringify(server)} is not a server name`);
  if (!authenticated) throw new MatrixError('M_MISSING_TOKEN', 401, "Listing another server's public rooms needs an access token");
  return server;
}

export async function listPublicRooms(ctx: AppContext, limit: number | undefined, since: string | undefined, term: string | undefined, roomIds?: string[]) {
  const offset = since ? Number(/^o(\d+)$/.exec(since)?.[1] ?? NaN) : 0;
  if (!Number.isInteger(offset)) throw errors.invalidParam('Invalid since token');
  const ids = roomIds ?? (await ctx.eventStore.publicRooms());
  let chunks = await Promise.all(ids.map((id) => publicRoomChunk(ctx, id)));
  if (term) {
    const t = term.toLowerCase();
    chunks = chunks.filter((c) =>
      ['name', 'topic', 'canonical_alias'].some((k) => typeof c[k] === 'string' && (c[k] as string).toLowerCase().includes(t)),
    );
  }
  chunks.sort((a, b) => (b['num_joined_members'] as number) - (a['num_joined_members'] as number) || String(a['room_id']).localeCompare(String(b['room_id'])));
  const n = limit ?? chunks.length;
  const page = chunks.slice(offset, offset + n);
  const out: JsonObject = { chunk: page, total_room_count_estimate: chunks.length };
  if (offset + n < chunks.length) out['next_batch'] = `o${offset + n}`;
  if (offset > 0) out['prev_batch'] = `o${Math.max(0, offset - n)}`;
  return out;
}

/** Room aliases, the room directory visibility and the public room list. */
export function registerDirectory(app: HttpApp, ctx: AppContext): void {
  const serverName = ctx.config.server_name;
  const checkAlias = (alias: string) => {
    if (!isValidRoomAlias(alias)) throw errors.invalidParam(`Invalid room alias ${alias}`);
  };
  for (const prefix of V3) {
    app.get(`${prefix}/directory/room/:roomAlias`, async (req) => {
      const { roomAlias } = req.params as P;
      checkAlias(roomAlias!);
      // Unknown aliases in an application service's namespace are asked for (it may create the room).
      const roomId = await ctx.appservices.resolveAlias(roomAlias!);
      if (!roomId) throw errors.notFound(`Room alias ${roomAlias} not found`);
      return { room_id: roomId, servers: [serverName] };
    });
    app.put(`${prefix}/directory/room/:roomAlias`, { schema: { body: Type.Object({ room_id: Type.String() }) } }, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomAlias } = req.params as P;
      checkAlias(roomAlias!);
      if (serverNameOf(roomAlias!) !== serverName) throw errors.invalidParam(`Aliases must end in :${serverName}`);
      ctx.appservices.checkAlias(roomAlias!, user);
      const { room_id } = req.body as { room_id: string };
      if (!(await ctx.eventStore.getRoom(room_id))) throw errors.notFound(`Unknown room ${room_id}`);
      if (!(await ctx.aliasStore.create(roomAlias!, room_id, user.userId))) {
        throw new MatrixError('M_UNKNOWN', 409, `Room alias ${roomAlias} already exists`);
      }
      return {};
    });
    app.delete(`${prefix}/directory/room/:roomAlias`, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomAlias } = req.params as P;
      checkAlias(roomAlias!);
      const entry = await ctx.aliasStore.get(roomAlias!);
      if (!entry) throw errors.notFound(`Room alias ${roomAlias} not found`);
      if (!user.isAdmin) ctx.appservices.checkAlias(roomAlias!, user);
      if (entry.creator !== user.userId && !user.isAdmin) {
        const state = await ctx.eventStore.getCurrentState(entry.roomId);
        if (!canSendEvent(state, user.userId, 'm.room.canonical_alias', true)) {
          throw errors.forbidden('You may not delete this alias');
        }
      }
      await ctx.aliasStore.delete(roomAlias!);
      return {};
    });
    app.get(`${prefix}/rooms/:roomId/aliases`, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomId } = req.params as P;
      await ctx.rooms.requireJoined(user.userId, roomId!);
      return { aliases: await ctx.aliasStore.forRoom(roomId!) };
    });
    app.get(`${prefix}/directory/list/room/:roomId`, async (req) => {
      const { roomId } = req.params as P;
      const room = await ctx.eventStore.getRoom(roomId!);
      if (!room) throw errors.notFound(`Unknown room ${roomId}`);
      return { visibility: room.isPublic ? 'public' : 'private' };
    });
    app.put(
      `${prefix}/directory/list/room/:roomId`,
      { schema: { body: Type.Object({ visibility: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('private')])) }) } },
      async (req) => {
        const user = await requireUser(ctx, req);
        const { roomId } = req.params as P;
        if (!(await ctx.eventStore.getRoom(roomId!))) throw errors.notFound(`Unknown room ${roomId}`);
        const state = await ctx.eventStore.getCurrentState(roomId!);
        if (!user.isAdmin && !canSendEvent(state, user.userId, 'm.room.canonical_alias', true)) {
          throw errors.forbidden('You may not change the directory visibility of this room');
        }
        await ctx.eventStore.setRoomPublic(roomId!, (req.body as { visibility?: string }).visibility === 'public');
        return {};
      },
    );
    app.get(`${prefix}/publicRooms`, async (req) => {
      const user = await optionalUser(ctx, req);
      const q = req.query as { limit?: string; since?: string; server?: string };
      const limit = q.limit !== undefined ? Number(q.limit) : undefined;
      if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) throw errors.invalidParam('limit must be a non-negative integer');
      const remote = remoteServerOf(ctx, q.server, user !== undefined);
      if (remote) return queryRemotePublicRooms(ctx.federation.client, remote, { limit, since: q.since });
      return listPublicRooms(ctx, limit, q.since, undefined);
    });
    app.post(
      `${prefix}/publicRooms`,
      {
        schema: {
          body: Type.Object({
            limit: Type.Optional(Type.Integer({ minimum: 0 })),
            since: Type.Optional(Type.String()),
            filter: Type.Optional(Type.Object({ generic_search_term: Type.Optional(Type.String()) })),
            include_all_networks: Type.Optional(Type.Boolean()),
            third_party_instance_id: Type.Optional(Type.String()),
          }),
        },
      },
      async (req) => {
        await requireUser(ctx, req);
        const b = req.body as { limit?: number; since?: string; filter?: { generic_search_term?: string }; include_all_networks?: boolean; third_party_instance_id?: string };
        const remote = remoteServerOf(ctx, (req.query as { server?: string }).server, true);
        if (remote) return queryRemotePublicRooms(ctx.federation.client, remote, b);
        // Application services' per-network directories: one network, or all of them with the server's list.
        const ids = await ctx.appservices.directoryRoomIds(() => ctx.eventStore.publicRooms(), {
          includeAllNetworks: b.include_all_networks,
          thirdPartyInstanceId: b.third_party_instance_id,
        });
        return listPublicRooms(ctx, b.limit, b.since, b.filter?.generic_search_term, ids);
      },
    );
  }
}
