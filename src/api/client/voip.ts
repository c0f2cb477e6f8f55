import type { AppContext } from '../../app.js';
import { parseDuration } from '../../box/backoff.js';
import { turnCredentials } from '../../box/turn.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

/**
 * GET /voip/turnServer: time-limited credentials for the coturn server configured with
 * turn_uris and turn_shared_secret. Without a TURN server (or for guests when
 * turn_allow_guests is false) the answer is an empty object, which clients read as
 * "no TURN server" and fall back to direct and STUN connectivity.
 */
export function registerVoip(app: HttpApp, ctx: AppContext): void {
  const { turn_uris: uris, turn_shared_secret: secret, turn_allow_guests: allowGuests } = ctx.config;
  const lifetimeMs = parseDuration(ctx.config.turn_user_lifetime);
  for (const prefix of V3) {
    app.get(`${prefix}/voip/turnServer`, async (req) => {
      const me = await requireUser(ctx, req);
      if (uris.length === 0 || !secret || (me.isGuest && !allowGuests)) return {};
      return turnCredentials({ secret, userId: me.userId, uris, lifetimeMs, nowMs: Date.now() });
    });
  }
}
