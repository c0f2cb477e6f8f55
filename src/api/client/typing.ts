import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

/** PUT /rooms/{roomId}/typing/{userId}: only for yourself, in a room you are joined to. */
export function registerTyping(app: HttpApp, ctx: AppContext): void {
  const P = Type.Object({ roomId: Type.String(), userId: Type.String() });
  const B = Type.Object({ typing: Type.Boolean(), timeout: Type.Optional(Type.Integer({ minimum: 0 })) });
  for (const prefix of V3) {
    app.put(`${prefix}/rooms/:roomId/typing/:userId`, { schema: { params: P, body: B } }, async (req) => {
      const me = await requireUser(ctx, req);
      if (me.userId !== req.params.userId) throw errors.forbidden('You can only set your own typing notification');
      await ctx.rooms.requireJoined(me.userId, req.params.roomId);
      await ctx.typing.setTyping(req.params.roomId, me.userId, req.body.typing, req.body.timeout ?? 30_000);
      return {};
    });
  }
}
