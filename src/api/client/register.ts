import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { MatrixError, errors } from '../../errors.js';
import type { StageChecker } from '../../services/accounts/uia.js';
import { registerAppServiceUser } from '../appservice.js';
import type { HttpApp } from '../http.js';
import { V1, V3 } from './paths.js';

const RegisterBody = Type.Object({
  auth: Type.Optional(Type.Object({}, { additionalProperties: true })),
  type: Type.Optional(Type.String()),
  username: Type.Optional(Type.String()),
  password: Type.Optional(Type.String()),
  device_id: Type.Optional(Type.String()),
  initial_device_display_name: Type.Optional(Type.String()),
  inhibit_login: Type.Optional(Type.Boolean()),
  refresh_token: Type.Optional(Type.Boolean()),
});

const KindQuery = Type.Object({ kind: Type.Optional(Type.String()) });

/** The UIA flows registration offers for the configured mode. */
export function registrationFlows(ctx: AppContext): string[][] {
  switch (ctx.config.registration) {
    case 'open':
      return [['m.login.dummy']];
    case 'token':
      return [['m.login.registration_token']];
    default:
      return [];
  }
}

/**
 * POST /register (user-interactive), GET /register/available,
 * GET /v1/register/m.login.registration_token/validity.
 */
export function registerRegister(app: HttpApp, ctx: AppContext): void {
  const accounts = ctx.accounts;
  const dummy: StageChecker = async () => ({ ok: true });

  for (const prefix of V3) {
    app.post(`${prefix}/register`, { schema: { body: RegisterBody, querystring: KindQuery } }, async (req) => {
      const kind = req.query.kind ?? 'user';
      if (kind !== 'user' && kind !== 'guest') throw errors.invalidParam('kind must be "user" or "guest"');
      // Application services register their users with their token, without user-interactive auth.
      if (kind === 'user' && req.body.type === 'm.login.application_service') return registerAppServiceUser(ctx, req, req.body);
      accounts.registrationLimiter.take(req.ip);
      if (kind === 'guest') throw errors.forbidden('Guest access is not enabled on this server');
      const flows = registrationFlows(ctx);
      if (flows.length === 0) throw errors.forbidden('Registration is disabled on this server');
      const body = req.body;
      if (body.device_id !== undefined && (body.device_id === '' || body.device_id.length > 255)) {
        throw errors.invalidParam('device_id must be 1 to 255 characters');
      }
      // Names in an application service's exclusive namespace are its own (M_EXCLUSIVE).
      if (body.username !== undefined) ctx.appservices.checkUserId(`@${accounts.normaliseLocalpart(body.username, true)}:${ctx.config.server_name}`, undefined);
      // Check the name before user-interactive auth, so clients learn early that it is taken.
      let localpart = body.username !== undefined ? await accounts.checkAvailable(body.username) : undefined;
      const session = await accounts.uia.check(body.auth, {
        purpose: 'register',
        flows,
        checkers: { 'm.login.dummy': dummy, 'm.login.registration_token': accounts.registrationTokenStage() },
      });
      localpart ??= await accounts.generateLocalpart();
      const { userId, tokens } = await accounts.registerAccount(
        { localpart, password: body.password ?? null },
        {
          session,
          login: body.inhibit_login
            ? undefined
            : { deviceId: body.device_id, displayName: body.initial_device_display_name, ip: req.ip, refreshable: body.refresh_token === true },
        },
      );
      req.log.info({ user_id: userId }, 'registered a new user');
      if (!tokens) return { user_id: userId, home_server: ctx.config.server_name };
      return { ...tokens, home_server: ctx.config.server_name };
    });

    app.get(`${prefix}/register/available`, { schema: { querystring: Type.Object({ username: Type.Optional(Type.String()) }) } }, async (req) => {
      accounts.registrationLimiter.take(req.ip);
      if (req.query.username === undefined) throw errors.missingParam('username is required');
      ctx.appservices.checkUserId(`@${accounts.normaliseLocalpart(req.query.username, true)}:${ctx.config.server_name}`, undefined);
      await accounts.checkAvailable(req.query.username);
      return { available: true };
    });

    // Registration through e-mail or phone verification is not offered.
    for (const medium of ['email', 'msisdn']) {
      app.post(`${prefix}/register/${medium}/requestToken`, async () => {
        throw new MatrixError('M_THREEPID_DENIED', 403, 'Third-party identifiers cannot be used to register on this server');
      });
    }
  }

  for (const prefix of V1) {
    app.get(
      `${prefix}/register/m.login.registration_token/validity`,
      { schema: { querystring: Type.Object({ token: Type.Optional(Type.String()) }) } },
      async (req) => {
        if (ctx.config.registration !== 'token') throw errors.forbidden('Registration tokens are not used on this server');
        accounts.registrationLimiter.take(req.ip);
        if (req.query.token === undefined) throw errors.missingParam('token is required');
        return { valid: await accounts.registrationTokenValid(req.query.token) };
      },
    );
  }
}
