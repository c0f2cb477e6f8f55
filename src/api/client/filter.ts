import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

/** POST /user/{userId}/filter, GET /user/{userId}/filter/{filterId}. */
export function registerFilter(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V3) {
    app.post(`${prefix}/user/:userId/filter`, { schema: { params: Type.Object({ userId: Type.String() }) } }, async (req) => {
      const me = await requireUser(ctx, req);
      if (me.userId !== req.params.userId) throw errors.forbidden('You can only create filters for yourself');
      return { filter_id: await ctx.userData.createFilter(me.userId, req.body) };
    });

    app.get(
      `${prefix}/user/:userId/filter/:filterId`,
      { schema: { params: Type.Object({ userId: Type.String(), filterId: Type.String() }) } },
      async (req) => {
        const me = await requireUser(ctx, req);
        if (me.userId !== req.params.userId) throw errors.forbidden("You cannot read another user's filters");
        const filter = await ctx.userData.getFilter(me.userId, req.params.filterId);
        if (!filter) throw errors.notFound('No such filter');
        return filter;
      },
    );
  }
}
