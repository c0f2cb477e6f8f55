import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { MatrixError } from '../../errors.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

const Auth = Type.Optional(Type.Object({}, { additionalProperties: true }));

/** GET /account/whoami, POST /account/password, POST /account/deactivate, 3PID list (empty) and token requests (refused). */
export function registerAccount(app: HttpApp, ctx: AppContext): void {
  const accounts = ctx.accounts;
  for (const prefix of V3) {
    app.get(`${prefix}/account/whoami`, async (req) => {
      const me = await requireUser(ctx, req);
      return { user_id: me.userId, device_id: me.deviceId, is_guest: me.isGuest };
    });

    app.post(
      `${prefix}/account/password`,
      { schema: { body: Type.Object({ new_password: Type.String(), logout_devices: Type.Optional(Type.Boolean()), auth: Auth }) } },
      async (req) => {
        const me = await requireUser(ctx, req);
        await accounts.requirePassword(me.userId, 'change_password', req.body.auth);
        await accounts.setPassword(me.userId, req.body.new_password, {
          logoutDevices: req.body.logout_devices ?? true,
          keepDeviceId: me.deviceId,
        });
        return {};
      },
    );

    app.post(
      `${prefix}/account/deactivate`,
      { schema: { body: Type.Object({ auth: Auth, id_server: Type.Optional(Type.String()), erase: Type.Optional(Type.Boolean()) }) } },
      async (req) => {
        const me = await requireUser(ctx, req);
        await accounts.requirePassword(me.userId, 'deactivate', req.body.auth);
        await accounts.deactivate(me.userId, { erase: req.body.erase === true });
        req.log.info({ user_id: me.userId }, 'deactivated account');
        return { id_server_unbind_result: 'no-support' };
      },
    );

    // No third-party identifiers are stored: the list is always empty.
    app.get(`${prefix}/account/3pid`, async (req) => {
      await requireUser(ctx, req);
      return { threepids: [] };
    });
    // Nor can any be added (capability m.3pid_changes is off): 400 M_THREEPID_MEDIUM_NOT_SUPPORTED (spec v1.13).
    for (const medium of ['email', 'msisdn']) {
      app.post(`${prefix}/account/3pid/${medium}/requestToken`, async () => {
        throw new MatrixError('M_THREEPID_MEDIUM_NOT_SUPPORTED', 400, `This server does not support adding ${medium === 'email' ? 'e-mail addresses' : 'phone numbers'}`);
      });
    }
  }
}
