import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { MatrixError, errors } from '../errors.js';
import type { JsonObject, JsonValue } from '../protocol/json.js';
import type { AccountService, AppServiceAuthenticator, IdentityAssertion, Requester } from '../services/accounts/accounts.js';
import type { ClientEventFormatter } from '../services/rooms/client-events.js';
import type { Database } from '../storage/db.js';
import type { AliasStore } from '../storage/stores/aliases.js';
import { AppServiceStore } from '../storage/stores/appservice.js';
import type { EventStore } from '../storage/stores/events.js';
import type { Notifier, StreamChange } from '../streams/notifier.js';
import { AppServiceRequestError, isJsonObject, requestAppService } from './http-client.js';
import { AppService, loadRegistrations, type RegistrationData } from './registration.js';
import { TransactionSender, type DeliveryOptions, type SenderStatus } from './sender.js';

export { AppService, RegistrationError, loadRegistrations, parseRegistration } from './registration.js';
export type { SenderStatus } from './sender.js';

/** The part of the AppContext for application services. */
export interface AppServiceContext {
  readonly appservices: AppServiceManager;
}

export interface AppServiceDeps {
  accounts: AccountService;
  events: EventStore;
  aliases: AliasStore;
  formatter: ClientEventFormatter;
  notifier: Notifier;
}

function tokenKey(token: string): string {
  return createHash('sha256').update(token).digest('base64');
}

/**
 * Application services: registrations, as_token authentication with identity assertion,
 * namespace checks, transaction delivery, queries and third-party lookups.
 */
export class AppServiceManager implements AppServiceAuthenticator {
  readonly services: readonly AppService[];
  readonly store: AppServiceStore;
  private readonly byTokenKey = new Map<string, AppService>();
  private readonly senders = new Map<string, TransactionSender>();
  private readonly onChange = (c: StreamChange) => {
    if (c.stream === 'events') for (const s of this.senders.values()) s.eventsAnnounced(c.position);
  };
  private started = false;

  constructor(
    registrations: readonly RegistrationData[],
    config: Config,
    database: Database,
    private readonly log: Logger,
    private readonly deps: AppServiceDeps,
    readonly delivery: DeliveryOptions,
  ) {
    this.store = new AppServiceStore(database);
    this.services = registrations.map((r) => new AppService(r, config.server_name));
    for (const s of this.services) {
      this.byTokenKey.set(tokenKey(s.reg.asToken), s);
      if (s.reg.url !== null) {
        this.senders.set(
          s.id,
          new TransactionSender(s, {
            store: this.store,
            events: deps.events,
            aliases: deps.aliases,
            formatter: deps.formatter,
            log: log.child({ appservice: s.id }),
            options: delivery,
          }),
        );
      }
    }
  }

  // ---- lifecycle

  /** Registers each service's sender user if needed, then starts delivering transactions. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const s of this.services) {
      if (!(await this.deps.accounts.getUser(s.senderUserId))) {
        try {
          await this.deps.accounts.createAccount({ localpart: s.reg.senderLocalpart, password: null, allowReserved: true });
          this.log.info({ appservice: s.id, user_id: s.senderUserId }, 'registered the application service sender user');
        } catch (err) {
          if (!(err instanceof MatrixError && err.errcode === 'M_USER_IN_USE')) throw err;
        }
      }
    }
    this.deps.notifier.on('change', this.onChange);
    for (const sender of this.senders.values()) await sender.start();
    if (this.services.length > 0) this.log.info({ appservices: this.services.map((s) => s.id) }, 'application services loaded');
  }

  async stop(): Promise<void> {
    this.deps.notifier.off('change', this.onChange);
    await Promise.all([...this.senders.values()].map((s) => s.stop()));
  }

  status(appserviceId: string): SenderStatus | undefined {
    return this.senders.get(appserviceId)?.status();
  }

  /** Transactions queued for all services and not yet acknowledged. */
  get queueDepth(): number {
    let n = 0;
    for (const s of this.senders.values()) n += s.status().queued;
    return n;
  }

