import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import type { DeviceRow } from '../../storage/stores/accounts.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { isPlainObject, V3 } from './paths.js';

const Auth = Type.Optional(Type.Object({}, { additionalProperties: true }));
const DeviceParams = Type.Object({ deviceId: Type.String() });

function deviceJson(d: DeviceRow) {
  return {
    device_id: d.device_id,
    ...(d.display_name !== null ? { display_name: d.display_name } : {}),
    ...(d.last_seen_ip !== null ? { last_seen_ip: d.last_seen_ip } : {}),
    ...(d.last_seen_ts !== null ? { last_seen_ts: d.last_seen_ts } : {}),
    // MSC3852: lets a client tell the user which app and system each session is.
    ...(d.last_seen_user_agent !== null ? { last_seen_user_agent: d.last_seen_user_agent } : {}),
  };
}

/**
 * GET /devices, GET/PUT/DELETE /devices/{deviceId}, POST /delete_devices. Application services
 * may create devices with PUT and delete them without user-interactive auth (spec v1.17).
 */
export function registerDevices(app: HttpApp, ctx: AppContext): void {
  const accounts = ctx.accounts;
  for (const prefix of V3) {
    app.get(`${prefix}/devices`, async (req) => {
      const me = await requireUser(ctx, req);
      return { devices: (await accounts.listDevices(me.userId)).map(deviceJson) };
    });

    app.get(`${prefix}/devices/:deviceId`, { schema: { params: DeviceParams } }, async (req) => {
      const me = await requireUser(ctx, req);
      const d = await accounts.getDevice(me.userId, req.params.deviceId);
      if (!d) throw errors.notFound('No such device');
      return deviceJson(d);
    });

    app.put(
      `${prefix}/devices/:deviceId`,
      { schema: { params: DeviceParams, body: Type.Object({ display_name: Type.Optional(Type.String({ maxLength: 255 })) }) } },
      async (req, reply) => {
        const me = await requireUser(ctx, req);
        // Application services create their users' devices here (201); others only update them.
        if (me.appserviceId !== undefined) {
          const created = await accounts.createDevice(me.userId, req.params.deviceId, req.body.display_name, req.ip ?? null);
          if (created) reply.code(201);
          return {};
        }
        const d = await accounts.getDevice(me.userId, req.params.deviceId);
        if (!d) throw errors.notFound('No such device');
        if (req.body.display_name !== undefined) await accounts.renameDevice(me.userId, d.device_id, req.body.display_name);
        return {};
      },
    );

    app.delete(`${prefix}/devices/:deviceId`, { schema: { params: DeviceParams } }, async (req) => {
      const me = await requireUser(ctx, req);
      const body = req.body === undefined || req.body === null ? {} : req.body;
      if (!isPlainObject(body)) throw errors.notJson('The body must be a JSON object');
      // Application services delete their users' devices without user-interactive auth.
      if (me.appserviceId === undefined) await accounts.requirePassword(me.userId, 'delete_devices', body.auth);
      await accounts.deleteDevices(me.userId, [req.params.deviceId]);
      return {};
    });

    app.post(
      `${prefix}/delete_devices`,
      { schema: { body: Type.Object({ devices: Type.Array(Type.String(), { maxItems: 1000 }), auth: Auth }) } },
      async (req) => {
        const me = await requireUser(ctx, req);
        if (me.appserviceId === undefined) await accounts.requirePassword(me.userId, 'delete_devices', req.body.auth);
        await accounts.deleteDevices(me.userId, req.body.devices);
        return {};
      },
    );
  }
}
