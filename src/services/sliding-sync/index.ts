import type { Logger } from 'pino';
import type { Database } from '../../storage/db.js';
import { SlidingSyncStore } from '../../storage/stores/sliding-sync.js';
import type { AccountContext } from '../accounts/index.js';
import type { E2eeContext } from '../e2ee/index.js';
import type { EphemeralContext } from '../ephemeral/index.js';
import type { RoomContext } from '../rooms/index.js';
import { BumpStamps } from './bump.js';
import { SlidingSyncService } from './service.js';

export { SlidingSyncService, MAX_TIMELINE_LIMIT } from './service.js';
export type { SlidingSyncBody, SlidingSyncResponse, SlidingSyncRequest } from './types.js';

/** The part of the AppContext for simplified sliding sync (MSC4186). */
export interface SlidingSyncContext {
  readonly slidingSync: SlidingSyncService;
}

export function createSlidingSyncServices(
  database: Database,
  log: Logger,
  deps: Pick<AccountContext, 'userData'> & RoomContext & Pick<EphemeralContext, 'typing' | 'receipts' | 'pushRules' | 'pushActions'> & E2eeContext,
): SlidingSyncContext {
  const bumps = new BumpStamps(new SlidingSyncStore(database), deps.notifier);
  const slidingSync = new SlidingSyncService({
    events: deps.eventStore,
    formatter: deps.formatter,
    visibility: deps.visibility,
    notifier: deps.notifier,
    sync: deps.sync,
    userData: deps.userData,
    pushActions: deps.pushActions,
    pushRules: deps.pushRules,
    typing: deps.typing,
    receipts: deps.receipts,
    keys: deps.e2ee.keys,
    deviceLists: deps.e2ee.deviceLists,
    toDevice: deps.e2ee.toDevice,
    bumps,
    log: log.child({ subsystem: 'sliding-sync' }),
  });
  return { slidingSync };
}
