/**
 * Third-party invites (client-server-api "Third-party invites", server-server-api
 * "Third-party invites"): inviting by e-mail address through an identity server, accepting
 * the invitations an identity server reports bound to a user of this server (/3pid/onbind),
 * and exchanging such an invitation for an invite event in a room held here
 * (/exchange_third_party_invite). Event authorisation itself (the `signed` object against the
 * keys of the room's m.room.third_party_invite) is the room's ordinary auth rules.
 */
import type { Logger } from 'pino';
import type { AppContext } from '../app.js';
import { requireInvitable } from '../api/invite-permission.js';
import { errors, MatrixError } from '../errors.js';
import { FederationHttpError } from '../federation/errors.js';
import { isValidUserId, serverNameOf } from '../protocol/identifiers.js';
import { isJsonObject, type JsonObject } from '../protocol/json.js';
import { canInvite } from '../protocol/power-levels.js';
import { verifyJsonSignature } from '../protocol/signing.js';
import { IpGuard } from '../media/ip-guard.js';
import { RateLimiter } from '../services/accounts/rate-limit.js';
import { canonicalAddress, IdentityServerClient, type StoreInviteRequest } from './client.js';

/** An invitation by third-party identifier (client-server-api definitions/invite_3pid). */
export interface ThirdPartyTarget {
  id_server: string;
  id_access_token: string;
  medium: string;
  address: string;
}

/** One pending invitation of a /3pid/onbind request. */
export interface BoundInvite {
  medium: string;
  address: string;
  mxid: string;
  room_id: string;
  sender: string;
  signed: JsonObject;
}

/** The key of an m.room.third_party_invite that signed an identity server's `signed` object. */
interface SigningKeyMatch {
  publicKey: string;
  keyValidityUrl: string | undefined;
}

/**
 * Which public key of a third-party invite's content signed `signed`: entries of `public_keys`
 * first (with their own key validity URL, none meaning valid indefinitely), then the older
 * `public_key` with the event's `key_validity_url`.
 */
export function signingKeyOf(signed: JsonObject, tpiContent: JsonObject): SigningKeyMatch | undefined {
  const candidates: SigningKeyMatch[] = [];
  if (Array.isArray(tpiContent['public_keys'])) {
    for (const k of tpiContent['public_keys']) {
      if (isJsonObject(k) && typeof k['public_key'] === 'string') {
        candidates.push({ publicKey: k['public_key'], keyValidityUrl: typeof k['key_validity_url'] === 'string' ? k['key_validity_url'] : undefined });
      }
    }
  }
  if (typeof tpiContent['public_key'] === 'string') {
    const url = tpiContent['key_validity_url'];
    candidates.push({ publicKey: tpiContent['public_key'], keyValidityUrl: typeof url === 'string' ? url : undefined });
  }
  const signatures = signed['signatures'];
  if (!isJsonObject(signatures)) return undefined;
  for (const c of candidates) {
    for (const [server, byKey] of Object.entries(signatures)) {
      if (!isJsonObject(byKey)) continue;
      for (const keyId of Object.keys(byKey)) if (verifyJsonSignature(signed, server, keyId, c.publicKey)) return c;
    }
  }
  return undefined;
}

export class ThirdPartyInvites {
  private readonly log: Logger;
  /** Per inviting user: each invite asks an identity server. */
  private readonly limiter: RateLimiter;

  constructor(
    private readonly ctx: AppContext,
    private readonly identity: IdentityServerClient,
  ) {
    this.log = ctx.log.child({ subsystem: 'identity' });
    this.limiter = new RateLimiter(ctx.config.rate_limits.third_party_invite);
  }

  private get serverName(): string {
    return this.ctx.config.server_name;
  }

  /**
   * POST /rooms/{roomId}/invite with a third-party identifier: the user bound to it is invited;
   * an unbound identifier gets an invitation stored at the identity server and an
   * m.room.third_party_invite in the room. Nothing is asked of the identity server unless the
   * sender may invite, and nothing is written when the identity server fails.
   */
  async invite(sender: string, roomId: string, target: ThirdPartyTarget): Promise<void> {
    IdentityServerClient.checkServerName(target.id_server);
    const address = canonicalAddress(target.medium, target.address);
    await this.requireMayInvite(sender, roomId);
    this.limiter.take(sender);
    const mxid = await this.identity.lookup(target.id_server, target.id_access_token, target.medium, address);
    if (mxid !== undefined) {
      if (!isValidUserId(mxid, { historical: true })) {
        throw new MatrixError('M_UNKNOWN', 502, `The identity server ${target.id_server} returned an invalid user ID ${JSON.stringify(mxid)}`);
      }
      await this.ctx.appservices.ensureUser(mxid);
      await requireInvitable(this.ctx, mxid);
      await this.ctx.rooms.setMembership(sender, roomId, mxid, 'invite');
      return;
    }
    const stored = await this.identity.storeInvite(target.id_server, target.id_access_token, await this.storeInviteRequest(sender, roomId, target.medium, address));
    const first = stored.public_keys[0]!;
    await this.ctx.rooms.sendState(sender, roomId, 'm.room.third_party_invite', stored.token, {
      display_name: stored.display_name,
      key_validity_url: first.key_validity_url ?? `https://${target.id_server}/_matrix/identity/v2/pubkey/isvalid`,
      public_key: first.public_key,
      public_keys: stored.public_keys,
    });
  }

