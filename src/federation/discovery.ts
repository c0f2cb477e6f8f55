/**
 * Server discovery (server-server API, "Resolving server names"): from a server name to the
 * address to connect to, the `Host` header and the name the TLS certificate must carry.
 *
 *   1. IP literal → that IP, given port or 8448; certificate for the IP.
 *   2. hostname with explicit port → A/AAAA of hostname; certificate for hostname.
 *   3. `https://<hostname>/.well-known/matrix/server` → delegated `host[:port]`:
 *      3.1 IP literal, 3.2 explicit port, 3.3 SRV `_matrix-fed._tcp`, 3.4 SRV `_matrix._tcp`,
 *      3.5 port 8448 — certificate for the delegated hostname.
 *   4. SRV `_matrix-fed._tcp.<hostname>`, 5. SRV `_matrix._tcp.<hostname>`,
 *   6. hostname port 8448 — certificate for the hostname.
 */
import type { Logger } from 'pino';
import { formatServerName, parseServerName, type ServerName } from '../protocol/identifiers.js';
import { LruCache } from '../util/lru.js';
import type { SrvRecord } from './dns.js';
import { FederationDiscoveryError, FederationError, FederationTimeoutError } from './errors.js';
import type { ConnectTarget, FederationTransport } from './transport.js';

export const DEFAULT_FEDERATION_PORT = 8448;

export type DiscoveryStep =
  | 'ip-literal'
  | 'explicit-port'
  | 'well-known-ip-literal'
  | 'well-known-explicit-port'
  | 'well-known-srv'
  | 'well-known-srv-legacy'
  | 'well-known-default-port'
  | 'srv'
  | 'srv-legacy'
  | 'default-port';

export interface ResolvedServer extends ConnectTarget {
  /** The server name that was resolved (what requests are signed for). */
  serverName: string;
  /** Which rule of the spec produced this target. */
  step: DiscoveryStep;
  /** The `m.server` value when a well-known file delegated the name. */
  delegatedTo?: string;
}

/** Cache times for `/.well-known/matrix/server` (spec recommendations). */
export const WELL_KNOWN_DEFAULT_CACHE_MS = 24 * 3600_000;
export const WELL_KNOWN_MAX_CACHE_MS = 48 * 3600_000;
export const WELL_KNOWN_MIN_CACHE_MS = 5 * 60_000;
export const WELL_KNOWN_INVALID_CACHE_MS = 3600_000;
/** Unreachable well-known hosts: back off from this, doubling per failure, up to an hour. */
export const WELL_KNOWN_FAILURE_CACHE_MS = 5 * 60_000;
export const WELL_KNOWN_MAX_SIZE = 50 * 1024;
export const WELL_KNOWN_TIMEOUT_MS = 10_000;
const MAX_REDIRECTS = 5;

export interface WellKnownResult {
  /** The `m.server` value, or undefined when there is no valid delegation. */
  server?: string;
  /** Why there is none (HTTP status, parse failure, connection error). */
  error?: string;
  /** When the cached result expires (ms since epoch). */
  expiresAt: number;
  /** Consecutive failed fetches (for backoff). */
  failures: number;
}

export interface DiscoveryOptions {
  transport: FederationTransport;
  log?: Logger;
  now?: () => number;
  /** Entries kept in the well-known cache. */
  cacheSize?: number;
  /** Random in [0,1) for SRV weight selection (tests make it deterministic). */
  random?: () => number;
}

/**
 * How long a well-known response may be cached, from its `Cache-Control` / `Expires` headers:
 * `no-store`/`no-cache` and `max-age` are honoured, otherwise `Expires` (relative to `Date`),
 * otherwise 24 h; always within [5 min, 48 h].
 */
export function wellKnownCachePeriod(headers: Record<string, string | string[] | undefined>, now: number): number {
  const header = (name: string): string | undefined => {
    const v = headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  };
  let period: number | undefined;
  const cc = header('cache-control');
  if (cc) {
    const directives = cc.split(',').map((d) => d.trim().toLowerCase());
    if (directives.some((d) => d === 'no-store' || d === 'no-cache')) period = 0;
    else {
      const maxAge = directives.map((d) => /^max-age\s*=\s*"?(\d+)"?$/.exec(d)).find((m) => m);
      if (maxAge) period = Number(maxAge[1]) * 1000;
    }
  }
  if (period === undefined) {
    const expires = header('expires');
    if (expires !== undefined) {
      const exp = Date.parse(expires);
      const date = Date.parse(header('date') ?? '');
      // An invalid Expires (e.g. "0") means already expired (RFC 9111 §5.3).
      period = Number.isFinite(exp) ? Math.max(0, exp - (Number.isFinite(date) ? date : now)) : 0;
    }
  }
  if (period === undefined) period = WELL_KNOWN_DEFAULT_CACHE_MS;
  return Math.min(WELL_KNOWN_MAX_CACHE_MS, Math.max(WELL_KNOWN_MIN_CACHE_MS, period));
}

