/**
 * A fake identity server for tests (identity-service-api v2): HTTPS on 127.0.0.1 with a
 * certificate from the federation's test CA, published in its static DNS view. It serves
 * hash_details, lookup (sha256), store-invite and the key validity endpoints, signs the
 * `signed` objects of bound invitations with its own ed25519 key, and calls /3pid/onbind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { encodeBase64 } from '../../src/protocol/base64.js';
import { generateSigningKey, signJson, type SigningKey } from '../../src/protocol/signing.js';
import type { Federation, FedMember } from './federation.js';

export const ID_TOKEN = 'identity-access-token';

export interface IdentityRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: any;
}

export interface StoredInvite {
  token: string;
  body: any;
}

export interface FakeIdentityServer {
  /** `id.test:<port>`, the `id_server` clients name. */
  idServer: string;
  /** The long-term key (`ed25519:0`), listed first in store-invite answers. */
  key: SigningKey;
  publicKey: string;
  /** The ephemeral key, listed second. */
  ephemeralKey: SigningKey;
  /** address (medium email) → Matrix user ID. */
  bindings: Map<string, string>;
  /** Public keys answered as invalid by the key validity endpoints. */
  revoked: Set<string>;
  invites: StoredInvite[];
  requests: IdentityRequest[];
  /** Makes endpoints answer with an error: path prefix → [status, body]. */
  failures: Map<string, [number, unknown]>;
  /** The `signed` object of a bound invitation, signed with `key` (or another key). */
  sign(mxid: string, token: string, sender: string, key?: SigningKey): Record<string, unknown>;
  /** PUT /_matrix/federation/v1/3pid/onbind on a member, as the identity server does. */
  onBind(member: FedMember, body: unknown): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startIdentityServer(fed: Federation, name = 'id.test'): Promise<FakeIdentityServer> {
  const cert = fed.ca.issue({ dnsNames: [name], ips: ['127.0.0.1'] });
  const key = generateSigningKey('0');
  const ephemeralKey = generateSigningKey('eph');
  const pepper = 'matrixrocks';
  let idServer = '';
  const is: FakeIdentityServer = {
    idServer,
    key,
    publicKey: encodeBase64(key.publicKey),
    ephemeralKey,
    bindings: new Map(),
    revoked: new Set(),
    invites: [],
    requests: [],
    failures: new Map(),
    sign(mxid, token, sender, k = key) {
      return signJson({ mxid, token, sender }, name, k);
    },
    onBind(member, body) {
      const port = member.server!.address('federation')!.port;
      return new Promise((resolve, reject) => {
        const payload = JSON.stringify(body);
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            port,
            method: 'PUT',
            path: '/_matrix/federation/v1/3pid/onbind',
            servername: member.name,
            ca: fed.ca.certPem,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
          },
          (res) => {
            let text = '';
            res.on('data', (c) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
          },
        );
        req.on('error', reject);
        req.end(payload);
      });
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
  const hash = (address: string) => createHash('sha256').update(`${address} email ${pepper}`).digest('base64url');
  const answer = (path: string, body: any): [number, unknown] => {
    for (const [prefix, failure] of is.failures) if (path.startsWith(prefix)) return failure;
    const base = `https://${is.idServer}/_matrix/identity/v2`;
    if (path === '/_matrix/identity/v2/hash_details') return [200, { lookup_pepper: pepper, algorithms: ['none', 'sha256'] }];
    if (path === '/_matrix/identity/v2/lookup') {
      if (body?.algorithm !== 'sha256' || body?.pepper !== pepper) return [400, { errcode: 'M_INVALID_PEPPER', error: 'bad pepper' }];
      const mappings: Record<string, string> = {};
      for (const [address, mxid] of is.bindings) if (body.addresses.includes(hash(address))) mappings[hash(address)] = mxid;
      return [200, { mappings }];
    }
    if (path === '/_matrix/identity/v2/store-invite') {
      if (body?.medium !== 'email') return [400, { errcode: 'M_UNRECOGNIZED', error: 'email only' }];
      const token = randomBytes(12).toString('base64url');
      is.invites.push({ token, body });
      return [
        200,
        {
          token,
          public_keys: [
            { public_key: is.publicKey, key_validity_url: `${base}/pubkey/isvalid` },
            { public_key: encodeBase64(ephemeralKey.publicKey), key_validity_url: `${base}/pubkey/ephemeral/isvalid` },
          ],
          display_name: `${String(body.address)[0]}...@${String(body.address).split('@')[1]?.[0]}...`,
        },
      ];
    }
    if (path.startsWith('/_matrix/identity/v2/pubkey/isvalid') || path.startsWith('/_matrix/identity/v2/pubkey/ephemeral/isvalid')) {
      const pk = new URL(path, 'https://x').searchParams.get('public_key') ?? '';
      return [200, { valid: !is.revoked.has(pk) && (pk === is.publicKey || pk === encodeBase64(ephemeralKey.publicKey)) }];
    }
    return [404, { errcode: 'M_UNRECOGNIZED', error: 'not here' }];
  };
  const server: Server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const body = text ? JSON.parse(text) : undefined;
      const path = req.url ?? '';
      is.requests.push({ method: req.method ?? '', path, authorization: req.headers.authorization, body });
      let [status, out] = answer(path, body);
      const needsToken = !path.includes('isvalid');
      if (needsToken && req.headers.authorization !== `Bearer ${ID_TOKEN}`) [status, out] = [401, { errcode: 'M_UNAUTHORIZED', error: 'bad token' }];
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(out));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  idServer = `${name}:${(server.address() as AddressInfo).port}`;
  is.idServer = idServer;
  fed.dns.a![name] = ['127.0.0.1'];
  return is;
}
