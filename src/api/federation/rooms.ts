/**
 * Federation endpoints for rooms: transactions (/send), events, state, auth chains, backfill,
 * missing events, events by timestamp, membership handshakes (make/send join, leave, knock;
 * invites, v1 and v2), directory and profile queries, public rooms, user devices and keys.
 */
import { Type } from '@sinclair/typebox';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../../app.js';
import { errors, MatrixError } from '../../errors.js';
import { originOf } from '../../federation/request-auth.js';
import { isValidRoomAlias, serverNameOf } from '../../protocol/identifiers.js';
import { isJsonObject, type JsonObject } from '../../protocol/json.js';
import { getRoomVersion } from '../../protocol/room-versions.js';
import { listPublicRooms } from '../client/directory.js';
import type { HttpApp } from '../http.js';
import { requireInvitable } from '../invite-permission.js';
import { registerFederationHierarchy } from './hierarchy.js';
import { federationAuth } from './index.js';
import { knockAnswer } from '../../federation/compat.js';
import { v1InviteAsV2, type V2InviteBody } from '../../federation/invite-v1.js';
import { closestEventForServer, requireServerMaySeeRoom } from '../../federation/timestamp-to-event.js';
import { parseTimestampQuery } from '../../services/rooms/event-by-timestamp.js';
import { federationRoomState, STRIPPED_STATE_TYPES } from '../../federation/stripped-state.js';

const MAX_TXN_PDUS = 50;
const MAX_TXN_EDUS = 100;
const MAX_BACKFILL = 100;
/** Events read from the store at a time while writing a send_join answer. */
const JOIN_ANSWER_CHUNK = 500;

type P = Record<string, string>;

function list(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : [];
}

