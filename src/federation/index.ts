/**
 * Federation services of one server: DNS, TLS transport, server discovery, the signing-key
 * keyring, the signed-request client and the X-Matrix request verifier.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { JsonObject } from '../protocol/json.js';
import type { SigningKey } from '../protocol/signing.js';
import type { Database } from '../storage/db.js';
import { ServerKeyStore } from '../storage/stores/server-keys.js';
import { FederationClient } from './client.js';
import { systemResolver, type DnsResolver } from './dns.js';
import { ServerDiscovery } from './discovery.js';
import { Keyring } from './keyring.js';
import { RequestVerifier } from './request-auth.js';
import { FederationTransport, tlsSettingsFromConfig } from './transport.js';

/** Things tests (or embedders) replace: DNS, the clock, where connections really go. */
export interface FederationOptions {
  resolver?: DnsResolver;
  /** Maps host:port to the port actually dialled (tests: 443/8448 → local ports). */
  connectPort?: (host: string, port: number) => number;
  now?: () => number;
  /** Retry delays of the federation sender (tests shorten them). */
  senderBackoff?: { baseMs?: number; maxMs?: number };
}

export interface FederationContext {
  readonly federation: {
    readonly transport: FederationTransport;
    readonly discovery: ServerDiscovery;
    readonly client: FederationClient;
    readonly keyring: Keyring;
    readonly verifier: RequestVerifier;
    /** Whether federation with a server is allowed (federation.allowed_servers). */
    isAllowed(serverName: string): boolean;
    close(): void;
  };
}

const KEY_RESPONSE_MAX_BYTES = 1024 * 1024;
const KEY_REQUEST_TIMEOUT_MS = 20_000;

export function createFederationServices(
  config: Config,
  database: Database,
  log: Logger,
  signingKey: SigningKey,
  options: FederationOptions = {},
): FederationContext {
  const flog = log.child({ subsystem: 'federation' });
  const fc = config.federation;
  const allowed = fc.allowed_servers ? new Set(fc.allowed_servers.map((s) => s.toLowerCase())) : undefined;
  const isAllowed = (name: string) => !allowed || name === config.server_name || allowed.has(name.toLowerCase());
  const transport = new FederationTransport({
    resolver: options.resolver ?? systemResolver(),
    tls: tlsSettingsFromConfig(fc, flog),
    connectPort: options.connectPort,
  });
  const discovery = new ServerDiscovery({ transport, log: flog, now: options.now });
  const client = new FederationClient({
    serverName: config.server_name,
    signingKey,
    discovery,
    transport,
    log: flog,
    defaultTimeoutMs: fc.request_timeout_ms,
    defaultMaxBytes: fc.max_response_size,
    isAllowed,
  });
  const keyring = new Keyring({
    serverName: config.server_name,
    signingKey,
    oldVerifyKeys: fc.old_verify_keys,
    ownKeyValidityMs: fc.key_validity_period_ms,
    store: new ServerKeyStore(database),
    trustedKeyServers: fc.trusted_key_servers,
    log: flog,
    now: options.now,
    fetcher: {
      fetchServerKeys: (server) =>
        client.get(server, '/_matrix/key/v2/server', { signed: false, timeoutMs: KEY_REQUEST_TIMEOUT_MS, maxBytes: KEY_RESPONSE_MAX_BYTES }),
      queryNotary: (notary, body: JsonObject) =>
        client.post(notary, '/_matrix/key/v2/query', body, { timeoutMs: KEY_REQUEST_TIMEOUT_MS, maxBytes: 16 * KEY_RESPONSE_MAX_BYTES }),
    },
  });
  const verifier = new RequestVerifier({ serverName: config.server_name, keyring, log: flog, isAllowed });
  return {
    federation: {
      transport,
      discovery,
      client,
      keyring,
      verifier,
      isAllowed,
      close: () => transport.close(),
    },
  };
}

export { FederationClient, withQuery, type HttpMethod, type RequestOptions } from './client.js';
export { staticResolver, systemResolver, type DnsResolver, type SrvRecord, type StaticDnsRecords } from './dns.js';
export { ServerDiscovery, type ResolvedServer, type DiscoveryStep } from './discovery.js';
export * from './errors.js';
export { Keyring, type KeyUse, type SignatureCheck, type VerifyKeyInfo } from './keyring.js';
export { originOf, RequestVerifier } from './request-auth.js';
