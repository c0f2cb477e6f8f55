import { hostname, networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import type makeMdns from 'multicast-dns';

export const MDNS_SERVICE = '_matrix._tcp.local';

export interface MdnsOptions {
  /** Instance label, e.g. "Myelin on kitchen-pi". */
  instanceName: string;
  serverName: string;
  /** Client listener port announced in the SRV record. */
  port: number;
  /** Host label (without .local); the OS host name by default. */
  host?: string;
  /** IPv4 address of the interface to announce on (all interfaces by default). */
  interface?: string;
  log: Logger;
}

type Answer = { name: string; type: string; ttl?: number; data: unknown; flush?: boolean };

function localIPv4(only?: string): string[] {
  if (only) return [only];
  const all = Object.values(networkInterfaces()).flatMap((l) => l ?? []);
  const v4 = all.filter((a) => a.family === 'IPv4');
  const external = v4.filter((a) => !a.internal).map((a) => a.address);
  return external.length > 0 ? external : v4.map((a) => a.address);
}

/**
 * Announces the server on the local network with multicast DNS (RFC 6762/6763): a
 * `_matrix._tcp.local` service whose SRV record points at the client listener and whose TXT
 * record carries the server name, so apps on the same Wi-Fi can find the box without DNS.
 * Answers queries, announces at start and says goodbye (TTL 0) at stop.
 */
export class MdnsAnnouncer {
  private mdns: ReturnType<typeof makeMdns> | undefined;
  private readonly instance: string;
  private readonly host: string;

  constructor(private readonly opts: MdnsOptions) {
    const label = opts.instanceName.replace(/\./g, '-');
    this.instance = `${label}.${MDNS_SERVICE}`;
    this.host = `${(opts.host ?? hostname()).split('.')[0]}.local`;
  }

  records(ttl = 120): Answer[] {
    return [
      { name: MDNS_SERVICE, type: 'PTR', ttl, data: this.instance },
      { name: this.instance, type: 'SRV', ttl, flush: true, data: { priority: 0, weight: 0, port: this.opts.port, target: this.host } },
      {
        name: this.instance,
        type: 'TXT',
        ttl,
        flush: true,
        data: [`server_name=${this.opts.serverName}`, 'path=/_matrix/client'],
      },
      ...localIPv4(this.opts.interface).map((a) => ({ name: this.host, type: 'A', ttl, flush: true, data: a })),
    ];
  }

  /** Loads multicast-dns (only servers with mDNS on load it), then announces. */
  async start(): Promise<void> {
    if (this.mdns) return;
    const { default: create } = await import('multicast-dns');
    if (this.mdns) return;
    // Bound to 0.0.0.0 (bound to the interface address it would not receive the multicast group's packets).
    const m = create(this.opts.interface ? { interface: this.opts.interface, bind: '0.0.0.0' } : {});
    this.mdns = m;
    m.on('error', (err: Error) => this.opts.log.warn({ err: err.message }, 'mdns error'));
    m.on('query', (query) => {
      const all = this.records();
      const answers = all.filter((r) =>
        query.questions.some(
          (q) => q.name.toLowerCase() === r.name.toLowerCase() && (q.type === r.type || (q.type as string) === 'ANY'),
        ),
      );
      if (answers.length === 0) return;
      const rest = all.filter((r) => !answers.includes(r));
      m.respond({ answers: answers as never, additionals: rest as never });
    });
    m.respond({ answers: this.records() as never });
    this.opts.log.info({ service: this.instance, host: this.host, port: this.opts.port }, 'mdns: announcing the server on the local network');
  }

  async stop(): Promise<void> {
    const m = this.mdns;
    if (!m) return;
    this.mdns = undefined;
    await new Promise<void>((resolve) => m.respond({ answers: this.records(0) as never }, () => resolve()));
    await new Promise<void>((resolve) => m.destroy(() => resolve()));
  }
}