  // ---- lookup and authentication

  byToken(token: string): AppService | undefined {
    if (this.byTokenKey.size === 0) return undefined;
    return this.byTokenKey.get(tokenKey(token));
  }

  isAppServiceToken(token: string): boolean {
    return this.byToken(token) !== undefined;
  }

  byId(id: string): AppService | undefined {
    return this.services.find((s) => s.id === id);
  }

  /**
   * The requester of an as_token request: the sender user, or the `user_id` it asserts (which
   * must be in its user namespace and registered), with the asserted `device_id` if that
   * device belongs to the user (M_UNKNOWN_DEVICE otherwise). Without one the device ID is "".
   */
  async authenticate(token: string, assertion: IdentityAssertion): Promise<Requester | undefined> {
    const svc = this.byToken(token);
    if (!svc) return undefined;
    const userId = assertion.userId ?? svc.senderUserId;
    if (userId !== svc.senderUserId && !svc.userInNamespace(userId)) {
      throw errors.forbidden(`Application service ${svc.id} cannot masquerade as ${userId}: it is not in its user namespaces`);
    }
    const user = await this.deps.accounts.getUser(userId);
    if (!user) throw errors.forbidden(`Application service has not registered ${userId}`);
    if (user.deactivated) throw new MatrixError('M_USER_DEACTIVATED', 403, 'This account has been deactivated');
    let deviceId = '';
    if (assertion.deviceId !== undefined) {
      if (!(await this.deps.accounts.getDevice(userId, assertion.deviceId))) {
        throw new MatrixError('M_UNKNOWN_DEVICE', 400, `Device ${assertion.deviceId} does not belong to ${userId}`);
      }
      deviceId = assertion.deviceId;
    }
    return {
      userId,
      deviceId,
      isAdmin: user.is_admin === 1,
      isGuest: false,
      appserviceId: svc.id,
      ...(user.suspended ? { suspended: true } : {}),
      ...(user.locked ? { locked: true } : {}),
    };
  }

  /** The service of an as_token request, or M_MISSING_TOKEN / M_UNKNOWN_TOKEN (401). */
  requireToken(token: string | undefined): AppService {
    if (token === undefined) throw new MatrixError('M_MISSING_TOKEN', 401, 'Missing application service token');
    const svc = this.byToken(token);
    if (!svc) throw new MatrixError('M_UNKNOWN_TOKEN', 401, 'Unknown application service token', { soft_logout: false });
    return svc;
  }

  /** Whether a request counts against rate limits: the sender and services with `rate_limited: false` never do. */
  rateLimited(requester: Pick<Requester, 'userId' | 'appserviceId'> | undefined): boolean {
    if (!requester?.appserviceId) return true;
    const svc = this.byId(requester.appserviceId);
    if (!svc) return true;
    return requester.userId !== svc.senderUserId && svc.reg.rateLimited;
  }

  // ---- namespaces

  /**
   * Throws 400 M_EXCLUSIVE when `userId` may not be registered (or logged into) by this
   * requester: ordinary requests may not take a user in an exclusive namespace, a service may
   * only take users of its own namespaces.
   */
  checkUserId(userId: string, svc: AppService | undefined): void {
    if (svc) {
      if (userId !== svc.senderUserId && !svc.userInNamespace(userId)) {
        throw new MatrixError('M_EXCLUSIVE', 400, `${userId} is not in the user namespaces of application service ${svc.id}`);
      }
      return;
    }
    const owner = this.services.find((s) => s.userInNamespace(userId, true) || s.senderUserId === userId);
    if (owner) throw new MatrixError('M_EXCLUSIVE', 400, `${userId} is reserved by an application service`);
  }