  /** The room must be held here and the sender joined with the power to invite. */
  private async requireMayInvite(sender: string, roomId: string): Promise<void> {
    if (!(await this.ctx.eventStore.getRoom(roomId))) throw errors.notFound(`Unknown room ${roomId}`);
    if ((await this.ctx.eventStore.getMembership(roomId, sender)) !== 'join') throw errors.forbidden(`You are not joined to ${roomId}`);
    const state = await this.ctx.eventStore.getCurrentState(roomId);
    const version = await this.ctx.roomEvents.roomVersionOf(roomId);
    if (!canInvite(state, sender, version)) throw errors.forbidden('You do not have permission to invite users to this room');
  }

  /** What the identity server may use in its invitation message (store-invite's optional fields). */
  private async storeInviteRequest(sender: string, roomId: string, medium: string, address: string): Promise<StoreInviteRequest> {
    const body: StoreInviteRequest = { medium, address, room_id: roomId, sender };
    const state = async (type: string, key: string): Promise<unknown> => (await this.ctx.eventStore.getCurrentStateEvent(roomId, type, ''))?.event.content[key];
    const fields: Array<[string, unknown]> = [
      ['room_alias', await state('m.room.canonical_alias', 'alias')],
      ['room_avatar_url', await state('m.room.avatar', 'url')],
      ['room_join_rules', await state('m.room.join_rules', 'join_rule')],
      ['room_name', await state('m.room.name', 'name')],
      ['room_type', await state('m.room.create', 'type')],
    ];
    const profile = await this.ctx.accounts.getProfile(sender);
    fields.push(['sender_display_name', profile?.displayname], ['sender_avatar_url', profile?.avatar_url]);
    for (const [k, v] of fields) if (typeof v === 'string' && v !== '') body[k] = v;
    return body;
  }

  /**
   * PUT /3pid/onbind: each invitation becomes an invite of the now-bound user, sent here when
   * the room is held here and the inviter is a user of this server, otherwise asked of the
   * inviter's (or the room's) server through /exchange_third_party_invite. Invitations that
   * fail are logged; the request fails only when none succeeded.
   */
  async onBind(mxid: string, invites: BoundInvite[]): Promise<void> {
    if (!isValidUserId(mxid, { historical: true }) || serverNameOf(mxid) !== this.serverName || !(await this.ctx.accounts.getUser(mxid))) {
      throw errors.forbidden(`${mxid} is not a user of this server`);
    }
    let failure: unknown;
    let done = 0;
    for (const inv of invites) {
      try {
        await this.acceptBoundInvite(mxid, inv);
        done++;
      } catch (err) {
        this.log.warn({ roomId: inv.room_id, user: mxid, err: (err as Error).message }, 'third-party invite not exchanged');
        failure ??= err;
      }
    }
    if (failure !== undefined && done === 0) throw failure;
  }

