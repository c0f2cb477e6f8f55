import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { parseStateKey } from '../../protocol/event.js';
import type { JsonObject } from '../../protocol/json.js';
import { requireNotSuspended, requireUser, type Requester } from '../auth.js';
import { massagedTimestamp } from '../appservice.js';
import type { HttpApp } from '../http.js';
import { requireInvitable } from '../invite-permission.js';
import { parsePaginationToken } from '../../services/sync/token.js';
import { takeSendToken } from './send-limit.js';
import { V3 } from './paths.js';

type P = Record<string, string>;

const Membership = Type.Union(['invite', 'join', 'leave', 'ban', 'knock'].map((m) => Type.Literal(m)));
const MembersQuery = Type.Object({ at: Type.Optional(Type.String()), membership: Type.Optional(Membership), not_membership: Type.Optional(Membership) });

/** Events a user may read: joined rooms (and rooms left, up to the point of leaving — enforced by the readers). */
async function requireReadable(ctx: AppContext, user: Requester, roomId: string): Promise<void> {
  await ctx.rooms.requireJoined(user.userId, roomId);
}

/** Suspended users may redact their own events only (M_USER_SUSPENDED otherwise). */
async function requireOwnEventIfSuspended(ctx: AppContext, user: Requester, eventId: string): Promise<void> {
  if (!user.suspended) return;
  const target = await ctx.eventStore.getEvent(eventId);
  if (!target || target.event.sender !== user.userId) requireNotSuspended(user);
}

/**
 * PUT /rooms/{roomId}/send/m.room.redaction/{txnId} (spec v1.18): a redaction like /redact, with
 * the target in `content.redacts`; before room version 11 it moves to the top level of the event.
 * Retransmissions are recognised like other /send requests (same room, type and transaction ID).
 */
async function sendRedaction(ctx: AppContext, user: Requester, roomId: string, body: JsonObject, txnId: string, ts: number | undefined) {
  const target = body['redacts'];
  if (typeof target !== 'string' || !target.startsWith('$')) throw errors.badJson('content.redacts must be the ID of the event to redact');
  if (body['reason'] !== undefined && typeof body['reason'] !== 'string') throw errors.badJson('content.reason must be a string');
  await requireOwnEventIfSuspended(ctx, user, target);
  const scope = ['send', roomId, 'm.room.redaction'];
  const seen = await ctx.eventStore.getTxnEventId(user.userId, user.deviceId, txnId, scope);
  const already = seen ? await ctx.eventStore.getEvent(seen) : undefined;
  if (already) return already;
  const version = await ctx.roomEvents.roomVersionOf(roomId);
  const content: JsonObject = { ...body };
  if (!version.redactsInContent) delete content['redacts'];
  return ctx.roomEvents.send({ roomId, type: 'm.room.redaction', sender: user.userId, content, redacts: target, txn: { deviceId: user.deviceId, txnId, scope }, ts });
}

