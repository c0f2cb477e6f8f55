import type { Logger } from 'pino';
import type { Database } from '../../storage/db.js';
import { E2eeStore } from '../../storage/stores/e2ee.js';
import type { AccountContext } from '../accounts/index.js';
import type { RoomContext } from '../rooms/index.js';
import { KeyBackupService } from './backup.js';
import { DehydratedDeviceService } from './dehydrated-devices.js';
import { DeviceListService } from './device-lists.js';
import { KeyService } from './keys.js';
import { ToDeviceService } from './to-device.js';

export { KeyService } from './keys.js';
export { DeviceListService } from './device-lists.js';
export { ToDeviceService, TO_DEVICE_BATCH } from './to-device.js';
export { KeyBackupService, MEGOLM_BACKUP_V1 } from './backup.js';
export { DehydratedDeviceService } from './dehydrated-devices.js';

/** The parts of the AppContext for end-to-end encryption. */
export interface E2eeContext {
  readonly e2ee: {
    readonly keys: KeyService;
    readonly deviceLists: DeviceListService;
    readonly toDevice: ToDeviceService;
    readonly backup: KeyBackupService;
    readonly dehydrated: DehydratedDeviceService;
  };
}

/**
 * Builds the e2ee services and connects them: device creation and deletion mark device-list
 * changes (deletion also drops the device's keys and pending messages), and /sync gains
 * to_device, device_lists, device_one_time_keys_count and device_unused_fallback_key_types.
 */
export function createE2eeServices(database: Database, log: Logger, accounts: AccountContext, rooms: RoomContext): E2eeContext {
  const e2eLog = log.child({ subsystem: 'e2ee' });
  const store = new E2eeStore(database);
  const isLocal = (u: string) => accounts.accounts.isLocalUser(u);
  const deviceLists = new DeviceListService(database, store, rooms.eventStore, rooms.notifier, e2eLog);
  const keys = new KeyService(database, store, accounts.accounts.store, deviceLists, isLocal);
  const toDevice = new ToDeviceService(database, store, accounts.accounts.store, rooms.notifier, isLocal, e2eLog);
  const backup = new KeyBackupService(database, store);
  const dehydrated = new DehydratedDeviceService(database, store, accounts.accounts, keys, e2eLog);

  accounts.accounts.hooks.onDeviceCreated.push((userId) => deviceLists.markChanged([userId]));
  accounts.accounts.hooks.onDevicesDeleted.push((userId, deviceIds) => keys.devicesDeleted(userId, deviceIds));

  rooms.sync.addExtension(toDevice.syncExtension());
  rooms.sync.addExtension(
    deviceLists.syncExtension(async (w) => {
      w.response.device_one_time_keys_count = await keys.oneTimeKeyCounts(w.req.userId, w.req.deviceId);
      w.response.device_unused_fallback_key_types = await keys.unusedFallbackKeyTypes(w.req.userId, w.req.deviceId);
    }),
  );
  return { e2ee: { keys, deviceLists, toDevice, backup, dehydrated } };
}
