import type { AppContext } from '../app.js';
import { MatrixError } from '../errors.js';
import { serverNameOf } from '../protocol/identifiers.js';

/**
 * Invite permission (spec v1.18): a local user who blocks invites cannot be invited, through
 * /invite, a member state event, /createRoom or federation: 403 M_INVITE_BLOCKED. Users of
 * other servers are their server's business.
 */
export async function inviteBlocked(ctx: AppContext, invitee: string): Promise<boolean> {
  return serverNameOf(invitee) === ctx.config.server_name && (await ctx.userData.blocksInvites(invitee));
}

export async function requireInvitable(ctx: AppContext, invitee: string): Promise<void> {
  if (await inviteBlocked(ctx, invitee)) throw new MatrixError('M_INVITE_BLOCKED', 403, `${invitee} does not accept invites`);
}
