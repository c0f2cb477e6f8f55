import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { decodeSigningKeyFile, encodeSigningKeyFile, generateSigningKey, type SigningKey } from '../protocol/signing.js';
import { ConfigError } from './load.js';

export const CONFIG_FILE = 'myelin.yaml';
export const SIGNING_KEY_FILE = 'signing.key';

export interface DataDirPaths {
  dataDir: string;
  configPath: string;
  signingKeyPath: string;
}

export function dataDirPaths(dataDir: string, configPath?: string): DataDirPaths {
  const abs = resolve(dataDir);
  return {
    dataDir: abs,
    configPath: configPath ? resolve(configPath) : join(abs, CONFIG_FILE),
    signingKeyPath: join(abs, SIGNING_KEY_FILE),
  };
}

/** The commented myelin.yaml written on first run. Every key shown is validated by config/schema.ts. */
export function configTemplate(serverName: string, sharedSecret: string): string {
  return `# Myelin configuration.
# Every key can also be set from the environment: MYELIN_ followed by the key path in
# capitals with __ between levels, e.g. MYELIN_LISTENERS__CLIENT__PORT=8008.

# The domain part of your users' IDs (@alice:${serverName}). It cannot be changed once
# users exist, so pick the name the box will be reachable at.
server_name: ${JSON.stringify(serverName)}

# The URL clients use to reach the client API. Defaults to https://<server_name>/
# (http://localhost:<client port>/ for localhost and IP addresses).
# public_baseurl: "https://matrix.example.org/"

# Where the server listens. Port 0 picks a free port.
listeners:
  # Client-server API (Element, FluffyChat, bots).
  client:
    bind: "0.0.0.0"
    port: 8008
  # Server-server API (federation with other homeservers).
  federation:
    bind: "0.0.0.0"
    port: 8448
  # Prometheus metrics (GET /metrics); keep it on loopback unless a scraper elsewhere
  # needs it, and then require credentials.
  metrics:
    bind: "127.0.0.1"
    port: 9092
    # basic_auth:
    #   username: prometheus
    #   password: "a long random password"

# Storage.
database:
  # "sqlite" (embedded, the default) or "postgres" (set url).
  engine: sqlite
  # SQLite file, relative to the data directory.
  path: myelin.db
  # FULL survives power loss without losing an acknowledged message (the disk sync runs in the
  # background: the server keeps answering meanwhile). NORMAL may lose the last seconds of
  # acknowledged writes on power loss; EXTRA syncs inside each commit, blocking the server.
  synchronous: FULL
  # url: "postgres://myelin:secret@localhost/myelin"

# Who may create accounts: closed (only "myelin register-user" and the admin API),
# token (with a registration token from "myelin registration-token create"), or open.
registration: closed

# Shared secret for /_synapse/admin/v1/register (register_new_matrix_user and similar tools).
registration_shared_secret: ${JSON.stringify(sharedSecret)}

# Password hashing cost (scrypt, N = 2^scrypt_log_n; 15 uses 32 MiB and ~0.1 s per hash).
# Changing it is safe: old hashes keep working and are upgraded at the next login.
# password_hashing:
#   scrypt_log_n: 15

# Token buckets per client address for login and registration (429 M_LIMIT_EXCEEDED above).
# rate_limits:
#   login: { per_second: 0.5, burst: 10 }
#   registration: { per_second: 0.17, burst: 5 }
#   message: { per_second: 5, burst: 50 }      # per user: messages, state events, redactions
#   report: { per_second: 0.1, burst: 10 }     # per user: content reports

# Lifetime of access tokens for clients that use refresh tokens, and of m.login.token tokens.
# access_token_lifetime_ms: 300000
# login_token_lifetime_ms: 120000

# fatal, error, warn, info, debug, trace or silent.
log_level: info

# Largest request body accepted, in bytes or with a unit (512k, 50M, 1G).
max_request_body: 50M

# Application services (bridges): their registration files, relative to the data directory.
# See docs/bridges.md.
# app_services:
#   - slack-registration.yaml

# The live stats page at /_myelin/stats (?layout=small for a 480x320 or 320x240 screen).
# access: public (anyone), login (any local user) or admin (server administrators).
stats:
  enabled: true
  access: public

# Push notifications to the push gateways of mobile apps (see docs/notifications.md).
# Gateways on private or loopback addresses, and plain http:// gateways, are refused unless
# allowed here (e.g. a self-hosted ntfy or Sygnal on the LAN).
# push:
#   allow_private_gateways: false
#   allow_http_gateways: false

# What /.well-known/matrix/server and /.well-known/matrix/client announce.
# well_known:
#   server: "matrix.example.org:443"
#   client: "https://matrix.example.org"
#   # More keys for /.well-known/matrix/client, e.g. a LiveKit service for Element Call:
#   client_extra:
#     org.matrix.msc4143.rtc_foci: [{ type: "livekit", livekit_service_url: "https://livekit-jwt.example.org" }]
#   # Who to contact about this server (/.well-known/matrix/support), shown by clients.
#   support:
#     contacts: [{ matrix_id: "@admin:example.org", role: "m.role.admin" }]
#     support_page: "https://example.org/help"

# Federation with other homeservers (see docs/federation.md). Other servers connect over
# HTTPS: give the federation listener a certificate, or put a TLS reverse proxy in front:
# listeners:
#   federation:
#     tls: { cert_file: "tls/fullchain.pem", key_file: "tls/privkey.pem" }
# federation:
#   # Extra CAs trusted for other servers' certificates (e.g. a private CA on a LAN).
#   ca_files: []
#   # Notaries asked for keys of servers that cannot be reached directly.
#   trusted_key_servers: []
#   # DEVELOPMENT ONLY: do not check other servers' certificates.
#   insecure_skip_tls_verify: false

# Media (uploads, downloads, thumbnails; see docs/media.md).
# media:
#   max_upload_size: 50M
#   # Total size of one user's uploads (unset: no quota).
#   # max_user_storage: 1G
#   # Media uploaded while this is on is served only by the authenticated endpoints.
#   freeze_unauthenticated: true
#   # URL previews make the server fetch pages users link to; private addresses are refused.
#   url_preview:
#     enabled: false

# Reverse SSH tunnel to a relay with a public address (the box sits behind NAT). Myelin keeps
# it up by itself: keepalives, reconnection with back-off, forever. See docs/tunnel.md.
# tunnel:
#   enabled: true
#   host: "relay.example.org"
#   port: 22
#   user: "myelin"
#   private_key_file: "tunnel_key"        # ssh-keygen -t ed25519 -N "" -f <data dir>/tunnel_key
#   host_key: "SHA256:…"                  # the relay's key: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub
#   # accept_unknown_host_key: true       # FIRST SETUP ONLY, instead of host_key (logged loudly)
#   forward: { client: 8008, federation: 8448, metrics: 9092 }   # relay port per listener, or false

# Certificates from Let's Encrypt (ACME, HTTP-01 answered by the client listener, directly or
# through the tunnel). Stored in <data dir>/acme, renewed 30 days before they expire.
# acme:
#   enabled: true
#   terms_of_service_agreed: true
#   email: "admin@example.org"
#   domains: ["matrix.example.org"]        # default: the host of server_name
#   listeners: ["federation"]              # listeners that serve HTTPS with it

# Connectivity watchdog: after outage_ms without reaching the relay (or target), run a
# recovery command instead of needing a reboot; at most once per recovery_period_ms.
# watchdog:
#   enabled: true
#   outage_ms: 180000
#   recovery_command: "nmcli radio wifi off; sleep 2; nmcli radio wifi on"
#   recovery_period_ms: 600000

# Calls: TURN credentials for your coturn (its static-auth-secret). See docs/calls.md.
# turn_uris: ["turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp"]
# turn_shared_secret: "the same value as static-auth-secret in turnserver.conf"
# turn_user_lifetime: 1d

# Announce the server on the local network (mDNS, _matrix._tcp.local). Off by default.
# mdns:
#   enabled: true
`;
}

