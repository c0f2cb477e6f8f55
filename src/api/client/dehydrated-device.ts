import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';

/** The unstable prefix of MSC3814, the path clients (matrix-js-sdk, matrix-rust-sdk) call. */
export const MSC3814_PREFIX = '/_matrix/client/unstable/org.matrix.msc3814.v1';

const Obj = Type.Object({}, { additionalProperties: true });

/**
 * Dehydrated devices (MSC3814): PUT/GET/DELETE /dehydrated_device and
 * POST /dehydrated_device/{deviceId}/events.
 */
export function registerDehydratedDevice(app: HttpApp, ctx: AppContext): void {
  const service = ctx.e2ee.dehydrated;
  app.put(`${MSC3814_PREFIX}/dehydrated_device`, { schema: { body: Obj } }, async (req) => {
    const me = await requireUser(ctx, req);
    return service.put(me.userId, req.body as Record<string, unknown>);
  });
  app.get(`${MSC3814_PREFIX}/dehydrated_device`, async (req) => {
    const me = await requireUser(ctx, req);
    return service.get(me.userId);
  });
  app.delete(`${MSC3814_PREFIX}/dehydrated_device`, async (req) => {
    const me = await requireUser(ctx, req);
    return service.delete(me.userId);
  });
  app.post(
    `${MSC3814_PREFIX}/dehydrated_device/:deviceId/events`,
    { schema: { params: Type.Object({ deviceId: Type.String() }), body: Type.Optional(Obj) } },
    async (req) => {
      const me = await requireUser(ctx, req);
      const body = (req.body ?? {}) as Record<string, unknown>;
      return service.events(me.userId, req.params.deviceId, body.next_batch);
    },
  );
}
