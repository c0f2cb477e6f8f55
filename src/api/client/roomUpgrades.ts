import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { requireNotSuspended, requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

/** POST /rooms/{roomId}/upgrade. */
export function registerRoomUpgrades(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V3) {
    app.post(
      `${prefix}/rooms/:roomId/upgrade`,
      { schema: { body: Type.Object({ new_version: Type.String(), additional_creators: Type.Optional(Type.Array(Type.String())) }) } },
      async (req) => {
        const user = await requireUser(ctx, req);
        requireNotSuspended(user);
        const { roomId } = req.params as { roomId: string };
        const { new_version, additional_creators } = req.body as { new_version: string; additional_creators?: string[] };
        ctx.sendLimiter.take(user.userId);
        const replacement = await ctx.upgrades.upgrade(user.userId, roomId, new_version, additional_creators);
        return { replacement_room: replacement };
      },
    );
  }
}
