/**
 * A real OpenSSH sshd for tunnel tests: its own config, host key and authorized_keys in a temp
 * directory, listening on a loopback port, started and killed by the test (never the system's).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { tempDir } from '../_util/server.js';

export const SSHD = ['/usr/sbin/sshd', '/usr/bin/sshd'].find((p) => existsSync(p));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function keygen(path: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'myelin-test', '-f', path]);
}

/** Every descendant of a process (sshd forks one child per connection, in its own session). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

export class TestSshd {
  readonly dir = tempDir('myelin-sshd-');
  readonly hostKey = join(this.dir, 'host_ed25519');
  readonly clientKey = join(this.dir, 'client_ed25519');
  readonly user = userInfo().username;
  proc: ChildProcess | undefined;
  log = '';

  constructor(
    readonly port: number,
    readonly allowedRemotePorts: number[],
  ) {
    keygen(this.hostKey);
    keygen(this.clientKey);
    // As docs/tunnel.md sets it up: the key may only open the agreed remote ports.
    const restrictions = ['restrict', 'port-forwarding', ...allowedRemotePorts.map((p) => `permitlisten="${p}"`)].join(',');
    writeFileSync(join(this.dir, 'authorized_keys'), `${restrictions} ${readFileSync(`${this.clientKey}.pub`, 'utf8')}`, { mode: 0o600 });
    writeFileSync(
      join(this.dir, 'sshd_config'),
      [
        `ListenAddress 127.0.0.1:${port}`,
        `HostKey ${this.hostKey}`,
        `PidFile ${join(this.dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(this.dir, 'authorized_keys')}`,
        'StrictModes no',
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        'PermitRootLogin prohibit-password',
        // The relay side of docs/tunnel.md: remote forwarding only, to the allowed ports only.
        'AllowTcpForwarding remote',
        'GatewayPorts no',
        `PermitListen ${allowedRemotePorts.join(' ')}`,
        'AllowAgentForwarding no',
        'X11Forwarding no',
        'PermitTTY no',
        'ClientAliveInterval 2',
        'ClientAliveCountMax 2',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
    );
    // Privilege separation directory required by sshd (exists on a system with openssh-server).
    if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  }

  /** The host key as `ssh-keygen -lf` prints it. */
  fingerprint(): string {
    return execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${this.hostKey}.pub`]).toString().split(' ')[1]!;
  }

  async start(): Promise<void> {
    const proc = spawn(SSHD!, ['-D', '-e', '-f', join(this.dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr!.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
    const deadline = Date.now() + 10_000;
    while (!/Server listening/.test(this.log)) {
      if (proc.exitCode !== null) throw new Error(`sshd exited: ${this.log}`);
      if (Date.now() > deadline) throw new Error(`sshd did not start: ${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private all(): number[] {
    const pid = this.proc?.pid;
    return pid ? [pid, ...descendants(pid)] : [];
  }

  /** Kills sshd and every session it forked: the relay is gone. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    const pids = this.all();
    const exited = new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)));
    for (const p of pids.reverse()) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await exited;
    this.proc = undefined;
  }

  /** SIGSTOP / SIGCONT sshd and its sessions: a relay that stops answering without closing anything. */
  signalAll(sig: 'SIGSTOP' | 'SIGCONT'): void {
    for (const p of this.all()) {
      try {
        process.kill(p, sig);
      } catch {
        // already gone
      }
    }
  }

  async close(): Promise<void> {
    this.signalAll('SIGCONT');
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
