import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { thirdPartyInvites, type ThirdPartyTarget as ThirdPartyInvite } from '../../identity/third-party-invites.js';
import type { JsonObject } from '../../protocol/json.js';
import { requireNotSuspended, requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { requireInvitable } from '../invite-permission.js';
import { V3 } from './paths.js';
import { resolveRoomTarget, viaServers } from './room-target.js';

const Reason = Type.Object({ reason: Type.Optional(Type.String()) });
const Target = Type.Object({ user_id: Type.String(), reason: Type.Optional(Type.String()) });
/** An invite by e-mail address or phone number (through an identity server). */
export const ThirdPartyTarget = Type.Object({ id_server: Type.String(), id_access_token: Type.String(), medium: Type.String(), address: Type.String() });
const JoinBody = Type.Object({ reason: Type.Optional(Type.String()), third_party_signed: Type.Optional(Type.Object({})) });
type RoomParams = { roomId: string };

/** Room membership: join, invite, leave, forget, kick, ban, unban, knock, joined_rooms. */
export function registerMembership(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V3) {
    app.post(`${prefix}/rooms/:roomId/join`, { schema: { body: JoinBody } }, async (req) => {
      const user = await requireUser(ctx, req);
      requireNotSuspended(user);
      const { reason } = req.body as { reason?: string };
      const roomId = await ctx.rooms.join(user.userId, (req.params as RoomParams).roomId, reason ? { reason } : {}, viaServers(req.query));
      return { room_id: roomId };
    });
    app.post(`${prefix}/join/:roomIdOrAlias`, { schema: { body: JoinBody } }, async (req) => {
      const user = await requireUser(ctx, req);
      requireNotSuspended(user);
      const { reason } = req.body as { reason?: string };
      const target = (req.params as { roomIdOrAlias: string }).roomIdOrAlias;
      // An unknown alias in an application service's namespace is asked for first.
      if (target.startsWith('#')) await ctx.appservices.resolveAlias(target);
      const roomId = await ctx.rooms.join(user.userId, target, reason ? { reason } : {}, viaServers(req.query));
      return { room_id: roomId };
    });
    app.post(`${prefix}/knock/:roomIdOrAlias`, { schema: { body: Reason } }, async (req) => {
      const user = await requireUser(ctx, req);
      requireNotSuspended(user);
      const target = (req.params as { roomIdOrAlias: string }).roomIdOrAlias;
      const via = viaServers(req.query);
      const roomId = await resolveRoomTarget(ctx, target, via);
      await ctx.rooms.setMembership(user.userId, roomId, user.userId, 'knock', (req.body as { reason?: string }).reason, via.length ? { via } : {});
      return { room_id: roomId };
    });
    app.post(`${prefix}/rooms/:roomId/invite`, { schema: { body: Type.Union([Target, ThirdPartyTarget]) } }, async (req) => {
      const user = await requireUser(ctx, req);
      requireNotSuspended(user);
      const roomId = (req.params as RoomParams).roomId;
      // By e-mail address or phone number, through the identity server the client names.
      if (!('user_id' in req.body)) {
        await thirdPartyInvites(ctx).invite(user.userId, roomId, req.body as ThirdPartyInvite);
        return {};
      }
      const { user_id, reason } = req.body as { user_id: string; reason?: string };
      const extra: JsonObject = {};
      // An unknown user in an application service's namespace is asked for first.
      await ctx.appservices.ensureUser(user_id);
      await requireInvitable(ctx, user_id);
      await ctx.rooms.setMembership(user.userId, roomId, user_id, 'invite', reason, extra);
      return {};
    });
    app.post(`${prefix}/rooms/:roomId/leave`, { schema: { body: Reason } }, async (req) => {
      const user = await requireUser(ctx, req);
      const roomId = (req.params as RoomParams).roomId;
      await ctx.rooms.setMembership(user.userId, roomId, user.userId, 'leave', (req.body as { reason?: string }).reason);
      return {};
    });
    app.post(`${prefix}/rooms/:roomId/forget`, { schema: { body: Type.Object({}) } }, async (req) => {
      const user = await requireUser(ctx, req);
      const roomId = (req.params as RoomParams).roomId;
      const m = await ctx.eventStore.getMembership(roomId, user.userId);
      if (m === 'join' || m === 'invite' || m === 'knock') throw errors.badJson('You must leave the room before forgetting it');
      if (m === undefined) throw errors.notFound('You have never been in this room');
      await ctx.eventStore.forgetRoom(user.userId, roomId);
      return {};
    });
    app.post(`${prefix}/rooms/:roomId/kick`, { schema: { body: Target } }, async (req) => {
      const user = await requireUser(ctx, req);
      requireNotSuspended(user);
      const { user_id, reason } = req.body as { user_id: string; reason?: string };
      await ctx.rooms.kick(user.userId, (req.params as RoomParams).roomId, user_id, reason);
      return {};
    });
    app.post(`${prefix}/rooms/:roomId/ban`, { schema: { body: Target } }, async (req) => {
      const user = await requireUser(ctx, req);
      requireNotSuspended(user);
      const { user_id, reason } = req.body as { user_id: string; reason?: string };
      await ctx.rooms.ban(user.userId, (req.params as RoomParams).roomId, user_id, reason);
      return {};
    });
    app.post(`${prefix}/rooms/:roomId/unban`, { schema: { body: Target } }, async (req) => {
      const user = await requireUser(ctx, req);
      requireNotSuspended(user);
      const { user_id, reason } = req.body as { user_id: string; reason?: string };
      await ctx.rooms.unban(user.userId, (req.params as RoomParams).roomId, user_id, reason);
      return {};
    });
    app.get(`${prefix}/joined_rooms`, async (req) => {
      const user = await requireUser(ctx, req);
      const rooms = await ctx.eventStore.roomsForUser(user.userId, ['join']);
      return { joined_rooms: rooms.map((r) => r.roomId) };
    });
  }
}
