import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import type { Filter } from '../../services/sync/filter.js';
import { parseSyncToken } from '../../services/sync/token.js';
import { WAIT_OVER } from '../../services/sync/sync-service.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';
import { applyStateAfter } from './sync-state-after.js';

/** The longest a /sync may long-poll, whatever the client asks. */
const MAX_TIMEOUT_MS = 120_000;

/** Reads the `filter` parameter: inline JSON or the ID of a stored filter. */
export async function resolveFilter(ctx: AppContext, userId: string, raw: string | undefined): Promise<Filter> {
  if (raw === undefined || raw === '') return {};
  if (raw.trimStart().startsWith('{')) {
    try {
      return JSON.parse(raw) as Filter;
    } catch {
      throw errors.notJson('filter is not valid JSON');
    }
  }
  const stored = await ctx.userData.getFilter(userId, raw);
  if (!stored) throw errors.notFound(`Unknown filter ${raw}`);
  return stored as Filter;
}

/** GET /sync (with `use_state_after`, spec v1.16). */
export function registerSync(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V3) {
    app.get(`${prefix}/sync`, async (req, reply) => {
      const user = await requireUser(ctx, req);
      const q = req.query as { since?: string; timeout?: string; full_state?: string; filter?: string; set_presence?: string; use_state_after?: string };
      const timeout = q.timeout === undefined ? 0 : Number(q.timeout);
      if (!Number.isFinite(timeout) || timeout < 0) throw errors.invalidParam('timeout must be a non-negative number of milliseconds');
      if (q.full_state !== undefined && q.full_state !== 'true' && q.full_state !== 'false') {
        throw errors.invalidParam('full_state must be true or false');
      }
      if (q.use_state_after !== undefined && q.use_state_after !== 'true' && q.use_state_after !== 'false') {
        throw errors.invalidParam('use_state_after must be true or false');
      }
      if (q.set_presence !== undefined && !['online', 'offline', 'unavailable'].includes(q.set_presence)) {
        throw errors.invalidParam('set_presence must be online, offline or unavailable');
      }
      const filter = await resolveFilter(ctx, user.userId, q.filter);
      const since = q.since ? parseSyncToken(q.since) : undefined;
      const presence = (q.set_presence ?? 'online') as 'online' | 'offline' | 'unavailable';
      if (presence !== 'offline') {
        const current = await ctx.userData.getPresence(user.userId);
        if (current.presence !== presence) await ctx.userData.setPresence(user.userId, presence, current.status_msg ?? undefined);
      }
      const abort = new AbortController();
      const onClose = () => abort.abort(WAIT_OVER);
      // The response closing before we answer means the client went away.
      reply.raw.once('close', onClose);
      try {
        const response = await ctx.sync.sync({
          userId: user.userId,
          deviceId: user.deviceId,
          since,
          timeoutMs: Math.min(timeout, MAX_TIMEOUT_MS),
          fullState: q.full_state === 'true',
          filter,
          signal: abort.signal,
          stateAfter: q.use_state_after === 'true',
        });
        // Spec v1.16: `state_after` (state up to the end of the timeline) instead of `state`.
        if (q.use_state_after === 'true') {
          await applyStateAfter(ctx, { userId: user.userId, deviceId: user.deviceId, since, fullState: q.full_state === 'true', filter }, response);
        }
        return response;
      } finally {
        reply.raw.off('close', onClose);
      }
    });
  }
}
