import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { MatrixError } from '../../errors.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

const Auth = Type.Optional(Type.Object({}, { additionalProperties: true }));
const ThreepidBody = Type.Object({ medium: Type.Union([Type.Literal('email'), Type.Literal('msisdn')]), address: Type.String(), id_server: Type.Optional(Type.String()) });
const RequestTokenBody = (medium: string) =>
  medium === 'email'
    ? Type.Object({ client_secret: Type.String(), email: Type.String(), send_attempt: Type.Integer() }, { additionalProperties: true })
    : Type.Object({ client_secret: Type.String(), country: Type.String(), phone_number: Type.String(), send_attempt: Type.Integer() }, { additionalProperties: true });

/**
 * GET /account/whoami, POST /account/password, POST /account/deactivate, and the third-party
 * identifier endpoints: the list (empty), token requests, changes and identity-server binds
 * (refused with the spec's codes; unbind answers `no-support`).
 */
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
      // No account has an address to reset a password with.
      app.post(`${prefix}/account/password/${medium}/requestToken`, { schema: { body: RequestTokenBody(medium) } }, async () => {
        throw new MatrixError('M_THREEPID_NOT_FOUND', 400, `No account on this server has that ${medium === 'email' ? 'e-mail address' : 'phone number'}; reset the password through the server's administrator`);
      });
    }
    // Adding or removing identifiers: the m.3pid_changes capability is off.
    const changesOff = () => new MatrixError('M_FORBIDDEN', 400, 'Third-party identifier changes are disabled on this server (capability m.3pid_changes)');
    app.post(`${prefix}/account/3pid`, { schema: { body: Type.Object({ three_pid_creds: Type.Object({}, { additionalProperties: true }), bind: Type.Optional(Type.Boolean()) }) } }, async (req) => {
      await requireUser(ctx, req);
      throw changesOff();
    });
    app.post(`${prefix}/account/3pid/add`, { schema: { body: Type.Object({ client_secret: Type.String(), sid: Type.String(), auth: Auth }) } }, async (req) => {
      await requireUser(ctx, req);
      throw changesOff();
    });
    app.post(`${prefix}/account/3pid/delete`, { schema: { body: ThreepidBody } }, async (req) => {
      await requireUser(ctx, req);
      throw changesOff();
    });
    // Identity servers: this server binds nothing, so there is nothing it could unbind.
    app.post(
      `${prefix}/account/3pid/bind`,
      { schema: { body: Type.Object({ client_secret: Type.String(), id_server: Type.String(), id_access_token: Type.String(), sid: Type.String() }) } },
      async (req) => {
        await requireUser(ctx, req);
        throw new MatrixError('M_SERVER_NOT_TRUSTED', 400, 'This server does not bind identifiers through identity servers');
      },
    );
    app.post(`${prefix}/account/3pid/unbind`, { schema: { body: ThreepidBody } }, async (req) => {
      await requireUser(ctx, req);
      return { id_server_unbind_result: 'no-support' };
    });
  }
}