  private async acceptBoundInvite(mxid: string, inv: BoundInvite): Promise<void> {
    const { signed } = inv;
    if (inv.mxid !== mxid || signed['mxid'] !== mxid) throw errors.forbidden(`The invitation to ${inv.room_id} is for another user`);
    if (typeof signed['token'] !== 'string') throw errors.badJson('signed has no token');
    if (!isValidUserId(inv.sender, { historical: true })) throw errors.invalidParam(`Invalid sender ${inv.sender}`);
    if (serverNameOf(inv.sender) === this.serverName && (await this.ctx.federationRooms.rooms.isResident(inv.room_id))) {
      await this.sendExchanged(inv.room_id, inv.sender, mxid, signed);
      return;
    }
    // The invite event must be made (and signed) by the inviter's server.
    const destinations = [...new Set([serverNameOf(inv.sender), serverNameOf(inv.room_id)])].filter((d): d is string => !!d && d !== this.serverName);
    if (destinations.length === 0) throw errors.notFound(`This server cannot send invites in ${inv.room_id}`);
    const event = { type: 'm.room.member', room_id: inv.room_id, sender: inv.sender, state_key: mxid, content: { membership: 'invite', third_party_invite: { signed } } };
    let last: unknown;
    for (const d of destinations) {
      try {
        await this.ctx.federation.client.put(d, `/_matrix/federation/v1/exchange_third_party_invite/${encodeURIComponent(inv.room_id)}`, event);
        return;
      } catch (err) {
        last = err;
      }
    }
    if (last instanceof FederationHttpError && last.status < 500) throw errors.forbidden(`The inviter's server refused the third-party invite: ${last.errorText ?? last.status}`);
    throw new MatrixError('M_UNKNOWN', 502, `Could not exchange the third-party invite: ${(last as Error).message}`);
  }

  /**
   * PUT /exchange_third_party_invite/{roomId} from `origin`: the partial invite event of a user
   * of `origin` whose `signed` object answers a third-party invite of a user of this server.
   */
  async exchange(origin: string, roomId: string, body: { type: string; room_id: string; sender: string; state_key: string; content: JsonObject }): Promise<void> {
    if (body.type !== 'm.room.member') throw errors.badJson('type must be m.room.member');
    if (body.room_id !== roomId) throw errors.badJson('room_id does not match the path');
    if (body.content['membership'] !== 'invite') throw errors.badJson('content.membership must be invite');
    const tpi = body.content['third_party_invite'];
    const signed = isJsonObject(tpi) ? tpi['signed'] : undefined;
    if (!isJsonObject(signed)) throw errors.badJson('content.third_party_invite.signed is missing');
    if (!isValidUserId(body.state_key, { historical: true }) || serverNameOf(body.state_key) !== origin) {
      throw errors.forbidden(`${origin} may only exchange invites of its own users`);
    }
    if (serverNameOf(body.sender) !== this.serverName) throw errors.forbidden(`${body.sender} is not a user of this server`);
    if (!(await this.ctx.federationRooms.rooms.isResident(roomId))) throw errors.notFound(`This server is not in ${roomId}`);
    await this.ctx.federationRooms.rooms.requireAclAllows(roomId, origin);
    await this.sendExchanged(roomId, body.sender, body.state_key, signed);
  }

  /**
   * Sends, as `sender` (a user of this server, in a room held here), the invite of `target`
   * that an identity server's `signed` object proves, once the key that signed it is found in
   * the room's m.room.third_party_invite and its identity server still holds it valid.
   */
  private async sendExchanged(roomId: string, sender: string, target: string, signed: JsonObject): Promise<void> {
    const token = signed['token'];
    if (typeof token !== 'string') throw errors.badJson('signed has no token');
    const tpi = await this.ctx.eventStore.getCurrentStateEvent(roomId, 'm.room.third_party_invite', token);
    if (!tpi) throw errors.forbidden(`No third-party invite with this token in ${roomId}`);
    if (tpi.event.sender !== sender) throw errors.forbidden('The sender is not the sender of the third-party invite');
    const key = signingKeyOf(signed, tpi.event.content);
    if (!key) throw errors.forbidden('The signed object is not signed by a key of the third-party invite');
    if (key.keyValidityUrl !== undefined) {
      let valid: boolean;
      try {
        valid = await this.identity.keyIsValid(key.keyValidityUrl, key.publicKey);
      } catch (err) {
        throw errors.forbidden(`The validity of the identity server's key could not be checked: ${(err as Error).message}`);
      }
      if (!valid) throw errors.forbidden("The identity server's key of this invitation is no longer valid");
    }
    const displayName = tpi.event.content['display_name'];
    await requireInvitable(this.ctx, target);
    await this.ctx.rooms.setMembership(sender, roomId, target, 'invite', undefined, {
      third_party_invite: { display_name: typeof displayName === 'string' ? displayName : '', signed },
    });
  }
}

const services = new WeakMap<AppContext, ThirdPartyInvites>();

/** The third-party invite service of a server (made on first use, over its federation transport). */
export function thirdPartyInvites(ctx: AppContext): ThirdPartyInvites {
  let s = services.get(ctx);
  if (!s) {
    const guard = ctx.config.identity.allow_private_servers ? undefined : new IpGuard();
    s = new ThirdPartyInvites(ctx, new IdentityServerClient(ctx.federation.transport, guard));
    services.set(ctx, s);
  }
  return s;
}
