/**
 * DNS as an interface, so server discovery never depends on the machine's resolver in tests:
 * production uses the system's DNS servers, tests a static map (or their own DNS server).
 */
import { Resolver } from 'node:dns/promises';
import type { LookupAddress, LookupOneOptions, LookupAllOptions } from 'node:dns';
import { isIP } from 'node:net';

export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** "No such record" is an empty array; other failures (server unreachable, SERVFAIL) throw. */
export interface DnsResolver {
  resolveSrv(name: string): Promise<SrvRecord[]>;
  resolve4(host: string): Promise<string[]>;
  resolve6(host: string): Promise<string[]>;
}

const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'ENONAME', 'NXDOMAIN']);

async function orEmpty<T>(p: Promise<T[]>): Promise<T[]> {
  try {
    return await p;
  } catch (err) {
    if (NOT_FOUND.has((err as NodeJS.ErrnoException).code ?? '')) return [];
    throw err;
  }
}

/** The system's DNS servers (from /etc/resolv.conf), through node:dns. CNAMEs are followed. */
export function systemResolver(opts: { timeoutMs?: number; servers?: string[] } = {}): DnsResolver {
  const r = new Resolver({ timeout: opts.timeoutMs ?? 5000, tries: 2 });
  if (opts.servers) r.setServers(opts.servers);
  return {
    resolveSrv: (name) => orEmpty(r.resolveSrv(name)),
    resolve4: (host) => orEmpty(r.resolve4(host)),
    resolve6: (host) => orEmpty(r.resolve6(host)),
  };
}

export interface StaticDnsRecords {
  srv?: Record<string, SrvRecord[]>;
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
}

/**
 * A resolver answering from in-memory records (names compared case-insensitively, without a
 * trailing dot). The records object stays live: tests may add entries after creating it.
 * Every query is appended to `queries` (e.g. `SRV _matrix-fed._tcp.a.test`).
 */
export function staticResolver(records: StaticDnsRecords): DnsResolver & { queries: string[] } {
  const norm = (n: string) => n.toLowerCase().replace(/\.$/, '');
  const find = <T>(table: Record<string, T[]> | undefined, name: string): T[] => {
    if (!table) return [];
    for (const [k, v] of Object.entries(table)) if (norm(k) === norm(name)) return v.slice();
    return [];
  };
  const queries: string[] = [];
  return {
    queries,
    resolveSrv: async (name) => (queries.push(`SRV ${name}`), find(records.srv, name)),
    resolve4: async (host) => (queries.push(`A ${host}`), find(records.a, host)),
    resolve6: async (host) => (queries.push(`AAAA ${host}`), find(records.aaaa, host)),
  };
}

export class DnsLookupError extends Error {
  readonly code = 'ENOTFOUND';
  constructor(readonly hostname: string) {
    super(`no A or AAAA records for ${hostname}`);
    this.name = 'DnsLookupError';
  }
}

/** All addresses of a host name: AAAA and A records (IP literals answer themselves). */
export async function resolveAddresses(resolver: DnsResolver, host: string): Promise<LookupAddress[]> {
  const family = isIP(host);
  if (family) return [{ address: host, family }];
  const [v6, v4] = await Promise.allSettled([resolver.resolve6(host), resolver.resolve4(host)]);
  const out: LookupAddress[] = [];
  // Interleave the families (happy eyeballs tries them in this order).
  const six = v6.status === 'fulfilled' ? v6.value : [];
  const four = v4.status === 'fulfilled' ? v4.value : [];
  for (let i = 0; i < Math.max(six.length, four.length); i++) {
    if (i < four.length) out.push({ address: four[i]!, family: 4 });
    if (i < six.length) out.push({ address: six[i]!, family: 6 });
  }
  if (out.length === 0) {
    if (v4.status === 'rejected') throw v4.reason;
    if (v6.status === 'rejected') throw v6.reason;
    throw new DnsLookupError(host);
  }
  return out;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A `lookup` function for net/tls/https connections that resolves through `resolver`. */
export function lookupVia(resolver: DnsResolver) {
  return (hostname: string, options: LookupOneOptions | LookupAllOptions | number | undefined, callback: LookupCallback): void => {
    const all = typeof options === 'object' && options !== null && (options as LookupAllOptions).all === true;
    const wanted = typeof options === 'object' && options !== null ? options.family : typeof options === 'number' ? options : 0;
    resolveAddresses(resolver, hostname).then(
      (addrs) => {
        const fam = wanted === 'IPv4' ? 4 : wanted === 'IPv6' ? 6 : (wanted ?? 0);
        const usable = fam ? addrs.filter((a) => a.family === fam) : addrs;
        if (usable.length === 0) return callback(new DnsLookupError(hostname), all ? [] : '', undefined);
        if (all) callback(null, usable);
        else callback(null, usable[0]!.address, usable[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, all ? [] : '', undefined),
    );
  };
}
