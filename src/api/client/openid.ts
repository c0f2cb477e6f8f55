import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { isPlainObject, V3 } from './paths.js';

/** POST /user/{userId}/openid/request_token: an OpenID token proving the caller's identity to a third party. */
export function registerOpenId(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V3) {
    app.post(`${prefix}/user/:userId/openid/request_token`, async (req) => {
      const me = await requireUser(ctx, req);
      const { userId } = req.params as Record<string, string>;
      if (userId !== me.userId) throw errors.forbidden('Cannot request an OpenID token for another user');
      // An empty object, reserved for future expansion.
      if (!isPlainObject(req.body)) throw errors.badJson('The body must be a JSON object');
      return ctx.openid.issue(me.userId);
    });
  }
}
