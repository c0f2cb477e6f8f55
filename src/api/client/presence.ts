import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { isValidUserId } from '../../protocol/identifiers.js';
import { PRESENCE_STATES } from '../../services/accounts/user-data.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

/**
 * GET/PUT /presence/{userId}/status. Any authenticated user may read a local user's presence;
 * for a user of another server, the presence last received from it over federation.
 */
export function registerPresence(app: HttpApp, ctx: AppContext): void {
  const P = Type.Object({ userId: Type.String() });
  for (const prefix of V3) {
    app.get(`${prefix}/presence/:userId/status`, { schema: { params: P } }, async (req) => {
      await requireUser(ctx, req);
      const userId = req.params.userId;
      if (!isValidUserId(userId, { historical: true })) throw errors.invalidParam(`${userId} is not a valid user ID`);
      if (ctx.accounts.isLocalUser(userId)) {
        if (!(await ctx.accounts.getUser(userId))) throw errors.notFound('Unknown user');
        return ctx.userData.getPresence(userId);
      }
      const known = await ctx.userData.getPresence(userId, { knownOnly: true });
      if (!known) throw errors.notFound('No presence has been received for this user');
      return known;
    });

    app.put(
      `${prefix}/presence/:userId/status`,
      {
        schema: {
          params: P,
          body: Type.Object({
            presence: Type.Union(PRESENCE_STATES.map((s) => Type.Literal(s))),
            status_msg: Type.Optional(Type.String({ maxLength: 1024 })),
          }),
        },
      },
      async (req) => {
        const me = await requireUser(ctx, req);
        if (me.userId !== req.params.userId) throw errors.forbidden("You cannot set another user's presence");
        await ctx.userData.setPresence(me.userId, req.body.presence, req.body.status_msg);
        return {};
      },
    );
  }
}
