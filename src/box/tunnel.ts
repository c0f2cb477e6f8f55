import { EventEmitter } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { createRequire } from 'node:module';
import type { Client, ClientChannel, TcpConnectionDetails } from 'ssh2';
import { backoffDelay } from './backoff.js';
import { pinnedFingerprint, sshFingerprint } from './host-key.js';

// ssh2 (with its native crypto add-ons) is loaded only when a tunnel connects, not at start-up.
const require = createRequire(import.meta.url);
let ssh2: typeof import('ssh2') | undefined;

export type TunnelState = 'connecting' | 'up' | 'reconnecting' | 'stopped';

/** One relay port forwarded back to a local listener. */
export interface TunnelForward {
  /** Listener name, for logs and status (client, federation, metrics). */
  name: string;
  /** Port the relay listens on (0: the relay picks one; see status().forwards[].boundPort). */
  remotePort: number;
  localHost: string;
  localPort: number;
}

export interface TunnelOptions {
  host: string;
  port: number;
  username: string;
  privateKey: Buffer | string;
  passphrase?: string;
  /** Pinned host key (fingerprint or public key line). */
  hostKey?: string;
  /** Accept any host key when none is pinned (first setup only; logged as a warning on every connection). */
  acceptUnknownHostKey?: boolean;
  /** Address the relay binds the forwarded ports to. */
  remoteBind: string;
  forwards: TunnelForward[];
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  readyTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  log: Logger;
  random?: () => number;
}

export interface TunnelStatus {
  state: TunnelState;
  /** When the current connection came up (ms since the epoch). */
  upSince?: number;
  lastError?: string;
  lastErrorAt?: number;
  /** Times the tunnel came back up after it had been up before. */
  reconnects: number;
  /** Connection attempts that failed (refused, timed out, host key refused, ports not granted). */
  failedAttempts: number;
  /** Delay before the next attempt, while reconnecting. */
  nextAttemptInMs?: number;
  /** Bytes received from the relay (requests) and sent to it (responses), over all connections. */
  bytesIn: number;
  bytesOut: number;
  /** Forwarded connections open now. */
  openConnections: number;
  hostKeyFingerprint?: string;
  forwards: { name: string; remotePort: number; boundPort?: number; localPort: number }[];
}

export interface TunnelEvents {
  state: [TunnelStatus];
  up: [TunnelStatus];
  down: [TunnelStatus];
}

/**
 * A self-healing reverse SSH tunnel: connects to the relay, asks it to listen on the forwarded
 * ports (tcpip-forward), and pipes each connection the relay accepts to the local listener.
 * SSH keepalives notice a dead link within keepaliveInterval × keepaliveCountMax; every loss
 * is followed by reconnection with exponential back-off and jitter, forever, until stop().
 */
export class ReverseTunnel extends EventEmitter<TunnelEvents> {
  private client: Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private everUp = false;
  private stopped = true;
  private readonly sockets = new Set<Socket>();
  private readonly pinned: string | undefined;
  private readonly st: TunnelStatus;
  private forwards: TunnelForward[];

  constructor(private readonly opts: TunnelOptions) {
    super();
    this.pinned = opts.hostKey ? pinnedFingerprint(opts.hostKey) : undefined;
    this.forwards = opts.forwards;
    this.st = {
      state: 'stopped',
      reconnects: 0,
      failedAttempts: 0,
      bytesIn: 0,
      bytesOut: 0,
      openConnections: 0,
      forwards: [],
    };
    this.setForwards(opts.forwards);
  }

  /** Replaces the forwarded ports (before start(): listeners' ports are known only once they listen). */
  setForwards(forwards: TunnelForward[]): void {
    this.forwards = forwards;
    this.st.forwards = forwards.map((f) => ({ name: f.name, remotePort: f.remotePort, localPort: f.localPort }));
  }

