import type { FastifyRequest } from 'fastify';
import type { AppContext } from '../app.js';
import { MatrixError } from '../errors.js';
import { userSuspendedError, type IdentityAssertion, type Requester } from '../services/accounts/accounts.js';
import type { SeenFrom } from '../storage/stores/accounts.js';

/** The longest User-Agent kept for a device (longer ones are cut). */
const MAX_USER_AGENT = 512;

export type { Requester } from '../services/accounts/accounts.js';

/**
 * The access token of a request: `Authorization: Bearer <token>`, or the deprecated
 * `access_token` query parameter. Undefined when neither is present; M_MISSING_TOKEN when the
 * Authorization header is not a Bearer token.
 */
export function accessTokenOf(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    // The common form, "Bearer <token>" with one space and nothing after the token, without a regular expression.
    if (header.startsWith('Bearer ')) {
      const token = header.slice(7);
      if (token !== '' && !/\s/.test(token)) return token;
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new MatrixError('M_MISSING_TOKEN', 401, 'The Authorization header must be "Bearer <access token>"');
    return m[1];
  }
  const q = (req.query as Record<string, unknown> | undefined)?.access_token;
  if (typeof q === 'string' && q !== '') return q;
  if (Array.isArray(q) && typeof q[0] === 'string' && q[0] !== '') return q[0];
  return undefined;
}

const NO_ASSERTION: IdentityAssertion = Object.freeze({});

/**
 * The `user_id` and `device_id` query parameters an application service may add to act as one
 * of its users (application-service-api "Identity assertion"; `org.matrix.msc3202.device_id`
 * is the unstable name). Ignored for ordinary access tokens.
 */
export function identityAssertionOf(req: FastifyRequest): IdentityAssertion {
  const q = (req.query as Record<string, unknown> | undefined) ?? {};
  if (q.user_id === undefined && q.device_id === undefined && q['org.matrix.msc3202.device_id'] === undefined) return NO_ASSERTION;
  const one = (v: unknown) => (typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined);
  const userId = one(q.user_id);
  const deviceId = one(q.device_id) ?? one(q['org.matrix.msc3202.device_id']);
  return { ...(userId !== undefined ? { userId } : {}), ...(deviceId !== undefined ? { deviceId } : {}) };
}

/** Where a request comes from, for the device's last-seen record. */
export function seenFrom(req: FastifyRequest): SeenFrom {
  const ua = req.headers['user-agent'];
  // Bounded: the header is the client's to fill.
  return { ip: req.ip ?? null, userAgent: typeof ua === 'string' && ua !== '' ? ua.slice(0, MAX_USER_AGENT) : null };
}

/**
 * Authenticates a request. Throws M_MISSING_TOKEN (401) without a token, M_UNKNOWN_TOKEN (401,
 * with `soft_logout: true` when the token only expired) for an invalid one, and
 * M_USER_DEACTIVATED (403) for a deactivated account, M_USER_LOCKED (401, `soft_logout: true`)
 * for a locked one unless `allowLocked` (logout).
 */
export async function requireUser(ctx: AppContext, req: FastifyRequest, opts: { allowLocked?: boolean } = {}): Promise<Requester> {
  const token = accessTokenOf(req);
  if (token === undefined) throw new MatrixError('M_MISSING_TOKEN', 401, 'Missing access token');
  return ctx.accounts.authenticate(token, seenFrom(req), identityAssertionOf(req), opts);
}

/** Throws 403 M_USER_SUSPENDED when the requester's account is suspended (for the actions a suspended user may not take). */
export function requireNotSuspended(requester: Requester): void {
  if (requester.suspended) throw userSuspendedError();
}

/** Like requireUser, but undefined when the request carries no token at all. */
export async function optionalUser(ctx: AppContext, req: FastifyRequest): Promise<Requester | undefined> {
  const token = accessTokenOf(req);
  if (token === undefined) return undefined;
  return ctx.accounts.authenticate(token, seenFrom(req), identityAssertionOf(req));
}

/** Throws 403 M_FORBIDDEN unless the requester is a server administrator. */
export function requireAdmin(requester: Requester): void {
  if (!requester.isAdmin) throw new MatrixError('M_FORBIDDEN', 403, 'You are not a server administrator');
}
