import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { SpaceHierarchy } from '../../services/spaces/hierarchy.js';
import { optionalUser, requireUser } from '../auth.js';
import type { FastifyRequest } from 'fastify';
import type { HttpApp } from '../http.js';
import { V1 } from './paths.js';
import { resolveRoomTarget, viaServers } from './room-target.js';

type P = Record<string, string>;

function parseBool(v: string | undefined, name: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw errors.invalidParam(`${name} must be true or false`);
}

function parseInt(v: string | undefined, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min) throw errors.invalidParam(`${name} must be an integer of at least ${min}`);
  return n;
}

/** The unstable prefix of room summaries (MSC3266). */
const MSC3266_PREFIX = '/_matrix/client/unstable/im.nheko.summary';

/**
 * GET /_matrix/client/v1/rooms/{roomId}/hierarchy: the space tree, depth first, paginated.
 * GET /_matrix/client/v1/room_summary/{roomIdOrAlias}: one room's summary (also without an
 * access token for public, knockable and world-readable rooms), also at MSC3266's unstable paths.
 */
export function registerSpaces(app: HttpApp, ctx: AppContext): void {
  const hierarchy = new SpaceHierarchy({
    serverName: ctx.config.server_name,
    events: ctx.eventStore,
    fetchRemote: (server, roomId, suggestedOnly) =>
      ctx.federation.client.get(server, `/_matrix/federation/v1/hierarchy/${encodeURIComponent(roomId)}`, {
        query: { suggested_only: suggestedOnly ? 'true' : 'false' },
        timeoutMs: 10_000,
      }),
    log: ctx.log.child({ subsystem: 'spaces' }),
  });
  const summary = async (req: FastifyRequest) => {
    const user = await optionalUser(ctx, req);
    const target = (req.params as P).roomIdOrAlias!;
    const via = viaServers(req.query);
    const roomId = await resolveRoomTarget(ctx, target, via);
    return hierarchy.roomSummary(user?.userId, roomId, via);
  };
  // The paths of MSC3266 before it was stable: matrix-js-sdk (so Element) asks these.
  app.get(`${MSC3266_PREFIX}/summary/:roomIdOrAlias`, summary);
  app.get(`${MSC3266_PREFIX}/rooms/:roomIdOrAlias/summary`, summary);
  for (const prefix of V1) {
    app.get(`${prefix}/rooms/:roomId/hierarchy`, async (req) => {
      const user = await requireUser(ctx, req);
      const q = req.query as Record<string, string | undefined>;
      return hierarchy.forUser(user.userId, (req.params as P).roomId!, {
        suggestedOnly: parseBool(q['suggested_only'], 'suggested_only'),
        maxDepth: parseInt(q['max_depth'], 'max_depth', 0),
        limit: parseInt(q['limit'], 'limit', 1),
        from: q['from'],
      });
    });
    app.get(`${prefix}/room_summary/:roomIdOrAlias`, summary);
  }
}