  /** A copy of the current state. */
  status(): TunnelStatus {
    return { ...this.st, openConnections: this.sockets.size, forwards: this.st.forwards.map((f) => ({ ...f })) };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  /** Closes the tunnel and every forwarded connection; no reconnection after this. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    for (const s of this.sockets) s.destroy();
    const client = this.client;
    this.client = undefined;
    this.setState('stopped');
    if (client) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        t.unref();
        client.once('close', () => {
          clearTimeout(t);
          resolve();
        });
        client.end();
      });
    }
  }

  private setState(state: TunnelState, extra: Partial<TunnelStatus> = {}): void {
    const was = this.st.state;
    Object.assign(this.st, extra);
    this.st.state = state;
    if (state !== 'reconnecting') this.st.nextAttemptInMs = undefined;
    if (state !== 'up') this.st.upSince = undefined;
    const status = this.status();
    this.emit('state', status);
    if (state === 'up' && was !== 'up') this.emit('up', status);
    if (was === 'up' && state !== 'up') this.emit('down', status);
  }

  private connect(): void {
    if (this.stopped) return;
    const o = this.opts;
    ssh2 ??= require('ssh2') as typeof import('ssh2');
    const client = new ssh2.Client();
    this.client = client;
    let hostKeyProblem: string | undefined;
    this.setState(this.everUp || this.attempt > 0 ? 'reconnecting' : 'connecting');
    client.on('ready', () => void this.onReady(client));
    client.on('tcp connection', (info, accept, reject) => this.onIncoming(info, accept, reject));
    client.on('error', (err) => this.onLost(client, hostKeyProblem ?? err.message));
    client.on('close', () => this.onLost(client, 'connection closed'));
    client.connect({
      host: o.host,
      port: o.port,
      username: o.username,
      privateKey: o.privateKey,
      passphrase: o.passphrase,
      keepaliveInterval: o.keepaliveIntervalMs,
      keepaliveCountMax: o.keepaliveCountMax,
      readyTimeout: o.readyTimeoutMs,
      hostVerifier: (key: Buffer) => {
        const fp = sshFingerprint(key);
        this.st.hostKeyFingerprint = fp;
        if (this.pinned) {
          if (fp === this.pinned) return true;
          hostKeyProblem = `relay host key ${fp} does not match the pinned tunnel.host_key ${this.pinned}: refusing to connect`;
          o.log.error({ relay: `${o.host}:${o.port}`, fingerprint: fp, pinned: this.pinned }, hostKeyProblem);
          return false;
        }
        if (o.acceptUnknownHostKey) {
          o.log.warn(
            { relay: `${o.host}:${o.port}`, fingerprint: fp },
            `TUNNEL HOST KEY NOT PINNED: accepting relay key ${fp} because tunnel.accept_unknown_host_key is true. ` +
              `Check it on the relay (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then set tunnel.host_key: "${fp}" ` +
              `and remove accept_unknown_host_key.`,
          );
          return true;
        }
        hostKeyProblem =
          `unknown relay host key ${fp}: refusing to connect. If it is the relay's key, set tunnel.host_key: "${fp}"`;
        o.log.error({ relay: `${o.host}:${o.port}`, fingerprint: fp }, hostKeyProblem);
        return false;
      },
    });
  }

  private async onReady(client: Client): Promise<void> {
    const o = this.opts;
    try {
      for (const [i, f] of this.forwards.entries()) {
        const bound = await new Promise<number>((resolve, reject) =>
          client.forwardIn(o.remoteBind, f.remotePort, (err, port) => (err ? reject(err) : resolve(port || f.remotePort))),
        ).catch((err: Error) => {
          throw new Error(`relay refused to listen on port ${f.remotePort} for ${f.name} (${err.message})`);
        });
        this.st.forwards[i]!.boundPort = bound;
      }
    } catch (err) {
      if (this.client === client) {
        o.log.warn({ err: (err as Error).message }, 'tunnel: port forwarding not granted; will retry');
        this.onLost(client, (err as Error).message);
        client.end();
      }
      return;
    }
    if (this.client !== client || this.stopped) return;
    if (this.everUp) this.st.reconnects += 1;
    this.everUp = true;
    this.attempt = 0;
    this.setState('up', { upSince: Date.now() });
    o.log.info(
      { relay: `${o.host}:${o.port}`, forwards: this.st.forwards.map((f) => `${f.boundPort}->${f.name}:${f.localPort}`), reconnects: this.st.reconnects },
      'tunnel up',
    );
  }

  /** A connection (or a failed attempt) ended: record why and schedule the next attempt. */
  private onLost(client: Client, reason: string): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.removeAllListeners('ready');
    client.on('error', () => {});
    client.end();
    if (this.stopped) return;
    const wasUp = this.st.state === 'up';
    if (!wasUp) this.st.failedAttempts += 1;
    const delay = backoffDelay(this.attempt, {
      initialMs: this.opts.backoffInitialMs,
      maxMs: this.opts.backoffMaxMs,
      random: this.opts.random,
    });
    this.attempt += 1;
    this.setState('reconnecting', { lastError: reason, lastErrorAt: Date.now(), nextAttemptInMs: delay });
    for (const f of this.st.forwards) f.boundPort = undefined;
    this.opts.log[wasUp ? 'warn' : 'info']({ reason, retry_in_ms: delay, attempt: this.attempt }, wasUp ? 'tunnel down' : 'tunnel attempt failed');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  private onIncoming(info: TcpConnectionDetails, accept: () => ClientChannel, reject: () => void): void {
    const i = this.st.forwards.findIndex((f) => f.boundPort === info.destPort || f.remotePort === info.destPort);
    const fwd = this.forwards[i];
    if (!fwd || this.stopped) {
      reject();
      return;
    }
    const local = netConnect({ host: fwd.localHost, port: fwd.localPort });
    this.sockets.add(local);
    let channel: ClientChannel | undefined;
    local.once('connect', () => {
      channel = accept();
      channel.on('data', (d: Buffer) => {
        this.st.bytesIn += d.length;
      });
      local.on('data', (d: Buffer) => {
        this.st.bytesOut += d.length;
      });
      channel.pipe(local).pipe(channel);
      channel.on('error', () => local.destroy());
      channel.on('close', () => local.destroy());
    });
    local.on('error', (err) => {
      if (!channel) {
        this.opts.log.warn({ err: err.message, listener: fwd.name, port: fwd.localPort }, 'tunnel: local listener unreachable');
        reject();
      } else channel.destroy();
    });
    local.on('close', () => {
      this.sockets.delete(local);
      channel?.end();
    });
  }
}
