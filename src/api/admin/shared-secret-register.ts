import { createHmac, timingSafeEqual } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { MatrixError, errors } from '../../errors.js';
import { randomString } from '../../services/accounts/secrets.js';
import type { HttpApp } from '../http.js';

const NONCE_LIFETIME_MS = 60_000;
const MAX_NONCES = 1000;

/** The MAC of a shared-secret registration: HMAC-SHA1 over the NUL-separated fields, hex. */
export function registrationMac(secret: string, f: { nonce: string; username: string; password: string; admin: boolean; userType?: string }): string {
  const h = createHmac('sha1', Buffer.from(secret, 'utf8'));
  h.update(f.nonce).update('\x00').update(f.username).update('\x00').update(f.password).update('\x00').update(f.admin ? 'admin' : 'notadmin');
  if (f.userType !== undefined) h.update('\x00').update(f.userType);
  return h.digest('hex');
}

/**
 * Synapse-compatible shared-secret registration (register_new_matrix_user and similar tools):
 * GET /_synapse/admin/v1/register returns a single-use nonce (valid one minute);
 * POST creates the user when `mac` is the HMAC-SHA1, keyed by `registration_shared_secret`.
 */
export function registerSharedSecretRegistration(app: HttpApp, ctx: AppContext): void {
  const nonces = new Map<string, number>();
  const secret = () => {
    const s = ctx.config.registration_shared_secret;
    if (!s) throw errors.badJson('Shared secret registration is not enabled');
    return s;
  };

  app.get('/_synapse/admin/v1/register', async () => {
    secret();
    const now = Date.now();
    for (const [n, t] of nonces) if (t < now - NONCE_LIFETIME_MS || nonces.size >= MAX_NONCES) nonces.delete(n);
    const nonce = randomString(24);
    nonces.set(nonce, now);
    return { nonce };
  });

  app.post(
    '/_synapse/admin/v1/register',
    {
      schema: {
        body: Type.Object({
          nonce: Type.String(),
          username: Type.String(),
          password: Type.String(),
          mac: Type.String(),
          admin: Type.Optional(Type.Boolean()),
          displayname: Type.Optional(Type.String()),
          user_type: Type.Optional(Type.Union([Type.String(), Type.Null()])),
        }),
      },
    },
    async (req) => {
      const key = secret();
      ctx.accounts.registrationLimiter.take(req.ip);
      const b = req.body;
      const issued = nonces.get(b.nonce);
      nonces.delete(b.nonce);
      if (issued === undefined || issued < Date.now() - NONCE_LIFETIME_MS) throw errors.invalidParam('Unrecognised or expired nonce');
      const userType = b.user_type ?? undefined;
      const expected = Buffer.from(registrationMac(key, { nonce: b.nonce, username: b.username, password: b.password, admin: b.admin === true, userType }), 'utf8');
      const given = Buffer.from(b.mac.toLowerCase(), 'utf8');
      if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw errors.forbidden('HMAC incorrect');
      if (b.password === '' || b.password.length > 512) throw new MatrixError('M_WEAK_PASSWORD', 400, 'Invalid password');
      const { userId, tokens } = await ctx.accounts.registerAccount(
        { localpart: b.username, password: b.password, admin: b.admin === true, userType: userType ?? null, displayname: b.displayname },
        { login: { ip: req.ip } },
      );
      req.log.info({ user_id: userId, admin: b.admin === true }, 'registered a user with the shared secret');
      return { user_id: userId, access_token: tokens!.access_token, device_id: tokens!.device_id, home_server: ctx.config.server_name };
    },
  );
}
