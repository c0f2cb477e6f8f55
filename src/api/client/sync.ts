import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import type { Filter } from '../../services/sync/filter.js';
import { parseSyncToken } from '../../services/sync/token.js';
import { ClientGone } from '../../streams/notifier.js';
import { LruCache } from '../../util/lru.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';
import { applyStateAfter } from './sync-state-after.js';

/** The longest a /sync may long-poll, whatever the client asks. */
const MAX_TIMEOUT_MS = 120_000;

const NO_FILTER: Filter = Object.freeze({});

/**
 * Parsed filters by their JSON text (a client sends the same filter with every /sync, inline
 * or by ID). Shared by every request that uses them, so frozen.
 */
const parsedFilters = new LruCache<string, Filter>(1024);

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** A filter's JSON text, parsed (undefined when not JSON). */
function parseFilter(json: string): Filter | undefined {
  const hit = parsedFilters.get(json);
  if (hit) return hit;
  let parsed: Filter;
  try {
    parsed = JSON.parse(json) as Filter;
  } catch {
    return undefined;
  }
  parsedFilters.set(json, deepFreeze(parsed));
  return parsed;
}

/**
 * Reads the `filter` parameter: inline JSON or the ID of a stored filter. The answer is shared
 * between requests (frozen): not to be changed.
 */
export async function resolveFilter(ctx: AppContext, userId: string, raw: string | undefined): Promise<Filter> {
  if (raw === undefined || raw === '') return NO_FILTER;
  if (raw.trimStart().startsWith('{')) {
    const inline = parseFilter(raw);
    if (!inline) throw errors.notJson('filter is not valid JSON');
    return inline;
  }
  const stored = /^[0-9]{1,15}$/.test(raw) ? await ctx.userData.store.getFilter(userId, Number(raw)) : undefined;
  const filter = stored === undefined ? undefined : parseFilter(stored);
  if (!filter) throw errors.notFound(`Unknown filter ${raw}`);
  return filter;
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
      const gone = new ClientGone();
      const onClose = gone.abort;
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
          signal: gone,
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