/** Picks one SRV target: lowest priority, then weighted random (RFC 2782). "." means no service. */
export function pickSrv(records: SrvRecord[], random: () => number = Math.random): SrvRecord | undefined {
  const usable = records.filter((r) => r.name !== '' && r.name !== '.');
  if (usable.length === 0) return undefined;
  const best = Math.min(...usable.map((r) => r.priority));
  const group = usable.filter((r) => r.priority === best);
  const total = group.reduce((s, r) => s + r.weight, 0);
  if (total === 0) return group[Math.floor(random() * group.length)] ?? group[0];
  let x = random() * total;
  for (const r of group) {
    x -= r.weight;
    if (x < 0) return r;
  }
  return group[group.length - 1];
}

function stripDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

export class ServerDiscovery {
  private readonly transport: FederationTransport;
  private readonly log: Logger | undefined;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly wellKnown: LruCache<string, WellKnownResult>;
  private readonly inflight = new Map<string, Promise<WellKnownResult>>();

  constructor(opts: DiscoveryOptions) {
    this.transport = opts.transport;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.wellKnown = new LruCache(opts.cacheSize ?? 10_000);
  }

  /** Resolves a server name to where requests for it go. Throws FederationDiscoveryError. */
  async resolve(serverName: string): Promise<ResolvedServer> {
    let name: ServerName;
    try {
      name = parseServerName(serverName);
    } catch (err) {
      throw new FederationDiscoveryError(serverName, `invalid server name ${JSON.stringify(serverName)}`, { cause: err });
    }
    // 1. IP literal.
    if (name.kind !== 'dns') {
      return {
        serverName,
        step: 'ip-literal',
        host: name.host,
        port: name.port ?? DEFAULT_FEDERATION_PORT,
        hostHeader: formatServerName(name),
        tlsName: name.host,
      };
    }
    const hostname = stripDot(name.host);
    // 2. Hostname with explicit port.
    if (name.port !== undefined) {
      return { serverName, step: 'explicit-port', host: hostname, port: name.port, hostHeader: serverName, tlsName: hostname };
    }
    // 3. Well-known delegation.
    const wk = await this.getWellKnown(hostname);
    if (wk.server !== undefined) {
      const d = parseServerName(wk.server);
      if (d.kind !== 'dns') {
        return {
          serverName,
          step: 'well-known-ip-literal',
          delegatedTo: wk.server,
          host: d.host,
          port: d.port ?? DEFAULT_FEDERATION_PORT,
          hostHeader: formatServerName(d),
          tlsName: d.host,
        };
      }
      const dhost = stripDot(d.host);
      if (d.port !== undefined) {
        return {
          serverName,
          step: 'well-known-explicit-port',
          delegatedTo: wk.server,
          host: dhost,
          port: d.port,
          hostHeader: `${dhost}:${d.port}`,
          tlsName: dhost,
        };
      }
      const viaSrv = await this.srv(serverName, dhost, 'well-known-srv', 'well-known-srv-legacy');
      if (viaSrv) return { ...viaSrv, delegatedTo: wk.server };
      return {
        serverName,
        step: 'well-known-default-port',
        delegatedTo: wk.server,
        host: dhost,
        port: DEFAULT_FEDERATION_PORT,
        hostHeader: dhost,
        tlsName: dhost,
      };
    }
    // 4./5. SRV records of the hostname.
    const viaSrv = await this.srv(serverName, hostname, 'srv', 'srv-legacy');
    if (viaSrv) return viaSrv;
    // 6. Port 8448.
    return { serverName, step: 'default-port', host: hostname, port: DEFAULT_FEDERATION_PORT, hostHeader: hostname, tlsName: hostname };
  }

