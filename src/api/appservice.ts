import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { AppContext } from '../app.js';
import { MatrixError, errors } from '../errors.js';
import type { Requester } from '../services/accounts/accounts.js';
import { accessTokenOf, requireUser } from './auth.js';
import { V1, V3 } from './client/paths.js';
import type { HttpApp } from './http.js';

type P = Record<string, string>;

/**
 * The `ts` query parameter of an application-service request (timestamp massaging), or
 * undefined. Only honoured for as_token requests; an invalid value is 400 M_INVALID_PARAM.
 */
export function massagedTimestamp(requester: Requester, req: FastifyRequest): number | undefined {
  if (!requester.appserviceId) return undefined;
  const raw = (req.query as Record<string, unknown> | undefined)?.ts;
  if (raw === undefined) return undefined;
  const s = Array.isArray(raw) ? raw[0] : raw;
  const n = typeof s === 'number' ? s : typeof s === 'string' && /^[0-9]{1,16}$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw errors.invalidParam('ts must be a non-negative integer timestamp in milliseconds');
  return n;
}

/** The application service of a request's token, when it is an as_token. */
export function appServiceOf(ctx: AppContext, req: FastifyRequest) {
  const token = accessTokenOf(req);
  return token === undefined ? undefined : ctx.appservices.byToken(token);
}

/** The query string as a map of strings or string lists (forwarded to services as is). */
function forwardedQuery(req: FastifyRequest): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries((req.query as Record<string, unknown>) ?? {})) {
    if (k === 'access_token' || k === 'user_id' || k === 'device_id') continue;
    if (typeof v === 'string') out[k] = v;
    else if (Array.isArray(v)) out[k] = v.filter((x): x is string => typeof x === 'string');
  }
  return out;
}

/**
 * Client-server endpoints for and about application services: ping, third-party protocol
 * lookups, and the per-network room directory.
 */
export function registerAppServiceApi(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V1) {
    app.post(
      `${prefix}/appservice/:appserviceId/ping`,
      { schema: { body: Type.Object({ transaction_id: Type.Optional(Type.String()) }) } },
      async (req) => {
        const token = accessTokenOf(req);
        const svc = token === undefined ? undefined : ctx.appservices.byToken(token);
        if (!svc) {
          // A missing or unknown token is 401; a user's (valid) token is not a service's: 403.
          await requireUser(ctx, req);
          throw errors.forbidden("This access token is not an application service's");
        }
        const { appserviceId } = req.params as P;
        if (svc.id !== appserviceId) throw errors.forbidden('This token does not belong to that application service');
        return ctx.appservices.ping(svc, (req.body as { transaction_id?: string }).transaction_id);
      },
    );
  }

  for (const prefix of V3) {
    app.get(`${prefix}/thirdparty/protocols`, async (req) => {
      await requireUser(ctx, req);
      return ctx.appservices.protocols();
    });
    app.get(`${prefix}/thirdparty/protocol/:protocol`, async (req) => {
      await requireUser(ctx, req);
      const { protocol } = req.params as P;
      const p = await ctx.appservices.protocol(protocol!);
      if (!p) throw errors.notFound(`Unknown protocol ${protocol}`);
      return p;
    });
    for (const kind of ['location', 'user'] as const) {
      app.get(`${prefix}/thirdparty/${kind}/:protocol`, async (req) => {
        await requireUser(ctx, req);
        return ctx.appservices.thirdPartyLookup(kind, (req.params as P).protocol!, forwardedQuery(req));
      });
      const key = kind === 'location' ? 'alias' : 'userid';
      app.get(`${prefix}/thirdparty/${kind}`, async (req) => {
        await requireUser(ctx, req);
        const q = forwardedQuery(req);
        if (q[key] === undefined) throw errors.missingParam(`${key} is required`);
        return ctx.appservices.thirdPartyLookup(kind, undefined, { [key]: q[key]! });
      });
    }

    app.put(
      `${prefix}/directory/list/appservice/:networkId/:roomId`,
      { schema: { body: Type.Object({ visibility: Type.Union([Type.Literal('public'), Type.Literal('private')]) }) } },
      async (req) => {
        const requester = await requireUser(ctx, req);
        if (!requester.appserviceId) throw errors.forbidden('Only application services can use this endpoint');
        const { networkId, roomId } = req.params as P;
        await ctx.appservices.setNetworkVisibility(requester, networkId!, roomId!, (req.body as { visibility: 'public' | 'private' }).visibility);
        return {};
      },
    );
  }
}

/**
 * POST /register with `type: m.login.application_service`: no user-interactive auth, the
 * as_token decides. The user must be in the service's user namespaces (M_EXCLUSIVE otherwise);
 * localparts starting with "_" are allowed, as bridges use them.
 */
export async function registerAppServiceUser(
  ctx: AppContext,
  req: FastifyRequest,
  body: { username?: string; device_id?: string; initial_device_display_name?: string; inhibit_login?: boolean; refresh_token?: boolean },
): Promise<Record<string, unknown>> {
  const svc = ctx.appservices.requireToken(accessTokenOf(req));
  if (svc.reg.rateLimited) ctx.accounts.registrationLimiter.take(req.ip);
  if (body.username === undefined) throw errors.missingParam('username is required for application service registration');
  const localpart = ctx.accounts.normaliseLocalpart(body.username, true);
  const userId = `@${localpart}:${ctx.config.server_name}`;
  ctx.appservices.checkUserId(userId, svc);
  const { tokens } = await ctx.accounts.registerAccount(
    { localpart, password: null, allowReserved: true },
    {
      login: body.inhibit_login
        ? undefined
        : { deviceId: body.device_id, displayName: body.initial_device_display_name, ip: req.ip, refreshable: body.refresh_token === true },
    },
  );
  req.log.info({ user_id: userId, appservice: svc.id }, 'application service registered a user');
  if (!tokens) return { user_id: userId, home_server: ctx.config.server_name };
  return { ...tokens, home_server: ctx.config.server_name };
}

/**
 * The user of a `m.login.application_service` login: it must be in the service's namespaces
 * (M_EXCLUSIVE) and exist (403 M_FORBIDDEN).
 */
export async function appServiceLoginUser(ctx: AppContext, req: FastifyRequest, identifier: unknown, user: string | undefined): Promise<string> {
  const svc = ctx.appservices.requireToken(accessTokenOf(req));
  let name = user;
  if (identifier !== undefined) {
    const id = identifier as Record<string, unknown>;
    if (id.type !== 'm.id.user') throw errors.forbidden(`Identifier type ${String(id.type)} is not supported`);
    if (typeof id.user !== 'string') throw errors.badJson('identifier.user must be a string');
    name = id.user;
  }
  if (name === undefined) throw errors.badJson('identifier is required');
  const userId = name.startsWith('@') ? name : `@${name.toLowerCase()}:${ctx.config.server_name}`;
  ctx.appservices.checkUserId(userId, svc);
  const row = await ctx.accounts.getUser(userId);
  if (!row) throw errors.forbidden(`Unknown user ${userId}`);
  if (row.deactivated) throw new MatrixError('M_USER_DEACTIVATED', 403, 'This account has been deactivated');
  return userId;
}
