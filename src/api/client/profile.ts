import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { MatrixError, errors } from '../../errors.js';
import { queryRemoteProfile } from '../../federation/profile.js';
import { isValidUserId } from '../../protocol/identifiers.js';
import type { JsonValue } from '../../protocol/json.js';
import { requireNotSuspended, requireUser, type Requester } from '../auth.js';
import type { HttpApp } from '../http.js';
import { isPlainObject, V3 } from './paths.js';

const KEY_NAME = /^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$/;
const UserParams = Type.Object({ userId: Type.String() });
const FieldParams = Type.Object({ userId: Type.String(), keyName: Type.String() });

function checkKey(key: string): void {
  if (Buffer.byteLength(key) > 255) throw new MatrixError('M_KEY_TOO_LARGE', 400, 'Profile keys are at most 255 bytes');
  if (!KEY_NAME.test(key)) throw errors.invalidParam('Invalid profile key');
}

function checkOwner(me: Requester, userId: string): void {
  if (me.userId !== userId && !me.isAdmin) throw errors.forbidden("You cannot change another user's profile");
}

/**
 * GET /profile/{userId}, GET/PUT/DELETE /profile/{userId}/{keyName} (displayname, avatar_url,
 * m.tz and namespaced custom fields). Profiles of users of other servers are asked for with
 * `/query/profile` on their server.
 */
export function registerProfile(app: HttpApp, ctx: AppContext): void {
  const accounts = ctx.accounts;
  const profileOf = async (userId: string, field?: string) => {
    if (!accounts.isLocalUser(userId)) {
      if (!isValidUserId(userId, { historical: true })) throw errors.invalidParam(`${userId} is not a valid user ID`);
      return queryRemoteProfile(ctx.federation.client, userId, field);
    }
    // An unknown user in an application service's namespace is asked for first.
    await ctx.appservices.ensureUser(userId);
    const p = await accounts.getProfile(userId);
    if (!p) throw errors.notFound('Profile not found');
    return p;
  };
  for (const prefix of V3) {
    app.get(`${prefix}/profile/:userId`, { schema: { params: UserParams } }, async (req) => profileOf(req.params.userId));

    app.get(`${prefix}/profile/:userId/:keyName`, { schema: { params: FieldParams } }, async (req) => {
      checkKey(req.params.keyName);
      const p = await profileOf(req.params.userId, req.params.keyName);
      const v = p[req.params.keyName];
      if (v === undefined) throw errors.notFound('Profile field not set');
      return { [req.params.keyName]: v };
    });

    app.put(`${prefix}/profile/:userId/:keyName`, { schema: { params: FieldParams } }, async (req) => {
      const me = await requireUser(ctx, req);
      const { userId, keyName } = req.params;
      checkKey(keyName);
      checkOwner(me, userId);
      requireNotSuspended(me);
      if (!isPlainObject(req.body)) throw errors.notJson('The body must be a JSON object');
      if (!(keyName in req.body)) throw errors.missingParam(`${keyName} is required`);
      await accounts.setProfileField(userId, keyName, req.body[keyName] as JsonValue);
      return {};
    });

    app.delete(`${prefix}/profile/:userId/:keyName`, { schema: { params: FieldParams } }, async (req) => {
      const me = await requireUser(ctx, req);
      const { userId, keyName } = req.params;
      checkKey(keyName);
      checkOwner(me, userId);
      requireNotSuspended(me);
      await accounts.setProfileField(userId, keyName, undefined);
      return {};
    });
  }
}