  /** The same rule for room aliases (creation and deletion). */
  checkAlias(alias: string, requester: Pick<Requester, 'appserviceId'> | undefined): void {
    const svc = requester?.appserviceId ? this.byId(requester.appserviceId) : undefined;
    if (svc) {
      if (!svc.aliasInNamespace(alias) && this.services.some((s) => s !== svc && s.aliasInNamespace(alias, true))) {
        throw new MatrixError('M_EXCLUSIVE', 400, `${alias} is in the exclusive namespace of another application service`);
      }
      if (!svc.aliasInNamespace(alias)) {
        throw new MatrixError('M_EXCLUSIVE', 400, `${alias} is not in the alias namespaces of application service ${svc.id}`);
      }
      return;
    }
    if (this.services.some((s) => s.aliasInNamespace(alias, true))) {
      throw new MatrixError('M_EXCLUSIVE', 400, `${alias} is reserved by an application service`);
    }
  }

  // ---- queries

  private queryTargets(match: (s: AppService) => boolean): AppService[] {
    const hits = this.services.filter((s) => s.reg.url !== null && match(s));
    // Services owning the name exclusively are asked first.
    return [...hits.filter((s) => s.reg.namespaces.users.some((n) => n.exclusive) || s.reg.namespaces.aliases.some((n) => n.exclusive)), ...hits].filter(
      (s, i, a) => a.indexOf(s) === i,
    );
  }

  /**
   * Gives the application services owning `userId` a chance to create it
   * (`GET /_matrix/app/v1/users/{userId}`) when it is an unknown local user. Resolves with
   * whether the user exists afterwards.
   */
  async ensureUser(userId: string): Promise<boolean> {
    if (this.services.length === 0) return false;
    if (await this.deps.accounts.getUser(userId)) return true;
    for (const svc of this.queryTargets((s) => s.userInNamespace(userId))) {
      try {
        await requestAppService(svc, { method: 'GET', path: `/_matrix/app/v1/users/${encodeURIComponent(userId)}`, timeoutMs: this.delivery.requestTimeoutMs });
      } catch (err) {
        this.log.debug({ appservice: svc.id, user_id: userId, err: (err as Error).message }, 'user query not answered');
        continue;
      }
      if (await this.deps.accounts.getUser(userId)) return true;
    }
    return false;
  }

  /**
   * Resolves a local alias, asking the services whose namespace covers it
   * (`GET /_matrix/app/v1/rooms/{alias}`) when it is unknown.
   */
  async resolveAlias(alias: string): Promise<string | undefined> {
    const known = await this.deps.aliases.resolve(alias);
    if (known) return known;
    for (const svc of this.queryTargets((s) => s.aliasInNamespace(alias))) {
      try {
        await requestAppService(svc, { method: 'GET', path: `/_matrix/app/v1/rooms/${encodeURIComponent(alias)}`, timeoutMs: this.delivery.requestTimeoutMs });
      } catch (err) {
        this.log.debug({ appservice: svc.id, alias, err: (err as Error).message }, 'room alias query not answered');
        continue;
      }
      const roomId = await this.deps.aliases.resolve(alias);
      if (roomId) return roomId;
    }
    return undefined;
  }

  // ---- ping

  /** POST /_matrix/app/v1/ping on behalf of the service; maps failures to the spec's errors. */
  async ping(svc: AppService, transactionId: string | undefined): Promise<{ duration_ms: number }> {
    if (svc.reg.url === null) throw new MatrixError('M_URL_NOT_SET', 400, 'The application service has no URL');
    const t0 = performance.now();
    try {
      await requestAppService(svc, {
        method: 'POST',
        path: '/_matrix/app/v1/ping',
        body: transactionId !== undefined ? { transaction_id: transactionId } : {},
        timeoutMs: this.delivery.requestTimeoutMs,
      });
    } catch (err) {
      if (!(err instanceof AppServiceRequestError)) throw err;
      if (err.kind === 'timeout') throw new MatrixError('M_CONNECTION_TIMEOUT', 504, 'The application service did not answer in time');
      if (err.kind === 'status') throw new MatrixError('M_BAD_STATUS', 502, `The application service answered ${err.status}`, { status: err.status, body: err.body ?? '' });
      throw new MatrixError('M_CONNECTION_FAILED', 502, 'Cannot connect to the application service');
    }
    // It answers again: a waiting transaction need not sit out its backoff.
    this.senders.get(svc.id)?.retryNow();
    return { duration_ms: Math.round(performance.now() - t0) };
  }

