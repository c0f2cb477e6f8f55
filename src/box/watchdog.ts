import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import type { Logger } from 'pino';

export interface WatchdogOptions {
  /** True when the relay (or the configured target) is reachable. */
  probe: () => Promise<boolean>;
  checkIntervalMs: number;
  /** Time without connectivity before the recovery command runs. */
  outageMs: number;
  /** Shell command (`/bin/sh -c`); empty: only log the outage. */
  command: string;
  /** At most one recovery per period, however long the outage lasts. */
  periodMs: number;
  timeoutMs: number;
  log: Logger;
  now?: () => number;
}

export interface WatchdogStatus {
  reachable: boolean | undefined;
  /** Start of the current outage (ms since the epoch). */
  downSince?: number;
  lastRecoveryAt?: number;
  lastRecoveryResult?: string;
  recoveries: number;
}

/** Tries a TCP connection to host:port; true if it opens within timeoutMs. */
export function tcpProbe(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * The connectivity watchdog: probes every checkIntervalMs; once nothing got through for
 * outageMs it runs the recovery command (e.g. restart the Wi-Fi interface), then again at most
 * once per periodMs while the outage lasts. One timer, re-armed after each check.
 */
export class ConnectivityWatchdog {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly now: () => number;
  private readonly st: WatchdogStatus = { reachable: undefined, recoveries: 0 };
  private recovery: Promise<void> | undefined;

  constructor(private readonly opts: WatchdogOptions) {
    this.now = opts.now ?? Date.now;
  }

  status(): WatchdogStatus {
    return { ...this.st };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.recovery;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      void this.check().finally(() => this.schedule());
    }, this.opts.checkIntervalMs);
    this.timer.unref();
  }

  /** One check: probe, track the outage, recover when due. Exposed for tests. */
  async check(): Promise<void> {
    let ok: boolean;
    try {
      ok = await this.opts.probe();
    } catch {
      ok = false;
    }
    const now = this.now();
    if (ok) {
      if (this.st.downSince !== undefined) {
        this.opts.log.info({ outage_ms: now - this.st.downSince }, 'watchdog: connectivity is back');
      }
      this.st.reachable = true;
      this.st.downSince = undefined;
      return;
    }
    if (this.st.downSince === undefined) {
      this.st.downSince = now;
      this.opts.log.warn('watchdog: relay unreachable');
    }
    this.st.reachable = false;
    const outage = now - this.st.downSince;
    if (outage < this.opts.outageMs) return;
    if (this.st.lastRecoveryAt !== undefined && now - this.st.lastRecoveryAt < this.opts.periodMs) return;
    if (this.recovery) return;
    this.st.lastRecoveryAt = now;
    this.st.recoveries += 1;
    if (!this.opts.command) {
      this.opts.log.warn({ outage_ms: outage }, 'watchdog: no connectivity and no recovery_command configured');
      return;
    }
    this.opts.log.warn({ outage_ms: outage, command: this.opts.command }, 'watchdog: no connectivity; running the recovery command');
    this.recovery = this.run().finally(() => {
      this.recovery = undefined;
    });
    await this.recovery;
  }

  private run(): Promise<void> {
    return new Promise((resolve) => {
      // Its own process group, so that a timeout kills what the command started too.
      const child = spawn('/bin/sh', ['-c', this.opts.command], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let output = '';
      const keep = (d: Buffer) => {
        if (output.length < 4000) output += d.toString();
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      const t = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, this.opts.timeoutMs);
      child.on('error', (err) => {
        clearTimeout(t);
        this.st.lastRecoveryResult = `failed to start: ${err.message}`;
        this.opts.log.error({ err: err.message }, 'watchdog: recovery command failed to start');
        resolve();
      });
      child.on('close', (code, signal) => {
        clearTimeout(t);
        this.st.lastRecoveryResult = signal ? `killed by ${signal}` : `exit ${code}`;
        this.opts.log[code === 0 ? 'info' : 'error'](
          { exit_code: code, signal, output: output.trim() || undefined },
          'watchdog: recovery command finished',
        );
        resolve();
      });
    });
  }
}
