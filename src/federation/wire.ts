/**
 * Connects room federation to the rest of the server: membership changes of local users in
 * rooms held elsewhere, remote invites in sync, to-device messages for remote users, EDUs.
 */
import type { AppContext } from '../app.js';
import { FederationDeviceLists } from './device-lists.js';
import { FederationEdus } from './edus.js';

export function wireFederation(ctx: AppContext): void {
  const { rooms } = ctx.federationRooms;
  ctx.federationRooms.edus = new FederationEdus(ctx);
  const devices = (ctx.federationRooms.devices = new FederationDeviceLists(ctx));
  ctx.e2ee.keys.remote = { query: (wanted) => devices.queryRemote(wanted), claim: (wanted) => devices.claimRemote(wanted) };
  ctx.rooms.remote = {
    queryAlias: (alias) => rooms.queryAlias(alias),
    needsRemote: (roomId) => rooms.needsRemote(roomId),
    join: (userId, roomId, servers, content) => rooms.joinRemote(userId, roomId, servers, content),
    leave: (userId, roomId, servers, reason) => rooms.leaveRemote(userId, roomId, servers, reason),
    knock: (userId, roomId, servers, reason) => rooms.knockRemote(userId, roomId, servers, reason),
    invite: (event, version) => rooms.inviteRemote(event, version),
  };
  // Local events in rooms using a policy server are signed by it before they are stored.
  const { policy } = ctx.federationRooms;
  ctx.roomEvents.beforePersist = (event, version, signed) => policy.signLocal(event, version, signed);
  ctx.sync.remoteInviteState = (roomId, userId) => rooms.inviteState(roomId, userId);
  ctx.e2ee.toDevice.remoteSender = (s, messages) => ctx.federationRooms.edus.sendToDevice(s.sender, s.type, `${s.senderDevice}/${s.txnId}`, messages);
}

/** Starts the sender (catching up on the event stream) and the EDU feed. */
export async function startFederation(ctx: AppContext): Promise<void> {
  await ctx.federationRooms.sender.start();
  await ctx.federationRooms.edus.start();
}

export async function stopFederation(ctx: AppContext): Promise<void> {
  ctx.federationRooms.edus.stop();
  await ctx.federationRooms.sender.stop();
}