  // ---- ephemeral data (typing, receipts, presence) and to-device messages

  private async roomInteresting(svc: AppService, roomId: string): Promise<boolean> {
    if (svc.roomInNamespace(roomId)) return true;
    if ((await this.deps.aliases.forRoom(roomId)).some((a) => svc.aliasInNamespace(a))) return true;
    return (await this.deps.events.members(roomId, ['join'])).some((m) => svc.isInterestedInUser(m));
  }

  /**
   * Offers ephemeral data to the services with `receive_ephemeral`: `m.typing` and `m.receipt`
   * (with `room_id`) go to services interested in the room; `m.presence` (with `sender`) to
   * services interested in the user or sharing a room with it. Called by the typing, receipt
   * and presence streams.
   */
  async pushEphemeral(edu: JsonObject): Promise<void> {
    const targets = [...this.senders.values()].filter((s) => s.service.reg.receiveEphemeral);
    if (targets.length === 0) return;
    const roomId = typeof edu['room_id'] === 'string' ? edu['room_id'] : undefined;
    const sender = typeof edu['sender'] === 'string' ? edu['sender'] : undefined;
    for (const t of targets) {
      const svc = t.service;
      let wanted = false;
      if (roomId) wanted = await this.roomInteresting(svc, roomId);
      else if (sender) {
        wanted = svc.isInterestedInUser(sender);
        if (!wanted) {
          for (const r of await this.deps.events.roomsForUser(sender, ['join'])) {
            if ((await this.deps.events.members(r.roomId, ['join'])).some((m) => svc.isInterestedInUser(m))) {
              wanted = true;
              break;
            }
          }
        }
      }
      if (wanted) t.pushEphemeral([edu]);
    }
  }

  /** Offers a to-device message (`{type, sender, content}`) for a user of a service's namespace. */
  pushToDevice(toUserId: string, toDeviceId: string, message: JsonObject): void {
    for (const t of this.senders.values()) {
      if (t.service.reg.receiveEphemeral && t.service.isInterestedInUser(toUserId)) {
        t.pushToDevice([{ ...message, to_user_id: toUserId, to_device_id: toDeviceId }]);
      }
    }
  }

  // ---- third-party networks

  private async askServices(services: AppService[], path: string, query?: Record<string, string | string[]>): Promise<Array<{ svc: AppService; json: JsonValue | undefined }>> {
    const out = await Promise.all(
      services
        .filter((s) => s.reg.url !== null)
        .map(async (svc) => {
          try {
            const res = await requestAppService(svc, { method: 'GET', path, query, timeoutMs: this.delivery.requestTimeoutMs });
            return { svc, json: res.json };
          } catch (err) {
            this.log.debug({ appservice: svc.id, path, err: (err as Error).message }, 'third-party query failed');
            return undefined;
          }
        }),
    );
    return out.filter((o) => o !== undefined);
  }

  /** Instance IDs clients see: `<appservice id>|<network id>`. */
  instanceId(svc: AppService, networkId: string): string {
    return `${svc.id}|${networkId}`;
  }

  /** The service and network of a third-party instance ID, or undefined. */
  parseInstanceId(instanceId: string): { svc: AppService; networkId: string } | undefined {
    for (const svc of this.services) {
      if (instanceId.startsWith(`${svc.id}|`)) return { svc, networkId: instanceId.slice(svc.id.length + 1) };
    }
    return undefined;
  }