/** Sending: message events with transaction IDs, state events, redactions; reading single events and state. */
export function registerRoomEvents(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V3) {
    app.put(`${prefix}/rooms/:roomId/send/:eventType/:txnId`, { schema: { body: Type.Object({}) } }, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomId, eventType, txnId } = req.params as P;
      takeSendToken(ctx, user);
      // Suspended users may still redact their own events, nothing else.
      if (eventType !== 'm.room.redaction') requireNotSuspended(user);
      if (eventType === 'm.room.redaction') {
        return { event_id: (await sendRedaction(ctx, user, roomId!, req.body as JsonObject, txnId!, massagedTimestamp(user, req))).event.event_id };
      }
      const stored = await ctx.rooms.sendMessage(user.userId, roomId!, eventType!, req.body as JsonObject, {
        deviceId: user.deviceId,
        txnId: txnId!,
      }, massagedTimestamp(user, req));
      return { event_id: stored.event.event_id };
    });

    const putState = async (user: Requester, params: P, body: JsonObject, ts?: number) => {
      requireNotSuspended(user);
      if (params.eventType === 'm.room.member' && body['membership'] === 'invite' && params.stateKey) await requireInvitable(ctx, params.stateKey);
      takeSendToken(ctx, user);
      const stored = await ctx.rooms.sendState(user.userId, params.roomId!, params.eventType!, params.stateKey ?? '', body, ts);
      return { event_id: stored.event.event_id };
    };
    app.put(`${prefix}/rooms/:roomId/state/:eventType/:stateKey`, { schema: { body: Type.Object({}) } }, async (req) => {
      const user = await requireUser(ctx, req);
      return putState(user, req.params as P, req.body as JsonObject, massagedTimestamp(user, req));
    });
    app.put(`${prefix}/rooms/:roomId/state/:eventType`, { schema: { body: Type.Object({}) } }, async (req) => {
      const user = await requireUser(ctx, req);
      return putState(user, req.params as P, req.body as JsonObject, massagedTimestamp(user, req));
    });

    const getState = async (user: Requester, params: P, format: string | undefined) => {
      const roomId = params.roomId!;
      await requireReadable(ctx, user, roomId);
      const stored = await ctx.eventStore.getCurrentStateEvent(roomId, params.eventType!, params.stateKey ?? '');
      if (!stored) throw errors.notFound('Event not found');
      const ev = await ctx.formatter.formatOne(stored, { viewer: user });
      return format === 'event' ? ev : ev.content;
    };
    app.get(`${prefix}/rooms/:roomId/state/:eventType/:stateKey`, async (req) =>
      getState(await requireUser(ctx, req), req.params as P, (req.query as { format?: string }).format),
    );
    app.get(`${prefix}/rooms/:roomId/state/:eventType`, async (req) =>
      getState(await requireUser(ctx, req), req.params as P, (req.query as { format?: string }).format),
    );
    app.get(`${prefix}/rooms/:roomId/state`, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomId } = req.params as P;
      await requireReadable(ctx, user, roomId!);
      const ids = await ctx.eventStore.getCurrentStateIds(roomId!);
      const stored = [...(await ctx.eventStore.getEvents(ids.values())).values()];
      return ctx.formatter.format(stored, { viewer: user });
    });

    app.put(
      `${prefix}/rooms/:roomId/redact/:eventId/:txnId`,
      { schema: { body: Type.Object({ reason: Type.Optional(Type.String()) }) } },
      async (req) => {
        const user = await requireUser(ctx, req);
        const { roomId, eventId, txnId } = req.params as P;
        takeSendToken(ctx, user);
        await requireOwnEventIfSuspended(ctx, user, eventId!);
        const stored = await ctx.rooms.redact(user.userId, roomId!, eventId!, (req.body as { reason?: string }).reason, {
          deviceId: user.deviceId,
          txnId: txnId!,
        });
        return { event_id: stored.event.event_id };
      },
    );

    app.get(`${prefix}/rooms/:roomId/event/:eventId`, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomId, eventId } = req.params as P;
      const upTo = await ctx.visibility.readableUpTo(user.userId, roomId!);
      const stored = await ctx.eventStore.getEvent(eventId!);
      if (!stored || stored.roomId !== roomId || stored.outlier || stored.streamOrdering > upTo) throw errors.notFound('Event not found');
      if (!(await ctx.visibility.filter(user.userId, [stored])).length) throw errors.notFound('Event not found');
      return ctx.formatter.formatOne(stored, { viewer: user });
    });

    app.get(`${prefix}/rooms/:roomId/joined_members`, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomId } = req.params as P;
      await requireReadable(ctx, user, roomId!);
      const state = await ctx.eventStore.getCurrentState(roomId!);
      const joined: Record<string, JsonObject> = {};
      for (const [key, ev] of state) {
        const [type, stateKey] = parseStateKey(key);
        if (type !== 'm.room.member' || ev.content['membership'] !== 'join') continue;
        const entry: JsonObject = {};
        if (typeof ev.content['displayname'] === 'string') entry['display_name'] = ev.content['displayname'];
        if (typeof ev.content['avatar_url'] === 'string') entry['avatar_url'] = ev.content['avatar_url'];
        joined[stateKey] = entry;
      }
      return { joined };
    });

    app.get(`${prefix}/rooms/:roomId/members`, { schema: { querystring: MembersQuery } }, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomId } = req.params as P;
      const q = req.query as { membership?: string; not_membership?: string; at?: string };
      await requireReadable(ctx, user, roomId!);
      // `at`: the members as of a pagination token (a sync or /messages token).
      const ids = q.at !== undefined
        ? await ctx.eventStore.stateIdsAtStream(roomId!, parsePaginationToken(q.at))
        : await ctx.eventStore.getCurrentStateIds(roomId!);
      const memberIds = [...ids].filter(([k]) => parseStateKey(k)[0] === 'm.room.member').map(([, id]) => id);
      const stored = [...(await ctx.eventStore.getEvents(memberIds)).values()].filter((s) => {
        const m = s.event.content['membership'];
        if (q.membership && m !== q.membership) return false;
        if (q.not_membership && m === q.not_membership) return false;
        return true;
      });
      return { chunk: await ctx.formatter.format(stored, { viewer: user }) };
    });
  }
}
