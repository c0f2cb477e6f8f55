/**
 * HTTPS for federation: one keep-alive agent, certificate validation against the configured
 * authorities, SNI and certificate name chosen by server discovery, DNS through the injected
 * resolver, bounded time and response size.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { lookupVia, type DnsResolver } from './dns.js';
import { connectionError, FederationResponseTooLargeError, FederationTimeoutError } from './errors.js';

export interface TlsSettings {
  /** Trusted CA certificates (PEM); undefined means Node's default bundle. */
  ca?: string[];
  /** False only with federation.insecure_skip_tls_verify (development). */
  verify: boolean;
}

/** Builds the trust settings from configuration: system/bundled CAs plus `ca_files`. */
export function tlsSettingsFromConfig(
  cfg: { ca_files: string[]; use_system_ca: boolean; insecure_skip_tls_verify: boolean },
  log?: Logger,
): TlsSettings {
  if (cfg.insecure_skip_tls_verify) {
    log?.warn(
      'federation.insecure_skip_tls_verify is ON: certificates of other servers are NOT checked. ' +
        'Anyone on the network path can impersonate any server. Use this only for development.',
    );
  }
  const extra = cfg.ca_files.map((f) => readFileSync(f, 'utf8'));
  if (cfg.use_system_ca && extra.length === 0) return { verify: !cfg.insecure_skip_tls_verify };
  const base: string[] = [];
  if (cfg.use_system_ca) {
    const getCa = (tls as unknown as { getCACertificates?: (kind: string) => string[] }).getCACertificates;
    base.push(...(getCa ? [...getCa('default'), ...safeSystem(getCa)] : tls.rootCertificates));
  }
  return { ca: [...base, ...extra], verify: !cfg.insecure_skip_tls_verify };
}

function safeSystem(getCa: (kind: string) => string[]): string[] {
  try {
    return getCa('system');
  } catch {
    return [];
  }
}

/** Where to connect and what to present, as decided by server discovery. */
export interface ConnectTarget {
  /** Host name (resolved through the resolver) or IP literal (without brackets). */
  host: string;
  port: number;
  /** The `Host` header. */
  hostHeader: string;
  /** The name the certificate must be valid for; sent as SNI unless it is an IP address. */
  tlsName: string;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface TransportOptions {
  resolver: DnsResolver;
  tls: TlsSettings;
  /**
   * Where to really connect for `host:port` (tests: the well-known port 443 or the default 8448
   * mapped to a local port). Identity in production.
   */
  connectPort?: (host: string, port: number) => number;
  maxSockets?: number;
}

export interface SendOptions {
  /** For errors and logs: the server name the request is for. */
  destination: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  timeoutMs: number;
  maxBytes: number;
}

/** A response whose body is read by the caller (large downloads such as media). */
export interface StreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: IncomingMessage;
  /** Stops the transfer (when the body is not read to its end). */
  abort(): void;
}

/** The HTTPS client of federation (requests to other servers and their well-known files). */
export class FederationTransport {
  private readonly agent: Agent;
  private readonly lookup: ReturnType<typeof lookupVia>;

  constructor(private readonly opts: TransportOptions) {
    this.agent = new Agent({
      keepAlive: true,
      keepAliveMsecs: 30_000,
      maxSockets: opts.maxSockets ?? 8,
      maxTotalSockets: 512,
      maxFreeSockets: 4,
      timeout: 90_000,
      scheduling: 'lifo',
    });
    this.lookup = lookupVia(opts.resolver);
  }

  get resolver(): DnsResolver {
    return this.opts.resolver;
  }

  send(target: ConnectTarget, req: SendOptions): Promise<HttpResponse> {
    const { destination, timeoutMs, maxBytes } = req;
    const port = this.opts.connectPort ? this.opts.connectPort(target.host, target.port) : target.port;
    const tlsName = target.tlsName;
    return new Promise<HttpResponse>((resolve, reject) => {
      let settled = false;
      const finish = (err: unknown, res?: HttpResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(res!);
      };
      const headers: Record<string, string> = { host: target.hostHeader, ...req.headers };
      if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
      const r = httpsRequest({
        agent: this.agent,
        host: target.host,
        port,
        method: req.method,
        path: req.path,
        headers,
        // No SNI for IP addresses (RFC 6066); the certificate is checked against tlsName below.
        servername: isIP(tlsName) ? '' : tlsName,
        lookup: this.lookup as never,
        // Happy eyeballs over every address the resolver returns (net.connect option).
        ...({ autoSelectFamily: true } as object),
        ca: this.opts.tls.ca,
        rejectUnauthorized: this.opts.tls.verify,
        checkServerIdentity: (_host, cert) => (this.opts.tls.verify ? tls.checkServerIdentity(tlsName, cert) : undefined),
      });
      const timer = setTimeout(() => {
        const err = new FederationTimeoutError(destination, timeoutMs);
        r.destroy(err);
        finish(err);
      }, timeoutMs);
      timer.unref();
      r.on('error', (err) => finish(err instanceof FederationTimeoutError || err instanceof FederationResponseTooLargeError ? err : connectionError(destination, err)));
      r.on('response', (res) => {
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) {
          const err = new FederationResponseTooLargeError(destination, maxBytes);
          res.destroy();
          r.destroy(err);
          return finish(err);
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            const err = new FederationResponseTooLargeError(destination, maxBytes);
            res.destroy();
            r.destroy(err);
            finish(err);
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => finish(null, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', (err) => finish(connectionError(destination, err)));
        res.on('aborted', () => finish(connectionError(destination, new Error('response aborted'))));
      });
      if (req.body !== undefined) r.end(req.body);
      else r.end();
    });
  }

  /**
   * Like send, but resolves as soon as the response headers arrive and leaves the body to the
   * caller as a stream. `timeoutMs` bounds the wait for the headers and, after that, every pause
   * in the data.
   */
  open(target: ConnectTarget, req: Omit<SendOptions, 'maxBytes'>): Promise<StreamResponse> {
    const { destination, timeoutMs } = req;
    const port = this.opts.connectPort ? this.opts.connectPort(target.host, target.port) : target.port;
    const tlsName = target.tlsName;
    return new Promise<StreamResponse>((resolve, reject) => {
      const r = httpsRequest({
        agent: this.agent,
        host: target.host,
        port,
        method: req.method,
        path: req.path,
        headers: { host: target.hostHeader, ...req.headers, ...(req.body !== undefined ? { 'content-length': String(Buffer.byteLength(req.body)) } : {}) },
        servername: isIP(tlsName) ? '' : tlsName,
        lookup: this.lookup as never,
        ...({ autoSelectFamily: true } as object),
        ca: this.opts.tls.ca,
        rejectUnauthorized: this.opts.tls.verify,
        checkServerIdentity: (_host, cert) => (this.opts.tls.verify ? tls.checkServerIdentity(tlsName, cert) : undefined),
      });
      r.setTimeout(timeoutMs, () => r.destroy(new FederationTimeoutError(destination, timeoutMs)));
      r.on('error', (err) => reject(err instanceof FederationTimeoutError ? err : connectionError(destination, err)));
      r.on('response', (res) => {
        res.on('error', () => {});
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, abort: () => r.destroy() });
      });
      if (req.body !== undefined) r.end(req.body);
      else r.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

