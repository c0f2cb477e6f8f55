import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { originOf } from '../../federation/request-auth.js';
import { SpaceHierarchy } from '../../services/spaces/hierarchy.js';
import type { HttpApp } from '../http.js';
import { federationAuth } from './index.js';

/** GET /_matrix/federation/v1/hierarchy/{roomId}: a space held here and its children, for another server. */
export function registerFederationHierarchy(app: HttpApp, ctx: AppContext): void {
  const hierarchy = new SpaceHierarchy({ serverName: ctx.config.server_name, events: ctx.eventStore });
  app.get('/_matrix/federation/v1/hierarchy/:roomId', federationAuth(ctx), async (req) => {
    const origin = originOf(req);
    const roomId = (req.params as Record<string, string>).roomId!;
    const s = (req.query as { suggested_only?: string }).suggested_only;
    if (s !== undefined && s !== 'true' && s !== 'false') throw errors.invalidParam('suggested_only must be true or false');
    if ((await ctx.eventStore.getRoom(roomId)) && !(await ctx.federationRooms.handler.serverAllowed(roomId, origin))) {
      throw errors.forbidden('Server is denied by the room ACL');
    }
    return hierarchy.forServer(origin, roomId, s === 'true');
  });
}
