import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { thirdPartyInvites, type ThirdPartyTarget as ThirdPartyInvite } from '../../identity/third-party-invites.js';
import type { CreateRoomRequest } from '../../services/rooms/room-service.js';
import { requireNotSuspended, requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { inviteBlocked } from '../invite-permission.js';
import { ThirdPartyTarget } from './membership.js';
import { V3 } from './paths.js';

const StateEvent = Type.Object({ type: Type.String(), state_key: Type.Optional(Type.String()), content: Type.Object({}) });

const Body = Type.Object({
  visibility: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('private')])),
  room_alias_name: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
  topic: Type.Optional(Type.String()),
  invite: Type.Optional(Type.Array(Type.String())),
  invite_3pid: Type.Optional(Type.Array(ThirdPartyTarget)),
  room_version: Type.Optional(Type.String()),
  creation_content: Type.Optional(Type.Object({})),
  initial_state: Type.Optional(Type.Array(StateEvent)),
  preset: Type.Optional(Type.Union([Type.Literal('private_chat'), Type.Literal('public_chat'), Type.Literal('trusted_private_chat')])),
  is_direct: Type.Optional(Type.Boolean()),
  power_level_content_override: Type.Optional(Type.Object({})),
});

/** POST /createRoom */
export function registerCreateRoom(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V3) {
    app.post(`${prefix}/createRoom`, { schema: { body: Body } }, async (req) => {
      const user = await requireUser(ctx, req);
      requireNotSuspended(user);
      const aliasName = (req.body as CreateRoomRequest).room_alias_name;
      if (aliasName !== undefined) ctx.appservices.checkAlias(`#${aliasName}:${ctx.config.server_name}`, user);
      const body = req.body as CreateRoomRequest;
      // Invitees who block invites are left out; the room is created for the others.
      if (body.invite?.length) {
        const blocked = new Set<string>();
        for (const u of new Set(body.invite)) if (await inviteBlocked(ctx, u)) blocked.add(u);
        if (blocked.size) {
          req.log.info({ blocked: [...blocked] }, 'createRoom: invitees who block invites were not invited');
          body.invite = body.invite.filter((u) => !blocked.has(u));
        }
      }
      const { roomId } = await ctx.rooms.createRoom(user.userId, body);
      // Like invitees of other servers: the room is returned even when an identity server fails.
      for (const target of (req.body as { invite_3pid?: ThirdPartyInvite[] }).invite_3pid ?? []) {
        try {
          await thirdPartyInvites(ctx).invite(user.userId, roomId, target);
        } catch (err) {
          req.log.warn({ roomId, idServer: target.id_server, err: (err as Error).message }, 'createRoom: a third-party invite failed');
        }
      }
      return { room_id: roomId };
    });
  }
}
