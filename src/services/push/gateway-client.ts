/**
 * POSTs notifications to push gateways. Gateway URLs are chosen by users, so by default the
 * server refuses to connect to its own network: the host is resolved and every address is
 * checked by the IpGuard inside the socket's lookup (the address checked is the address
 * connected to), IP literals are checked before connecting, redirects are never followed, and
 * plain `http://` is refused unless allowed. Bounded in time and response size.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { DnsResolver } from '../../federation/dns.js';
import { IpGuard } from '../../media/ip-guard.js';

export const NOTIFY_PATH = '/_matrix/push/v1/notify';
const MAX_RESPONSE_BYTES = 64 * 1024;

export interface GatewayPolicy {
  /** Allow gateways on loopback, private, link-local and other special addresses. */
  allowPrivate: boolean;
  /** Allow plain `http://` gateway URLs. */
  allowHttp: boolean;
}

/** The gateway cannot be used at all under the server's policy (retrying will not help). */
export class GatewayRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GatewayRefusedError';
  }
}

/** A delivery attempt failed; `retry` says whether trying again later may help. */
export class GatewayFailedError extends Error {
  constructor(
    message: string,
    readonly retry: boolean,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'GatewayFailedError';
  }
}

export interface GatewayResponse {
  status: number;
  /** Pushkeys the gateway says are not valid (their pushers must be removed). */
  rejected: string[];
}

/**
 * Why a gateway URL is refused under `policy` (scheme, path, credentials, a refused IP
 * literal), or undefined if it may be used. Host names are checked when connecting.
 */
export function gatewayUrlProblem(raw: string, policy: GatewayPolicy, guard: IpGuard = new IpGuard()): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'data.url is not a URL';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'data.url must be an HTTP(S) URL';
  if (url.pathname !== NOTIFY_PATH) return `data.url must have the path ${NOTIFY_PATH}`;
  if (url.protocol === 'http:' && !policy.allowHttp) return 'this server only pushes to https:// gateways';
  if (url.username || url.password) return 'data.url must not contain credentials';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!policy.allowPrivate && isIP(host) && !guard.isAllowed(host)) return 'this server does not push to gateways on private or special addresses';
  return undefined;
}

export class GatewayClient {
  private readonly guard = new IpGuard();
  private readonly httpAgent: HttpAgent;
  private readonly httpsAgent: HttpsAgent;

  constructor(
    private readonly policy: GatewayPolicy,
    private readonly timeoutMs: number,
    /** DNS for public gateways (the server's resolver, off the thread pool); default: the system's lookup. */
    private readonly resolver?: DnsResolver,
    private readonly userAgent = 'Myelin',
  ) {
    // Connections are kept for a while (most users share one gateway); idle sockets close after 60 s.
    this.httpAgent = new HttpAgent({ keepAlive: true, maxFreeSockets: 4, timeout: 60_000 });
    this.httpsAgent = new HttpsAgent({ keepAlive: true, maxFreeSockets: 4, timeout: 60_000 });
  }

  /** POSTs a JSON body to a gateway; resolves on a 2xx answer, else throws. */
  notify(rawUrl: string, body: unknown): Promise<GatewayResponse> {
    const problem = gatewayUrlProblem(rawUrl, this.policy, this.guard);
    if (problem) return Promise.reject(new GatewayRefusedError(problem));
    const url = new URL(rawUrl);
    const payload = Buffer.from(JSON.stringify(body));
    return new Promise<GatewayResponse>((resolve, reject) => {
      const https = url.protocol === 'https:';
      const req = (https ? httpsRequest : httpRequest)(url, {
        method: 'POST',
        agent: https ? this.httpsAgent : this.httpAgent,
        lookup: this.policy.allowPrivate ? undefined : (this.guardedLookup as never),
        headers: { 'content-type': 'application/json', 'content-length': String(payload.length), 'user-agent': this.userAgent, accept: 'application/json' },
      });
      const timer = setTimeout(() => req.destroy(new GatewayFailedError(`no answer from ${url.origin} within ${this.timeoutMs} ms`, true)), this.timeoutMs);
      timer.unref();
      const fail = (err: unknown) => {
        clearTimeout(timer);
        if (err instanceof GatewayRefusedError || err instanceof GatewayFailedError) reject(err);
        else reject(new GatewayFailedError(`pushing to ${url.origin} failed: ${(err as Error).message}`, true));
      };
      req.on('error', fail);
      req.on('response', (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) {
            req.destroy(new GatewayFailedError(`the answer of ${url.origin} is larger than ${MAX_RESPONSE_BYTES} bytes`, status < 200 || status >= 300));
            return;
          }
          chunks.push(c);
        });
        res.on('error', fail);
        res.on('end', () => {
          clearTimeout(timer);
          if (status < 200 || status >= 300) {
            // Client errors are permanent for this request, except timeouts and rate limits.
            const retry = status >= 500 || status === 408 || status === 429 || status < 200 || (status >= 300 && status < 400);
            reject(new GatewayFailedError(`${url.origin} answered ${status}`, retry, status));
            return;
          }
          let rejected: string[] = [];
          try {
            const json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { rejected?: unknown };
            if (Array.isArray(json.rejected)) rejected = json.rejected.filter((k): k is string => typeof k === 'string');
          } catch {
            // A 2xx answer that is not JSON still means the notification was accepted.
          }
          resolve({ status, rejected });
        });
      });
      req.end(payload);
    });
  }

  /** Resolves the host and keeps only addresses the guard allows. */
  private readonly guardedLookup = (hostname: string, options: { all?: boolean; family?: number }, cb: (...args: unknown[]) => void): void => {
    const done = (addresses: LookupAddress[]) => {
      const ok = addresses.filter((a) => this.guard.isAllowed(a.address));
      if (ok.length === 0) return cb(new GatewayRefusedError(`${hostname} resolves only to addresses this server does not push to`));
      if (options.all) cb(null, ok);
      else cb(null, ok[0]!.address, ok[0]!.family);
    };
    const r = this.resolver;
    if (!r) {
      dnsLookup(hostname, { all: true, family: options.family ?? 0 }, (err, addresses: LookupAddress[]) => (err ? cb(err) : done(addresses)));
      return;
    }
    Promise.all([r.resolve4(hostname).catch(() => [] as string[]), r.resolve6(hostname).catch(() => [] as string[])]).then(([v4, v6]) => {
      const all = [...v4.map((address) => ({ address, family: 4 })), ...v6.map((address) => ({ address, family: 6 }))];
      if (all.length === 0) return cb(Object.assign(new Error(`cannot resolve ${hostname}`), { code: 'ENOTFOUND' }));
      done(all);
    }, cb);
  };

  /** Closes kept-alive connections. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