  /** Metadata of one protocol, merged over the services providing it; undefined when none answers. */
  async protocol(protocol: string): Promise<JsonObject | undefined> {
    const answers = await this.askServices(
      this.services.filter((s) => s.reg.protocols.includes(protocol)),
      `/_matrix/app/v1/thirdparty/protocol/${encodeURIComponent(protocol)}`,
    );
    let merged: JsonObject | undefined;
    for (const { svc, json } of answers) {
      if (!isJsonObject(json)) continue;
      const instances = (Array.isArray(json['instances']) ? json['instances'] : []).filter(isJsonObject).map((inst) => ({
        ...inst,
        instance_id: this.instanceId(svc, typeof inst['network_id'] === 'string' ? inst['network_id'] : ''),
      }));
      if (!merged) merged = { ...json, instances };
      else merged['instances'] = [...(merged['instances'] as JsonValue[]), ...instances];
    }
    return merged;
  }

  async protocols(): Promise<JsonObject> {
    const names = [...new Set(this.services.flatMap((s) => s.reg.protocols))];
    const out: JsonObject = {};
    for (const name of names) {
      const p = await this.protocol(name);
      if (p) out[name] = p;
    }
    return out;
  }

  /** Third-party locations or users: by protocol and fields, or by alias / user ID across all services. */
  async thirdPartyLookup(kind: 'location' | 'user', protocol: string | undefined, query: Record<string, string | string[]>): Promise<JsonValue[]> {
    const services = protocol === undefined ? this.services.filter((s) => s.reg.protocols.length > 0) : this.services.filter((s) => s.reg.protocols.includes(protocol));
    if (protocol !== undefined && services.length === 0) throw errors.notFound(`Unknown protocol ${protocol}`);
    const path = `/_matrix/app/v1/thirdparty/${kind}${protocol !== undefined ? `/${encodeURIComponent(protocol)}` : ''}`;
    const answers = await this.askServices(services, path, query);
    return answers.flatMap((a) => (Array.isArray(a.json) ? a.json : []));
  }

  // ---- per-network room directories

  async setNetworkVisibility(requester: Requester, networkId: string, roomId: string, visibility: 'public' | 'private'): Promise<void> {
    const svc = requester.appserviceId ? this.byId(requester.appserviceId) : undefined;
    if (!svc) throw errors.forbidden('Only application services can publish rooms in a network directory');
    if (!(await this.deps.events.getRoom(roomId))) throw errors.notFound(`Unknown room ${roomId}`);
    await this.store.setNetworkVisibility(svc.id, networkId, roomId, visibility === 'public');
  }

  /**
   * Room IDs of the public room list: the server's own list by default, one network's with
   * `third_party_instance_id`, or both with `include_all_networks`.
   */
  async directoryRoomIds(mainList: () => Promise<string[]>, opts: { includeAllNetworks?: boolean; thirdPartyInstanceId?: string }): Promise<string[]> {
    if (opts.thirdPartyInstanceId !== undefined) {
      if (opts.includeAllNetworks) throw errors.invalidParam('third_party_instance_id cannot be used with include_all_networks');
      const net = this.parseInstanceId(opts.thirdPartyInstanceId);
      if (!net) throw errors.invalidParam(`Unknown third_party_instance_id ${opts.thirdPartyInstanceId}`);
      return this.store.networkRooms({ appserviceId: net.svc.id, networkId: net.networkId });
    }
    const main = await mainList();
    if (!opts.includeAllNetworks) return main;
    return [...new Set([...main, ...(await this.store.networkRooms())])];
  }
}

/** Reads the registrations listed in the config (throws RegistrationError on any problem) and builds the manager. */
export function createAppServiceServices(config: Config, database: Database, log: Logger, deps: AppServiceDeps): AppServiceContext {
  const regs = loadRegistrations(config.app_services, config.data_dir, config.server_name);
  const d = config.app_service_delivery;
  const appservices = new AppServiceManager(regs, config, database, log.child({ subsystem: 'appservice' }), deps, {
    batchSize: d.batch_size,
    retryInitialMs: d.retry_initial_ms,
    retryMaxMs: d.retry_max_ms,
    requestTimeoutMs: d.request_timeout_ms,
  });
  deps.accounts.appServiceAuth = appservices;
  return { appservices };
}