export function registerFederationRooms(app: HttpApp, ctx: AppContext): void {
  const auth = federationAuth(ctx);
  const { rooms, handler, sender } = ctx.federationRooms;
  const f = ctx.federationRooms;
  const local = (userId: string) => serverNameOf(userId) === ctx.config.server_name;
  /** Per-origin transaction IDs already processed (a retried transaction gets the same answer). */
  const seenTxns = new Map<string, JsonObject>();

  app.put('/_matrix/federation/v1/send/:txnId', { ...auth, schema: { body: Type.Object({ origin: Type.String(), origin_server_ts: Type.Integer(), pdus: Type.Array(Type.Unknown()), edus: Type.Optional(Type.Array(Type.Unknown())) }) } }, async (req) => {
    try {
      const res = await receiveTransaction(req);
      ctx.metrics.federationTxnIn.inc({ result: 'ok' });
      return res;
    } catch (err) {
      ctx.metrics.federationTxnIn.inc({ result: 'error' });
      throw err;
    }
  });
  const receiveTransaction = async (req: FastifyRequest): Promise<JsonObject> => {
    const origin = originOf(req);
    const body = req.body as { origin: string; pdus: unknown[]; edus?: unknown[] };
    if (body.origin !== origin) throw errors.forbidden('origin does not match the request signature');
    if (body.pdus.length > MAX_TXN_PDUS || (body.edus?.length ?? 0) > MAX_TXN_EDUS) throw errors.badJson(`At most ${MAX_TXN_PDUS} PDUs and ${MAX_TXN_EDUS} EDUs per transaction`);
    void sender.destinationIsUp(origin).catch(() => undefined);
    const key = `${origin}\u0000${(req.params as P).txnId}`;
    const seen = seenTxns.get(key);
    if (seen) return seen;
    const pdus: Record<string, JsonObject> = {};
    for (const raw of body.pdus) {
      const done = ctx.metrics.federationPduProcessing.startTimer();
      const r = await handler.receivePdu(origin, raw).finally(done);
      ctx.metrics.federationPdusIn.inc({ outcome: r.ok ? r.status : 'error' });
      const id = r.eventId ?? eventIdGuess(raw);
      if (id) pdus[id] = r.ok ? (r.status === 'rejected' ? { error: 'Event was rejected by the auth rules' } : {}) : { error: r.error };
    }
    for (const edu of body.edus ?? []) {
      try {
        await f.edus.receive(origin, edu);
      } catch (err) {
        req.log.info({ err: (err as Error).message, origin }, 'dropped an EDU');
      }
    }
    const res = { pdus };
    seenTxns.set(key, res);
    if (seenTxns.size > 1000) seenTxns.delete(seenTxns.keys().next().value!);
    return res;
  };

  app.get('/_matrix/federation/v1/event/:eventId', auth, async (req) => {
    const origin = originOf(req);
    const ev = await ctx.eventStore.getEvent((req.params as P).eventId);
    if (!ev || ev.rejected) throw errors.notFound('Unknown event');
    await rooms.requireAclAllows(ev.roomId, origin);
    if (!(await rooms.serverMaySee(ev, origin))) throw errors.forbidden('Server may not see this event');
    return { origin: ctx.config.server_name, origin_server_ts: Date.now(), pdus: [await rooms.pduOf(ev)] };
  });

  const eventIdQuery = { querystring: Type.Object({ event_id: Type.Optional(Type.String()) }) };
  app.get('/_matrix/federation/v1/state/:roomId', { ...auth, schema: eventIdQuery }, async (req) => {
    const origin = originOf(req);
    const roomId = (req.params as P).roomId;
    await rooms.requireServerInRoom(roomId, origin);
    const eventId = (req.query as { event_id?: string }).event_id;
    if (!eventId) throw new MatrixError('M_MISSING_PARAM', 400, 'event_id is required');
    const { state, authChain } = await rooms.stateAt(roomId, eventId);
    return { pdus: await Promise.all(state.map((s) => rooms.pduOf(s))), auth_chain: await Promise.all(authChain.map((s) => rooms.pduOf(s))) };
  });

  app.get('/_matrix/federation/v1/state_ids/:roomId', { ...auth, schema: eventIdQuery }, async (req) => {
    const origin = originOf(req);
    const roomId = (req.params as P).roomId;
    await rooms.requireServerInRoom(roomId, origin);
    const eventId = (req.query as { event_id?: string }).event_id;
    if (!eventId) throw new MatrixError('M_MISSING_PARAM', 400, 'event_id is required');
    return rooms.stateIdsAt(roomId, eventId);
  });

  app.get('/_matrix/federation/v1/event_auth/:roomId/:eventId', auth, async (req) => {
    const origin = originOf(req);
    const { roomId, eventId } = req.params as P;
    await rooms.requireServerInRoom(roomId, origin);
    const ev = await ctx.eventStore.getEvent(eventId!);
    if (!ev || ev.roomId !== roomId) throw errors.notFound('Unknown event');
    const chain = await rooms.authChain([eventId!]);
    return { auth_chain: await Promise.all(chain.map((s) => rooms.pduOf(s))) };
  });

  app.get('/_matrix/federation/v1/backfill/:roomId', { ...auth, schema: { querystring: Type.Object({ v: Type.Union([Type.String(), Type.Array(Type.String())]), limit: Type.Integer({ minimum: 0 }) }) } }, async (req) => {
    const origin = originOf(req);
    const roomId = (req.params as P).roomId;
    await rooms.requireServerInRoom(roomId, origin);
    const q = req.query as { v: string | string[]; limit: number };
    const evs = await rooms.backfill(roomId, list(q.v), Math.min(q.limit, MAX_BACKFILL), origin);
    return { origin: ctx.config.server_name, origin_server_ts: Date.now(), pdus: await Promise.all(evs.map((s) => rooms.pduOf(s))) };
  });

  app.post(
    '/_matrix/federation/v1/get_missing_events/:roomId',
    { ...auth, schema: { body: Type.Object({ earliest_events: Type.Array(Type.String()), latest_events: Type.Array(Type.String()), limit: Type.Optional(Type.Integer()), min_depth: Type.Optional(Type.Integer()) }) } },
    async (req) => {
      const origin = originOf(req);
      const roomId = (req.params as P).roomId;
      await rooms.requireServerInRoom(roomId, origin);
      const b = req.body as { earliest_events: string[]; latest_events: string[]; limit?: number; min_depth?: number };
      const evs = await rooms.missingEvents(roomId, b.earliest_events, b.latest_events, Math.min(Math.max(b.limit ?? 10, 0), MAX_BACKFILL), b.min_depth ?? 0, origin);
      return { events: await Promise.all(evs.map((s) => rooms.pduOf(s))) };
    },
  );

  // Membership handshakes.
  const verQuery = { querystring: Type.Object({ ver: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])) }) };
  app.get('/_matrix/federation/v1/make_join/:roomId/:userId', { ...auth, schema: verQuery }, async (req) => {
    const { roomId, userId } = req.params as P;
    const ver = (req.query as { ver?: string | string[] }).ver;
    return rooms.makeMembershipTemplate(roomId!, userId!, 'join', originOf(req), ver === undefined ? ['1'] : list(ver));
  });
  app.get('/_matrix/federation/v1/make_leave/:roomId/:userId', auth, async (req) => {
    const { roomId, userId } = req.params as P;
    return rooms.makeMembershipTemplate(roomId!, userId!, 'leave', originOf(req));
  });
  app.get('/_matrix/federation/v1/make_knock/:roomId/:userId', { ...auth, schema: verQuery }, async (req) => {
    const { roomId, userId } = req.params as P;
    return rooms.makeMembershipTemplate(roomId!, userId!, 'knock', originOf(req), list((req.query as { ver?: string | string[] }).ver));
  });

  /**
   * send_join's answer, written as it is read from the store (the state and auth chain of a big
   * room are never one string): the auth chain first, oldest first, then the state, so that
   * each event's auth events come before it.
   */
  const joinResponse = async (req: FastifyRequest, reply: FastifyReply, v2: boolean) => {
    const origin = originOf(req);
    const { roomId, eventId } = req.params as P;
    const { event, signedByUs, stateBefore } = await rooms.acceptMembership(origin, roomId!, eventId!, req.body, 'join');
    const version = await rooms.versionOf(roomId!);
    const stateIds = [...stateBefore.values()];
    const chain = await rooms.authChain([...stateIds, event.event_id]);
    chain.sort((x, y) => x.event.depth - y.event.depth || x.streamOrdering - y.streamOrdering);
    const chainIds = chain.map((s) => s.event.event_id);
    chain.length = 0;
    const joined = signedByUs ? rooms.pduFormOf((await ctx.eventStore.getEvent(event.event_id))!.event, version) : undefined;
    async function* body(): AsyncGenerator<string> {
      yield `${v2 ? '' : '[200,'}{"origin":${JSON.stringify(ctx.config.server_name)},"members_omitted":false`;
      if (joined) yield `,"event":${JSON.stringify(joined)}`;
      for (const [key, ids] of [['auth_chain', chainIds], ['state', stateIds]] as const) {
        yield `,"${key}":[`;
        for (let i = 0; i < ids.length; i += JOIN_ANSWER_CHUNK) {
          const got = await ctx.eventStore.getEvents(ids.slice(i, i + JOIN_ANSWER_CHUNK));
          const parts: string[] = [];
          for (const id of ids.slice(i, i + JOIN_ANSWER_CHUNK)) {
            const s = got.get(id);
            if (s) parts.push(JSON.stringify(rooms.pduFormOf(s.event, version)));
          }
          if (parts.length) yield (i === 0 ? '' : ',') + parts.join(',');
        }
        yield ']';
      }
      yield v2 ? '}' : '}]';
    }
    reply.header('content-type', 'application/json');
    return reply.send(Readable.from(body(), { objectMode: false }));
  };
  app.put('/_matrix/federation/v2/send_join/:roomId/:eventId', auth, (req, reply) => joinResponse(req, reply, true));
  app.put('/_matrix/federation/v1/send_join/:roomId/:eventId', auth, (req, reply) => joinResponse(req, reply, false));

  app.put('/_matrix/federation/v2/send_leave/:roomId/:eventId', auth, async (req) => {
    const { roomId, eventId } = req.params as P;
    await rooms.acceptMembership(originOf(req), roomId!, eventId!, req.body, 'leave');
    return {};
  });
  app.put('/_matrix/federation/v1/send_leave/:roomId/:eventId', auth, async (req) => {
    const { roomId, eventId } = req.params as P;
    await rooms.acceptMembership(originOf(req), roomId!, eventId!, req.body, 'leave');
    return [200, {}];
  });
  app.put('/_matrix/federation/v1/send_knock/:roomId/:eventId', auth, async (req) => {
    const { roomId, eventId } = req.params as P;
    await rooms.acceptMembership(originOf(req), roomId!, eventId!, req.body, 'knock');
    const room = await ctx.eventStore.getRoom(roomId!);
    const version = room && getRoomVersion(room.roomVersion);
    if (!version) throw errors.notFound('Unknown room');
    const state = await ctx.eventStore.getCurrentState(roomId!);
    // Spec v1.16: full PDUs of the room, its create event among them.
    return knockAnswer(federationRoomState([...state.values()].filter((ev) => STRIPPED_STATE_TYPES.includes(ev.type)), version));
  });

  const userExists = async (userId: string) => !!(await ctx.accounts.getUser(userId));
  /** Both invite versions: the invitee must accept invites; the event comes back signed by us. */
  const acceptInvite = async (req: FastifyRequest, body: V2InviteBody): Promise<JsonObject> => {
    const { roomId, eventId } = req.params as P;
    const invitee = isJsonObject(body.event) ? body.event['state_key'] : undefined;
    if (typeof invitee === 'string') await requireInvitable(ctx, invitee);
    return rooms.receiveInvite(originOf(req), roomId!, eventId!, body, userExists);
  };
  app.put(
    '/_matrix/federation/v2/invite/:roomId/:eventId',
    { ...auth, schema: { body: Type.Object({ event: Type.Unknown(), room_version: Type.String(), invite_room_state: Type.Optional(Type.Array(Type.Unknown())) }) } },
    async (req) => ({ event: await acceptInvite(req, req.body as V2InviteBody) }),
  );
  // Room versions 1 and 2 only; the body is the event itself.
  app.put('/_matrix/federation/v1/invite/:roomId/:eventId', auth, async (req) => {
    const known = await ctx.eventStore.getRoom((req.params as P).roomId!);
    return [200, { event: await acceptInvite(req, v1InviteAsV2(req.body, known?.roomVersion)) }];
  });

  app.get('/_matrix/federation/v1/timestamp_to_event/:roomId', auth, async (req) => {
    const origin = originOf(req);
    const roomId = (req.params as P).roomId!;
    const { ts, dir } = parseTimestampQuery(req.query as { ts?: string; dir?: string });
    await requireServerMaySeeRoom(ctx, roomId, origin);
    const found = await closestEventForServer(ctx, roomId, ts, dir, origin);
    if (!found) throw errors.notFound(`No event found ${dir === 'f' ? 'after' : 'before'} ${ts}`);
    return { event_id: found.event.event_id, origin_server_ts: found.event.origin_server_ts };
  });

  // Queries.
  app.get('/_matrix/federation/v1/query/directory', { ...auth, schema: { querystring: Type.Object({ room_alias: Type.String() }) } }, async (req) => {
    const alias = (req.query as { room_alias: string }).room_alias;
    if (!isValidRoomAlias(alias) || serverNameOf(alias) !== ctx.config.server_name) throw errors.notFound('Room alias not found');
    const roomId = await ctx.aliasStore.resolve(alias);
    if (!roomId) throw errors.notFound('Room alias not found');
    const servers = new Set([ctx.config.server_name, ...(await sender.destinationsForRoom(roomId))]);
    return { room_id: roomId, servers: [...servers] };
  });

  app.get('/_matrix/federation/v1/query/profile', { ...auth, schema: { querystring: Type.Object({ user_id: Type.String(), field: Type.Optional(Type.String()) }) } }, async (req) => {
    const { user_id: userId, field } = req.query as { user_id: string; field?: string };
    if (!local(userId) || !(await ctx.accounts.getUser(userId))) throw errors.notFound('Unknown user');
    const p = await ctx.accounts.getProfile(userId);
    const out: JsonObject = {};
    if (p?.displayname && (!field || field === 'displayname')) out['displayname'] = p.displayname;
    if (p?.avatar_url && (!field || field === 'avatar_url')) out['avatar_url'] = p.avatar_url;
    return out;
  });

  registerFederationHierarchy(app, ctx);

  app.get('/_matrix/federation/v1/publicRooms', { ...auth, schema: { querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 0 })), since: Type.Optional(Type.String()) }) } }, async (req) => {
    const q = req.query as { limit?: number; since?: string };
    return listPublicRooms(ctx, q.limit, q.since, undefined);
  });
  app.post(
    '/_matrix/federation/v1/publicRooms',
    { ...auth, schema: { body: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 0 })), since: Type.Optional(Type.String()), filter: Type.Optional(Type.Object({ generic_search_term: Type.Optional(Type.String()) })) }) } },
    async (req) => {
      const b = req.body as { limit?: number; since?: string; filter?: { generic_search_term?: string } };
      return listPublicRooms(ctx, b.limit, b.since, b.filter?.generic_search_term);
    },
  );

  // Devices and keys of local users.
  app.get('/_matrix/federation/v1/user/devices/:userId', auth, async (req) => {
    const userId = (req.params as P).userId!;
    if (!local(userId)) throw errors.notFound('Unknown user');
    return f.devices.userDevices(userId);
  });

  app.post('/_matrix/federation/v1/user/keys/query', { ...auth, schema: { body: Type.Object({ device_keys: Type.Record(Type.String(), Type.Array(Type.String())) }) } }, async (req) => {
    const wanted = Object.fromEntries(Object.entries((req.body as { device_keys: Record<string, string[]> }).device_keys).filter(([u]) => local(u)));
    const res = await ctx.e2ee.keys.query(`@_federation:${originOf(req)}`, wanted);
    const { user_signing_keys: _u, failures: _f, ...rest } = res;
    return rest;
  });

  app.post('/_matrix/federation/v1/user/keys/claim', { ...auth, schema: { body: Type.Object({ one_time_keys: Type.Record(Type.String(), Type.Record(Type.String(), Type.String())) }) } }, async (req) => {
    const wanted = Object.fromEntries(Object.entries((req.body as { one_time_keys: Record<string, Record<string, string>> }).one_time_keys).filter(([u]) => local(u)));
    const res = await ctx.e2ee.keys.claim(wanted);
    return { one_time_keys: res['one_time_keys'] ?? {} };
  });
}

function eventIdGuess(raw: unknown): string | undefined {
  return isJsonObject(raw) && typeof raw['event_id'] === 'string' ? raw['event_id'] : undefined;
}