  private async srv(
    serverName: string,
    hostname: string,
    step: DiscoveryStep,
    legacyStep: DiscoveryStep,
  ): Promise<ResolvedServer | undefined> {
    const resolver = this.transport.resolver;
    for (const [prefix, s] of [
      ['_matrix-fed._tcp.', step],
      ['_matrix._tcp.', legacyStep],
    ] as const) {
      let records: SrvRecord[];
      try {
        records = await resolver.resolveSrv(prefix + hostname);
      } catch (err) {
        this.log?.debug({ err, name: prefix + hostname }, 'SRV lookup failed');
        records = [];
      }
      const pick = pickSrv(records, this.random);
      if (pick) {
        return { serverName, step: s, host: stripDot(pick.name), port: pick.port, hostHeader: hostname, tlsName: hostname };
      }
    }
    return undefined;
  }

  /** The cached or freshly fetched well-known result for a hostname (single flight). */
  async getWellKnown(hostname: string): Promise<WellKnownResult> {
    const key = hostname.toLowerCase();
    const cached = this.wellKnown.get(key);
    if (cached && cached.expiresAt > this.now()) return cached;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetchWellKnown(hostname, cached?.failures ?? 0).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const result = await p;
    this.wellKnown.set(key, result);
    return result;
  }

  /** Forgets the cached well-known result of a hostname. */
  forgetWellKnown(hostname: string): void {
    this.wellKnown.delete(hostname.toLowerCase());
  }

  private async fetchWellKnown(hostname: string, previousFailures: number): Promise<WellKnownResult> {
    let target: ConnectTarget = { host: hostname, port: 443, hostHeader: hostname, tlsName: hostname };
    let path = '/.well-known/matrix/server';
    const visited = new Set<string>();
    const invalid = (error: string): WellKnownResult => {
      this.log?.debug({ hostname, error }, 'no valid /.well-known/matrix/server');
      return { error, expiresAt: this.now() + WELL_KNOWN_INVALID_CACHE_MS, failures: 0 };
    };
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const here = `${target.hostHeader}${path}`;
      if (visited.has(here)) return invalid('redirect loop');
      visited.add(here);
      let res;
      try {
        res = await this.transport.send(target, {
          destination: hostname,
          method: 'GET',
          path,
          headers: { accept: 'application/json' },
          timeoutMs: WELL_KNOWN_TIMEOUT_MS,
          maxBytes: WELL_KNOWN_MAX_SIZE,
        });
      } catch (err) {
        // Unreachable: back off exponentially (5 min, 10 min, … up to an hour).
        const failures = previousFailures + 1;
        const period = Math.min(WELL_KNOWN_INVALID_CACHE_MS, WELL_KNOWN_FAILURE_CACHE_MS * 2 ** (failures - 1));
        const what = err instanceof FederationError ? err.message : String(err);
        this.log?.debug({ hostname, err: what, retry_in_ms: period }, 'fetching /.well-known/matrix/server failed');
        return {
          error: err instanceof FederationTimeoutError ? 'timeout' : what,
          expiresAt: this.now() + period,
          failures,
        };
      }
      if (res.status >= 300 && res.status < 400) {
        const location = res.headers['location'];
        if (typeof location !== 'string') return invalid(`redirect ${res.status} without Location`);
        let url: URL;
        try {
          url = new URL(location, `https://${target.hostHeader}${path}`);
        } catch {
          return invalid('redirect to an invalid URL');
        }
        if (url.protocol !== 'https:') return invalid('redirect to a non-HTTPS URL');
        const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
        target = { host, port: url.port ? Number(url.port) : 443, hostHeader: url.host, tlsName: host };
        path = url.pathname + url.search;
        continue;
      }
      if (res.status !== 200) return invalid(`HTTP ${res.status}`);
      let body: unknown;
      try {
        body = JSON.parse(res.body.toString('utf8'));
      } catch {
        return invalid('not JSON');
      }
      const server = (body as Record<string, unknown> | null)?.['m.server'];
      if (body === null || typeof body !== 'object' || Array.isArray(body) || typeof server !== 'string') {
        return invalid('no m.server string');
      }
      try {
        parseServerName(server);
      } catch {
        return invalid(`invalid m.server ${JSON.stringify(server)}`);
      }
      const period = wellKnownCachePeriod(res.headers, this.now());
      return { server, expiresAt: this.now() + period, failures: 0 };
    }
    return invalid('too many redirects');
  }
}
