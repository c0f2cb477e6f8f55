import type { AppContext } from '../../app.js';
import type { HttpApp } from '../http.js';
import { registerVersions } from './versions.js';
import { registerSharedSecretRegistration } from '../admin/shared-secret-register.js';
import { registerAccount } from './account.js';
import { registerAccountData } from './account-data.js';
import { registerCapabilities } from './capabilities.js';
import { registerDevices } from './devices.js';
import { registerFilter } from './filter.js';
import { registerLogin } from './login.js';
import { registerPresence } from './presence.js';
import { registerProfile } from './profile.js';
import { registerRegister } from './register.js';
import { registerUserDirectory } from './user-directory.js';
import { registerCreateRoom } from './createRoom.js';
import { registerDirectory } from './directory.js';
import { registerMembership } from './membership.js';
import { registerMessages } from './messages.js';
import { registerPeeking } from './peeking.js';
import { registerRoomEvents } from './roomEvents.js';
import { registerSync } from './sync.js';
import { registerSlidingSync } from './sliding-sync.js';
import { registerTyping } from './typing.js';
import { registerReceipts } from './receipts.js';
import { registerPushRules } from './pushrules.js';
import { registerPushers } from './pushers.js';
import { registerRelations } from './relations.js';
import { registerReport } from './report.js';
import { registerRoomUpgrades } from './roomUpgrades.js';
import { registerSearch } from './search.js';
import { registerAppServiceApi } from '../appservice.js';
import { registerKeys } from './keys.js';
import { registerRoomKeys } from './room-keys.js';
import { registerToDevice } from './to-device.js';
import { registerDehydratedDevice } from './dehydrated-device.js';
import { registerVoip } from './voip.js';
import { registerSpaces } from './spaces.js';
import { registerMutualRooms } from './mutual-rooms.js';
import { registerAdmin } from './admin.js';
import { registerOpenId } from './openid.js';

/**
 * The client-server API (/_matrix/client/...). One file per endpoint family, named after the
 * spec's operation; each exports a register function called here.
 */
export function registerClientApi(app: HttpApp, ctx: AppContext): void {
  registerVersions(app, () => ({ 'org.matrix.msc3814': true, 'org.matrix.simplified_msc3575': true }));
  // Accounts, devices, authentication and per-user data.
  registerRegister(app, ctx);
  registerLogin(app, ctx);
  registerAccount(app, ctx);
  registerDevices(app, ctx);
  registerProfile(app, ctx);
  registerCapabilities(app, ctx);
  registerFilter(app, ctx);
  registerAccountData(app, ctx);
  registerPresence(app, ctx);
  registerUserDirectory(app, ctx);
  registerSharedSecretRegistration(app, ctx);
  registerAdmin(app, ctx);
  registerOpenId(app, ctx);
  // Rooms, events and sync.
  registerCreateRoom(app, ctx);
  registerMembership(app, ctx);
  registerRoomEvents(app, ctx);
  registerMessages(app, ctx);
  registerPeeking(app, ctx);
  registerDirectory(app, ctx);
  registerSync(app, ctx);
  registerSlidingSync(app, ctx);
  // Typing, receipts, read markers, push rules, pushers and notifications.
  registerTyping(app, ctx);
  registerReceipts(app, ctx);
  registerPushRules(app, ctx);
  registerPushers(app, ctx);
  registerRelations(app, ctx);
  registerSearch(app, ctx);
  registerReport(app, ctx);
  registerRoomUpgrades(app, ctx);
  registerSpaces(app, ctx);
  registerMutualRooms(app, ctx);
  // Application services (bridges).
  registerAppServiceApi(app, ctx);
  // End-to-end encryption.
  registerKeys(app, ctx);
  registerToDevice(app, ctx);
  registerDehydratedDevice(app, ctx);
  registerRoomKeys(app, ctx);
  // Calls: TURN credentials.
  registerVoip(app, ctx);
}
