import type { JsonObject, JsonValue } from '../protocol/json.js';
import type { AppService } from './registration.js';

/** Why a request to an application service failed. */
export class AppServiceRequestError extends Error {
  constructor(
    readonly kind: 'no_url' | 'connection' | 'timeout' | 'status',
    message: string,
    readonly status?: number,
    readonly body?: string,
  ) {
    super(message);
    this.name = 'AppServiceRequestError';
  }
}

export interface AsRequest {
  method: 'GET' | 'PUT' | 'POST';
  /** Path under the service URL, already encoded, e.g. `/_matrix/app/v1/users/%40a%3Ahs`. */
  path: string;
  query?: Record<string, string | string[]>;
  body?: JsonValue;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * One request from the homeserver to an application service, authenticated with the
 * `hs_token` in the Authorization header (spec v1.4+). Resolves with the status and the parsed
 * JSON body for 2xx answers; throws AppServiceRequestError otherwise.
 */
export async function requestAppService(svc: AppService, req: AsRequest): Promise<{ status: number; json: JsonValue | undefined }> {
  if (svc.reg.url === null) throw new AppServiceRequestError('no_url', `Application service ${svc.id} has no URL`);
  const url = new URL(svc.reg.url + req.path);
  for (const [k, v] of Object.entries(req.query ?? {})) {
    for (const one of Array.isArray(v) ? v : [v]) url.searchParams.append(k, one);
  }
  const timeout = AbortSignal.timeout(req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await fetch(url, {
      method: req.method,
      headers: {
        authorization: `Bearer ${svc.reg.hsToken}`,
        ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: req.body !== undefined ? JSON.stringify(req.body) : undefined,
      signal,
      redirect: 'error',
    });
  } catch (err) {
    if (timeout.aborted) throw new AppServiceRequestError('timeout', `Application service ${svc.id} did not answer within ${req.timeoutMs} ms`);
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new AppServiceRequestError('connection', `Cannot reach application service ${svc.id}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    if (timeout.aborted) throw new AppServiceRequestError('timeout', `Application service ${svc.id} did not answer within ${req.timeoutMs} ms`);
    throw new AppServiceRequestError('connection', `Application service ${svc.id} closed the connection: ${(err as Error).message}`);
  }
  if (res.status < 200 || res.status >= 300) {
    throw new AppServiceRequestError('status', `Application service ${svc.id} answered ${res.status}`, res.status, text.slice(0, 4096));
  }
  let json: JsonValue | undefined;
  if (text.trim() !== '') {
    try {
      json = JSON.parse(text) as JsonValue;
    } catch {
      json = undefined;
    }
  }
  return { status: res.status, json };
}

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
