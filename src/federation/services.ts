/**
 * Room federation services of one server: the incoming event handler, the outgoing sender
 * with its persistent queues, the resident and client sides of membership, and EDUs.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { SigningKey } from '../protocol/signing.js';
import type { Database } from '../storage/db.js';
import { FederationQueueStore } from '../storage/stores/federation-queue.js';
import type { RoomContext } from '../services/rooms/index.js';
import type { FederationContext } from './index.js';
import type { FederationEdus } from './edus.js';
import type { FederationDeviceLists } from './device-lists.js';
import { FederationEventHandler } from './event-handler.js';
import { PolicyServers } from './policy-server.js';
import { FederationRooms } from './rooms.js';
import { FederationSender, type SenderBackoff } from './sender.js';

export interface FederationRoomOptions {
  /** Retry delays of the sender (tests shorten them). */
  senderBackoff?: Partial<SenderBackoff>;
}

export interface FederationRoomContext {
  readonly federationRooms: {
    readonly handler: FederationEventHandler;
    readonly sender: FederationSender;
    readonly rooms: FederationRooms;
    readonly queue: FederationQueueStore;
    /** Policy servers of rooms: signatures for local events, checks of received ones. */
    readonly policy: PolicyServers;
    /** Set by wireFederation (needs the whole context). */
    edus: FederationEdus;
    /** Set by wireFederation: device lists and keys across servers. */
    devices: FederationDeviceLists;
  };
}

export function createFederationRoomServices(
  config: Config,
  database: Database,
  log: Logger,
  signingKey: SigningKey,
  deps: Pick<RoomContext, 'eventStore' | 'aliasStore' | 'roomEvents' | 'notifier'> & FederationContext,
  profile: (userId: string) => Promise<{ displayname?: string | null; avatar_url?: string | null }>,
  options: FederationRoomOptions = {},
): FederationRoomContext {
  const flog = log.child({ subsystem: 'federation' });
  const queue = new FederationQueueStore(database);
  const policy = new PolicyServers({
    serverName: config.server_name,
    events: deps.eventStore,
    client: deps.federation.client,
    log: flog.child({ part: 'policy' }),
  });
  const handler = new FederationEventHandler({
    serverName: config.server_name,
    database,
    events: deps.eventStore,
    roomEvents: deps.roomEvents,
    notifier: deps.notifier,
    keyring: deps.federation.keyring,
    client: deps.federation.client,
    log: flog,
    policy,
  });
  const sender = new FederationSender({
    serverName: config.server_name,
    database,
    events: deps.eventStore,
    queue,
    client: deps.federation.client,
    notifier: deps.notifier,
    log: flog.child({ part: 'sender' }),
    isAllowed: deps.federation.isAllowed,
    backoff: options.senderBackoff,
  });
  const rooms = new FederationRooms({
    serverName: config.server_name,
    signingKey,
    database,
    events: deps.eventStore,
    aliases: deps.aliasStore,
    roomEvents: deps.roomEvents,
    notifier: deps.notifier,
    client: deps.federation.client,
    keyring: deps.federation.keyring,
    handler,
    sender,
    queue,
    log: flog,
    profile,
  });
  return { federationRooms: { handler, sender, rooms, queue, policy, edus: undefined as unknown as FederationEdus, devices: undefined as unknown as FederationDeviceLists } };
}
