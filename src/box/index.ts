import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type { SecureContextOptions, SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import type { HttpApp } from '../api/http.js';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics/registry.js';
import { ACME_CHALLENGE_PREFIX, AcmeManager, createChallengeServer } from './acme.js';
import { MdnsAnnouncer } from './mdns.js';
import { SdNotify } from './sd-notify.js';
import { ReverseTunnel, type TunnelForward, type TunnelStatus } from './tunnel.js';
import { ConnectivityWatchdog, tcpProbe } from './watchdog.js';

export { ReverseTunnel, type TunnelStatus, type TunnelState } from './tunnel.js';
export { AcmeManager } from './acme.js';
export { ConnectivityWatchdog, tcpProbe } from './watchdog.js';
export { SdNotify } from './sd-notify.js';
export { MdnsAnnouncer } from './mdns.js';
export { turnCredentials } from './turn.js';

type ListenerName = 'client' | 'federation' | 'metrics';

/** HTTPS options of a listener whose certificate comes from ACME. */
export interface ManagedHttpsOptions {
  cert?: string;
  key?: string;
  SNICallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
}

/**
 * What a server on a small board at home needs around its listeners: the reverse tunnel to a
 * relay, ACME certificates, the connectivity watchdog, systemd notification and mDNS. Each part
 * is optional and off unless configured (sd_notify: only under systemd).
 */
export class Box {
  readonly tunnel: ReverseTunnel | undefined;
  readonly acme: AcmeManager | undefined;
  readonly sdNotify: SdNotify;
  private watchdog: ConnectivityWatchdog | undefined;
  private mdns: MdnsAnnouncer | undefined;
  private challengeServer: Server | undefined;
  private started = false;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly metrics: Metrics | undefined,
    env: NodeJS.ProcessEnv,
  ) {
    this.sdNotify = new SdNotify({ env, log: log.child({ subsystem: 'sd_notify' }) });
    const a = config.acme;
    if (a.enabled) {
      const host = config.server_name.startsWith('[') ? config.server_name : config.server_name.split(':')[0]!;
      if (a.listeners.includes('client') && a.challenge_port === undefined) {
        throw new ConfigError(
          'acme.listeners includes "client", so the client listener serves HTTPS and cannot answer HTTP-01 challenges: ' +
            'set acme.challenge_port to a plain-HTTP port (the one port 80 of your public address reaches).',
        );
      }
      for (const l of a.listeners) {
        if (config.listeners[l].tls) {
          throw new ConfigError(`listeners.${l}.tls and acme.listeners both name the ${l} listener: use one or the other.`);
        }
      }
      this.acme = new AcmeManager({
        directoryUrl: a.directory_url,
        termsOfServiceAgreed: a.terms_of_service_agreed,
        email: a.email,
        domains: a.domains.length > 0 ? a.domains : [host],
        dir: join(config.data_dir, 'acme'),
        renewBeforeMs: a.renew_before_days * 86_400_000,
        retryMs: a.retry_ms,
        caPem: a.ca_file ? readFileSync(this.abs(a.ca_file), 'utf8') : undefined,
        log: log.child({ subsystem: 'acme' }),
      });
    }
    const t = config.tunnel;
    if (t.enabled) {
      if (!t.host) throw new ConfigError('tunnel.enabled is true but tunnel.host (the relay) is not set.');
      let privateKey: Buffer;
      try {
        privateKey = readFileSync(this.abs(t.private_key_file));
      } catch (err) {
        throw new ConfigError(
          `Cannot read the tunnel key tunnel.private_key_file (${this.abs(t.private_key_file)}): ${(err as Error).message}. ` +
            `Create one with: ssh-keygen -t ed25519 -N "" -f ${this.abs(t.private_key_file)}`,
        );
      }
      this.tunnel = new ReverseTunnel({
        host: t.host,
        port: t.port,
        username: t.user,
        privateKey,
        passphrase: t.passphrase,
        hostKey: t.host_key,
        acceptUnknownHostKey: t.accept_unknown_host_key,
        remoteBind: t.remote_bind,
        forwards: [], // filled in start(), once the listeners' ports are known
        keepaliveIntervalMs: t.keepalive_interval_ms,
        keepaliveCountMax: t.keepalive_count_max,
        readyTimeoutMs: t.ready_timeout_ms,
        backoffInitialMs: t.backoff_initial_ms,
        backoffMaxMs: t.backoff_max_ms,
        log: log.child({ subsystem: 'tunnel' }),
      });
    }
    const w = config.watchdog;
    if (w.enabled && !w.target && !t.enabled) {
      throw new ConfigError('watchdog.enabled is true but there is nothing to watch: set watchdog.target (host:port) or enable the tunnel.');
    }
    if (metrics) this.wireMetrics(metrics);
  }

  private abs(f: string): string {
    return isAbsolute(f) ? f : resolve(this.config.data_dir, f);
  }

  private wireMetrics(metrics: Metrics): void {
    const tunnel = this.tunnel;
    metrics.tunnelEnabled.set(tunnel ? 1 : 0);
    if (!tunnel) return;
    metrics.source(metrics.tunnelUp, () => (tunnel.status().state === 'up' ? 1 : 0));
    let counted = 0;
    tunnel.on('up', (s) => {
      metrics.tunnelReconnects.inc(s.reconnects - counted);
      counted = s.reconnects;
    });
    const name = 'myelin_tunnel_bytes_total';
    if (!metrics.registry.getSingleMetric(name)) {
      new Counter({
        name,
        help: 'Bytes carried by the tunnel: in = from the relay (requests), out = to the relay (responses).',
        labelNames: ['direction'],
        registers: [metrics.registry],
        collect() {
          const s = tunnel.status();
          this.reset();
          this.inc({ direction: 'in' }, s.bytesIn);
          this.inc({ direction: 'out' }, s.bytesOut);
        },
      });
    }
  }

  /** HTTPS options for a listener whose certificate comes from ACME; undefined otherwise. */
  httpsOptions(listener: ListenerName): ManagedHttpsOptions | undefined {
    const acme = this.acme;
    if (!acme || listener === 'metrics' || !this.config.acme.listeners.includes(listener)) return undefined;
    const pair = acme.certificate();
    return {
      ...(pair ? { cert: pair.cert, key: pair.key } : {}),
      SNICallback: (_servername, cb) => {
        const ctx = acme.secureContext();
        if (ctx) cb(null, ctx);
        else cb(new Error('no certificate yet (ACME issuance pending)'));
      },
    };
  }

  /** Routes the box adds to a listener: ACME HTTP-01 answers on the client and federation listeners. */
  registerRoutes(app: HttpApp, listener: ListenerName): void {
    const acme = this.acme;
    if (!acme || listener === 'metrics') return;
    app.get(`${ACME_CHALLENGE_PREFIX}:token`, async (req, reply) => {
      const answer = acme.challengeResponse((req.params as { token: string }).token);
      if (!answer) return reply.code(404).type('text/plain').send('unknown challenge');
      return reply.type('text/plain').send(answer);
    });
  }

  /** Starts everything after the listeners are up: tunnel, ACME, watchdog, mDNS, then READY=1. */
  async start(addresses: Map<ListenerName, AddressInfo>, servers: Map<ListenerName, Server>): Promise<void> {
    if (this.started) return;
    this.started = true;
    const c = this.config;
    if (this.tunnel) {
      const forwards: TunnelForward[] = [];
      for (const name of ['client', 'federation', 'metrics'] as const) {
        const remotePort = c.tunnel.forward[name];
        const addr = addresses.get(name);
        if (remotePort === false || !addr) continue;
        const bind = c.listeners[name].bind;
        const localHost = bind === '0.0.0.0' ? '127.0.0.1' : bind === '::' ? '::1' : bind;
        forwards.push({ name, remotePort, localHost, localPort: addr.port });
      }
      this.tunnel.setForwards(forwards);
      this.tunnel.start();
    }
    if (this.acme) {
      const acme = this.acme;
      for (const l of c.acme.listeners) {
        const server = servers.get(l) as (Server & { setSecureContext?: (o: SecureContextOptions) => void }) | undefined;
        acme.onCertificate((pair) => server?.setSecureContext?.({ cert: pair.cert, key: pair.key }));
      }
      if (c.acme.challenge_port !== undefined) {
        const srv = createChallengeServer(acme);
        this.challengeServer = srv;
        await new Promise<void>((res, rej) => {
          srv.once('error', rej);
          srv.listen(c.acme.challenge_port, c.listeners.client.bind, () => res());
        });
      }
      acme.start();
    }
    const w = c.watchdog;
    if (w.enabled) {
      const tunnel = this.tunnel;
      const target = w.target ? parseHostPort(w.target) : { host: c.tunnel.host, port: c.tunnel.port };
      const probeTimeout = Math.min(10_000, Math.max(1000, w.check_interval_ms));
      this.watchdog = new ConnectivityWatchdog({
        probe: async () => (tunnel?.status().state === 'up' ? true : tcpProbe(target.host, target.port, probeTimeout)),
        checkIntervalMs: w.check_interval_ms,
        outageMs: w.outage_ms,
        command: w.recovery_command,
        periodMs: w.recovery_period_ms,
        timeoutMs: w.recovery_timeout_ms,
        log: this.log.child({ subsystem: 'watchdog' }),
      });
      this.watchdog.start();
    }
    const clientAddr = addresses.get('client');
    if (c.mdns.enabled && clientAddr) {
      this.mdns = new MdnsAnnouncer({
        instanceName: c.mdns.instance_name ?? `Myelin ${c.server_name} on ${hostname().split('.')[0]}`,
        serverName: c.server_name,
        port: clientAddr.port,
        interface: c.mdns.interface,
        log: this.log.child({ subsystem: 'mdns' }),
      });
      await this.mdns.start();
    }
    await this.sdNotify.ready(`serving ${c.server_name}`);
  }

  /** Stops in reverse order, before the listeners close: STOPPING=1 first, the tunnel last. */
  async stop(): Promise<void> {
    await this.sdNotify.stopping();
    await this.mdns?.stop().catch(() => {});
    await this.watchdog?.stop();
    if (this.challengeServer) await new Promise<void>((res) => this.challengeServer!.close(() => res()));
    await this.acme?.stop();
    await this.tunnel?.stop();
    this.sdNotify.close();
  }

  tunnelStatus(): TunnelStatus | undefined {
    return this.tunnel?.status();
  }

  watchdogStatus() {
    return this.watchdog?.status();
  }
}

function parseHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
}

/** The part of the AppContext for the box. */
export interface BoxContext {
  readonly box: Box;
}

export function createBoxServices(config: Config, log: Logger, metrics: Metrics | undefined, env: NodeJS.ProcessEnv): BoxContext {
  return { box: new Box(config, log, metrics, env) };
}
