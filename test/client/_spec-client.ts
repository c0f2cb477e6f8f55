/** A TestClient that checks every JSON response against the spec's OpenAPI definitions. */
import { expectContentTypeMatchesSpec, expectMatchesSpec } from '../_util/openapi.js';
import { TestClient, type Res } from './_client.js';

export interface RawRes {
  status: number;
  headers: Headers;
  bytes: Buffer;
  /** The parsed body when the response is JSON. */
  body: any;
}

export class SpecClient extends TestClient {
  /** Responses checked so far, as "METHOD path → status" (for failure messages). */
  readonly checked: string[] = [];

  override async req(method: string, path: string, body?: unknown, opts: { token?: string | null; headers?: Record<string, string> } = {}): Promise<Res> {
    const res = await super.req(method, path, body, opts);
    expectMatchesSpec(method, path, res.status, res.body);
    this.checked.push(`${method} ${path.split('?')[0]} → ${res.status}`);
    return res;
  }

  /**
   * A request with a raw body and a raw answer (media). JSON answers are validated like
   * req(); other answers must carry a media type the spec documents for the status.
   */
  async raw(method: string, path: string, opts: { body?: Buffer | string; headers?: Record<string, string>; token?: string | null } = {}): Promise<RawRes> {
    const token = opts.token === null ? undefined : (opts.token ?? this.token);
    const headers: Record<string, string> = { ...opts.headers };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(this.base + path, { method, headers, body: opts.body, redirect: 'manual' });
    const bytes = Buffer.from(await res.arrayBuffer());
    const type = res.headers.get('content-type');
    let body: any;
    if (type?.startsWith('application/json')) {
      body = JSON.parse(bytes.toString('utf8'));
      expectMatchesSpec(method, path, res.status, body);
    } else {
      expectContentTypeMatchesSpec(method, path, res.status, type);
    }
    this.checked.push(`${method} ${path.split('?')[0]} → ${res.status}`);
    return { status: res.status, headers: res.headers, bytes, body };
  }
}
