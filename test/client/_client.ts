/** A minimal Matrix client for tests: JSON in, status + JSON out. */
import { startServer, type Engine, type TestServer } from '../_util/server.js';

export interface Res {
  status: number;
  body: any;
}

export class TestClient {
  constructor(
    readonly base: string,
    public token?: string,
  ) {}

  async req(method: string, path: string, body?: unknown, opts: { token?: string | null; headers?: Record<string, string> } = {}): Promise<Res> {
    const token = opts.token === null ? undefined : (opts.token ?? this.token);
    const headers: Record<string, string> = { ...opts.headers };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  get(path: string, opts?: { token?: string | null }) {
    return this.req('GET', path, undefined, opts);
  }
  post(path: string, body: unknown = {}, opts?: { token?: string | null }) {
    return this.req('POST', path, body, opts);
  }
  put(path: string, body: unknown = {}, opts?: { token?: string | null }) {
    return this.req('PUT', path, body, opts);
  }
  del(path: string, body?: unknown, opts?: { token?: string | null }) {
    return this.req('DELETE', path, body, opts);
  }

  /** Registers through the open (m.login.dummy) flow and keeps the access token. */
  async register(username: string, password = 'correct horse battery', extra: Record<string, unknown> = {}): Promise<any> {
    const first = await this.post('/_matrix/client/v3/register', { username, password, ...extra }, { token: null });
    if (first.status !== 401) throw new Error(`register: expected 401, got ${first.status} ${JSON.stringify(first.body)}`);
    const done = await this.post(
      '/_matrix/client/v3/register',
      { username, password, ...extra, auth: { type: 'm.login.dummy', session: first.body.session } },
      { token: null },
    );
    if (done.status !== 200) throw new Error(`register: ${done.status} ${JSON.stringify(done.body)}`);
    this.token = done.body.access_token;
    return done.body;
  }

  async login(user: string, password = 'correct horse battery', extra: Record<string, unknown> = {}): Promise<any> {
    const res = await this.post('/_matrix/client/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password, ...extra }, { token: null });
    if (res.status !== 200) throw new Error(`login: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }
}

/** Fast password hashing and generous rate limits, unless a test asks otherwise. */
export const TEST_OVERRIDES = {
  registration: 'open',
  password_hashing: { scrypt_log_n: 12 },
  rate_limits: { login: { per_second: 1000, burst: 1000 }, registration: { per_second: 1000, burst: 1000 }, message: { per_second: 1000, burst: 1000 }, third_party_invite: { per_second: 1000, burst: 1000 } },
};

export async function startAccountsServer(engine: Engine, overrides: Record<string, unknown> = {}): Promise<TestServer> {
  return startServer({ engine, overrides: { ...TEST_OVERRIDES, ...overrides } });
}

export function uiaPassword(user: string, password: string, session?: string) {
  return { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password, ...(session ? { session } : {}) };
}
