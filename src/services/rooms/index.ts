import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { SigningKey } from '../../protocol/signing.js';
import type { Database } from '../../storage/db.js';
import { AliasStore } from '../../storage/stores/aliases.js';
import { EventStore } from '../../storage/stores/events.js';
import { RelationStore } from '../../storage/stores/relations.js';
import { Notifier } from '../../streams/notifier.js';
import { SyncService } from '../sync/sync-service.js';
import { ClientEventFormatter } from './client-events.js';
import { EventSigner } from './event-signer.js';
import { RoomEvents } from './room-events.js';
import { RoomService, type Profile } from './room-service.js';
import { HistoryVisibility } from './visibility.js';

/** The parts of the AppContext for rooms, events and sync. */
export interface RoomContext {
  readonly notifier: Notifier;
  readonly eventStore: EventStore;
  readonly aliasStore: AliasStore;
  readonly roomEvents: RoomEvents;
  readonly rooms: RoomService;
  readonly formatter: ClientEventFormatter;
  readonly sync: SyncService;
  /** Relations, threads and timestamp lookups. */
  readonly relations: RelationStore;
  /** Which events of a room a user may read (history visibility). */
  readonly visibility: HistoryVisibility;
}

export function createRoomServices(
  config: Config,
  database: Database,
  log: Logger,
  signingKey: SigningKey,
  profile: (userId: string) => Promise<Profile>,
): RoomContext {
  const notifier = new Notifier();
  const eventStore = new EventStore(database);
  const aliasStore = new AliasStore(database);
  const roomEvents = new RoomEvents({
    serverName: config.server_name,
    signingKey,
    database,
    events: eventStore,
    notifier,
    log: log.child({ subsystem: 'rooms' }),
    // A signing worker (where there is more than one core) only when configured: it costs ≈ 10 MiB.
    signer: new EventSigner({ key: signingKey, log: log.child({ subsystem: 'rooms' }), backend: config.signing_worker ? undefined : 'inline' }),
  });
  const rooms = new RoomService({ serverName: config.server_name, events: eventStore, aliases: aliasStore, roomEvents, profile, log: log.child({ subsystem: 'rooms' }) });
  const relations = new RelationStore(database);
  const visibility = new HistoryVisibility(eventStore, relations);
  const formatter = new ClientEventFormatter(eventStore, Date.now, relations, config.server_name);
  const sync = new SyncService({ events: eventStore, formatter, notifier, visibility, log: log.child({ subsystem: 'sync' }) });
  return { notifier, eventStore, aliasStore, roomEvents, rooms, formatter, sync, relations, visibility };
}
