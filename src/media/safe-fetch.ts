/**
 * HTTP(S) GET on a user's behalf, guarded against reaching the server's own network: the
 * address is resolved through the injected resolver and checked by the IpGuard inside the
 * socket's lookup, so the address checked is the address connected to (no DNS rebinding), and
 * every redirect hop goes through the same check. Bounded in time, size and redirects.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { LookupAddress } from 'node:dns';
import type { DnsResolver } from '../federation/dns.js';
import type { IpGuard } from './ip-guard.js';

/** The URL (or an address it resolves to) is not one the server may fetch. */
export class ForbiddenAddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ForbiddenAddressError';
  }
}

export class FetchFailedError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = 'FetchFailedError';
  }
}

export interface SafeFetchOptions {
  resolver: DnsResolver;
  guard: IpGuard;
  timeoutMs: number;
  maxRedirects: number;
  userAgent?: string;
  headers?: Record<string, string>;
}

export interface SafeResponse {
  url: string;
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
  /** Aborts the request (call when not reading the body to its end). */
  abort(): void;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Resolves a host and keeps the addresses the guard allows; refuses when none is left. */
async function allowedAddresses(host: string, resolver: DnsResolver, guard: IpGuard): Promise<LookupAddress[]> {
  const literal = isIP(host.replace(/^\[|\]$/g, ''));
  if (literal) {
    const addr = host.replace(/^\[|\]$/g, '');
    if (!guard.isAllowed(addr)) throw new ForbiddenAddressError(`${addr} is not an address the server may fetch from`);
    return [{ address: addr, family: literal }];
  }
  const [v4, v6] = await Promise.all([resolver.resolve4(host).catch(() => []), resolver.resolve6(host).catch(() => [])]);
  const all = [...v4.map((a) => ({ address: a, family: 4 })), ...v6.map((a) => ({ address: a, family: 6 }))];
  if (all.length === 0) throw new FetchFailedError(`cannot resolve ${host}`);
  const ok = all.filter((a) => guard.isAllowed(a.address));
  if (ok.length === 0) throw new ForbiddenAddressError(`${host} resolves only to addresses the server may not fetch from`);
  return ok;
}

/** One request, no redirects followed. */
function once(url: URL, opts: SafeFetchOptions, deadline: number): Promise<SafeResponse> {
  return new Promise<SafeResponse>((resolve, reject) => {
    const lookup = (hostname: string, options: { all?: boolean }, cb: (...args: unknown[]) => void) => {
      allowedAddresses(hostname, opts.resolver, opts.guard).then(
        (addrs) => (options.all ? cb(null, addrs) : cb(null, addrs[0]!.address, addrs[0]!.family)),
        (err) => cb(err),
      );
    };
    const host = url.hostname.replace(/^\[|\]$/g, '');
    // IP literals never reach `lookup`: check them here.
    if (isIP(host) && !opts.guard.isAllowed(host)) {
      reject(new ForbiddenAddressError(`${host} is not an address the server may fetch from`));
      return;
    }
    const requestFn = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = requestFn(url, {
      method: 'GET',
      lookup: lookup as never,
      headers: { 'user-agent': opts.userAgent ?? 'Myelin (URL preview)', accept: '*/*', ...opts.headers },
      ...({ autoSelectFamily: true } as object),
    });
    const remaining = Math.max(1, deadline - Date.now());
    const timer = setTimeout(() => req.destroy(new FetchFailedError(`timed out fetching ${url.origin}`)), remaining);
    timer.unref();
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof ForbiddenAddressError || err instanceof FetchFailedError ? err : new FetchFailedError(`fetching ${url.origin} failed: ${err.message}`));
    });
    req.on('response', (res) => {
      res.on('close', () => clearTimeout(timer));
      resolve({
        url: url.toString(),
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: res,
        abort: () => {
          clearTimeout(timer);
          req.destroy();
        },
      });
    });
    req.end();
  });
}

/** GET `url`, following redirects (each hop checked again); the body is left to the caller. */
export async function safeFetch(rawUrl: string, opts: SafeFetchOptions): Promise<SafeResponse> {
  const deadline = Date.now() + opts.timeoutMs;
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new FetchFailedError(`not a URL: ${rawUrl}`);
  }
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ForbiddenAddressError(`only http and https URLs can be fetched`);
    if (url.username || url.password) throw new ForbiddenAddressError('URLs with credentials are not fetched');
    const res = await once(url, opts, deadline);
    if (!REDIRECTS.has(res.status)) return res;
    const location = res.headers.location;
    res.abort();
    if (!location) throw new FetchFailedError(`redirect without a Location from ${url.origin}`, res.status);
    if (hop >= opts.maxRedirects) throw new FetchFailedError(`too many redirects`);
    url = new URL(location, url);
  }
}

/** Reads a response body up to `maxBytes` (then stops reading and aborts). */
export async function readLimited(res: SafeResponse, maxBytes: number): Promise<{ body: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    const room = maxBytes - size;
    if (chunk.length >= room) {
      chunks.push(chunk.subarray(0, room));
      size += room;
      res.abort();
      return { body: Buffer.concat(chunks), truncated: true };
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return { body: Buffer.concat(chunks), truncated: false };
}
