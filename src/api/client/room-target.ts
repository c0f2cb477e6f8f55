import type { AppContext } from '../../app.js';

/** Servers named by the `via` and (older) `server_name` query parameters, each of which may repeat. */
export function viaServers(query: unknown): string[] {
  const q = (query ?? {}) as Record<string, unknown>;
  const list = (v: unknown): string[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string' && x.length > 0);
  return [...new Set([...list(q['via']), ...list(q['server_name'])])];
}

/**
 * The room a `roomIdOrAlias` path parameter names. An alias is resolved here (asking the
 * application service whose namespace it is in, if any) or, when it belongs to another server
 * and is not known here, by that server; the servers it names as being in the room are added to
 * `via`.
 */
export async function resolveRoomTarget(ctx: AppContext, target: string, via: string[]): Promise<string> {
  if (target.startsWith('#') && ctx.rooms.remote && !(await ctx.aliasStore.resolve(target)) && !target.endsWith(`:${ctx.config.server_name}`)) {
    const found = await ctx.rooms.remote.queryAlias(target);
    via.push(...found.servers.filter((s) => !via.includes(s)));
    return found.roomId;
  }
  if (target.startsWith('#')) await ctx.appservices.resolveAlias(target);
  return ctx.rooms.resolveRoom(target);
}
