import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { isValidUserId, serverNameOf } from '../../protocol/identifiers.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

type P = Record<string, string>;

/** Content reporting: events (reporter must be joined), rooms and users. Reports are stored for the administrators. */
export function registerReport(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V3) {
    app.post(
      `${prefix}/rooms/:roomId/report/:eventId`,
      { schema: { body: Type.Object({ reason: Type.Optional(Type.String()), score: Type.Optional(Type.Integer()) }) } },
      async (req) => {
        const user = await requireUser(ctx, req);
        const { roomId, eventId } = req.params as P;
        ctx.reportLimiter.take(user.userId);
        const notFound = () => errors.notFound('The event was not found or you are not joined to the room');
        if ((await ctx.eventStore.getMembership(roomId!, user.userId)) !== 'join') throw notFound();
        const ev = await ctx.eventStore.getEvent(eventId!);
        if (!ev || ev.roomId !== roomId || ev.outlier) throw notFound();
        if (!(await ctx.visibility.filter(user.userId, [ev])).length) throw notFound();
        const { reason } = req.body as { reason?: string };
        await ctx.reports.add({ kind: 'event', roomId, eventId, targetUserId: ev.event.sender, reporter: user.userId, reason });
        ctx.log.info({ roomId, eventId, reporter: user.userId }, 'event reported');
        return {};
      },
    );
    app.post(`${prefix}/rooms/:roomId/report`, { schema: { body: Type.Object({ reason: Type.String() }) } }, async (req) => {
      const user = await requireUser(ctx, req);
      const { roomId } = req.params as P;
      ctx.reportLimiter.take(user.userId);
      if (!(await ctx.eventStore.getRoom(roomId!))) throw errors.notFound('The room was not found');
      await ctx.reports.add({ kind: 'room', roomId, reporter: user.userId, reason: (req.body as { reason: string }).reason });
      ctx.log.info({ roomId, reporter: user.userId }, 'room reported');
      return {};
    });
    app.post(`${prefix}/users/:userId/report`, { schema: { body: Type.Object({ reason: Type.String() }) } }, async (req) => {
      const user = await requireUser(ctx, req);
      const { userId } = req.params as P;
      ctx.reportLimiter.take(user.userId);
      if (!isValidUserId(userId!, { historical: true })) throw errors.invalidParam(`Invalid user ID ${userId}`);
      // Local users must exist; remote users cannot be checked without asking their server.
      if (serverNameOf(userId!) === ctx.config.server_name && !(await ctx.accounts.getUser(userId!))) {
        throw errors.notFound('The user was not found');
      }
      await ctx.reports.add({ kind: 'user', targetUserId: userId, reporter: user.userId, reason: (req.body as { reason: string }).reason });
      ctx.log.info({ target: userId, reporter: user.userId }, 'user reported');
      return {};
    });
  }
}
