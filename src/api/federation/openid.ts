import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import type { HttpApp } from '../http.js';

/**
 * GET /_matrix/federation/v1/openid/userinfo: the user an OpenID token was issued to. Called by
 * third parties (widgets, integration managers, call services), not by servers, so it is not
 * authenticated with X-Matrix; the token is the credential.
 */
export function registerFederationOpenId(app: HttpApp, ctx: AppContext): void {
  app.get('/_matrix/federation/v1/openid/userinfo', async (req) => {
    const q = (req.query as Record<string, unknown> | undefined)?.access_token;
    const token = typeof q === 'string' ? q : Array.isArray(q) && typeof q[0] === 'string' ? q[0] : undefined;
    if (token === undefined || token === '') throw errors.missingParam('Missing access_token');
    return { sub: await ctx.openid.userIdOf(token) };
  });
}
