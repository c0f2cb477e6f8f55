import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';

/** Sends one notification datagram ("READY=1", "WATCHDOG=1", …) to the service manager. */
export interface NotifyTransport {
  readonly name: string;
  send(message: string): Promise<void>;
  close(): void;
}

interface DgramSocketLike {
  sendTo(buf: Buffer, offset: number, length: number, destPath: string, cb?: (err: Error | undefined) => void): void;
  close(): void;
}

/** The socket address in NOTIFY_SOCKET: a path, or an abstract name written with a leading "@". */
function socketAddress(notifySocket: string): string {
  return notifySocket.startsWith('@') ? `\0${notifySocket.slice(1)}` : notifySocket;
}

/**
 * Datagrams sent from this process with node-unix-socket's SOCK_DGRAM socket (a prebuilt N-API
 * module, installed as an optional dependency): the sender is the main PID, so the unit needs
 * no NotifyAccess=all. Undefined when the module is not installed for this platform.
 */
export function datagramTransport(notifySocket: string): NotifyTransport | undefined {
  let mod: { DgramSocket: new () => DgramSocketLike };
  try {
    mod = createRequire(import.meta.url)('node-unix-socket') as typeof mod;
  } catch {
    return undefined;
  }
  let socket: DgramSocketLike | undefined;
  const dest = socketAddress(notifySocket);
  return {
    name: 'datagram',
    send(message: string) {
      socket ??= new mod.DgramSocket();
      const buf = Buffer.from(message);
      return new Promise((resolve, reject) => socket!.sendTo(buf, 0, buf.length, dest, (err) => (err ? reject(err) : resolve())));
    },
    close() {
      socket?.close();
      socket = undefined;
    },
  };
}

const SYSTEMD_NOTIFY = ['/usr/bin/systemd-notify', '/bin/systemd-notify'];

/**
 * Fallback: systemd's own `systemd-notify` tool, run once per message with --pid set to this
 * process. systemd only accepts messages from another PID with NotifyAccess=all (the unit in
 * deploy/systemd sets it).
 */
export function systemdNotifyTransport(notifySocket: string, binary?: string): NotifyTransport | undefined {
  const bin = binary ?? SYSTEMD_NOTIFY.find((p) => existsSync(p));
  if (!bin) return undefined;
  return {
    name: 'systemd-notify',
    send(message: string) {
      return new Promise((resolve, reject) =>
        execFile(
          bin,
          [`--pid=${process.pid}`, ...message.split('\n').filter(Boolean)],
          { env: { ...process.env, NOTIFY_SOCKET: notifySocket }, timeout: 10_000 },
          (err) => (err ? reject(err) : resolve()),
        ),
      );
    },
    close() {},
  };
}

export interface SdNotifyOptions {
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** Force a transport (tests); chosen from what is installed otherwise. */
  transport?: NotifyTransport;
}

/**
 * sd_notify(3) for Myelin under systemd (Type=notify): READY=1 once the listeners are up,
 * WATCHDOG=1 every half WatchdogSec while the event loop turns, STOPPING=1 at shutdown.
 * Does nothing when NOTIFY_SOCKET is not set (not started by systemd).
 */
export class SdNotify {
  private readonly transport: NotifyTransport | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Half the watchdog interval, when systemd asked for watchdog pings. */
  readonly watchdogIntervalMs: number | undefined;

  constructor(private readonly opts: SdNotifyOptions) {
    const socket = opts.env.NOTIFY_SOCKET;
    if (!socket) return;
    this.transport = opts.transport ?? datagramTransport(socket) ?? systemdNotifyTransport(socket);
    if (!this.transport) {
      opts.log.warn(
        { notify_socket: socket },
        'NOTIFY_SOCKET is set but neither node-unix-socket nor systemd-notify is available: systemd will not hear READY=1',
      );
    }
    const usec = Number(opts.env.WATCHDOG_USEC);
    const pid = opts.env.WATCHDOG_PID;
    if (Number.isFinite(usec) && usec > 0 && (!pid || Number(pid) === process.pid)) {
      this.watchdogIntervalMs = Math.max(1, Math.floor(usec / 1000 / 2));
    }
  }

  get enabled(): boolean {
    return this.transport !== undefined;
  }

  get transportName(): string | undefined {
    return this.transport?.name;
  }

  async notify(message: string): Promise<void> {
    if (!this.transport) return;
    try {
      await this.transport.send(message);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message, message }, 'sd_notify failed');
    }
  }

  /** READY=1, then the watchdog pings. */
  async ready(status?: string): Promise<void> {
    await this.notify(`READY=1\nMAINPID=${process.pid}${status ? `\nSTATUS=${status}` : ''}`);
    if (this.watchdogIntervalMs && this.transport && !this.timer) {
      this.timer = setInterval(() => void this.notify('WATCHDOG=1'), this.watchdogIntervalMs);
      this.timer.unref();
      void this.notify('WATCHDOG=1');
    }
  }

  async status(text: string): Promise<void> {
    await this.notify(`STATUS=${text}`);
  }

  /** STOPPING=1; no more watchdog pings. */
  async stopping(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.notify('STOPPING=1');
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.transport?.close();
  }
}
