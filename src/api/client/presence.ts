import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { PRESENCE_STATES } from '../../services/accounts/user-data.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

/**
 * GET/PUT /presence/{userId}/status. Local users only for now (remote presence arrives over
 * federation); any authenticated user may read a local user's presence.
 */
export function registerPresence(app: HttpApp, ctx: AppContext): void {
  const P = Type.Object({ userId: Type.String() });
  for (const prefix of V3) {
    app.get(`${prefix}/presence/:userId/status`, { schema: { params: P } }, async (req) => {
      await requireUser(ctx, req);
      const user = await ctx.accounts.getUser(req.params.userId);
      if (!user) throw errors.notFound('Unknown user');
      return ctx.userData.getPresence(user.user_id);
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
