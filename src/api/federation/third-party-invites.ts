/**
 * Federation endpoints of third-party invites: /3pid/onbind, called by identity servers when
 * an address with pending invitations is bound to a user of this server (not X-Matrix signed:
 * each invitation carries the identity server's signature, checked against the room's keys),
 * and /exchange_third_party_invite/{roomId}, by which the invitee's server has a room held here
 * turn such an invitation into an invite event.
 */
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { originOf } from '../../federation/request-auth.js';
import { thirdPartyInvites, type BoundInvite } from '../../identity/third-party-invites.js';
import type { JsonObject } from '../../protocol/json.js';
import type { HttpApp } from '../http.js';
import { federationAuth } from './index.js';

/** Invitations one /3pid/onbind may carry. */
const MAX_BOUND_INVITES = 100;

const Signed = Type.Object({ mxid: Type.String(), token: Type.String(), signatures: Type.Object({}) }, { additionalProperties: true });
const OnBindBody = Type.Object({
  medium: Type.String(),
  address: Type.String(),
  mxid: Type.String(),
  invites: Type.Array(
    Type.Object({ medium: Type.String(), address: Type.String(), mxid: Type.String(), room_id: Type.String(), sender: Type.String(), signed: Signed }),
    { maxItems: MAX_BOUND_INVITES },
  ),
});
const ExchangeBody = Type.Object({
  type: Type.String(),
  room_id: Type.String(),
  sender: Type.String(),
  state_key: Type.String(),
  content: Type.Object({ membership: Type.String(), third_party_invite: Type.Object({ display_name: Type.Optional(Type.String()), signed: Signed }) }),
});

export function registerFederationThirdPartyInvites(app: HttpApp, ctx: AppContext): void {
  app.put('/_matrix/federation/v1/3pid/onbind', { schema: { body: OnBindBody } }, async (req) => {
    const body = req.body as { mxid: string; invites: BoundInvite[] };
    await thirdPartyInvites(ctx).onBind(body.mxid, body.invites);
    return {};
  });
  app.put('/_matrix/federation/v1/exchange_third_party_invite/:roomId', { ...federationAuth(ctx), schema: { body: ExchangeBody } }, async (req) => {
    const roomId = (req.params as { roomId: string }).roomId;
    await thirdPartyInvites(ctx).exchange(originOf(req), roomId, req.body as { type: string; room_id: string; sender: string; state_key: string; content: JsonObject });
    return {};
  });
}
