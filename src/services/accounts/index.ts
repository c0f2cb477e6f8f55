import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { Database } from '../../storage/db.js';
import { AccountStore } from '../../storage/stores/accounts.js';
import { UserDataStore } from '../../storage/stores/user-data.js';
import { Streams } from '../../streams/streams.js';
import { AccountService } from './accounts.js';
import { UserDataService } from './user-data.js';

export { AccountService, type Requester, type AccountHooks, type Profile, type SessionTokens } from './accounts.js';
export { UserDataService, type PresenceState, type PresenceStatus } from './user-data.js';

/** The parts of the AppContext for accounts, user data and their streams. */
export interface AccountContext {
  readonly accounts: AccountService;
  readonly userData: UserDataService;
  readonly streams: Streams;
}

export function createAccountServices(config: Config, database: Database, log: Logger): AccountContext {
  const streams = new Streams();
  const accounts = new AccountService(config, database, new AccountStore(database), log.child({ subsystem: 'accounts' }));
  const userData = new UserDataService(database, new UserDataStore(database), streams);
  return { accounts, userData, streams };
}
