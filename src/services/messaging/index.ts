import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { Database } from '../../storage/db.js';
import { ReportStore } from '../../storage/stores/reports.js';
import { SearchStore } from '../../storage/stores/search.js';
import { RateLimiter } from '../accounts/rate-limit.js';
import type { RoomContext } from '../rooms/index.js';
import { RoomUpgrader } from '../rooms/upgrade.js';
import type { Profile } from '../rooms/room-service.js';
import { SearchService } from './search.js';

/** The parts of the AppContext for search, reports, room upgrades and sending limits. */
export interface MessagingContext {
  readonly search: SearchService;
  readonly reports: ReportStore;
  readonly upgrades: RoomUpgrader;
  /** Per-user token buckets for sending room events. */
  readonly sendLimiter: RateLimiter;
  /** Per-user token buckets for content reports. */
  readonly reportLimiter: RateLimiter;
}

export function createMessagingServices(
  config: Config,
  database: Database,
  log: Logger,
  rooms: RoomContext,
  profile: (userId: string) => Promise<Profile>,
): MessagingContext {
  const search = new SearchService({
    store: new SearchStore(database),
    events: rooms.eventStore,
    formatter: rooms.formatter,
    visibility: rooms.visibility,
  });
  const upgrades = new RoomUpgrader({
    serverName: config.server_name,
    events: rooms.eventStore,
    aliases: rooms.aliasStore,
    roomEvents: rooms.roomEvents,
    profile,
    log: log.child({ subsystem: 'rooms' }),
  });
  return {
    search,
    reports: new ReportStore(database),
    upgrades,
    sendLimiter: new RateLimiter(config.rate_limits.message),
    reportLimiter: new RateLimiter(config.rate_limits.report),
  };
}
