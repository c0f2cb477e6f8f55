/**
 * Authentication of incoming federation requests (`Authorization: X-Matrix …`), as a Fastify
 * preHandler. The authenticated origin is available to handlers through `originOf(req)`.
 *
 * - no or malformed X-Matrix header, unknown key, bad signature → 401 M_UNAUTHORIZED
 * - `destination` present but not this server → 401 M_UNAUTHORIZED (spec: "must deny … 401")
 * - origin not in federation.allowed_servers → 403 M_FORBIDDEN
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { isValidServerName } from '../protocol/identifiers.js';
import type { JsonValue } from '../protocol/json.js';
import { verifyJsonSignature } from '../protocol/signing.js';
import type { Keyring } from './keyring.js';
import { parseXMatrix, requestSigningJson, XMatrixParseError, type XMatrixAuth } from './x-matrix.js';

export { parseXMatrix, requestSigningJson, signRequest, XMatrixParseError, type XMatrixAuth } from './x-matrix.js';

const origins = new WeakMap<FastifyRequest, string>();

/** The server that signed this request (set by the X-Matrix preHandler). */
export function originOf(req: FastifyRequest): string {
  const o = origins.get(req);
  if (o === undefined) throw new Error('originOf() on a route without X-Matrix authentication');
  return o;
}

const unauthorized = (message: string) => new MatrixError('M_UNAUTHORIZED', 401, message);

export interface RequestVerifierOptions {
  serverName: string;
  keyring: Keyring;
  log?: Logger;
  isAllowed?: (serverName: string) => boolean;
}

export interface IncomingRequest {
  method: string;
  /** The request target exactly as received: path and query string. */
  uri: string;
  authorization: string | string[] | undefined;
  /** The JSON-parsed body, undefined when the request has none. */
  content?: JsonValue;
}

export class RequestVerifier {
  constructor(private readonly opts: RequestVerifierOptions) {}

  /**
   * Verifies an incoming request and returns its origin. Several Authorization headers (or
   * several X-Matrix credentials) are allowed: the first one that verifies wins.
   */
  async verify(req: IncomingRequest): Promise<string> {
    const raw = req.authorization;
    const headers = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).filter((h) => /^x-matrix\s/i.test(h));
    if (headers.length === 0) throw unauthorized('Missing X-Matrix Authorization header');
    let lastError: MatrixError | undefined;
    for (const h of headers) {
      let auth: XMatrixAuth;
      try {
        auth = parseXMatrix(h);
      } catch (err) {
        lastError = unauthorized(`Malformed X-Matrix Authorization header: ${(err as XMatrixParseError).message}`);
        continue;
      }
      try {
        await this.verifyOne(req, auth);
        return auth.origin;
      } catch (err) {
        if (!(err instanceof MatrixError)) throw err;
        if (err.status === 403) throw err;
        lastError = err;
      }
    }
    throw lastError ?? unauthorized('Invalid X-Matrix Authorization header');
  }

  private async verifyOne(req: IncomingRequest, auth: XMatrixAuth): Promise<void> {
    const { serverName, keyring } = this.opts;
    if (auth.destination !== undefined && auth.destination !== serverName) {
      throw unauthorized(`Request is for ${auth.destination}, not this server (${serverName})`);
    }
    if (!isValidServerName(auth.origin)) throw unauthorized('Invalid origin in X-Matrix header');
    if (this.opts.isAllowed && !this.opts.isAllowed(auth.origin)) {
      throw new MatrixError('M_FORBIDDEN', 403, `Federation with ${auth.origin} is not allowed`);
    }
    if (!auth.key.startsWith('ed25519:')) throw unauthorized(`Unsupported key algorithm in ${auth.key}`);
    const key = await keyring.getVerifyKey(auth.origin, auth.key, undefined, { forRequest: true });
    if (!key) throw unauthorized(`Cannot find a current key ${auth.key} of ${auth.origin}`);
    // The signature covers the destination as the sender saw it; old senders omit it.
    const signed = {
      ...requestSigningJson(req.method, req.uri, auth.origin, auth.destination ?? serverName, req.content),
      signatures: { [auth.origin]: { [auth.key]: auth.sig } },
    };
    if (!verifyJsonSignature(signed, auth.origin, auth.key, key)) {
      this.opts.log?.info({ origin: auth.origin, key: auth.key, uri: req.uri.split('?')[0] }, 'X-Matrix signature does not verify');
      throw unauthorized('Invalid X-Matrix signature');
    }
  }

  /** A Fastify preHandler: verifies the request or answers 401/403. */
  readonly preHandler = async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const method = req.method.toUpperCase();
    const hasBody = method !== 'GET' && method !== 'HEAD' && req.body !== undefined;
    const origin = await this.verify({
      method,
      uri: req.raw.url ?? req.url,
      authorization: req.headers.authorization,
      content: hasBody ? (req.body as JsonValue) : undefined,
    });
    origins.set(req, origin);
  };
}
