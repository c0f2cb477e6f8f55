import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { DestinationStream, Logger } from 'pino';
import { registerClientApi } from './api/client/index.js';
import { registerFederationApi } from './api/federation/index.js';
import { registerHealth } from './api/health.js';
import { createHttpApp, type HttpApp } from './api/http.js';
import { registerWellKnown } from './api/well-known/index.js';
import { dataDirPaths, ensureDataDir, readSigningKey } from './config/first-run.js';
import { ConfigError, loadConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { createLogger } from './logger.js';
import type { SigningKey } from './protocol/signing.js';
import { Database, openDatabase } from './storage/db.js';
import { ServerMetaStore } from './storage/stores/server-meta.js';
import { createAccountServices, type AccountContext } from './services/accounts/index.js';
import { createOpenIdServices, type OpenIdContext } from './services/accounts/openid.js';
import { createRoomServices, type RoomContext } from './services/rooms/index.js';
import { wireRoomHooks } from './services/rooms/hooks.js';
import { createMessagingServices, type MessagingContext } from './services/messaging/index.js';
import { createEphemeralServices, wireEphemeral, type EphemeralContext } from './services/ephemeral/index.js';
import { createMetricsServices, instrumentHttp, registerMetricsEndpoint, type MetricsContext } from './metrics/index.js';
import { wireSubsystemMetrics } from './metrics/wiring.js';
import { createStatsServices, registerStats, type StatsContext } from './stats/index.js';
import { createAppServiceServices, loadRegistrations, type AppServiceContext } from './appservice/index.js';
import { wireAppServiceEphemeral } from './appservice/ephemeral.js';
import { createE2eeServices, type E2eeContext } from './services/e2ee/index.js';
import { createFederationServices, type FederationContext, type FederationOptions } from './federation/index.js';
import { createFederationRoomServices, type FederationRoomContext } from './federation/services.js';
import { startFederation, stopFederation, wireFederation } from './federation/wire.js';
import { registerFederationRooms } from './api/federation/rooms.js';
import { createBoxServices, type BoxContext } from './box/index.js';
import { createMediaServices, type MediaContext } from './media/index.js';
import { registerMediaApi } from './api/media/index.js';
import { registerFederationMediaApi } from './api/media/federation.js';
import { createPushServices, wirePushSender, type PushContext } from './services/push/index.js';
import { createSlidingSyncServices, type SlidingSyncContext } from './services/sliding-sync/index.js';

export interface CreateOptions {
  /** Data directory (default ./data, or MYELIN_DATA_DIR). */
  dataDir?: string;
  /** Configuration file (default <dataDir>/myelin.yaml, or MYELIN_CONFIG). */
  configPath?: string;
  /** Values applied over the file and the environment (tests, CLI flags). */
  overrides?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Log destination (default stdout). */
  logDestination?: DestinationStream;
  /** Registers additional routes on a listener's HTTP app (embedding the server in another program). */
  extend?: (app: HttpApp, listener: ListenerName) => void;
  /** Federation plumbing to replace (tests: DNS resolver, clock, dialled ports). */
  federation?: FederationOptions;
}

/** Everything a request handler or service may use, built explicitly per server instance. */
export interface AppContext extends AccountContext, OpenIdContext, RoomContext, MessagingContext, EphemeralContext, E2eeContext, AppServiceContext, MetricsContext, StatsContext, FederationContext, BoxContext, FederationRoomContext, MediaContext, PushContext, SlidingSyncContext {
  readonly config: Config;
  readonly log: Logger;
  readonly database: Database;
  readonly signingKey: SigningKey;
  readonly stores: { readonly serverMeta: ServerMetaStore };
}

export type ListenerName = 'client' | 'federation' | 'metrics';

/** One Myelin server: create() loads config and storage, start() listens, stop() shuts down gracefully. */
export class Myelin {
  private readonly apps = new Map<ListenerName, HttpApp>();
  private readonly addresses = new Map<ListenerName, AddressInfo>();
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly ctx: AppContext,
    private readonly extend?: CreateOptions['extend'],
  ) {}

  static async create(opts: CreateOptions = {}): Promise<Myelin> {
    const env = opts.env ?? process.env;
    const paths = dataDirPaths(opts.dataDir ?? env.MYELIN_DATA_DIR ?? './data', opts.configPath ?? env.MYELIN_CONFIG);
    const firstRunName = (opts.overrides?.server_name as string | undefined) ?? env.MYELIN_SERVER_NAME ?? 'localhost';
    const firstRun = ensureDataDir(paths, firstRunName);
    const config = loadConfig({ dataDir: paths.dataDir, configPath: paths.configPath, env, overrides: opts.overrides });
    // Application-service registrations are checked before anything is opened.
    loadRegistrations(config.app_services, config.data_dir, config.server_name);
    const log = createLogger(config.log_level, opts.logDestination);
    if (firstRun.createdConfig) log.info({ config: paths.configPath }, 'first run: wrote a new configuration file');
    if (firstRun.createdSigningKey) log.info({ key: paths.signingKeyPath }, 'first run: generated a new signing key');
    const signingKey = readSigningKey(paths.signingKeyPath);
    const database = await openDatabase(config.database, log.child({ subsystem: 'storage' }));
    const serverMeta = new ServerMetaStore(database);
    try {
      const owner = await serverMeta.get('server_name');
      if (owner === undefined) await serverMeta.set('server_name', config.server_name);
      else if (owner !== config.server_name) {
        throw new ConfigError(
          `The database belongs to server_name "${owner}" but the configuration says "${config.server_name}". ` +
            `A server's name cannot change once it has data: set server_name back to "${owner}", or use a new data directory.`,
        );
      }
    } catch (err) {
      await database.close();
      throw err;
    }
    let ctx: AppContext;
    try {
      ctx = Myelin.buildContext(config, log, database, signingKey, serverMeta, opts.federation, env);
    } catch (err) {
      // A subsystem refused its configuration: release the database before reporting it.
      await database.close();
      throw err;
    }
    return new Myelin(ctx, opts.extend);
  }

  private static buildContext(
    config: Config,
    log: Logger,
    database: Database,
    signingKey: SigningKey,
    serverMeta: ServerMetaStore,
    federationOptions?: FederationOptions,
    env: NodeJS.ProcessEnv = process.env,
  ): AppContext {
    const accounts = createAccountServices(config, database, log);
    const openid = createOpenIdServices(config, database, log, accounts.accounts);
    const profileOf = async (userId: string) => {
      const p = await accounts.accounts.getProfile(userId);
      return { displayname: p?.displayname ?? null, avatar_url: p?.avatar_url ?? null };
    };
    const rooms = createRoomServices(config, database, log, signingKey, profileOf);
    const e2ee = createE2eeServices(database, log, accounts, rooms);
    const appservices = createAppServiceServices(config, database, log, {
      accounts: accounts.accounts,
      events: rooms.eventStore,
      aliases: rooms.aliasStore,
      formatter: rooms.formatter,
      notifier: rooms.notifier,
    });
    const metrics = createMetricsServices(config, database, rooms.notifier);
    const stats = createStatsServices(config, metrics.metrics);
    const federation = createFederationServices(config, database, log, signingKey, federationOptions);
    const media = createMediaServices(config, database, log, federation.federation);
    const federationRooms = createFederationRoomServices(config, database, log, signingKey, { ...rooms, ...federation }, profileOf, federationOptions);
    const ephemeral = createEphemeralServices(config, database, log, { ...accounts, ...rooms });
    const messaging = createMessagingServices(config, database, log, rooms, profileOf);
    const box = createBoxServices(config, log, metrics.metrics, env);
    const push = createPushServices(config, log, { ...ephemeral, ...rooms, ...federation });
    const slidingSync = createSlidingSyncServices(database, log, { ...accounts, ...rooms, ...ephemeral, ...e2ee });
    const ctx: AppContext = { config, log, database, signingKey, stores: { serverMeta }, ...box, ...accounts, ...openid, ...rooms, ...messaging, ...ephemeral, ...e2ee, ...appservices, ...metrics, ...stats, ...federation, ...federationRooms, ...media, ...push, ...slidingSync };
    wireRoomHooks(ctx);
    rooms.sync.invitesBlocked = (userId) => accounts.userData.blocksInvites(userId);
    wireEphemeral(ctx);
    wireAppServiceEphemeral(ctx);
    wireFederation(ctx);
    wireSubsystemMetrics(ctx);
    // Application services that receive ephemeral data get the to-device messages of their users.
    ctx.e2ee.toDevice.localObserver = (userId, deviceId, message) => ctx.appservices.pushToDevice(userId, deviceId, message);
    wirePushSender(ctx);
    return ctx;
  }

  get config(): Config {
    return this.ctx.config;
  }

  get log(): Logger {
    return this.ctx.log;
  }

  private buildApp(name: ListenerName): HttpApp {
    const { config, log } = this.ctx;
    const tls = config.listeners[name].tls;
    const app = createHttpApp({
      log: log.child({ listener: name }),
      bodyLimit: config.max_request_body,
      https: tls ? { cert: readFileSync(tls.cert_file), key: readFileSync(tls.key_file) } : this.ctx.box.httpsOptions(name),
    });
    registerHealth(app);
    if (name === 'metrics') {
      registerMetricsEndpoint(app, this.ctx.metrics, config.listeners.metrics.basic_auth);
      this.extend?.(app, name);
      return app;
    }
    instrumentHttp(app, this.ctx.metrics, name);
    registerWellKnown(app, config);
    this.ctx.box.registerRoutes(app, name);
    if (name === 'client') registerClientApi(app, this.ctx);
    if (name === 'client') registerMediaApi(app, this.ctx);
    if (name === 'federation') registerFederationMediaApi(app, this.ctx);
    if (name === 'federation') {
      registerFederationApi(app, this.ctx);
      registerFederationRooms(app, this.ctx);
    }
    if (name === 'client' && config.stats.enabled) registerStats(app, this.ctx);
    this.extend?.(app, name);
    return app;
  }

  /** Builds the HTTP app of a listener without binding a port (for inject() tests). */
  async app(name: ListenerName): Promise<HttpApp> {
    let app = this.apps.get(name);
    if (!app) {
      app = this.buildApp(name);
      this.apps.set(name, app);
      await app.ready();
    }
    return app;
  }

  /** Starts every enabled listener; resolves with their URLs. */
  async start(): Promise<Partial<Record<ListenerName, string>>> {
    await this.ctx.appservices.start();
    await startFederation(this.ctx);
    await this.ctx.pushSender.start();
    const urls: Partial<Record<ListenerName, string>> = {};
    for (const name of ['client', 'federation', 'metrics'] as const) {
      const l = this.ctx.config.listeners[name];
      if (!l.enabled) continue;
      const app = await this.app(name);
      await app.listen({ host: l.bind, port: l.port });
      const addr = app.server.address() as AddressInfo;
      this.addresses.set(name, addr);
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      urls[name] = `${l.tls || this.ctx.box.httpsOptions(name) ? 'https' : 'http'}://${host}:${addr.port}`;
      this.log.info({ listener: name, url: urls[name] }, `${name} ${name === 'metrics' ? 'endpoint' : 'API'} listening on ${urls[name]}`);
    }
    // Tunnel, certificates, watchdog and mDNS once the listeners are up; then READY=1 to systemd.
    const servers = new Map([...this.apps].map(([n, app]) => [n, app.server] as const));
    await this.ctx.box.start(this.addresses, servers);
    return urls;
  }

  address(name: ListenerName): AddressInfo | undefined {
    return this.addresses.get(name);
  }

  /**
   * Graceful shutdown: stop accepting connections, let in-flight requests finish (up to
   * shutdown_timeout_ms, then cut them), then close the database. Safe to call twice.
   */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const timeoutMs = this.ctx.config.shutdown_timeout_ms;
    this.log.info({ timeout_ms: timeoutMs }, 'shutting down');
    // STOPPING=1 to systemd; tunnel, certificates, watchdog and mDNS stop before the listeners.
    await this.ctx.box.stop();
    // Long-polling /sync requests answer now instead of holding the shutdown.
    this.ctx.notifier.close();
    const closing = Promise.all([...this.apps.values()].map((app) => app.close()));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      closing.then(() => false),
      new Promise<boolean>((res) => {
        timer = setTimeout(() => res(true), timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.log.warn({ timeout_ms: timeoutMs }, 'requests still running at the shutdown deadline; closing their connections');
      for (const app of this.apps.values()) app.server.closeAllConnections();
      await closing;
    }
    await this.ctx.appservices.stop();
    await stopFederation(this.ctx);
    await this.ctx.pushSender.stop();
    await this.ctx.pushActions.stop();
    this.ctx.federation.close();
    this.ctx.stats.stop();
    this.ctx.metrics.close();
    await this.ctx.roomEvents.stop();
    await this.ctx.database.close();
    this.log.info('stopped');
  }
}
