import type { AppContext } from '../../app.js';
import type { Requester } from '../auth.js';

/**
 * Takes a token from the user's sending bucket (`rate_limits.message`), or throws 429
 * M_LIMIT_EXCEEDED with `retry_after_ms`. Server admins and application services are exempt.
 */
export function takeSendToken(ctx: AppContext, user: Requester): void {
  if (user.isAdmin || user.appserviceId !== undefined) return;
  ctx.sendLimiter.take(user.userId);
}
