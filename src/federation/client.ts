/**
 * Outgoing federation requests: discover the destination, sign the request with `X-Matrix`,
 * send it over verified TLS, parse the JSON answer. Failures are typed (errors.ts).
 */
import type { Logger } from 'pino';
import type { JsonObject, JsonValue } from '../protocol/json.js';
import type { SigningKey } from '../protocol/signing.js';
import type { ServerDiscovery } from './discovery.js';
import { FederationBadResponseError, FederationHttpError, FederationNotAllowedError } from './errors.js';
import type { FederationTransport, StreamResponse } from './transport.js';
import { signRequest } from './x-matrix.js';

export type HttpMethod = 'GET' | 'PUT' | 'POST' | 'DELETE';

export type QueryValue = string | number | boolean | readonly (string | number | boolean)[] | undefined;

export interface RequestOptions {
  /** Query parameters, appended to the path (arrays repeat the parameter). */
  query?: Record<string, QueryValue>;
  timeoutMs?: number;
  /** Largest response body accepted, in bytes. */
  maxBytes?: number;
  /** Sign with X-Matrix (default true; the key endpoints need no signature). */
  signed?: boolean;
}

export interface FederationClientOptions {
  serverName: string;
  signingKey: SigningKey;
  discovery: ServerDiscovery;
  transport: FederationTransport;
  log?: Logger;
  defaultTimeoutMs: number;
  defaultMaxBytes: number;
  /** Refuses destinations this returns false for (federation.allowed_servers). */
  isAllowed?: (serverName: string) => boolean;
}

/** Builds `path?query` with RFC 3986 percent-encoding of names and values. */
export function withQuery(path: string, query: Record<string, QueryValue> | undefined): string {
  if (!query) return path;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    const values = Array.isArray(v) ? v : [v];
    for (const one of values) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(one))}`);
  }
  if (parts.length === 0) return path;
  return `${path}${path.includes('?') ? '&' : '?'}${parts.join('&')}`;
}

export class FederationClient {
  constructor(private readonly opts: FederationClientOptions) {}

  get serverName(): string {
    return this.opts.serverName;
  }

  /**
   * Sends a request to another server and returns its JSON object. `path` starts with
   * `/_matrix/` and is already percent-encoded (use encodeURIComponent for path parameters).
   */
  async request<T = JsonObject>(
    destination: string,
    method: HttpMethod,
    path: string,
    body?: JsonValue,
    options: RequestOptions = {},
  ): Promise<T> {
    if (this.opts.isAllowed && !this.opts.isAllowed(destination)) throw new FederationNotAllowedError(destination);
    const uri = withQuery(path, options.query);
    // POST and PUT always carry a (possibly empty) JSON object.
    const content = body === undefined && (method === 'POST' || method === 'PUT') ? {} : body;
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'Myelin' };
    let payload: string | undefined;
    if (content !== undefined) {
      payload = JSON.stringify(content);
      headers['content-type'] = 'application/json';
    }
    if (options.signed !== false) {
      headers['authorization'] = signRequest({
        method,
        uri,
        origin: this.opts.serverName,
        destination,
        content,
        key: this.opts.signingKey,
      });
    }
    const target = await this.opts.discovery.resolve(destination);
    const started = Date.now();
    const res = await this.opts.transport.send(target, {
      destination,
      method,
      path: uri,
      headers,
      body: payload,
      timeoutMs: options.timeoutMs ?? this.opts.defaultTimeoutMs,
      maxBytes: options.maxBytes ?? this.opts.defaultMaxBytes,
    });
    this.opts.log?.debug(
      { destination, method, path: path.split('?')[0], status: res.status, ms: Date.now() - started },
      'federation request',
    );
    let parsed: unknown;
    let parseFailed = false;
    try {
      parsed = res.body.length === 0 ? undefined : JSON.parse(res.body.toString('utf8'));
    } catch {
      parseFailed = true;
    }
    if (res.status < 200 || res.status >= 300) {
      const obj = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
      throw new FederationHttpError(
        destination,
        res.status,
        typeof obj['errcode'] === 'string' ? obj['errcode'] : undefined,
        typeof obj['error'] === 'string' ? obj['error'] : undefined,
        parsed,
      );
    }
    if (parseFailed) throw new FederationBadResponseError(destination, `response from ${destination} is not JSON`, res.status);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new FederationBadResponseError(destination, `response from ${destination} is not a JSON object`, res.status);
    }
    return parsed as T;
  }

  /**
   * A signed GET whose successful body is handed over as a stream (media downloads). Non-2xx
   * answers are read (up to 64 KiB) and thrown as FederationHttpError.
   */
  getStream(destination: string, path: string, options: Omit<RequestOptions, 'maxBytes'> = {}): Promise<StreamResponse> {
    return this.requestStream(destination, 'GET', path, undefined, { ...options, accept: '*/*' });
  }

  /**
   * A signed request whose successful body is handed over as a stream (big JSON answers such
   * as send_join, read incrementally). Non-2xx answers are read (up to 64 KiB) and thrown as
   * FederationHttpError. `timeoutMs` bounds the wait for the headers and every pause in the data.
   */
  async requestStream(
    destination: string,
    method: HttpMethod,
    path: string,
    body?: JsonValue,
    options: Omit<RequestOptions, 'maxBytes'> & { accept?: string } = {},
  ): Promise<StreamResponse> {
    if (this.opts.isAllowed && !this.opts.isAllowed(destination)) throw new FederationNotAllowedError(destination);
    const uri = withQuery(path, options.query);
    const content = body === undefined && (method === 'POST' || method === 'PUT') ? {} : body;
    const headers: Record<string, string> = { accept: options.accept ?? 'application/json', 'user-agent': 'Myelin' };
    let payload: string | undefined;
    if (content !== undefined) {
      payload = JSON.stringify(content);
      headers['content-type'] = 'application/json';
    }
    if (options.signed !== false) {
      headers['authorization'] = signRequest({ method, uri, origin: this.opts.serverName, destination, content, key: this.opts.signingKey });
    }
    const target = await this.opts.discovery.resolve(destination);
    const res = await this.opts.transport.open(target, {
      destination,
      method,
      path: uri,
      headers,
      body: payload,
      timeoutMs: options.timeoutMs ?? this.opts.defaultTimeoutMs,
    });
    this.opts.log?.debug({ destination, method, path: path.split('?')[0], status: res.status }, 'federation stream request');
    if (res.status >= 200 && res.status < 300) return res;
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > 64 * 1024) break;
        chunks.push(chunk);
      }
    } catch {
      /* the error status is what matters */
    }
    res.abort();
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      parsed = undefined;
    }
    const obj = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
    throw new FederationHttpError(
      destination,
      res.status,
      typeof obj['errcode'] === 'string' ? obj['errcode'] : undefined,
      typeof obj['error'] === 'string' ? obj['error'] : undefined,
      parsed,
    );
  }

  get<T = JsonObject>(destination: string, path: string, options?: RequestOptions): Promise<T> {
    return this.request<T>(destination, 'GET', path, undefined, options);
  }

  put<T = JsonObject>(destination: string, path: string, body: JsonValue, options?: RequestOptions): Promise<T> {
    return this.request<T>(destination, 'PUT', path, body, options);
  }

  post<T = JsonObject>(destination: string, path: string, body: JsonValue, options?: RequestOptions): Promise<T> {
    return this.request<T>(destination, 'POST', path, body, options);
  }
}