export interface FirstRunResult {
  paths: DataDirPaths;
  createdConfig: boolean;
  createdSigningKey: boolean;
}

/**
 * Makes sure the data directory holds a configuration file and a signing key,
 * creating what is missing. Existing files are never overwritten.
 */
export function ensureDataDir(paths: DataDirPaths, serverName: string): FirstRunResult {
  mkdirSync(paths.dataDir, { recursive: true, mode: 0o700 });
  let createdConfig = false;
  let createdSigningKey = false;
  if (!existsSync(paths.configPath)) {
    const secret = randomBytes(24).toString('base64url');
    writeFileSync(paths.configPath, configTemplate(serverName, secret), { mode: 0o600, flag: 'wx' });
    createdConfig = true;
  }
  if (!existsSync(paths.signingKeyPath)) {
    writeFileSync(paths.signingKeyPath, encodeSigningKeyFile(generateSigningKey()), { mode: 0o600, flag: 'wx' });
    createdSigningKey = true;
  }
  return { paths, createdConfig, createdSigningKey };
}

export function readSigningKey(path: string): SigningKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`Cannot read the signing key ${path}: ${(err as Error).message}. Run "myelin init" to create one.`);
  }
  try {
    return decodeSigningKeyFile(text);
  } catch (err) {
    throw new ConfigError(`The signing key file ${path} is not valid: ${(err as Error).message}`);
  }
}
