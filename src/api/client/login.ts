import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { MatrixError, errors } from '../../errors.js';
import { accessTokenOf, requireUser } from '../auth.js';
import { appServiceLoginUser } from '../appservice.js';
import type { HttpApp } from '../http.js';
import { isPlainObject, V1, V3 } from './paths.js';

const LoginBody = Type.Object({
  type: Type.String(),
  identifier: Type.Optional(Type.Object({ type: Type.String() }, { additionalProperties: true })),
  user: Type.Optional(Type.String()),
  password: Type.Optional(Type.String()),
  token: Type.Optional(Type.String()),
  device_id: Type.Optional(Type.String()),
  initial_device_display_name: Type.Optional(Type.String()),
  refresh_token: Type.Optional(Type.Boolean()),
});

const AuthOnlyBody = Type.Object({ auth: Type.Optional(Type.Object({}, { additionalProperties: true })) });

/** GET/POST /login, POST /v1/login/get_token, POST /refresh, POST /logout, POST /logout/all. */
export function registerLogin(app: HttpApp, ctx: AppContext): void {
  const accounts = ctx.accounts;

  for (const prefix of V3) {
    app.get(`${prefix}/login`, async () => ({
      flows: [{ type: 'm.login.password' }, { type: 'm.login.token', get_login_token: true }, ...(ctx.appservices.services.length > 0 ? [{ type: 'm.login.application_service' }] : [])],
    }));

    app.post(`${prefix}/login`, { schema: { body: LoginBody } }, async (req) => {
      const body = req.body;
      const asLogin = body.type === 'm.login.application_service';
      if (!asLogin || ctx.appservices.byToken(accessTokenOf(req) ?? '')?.reg.rateLimited !== false) accounts.loginLimiter.take(req.ip);
      let userId: string;
      if (asLogin) {
        userId = await appServiceLoginUser(ctx, req, body.identifier, body.user);
      } else if (body.type === 'm.login.password') {
        let user: string | undefined;
        if (body.identifier !== undefined) {
          const id = body.identifier as Record<string, unknown>;
          if (id.type !== 'm.id.user') throw errors.forbidden(`Identifier type ${String(id.type)} is not supported`);
          if (typeof id.user !== 'string') throw errors.badJson('identifier.user must be a string');
          user = id.user;
        } else user = body.user;
        if (user === undefined) throw errors.badJson('identifier is required');
        if (body.password === undefined) throw errors.badJson('password is required');
        userId = await accounts.checkPasswordLogin(user, body.password);
      } else if (body.type === 'm.login.token') {
        if (body.token === undefined) throw errors.badJson('token is required');
        userId = await accounts.checkTokenLogin(body.token);
      } else {
        throw new MatrixError('M_UNKNOWN', 400, `Unknown login type ${body.type}`);
      }
      if (body.device_id !== undefined && (body.device_id === '' || body.device_id.length > 255)) {
        throw errors.invalidParam('device_id must be 1 to 255 characters');
      }
      const tokens = await accounts.createSession({
        userId,
        deviceId: body.device_id,
        displayName: body.initial_device_display_name,
        ip: req.ip,
        refreshable: body.refresh_token === true,
      });
      req.log.info({ user_id: userId, device_id: tokens.device_id }, 'logged in');
      return { ...tokens, home_server: ctx.config.server_name };
    });

    app.post(`${prefix}/logout`, async (req) => {
      // Locked accounts may still log out.
      const me = await requireUser(ctx, req, { allowLocked: true });
      await accounts.deleteDevices(me.userId, [me.deviceId]);
      return {};
    });

    app.post(`${prefix}/logout/all`, async (req) => {
      // Locked accounts may still log out.
      const me = await requireUser(ctx, req, { allowLocked: true });
      await accounts.deleteOtherDevices(me.userId, undefined);
      return {};
    });
  }

  // Refresh tokens came with v1.3: v3 only.
  app.post('/_matrix/client/v3/refresh', { schema: { body: Type.Object({ refresh_token: Type.String() }) } }, async (req) => {
    return accounts.refresh(req.body.refresh_token);
  });

  for (const prefix of V1) {
    app.post(`${prefix}/login/get_token`, { schema: { body: AuthOnlyBody } }, async (req) => {
      const me = await requireUser(ctx, req);
      accounts.loginLimiter.take(req.ip);
      await accounts.requirePassword(me.userId, 'get_login_token', isPlainObject(req.body.auth) ? req.body.auth : undefined);
      return accounts.createLoginToken(me.userId);
    });
  }
}
