import { Type, type Static, type TSchema } from '@sinclair/typebox';

/**
 * The one schema every configuration source (myelin.yaml, MYELIN_* environment variables,
 * programmatic overrides in tests) is validated against. Defaults fit a 1 GB board.
 */
const Port = Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port (0 picks a free port)' });
const Bind = Type.String({ minLength: 1, description: 'address to bind, e.g. 0.0.0.0, ::, 127.0.0.1' });

function listener(port: number, bind: string, what: string) {
  return Type.Object(
    {
      enabled: Type.Boolean({ default: true }),
      bind: Type.String({ ...Bind, default: bind }),
      port: Type.Integer({ ...Port, default: port }),
      tls: Type.Optional(
        Type.Object(
          {
            cert_file: Type.String({ minLength: 1, description: 'PEM certificate chain, relative to the data directory' }),
            key_file: Type.String({ minLength: 1, description: 'PEM private key, relative to the data directory' }),
          },
          { additionalProperties: false, description: 'serve HTTPS on this listener' },
        ),
      ),
    },
    { additionalProperties: false, default: {}, description: what },
  );
}

/** A token bucket per client address: `per_second` refill, `burst` size. */
function rateLimit(perSecond: number, burst: number) {
  return Type.Object(
    {
      per_second: Type.Number({ exclusiveMinimum: 0, default: perSecond }),
      burst: Type.Integer({ minimum: 1, default: burst }),
    },
    { additionalProperties: false, default: {} },
  );
}

/** Byte sizes: an integer number of bytes, or a string such as "512k", "50M", "1G". */
export const ByteSize = Type.Union([
  Type.Integer({ minimum: 1 }),
  Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?\\s*([kKmMgG]i?[bB]?|[bB])?$' }),
]);

export const ConfigSchema = Type.Object(
  {
    server_name: Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$',
      description: 'the domain part of user IDs, e.g. example.org',
    }),
    public_baseurl: Type.Optional(Type.String({ pattern: '^https?://', description: 'URL clients use to reach this server' })),
    listeners: Type.Object(
      {
        client: listener(8008, '0.0.0.0', 'client-server API'),
        federation: listener(8448, '0.0.0.0', 'server-server API'),
        metrics: Type.Object(
          {
            ...listener(9092, '127.0.0.1', 'Prometheus metrics').properties,
            basic_auth: Type.Optional(
              Type.Object(
                { username: Type.String({ minLength: 1 }), password: Type.String({ minLength: 8 }) },
                { additionalProperties: false, description: 'credentials Prometheus must send (HTTP Basic)' },
              ),
            ),
          },
          { additionalProperties: false, default: {}, description: 'Prometheus metrics (GET /metrics)' },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    database: Type.Object(
      {
        engine: Type.Union([Type.Literal('sqlite'), Type.Literal('postgres')], { default: 'sqlite' }),
        path: Type.String({ minLength: 1, default: 'myelin.db', description: 'SQLite file, relative to the data directory' }),
        url: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', description: 'PostgreSQL connection URL' })),
        synchronous: Type.Union([Type.Literal('FULL'), Type.Literal('NORMAL'), Type.Literal('EXTRA')], { default: 'FULL' }),
        busy_timeout_ms: Type.Integer({ minimum: 0, default: 5000 }),
        cache_size_kib: Type.Integer({ minimum: 256, default: 8192 }),
        commit_gather_ms: Type.Integer({
          minimum: 0,
          maximum: 50,
          default: 0,
          description: 'SQLite: while commits follow each other, how long a commit waits for more writes to share its disk sync (0: never)',
        }),
        pool_size: Type.Integer({ minimum: 1, maximum: 100, default: 5 }),
      },
      { additionalProperties: false, default: {} },
    ),
    registration: Type.Union([Type.Literal('closed'), Type.Literal('token'), Type.Literal('open')], { default: 'closed' }),
    registration_shared_secret: Type.Optional(Type.String({ minLength: 16 })),
    password_hashing: Type.Object(
      {
        scrypt_log_n: Type.Integer({ minimum: 12, maximum: 20, default: 15, description: 'scrypt cost: N = 2^scrypt_log_n (r=8, p=1)' }),
      },
      { additionalProperties: false, default: {} },
    ),
    access_token_lifetime_ms: Type.Integer({
      minimum: 10000,
      default: 300000,
      description: 'lifetime of access tokens issued with a refresh token',
    }),
    login_token_lifetime_ms: Type.Integer({ minimum: 1000, default: 120000, description: 'lifetime of m.login.token tokens' }),
    rate_limits: Type.Object(
      {
        login: rateLimit(0.5, 10),
        registration: rateLimit(0.17, 5),
        /** Per sending user: room messages, state events and redactions. */
        message: rateLimit(5, 50),
        /** Per reporting user: content reports. */
        report: rateLimit(0.1, 10),
        /** Per inviting user: invites by e-mail address (each asks an identity server). */
        third_party_invite: rateLimit(0.2, 10),
      },
      { additionalProperties: false, default: {} },
    ),
    log_level: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    max_request_body: Type.Union(ByteSize.anyOf, { default: '50M' }),
    shutdown_timeout_ms: Type.Integer({ minimum: 0, maximum: 600000, default: 10000 }),
    signing_worker: Type.Boolean({
      default: false,
      description: 'sign new events on a worker thread (with more than one CPU core): less main-thread time per message, about 10 MiB more memory',
    }),
    metrics: Type.Object(
      {
        top_rooms: Type.Integer({ minimum: 0, maximum: 100, default: 10, description: 'rooms labelled in myelin_room_messages' }),
      },
      { additionalProperties: false, default: {} },
    ),
    stats: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'serve the live stats page at /_myelin/stats' }),
        access: Type.Union([Type.Literal('public'), Type.Literal('login'), Type.Literal('admin')], {
          default: 'public',
          description: 'who may see it: anyone, any local user, or server administrators',
        }),
        interval_ms: Type.Integer({ minimum: 250, maximum: 60000, default: 2000, description: 'sampling period while someone watches' }),
        history: Type.Integer({ minimum: 10, maximum: 10000, default: 300, description: 'samples kept for the charts' }),
      },
      { additionalProperties: false, default: {} },
    ),
    app_services: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'application-service registration files (YAML), relative to the data directory',
    }),
    app_service_delivery: Type.Object(
      {
        batch_size: Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'most events in one transaction' }),
        retry_initial_ms: Type.Integer({ minimum: 10, default: 1000, description: 'first retry delay of a failed transaction' }),
        retry_max_ms: Type.Integer({ minimum: 10, default: 300000, description: 'longest retry delay (the delay doubles up to it)' }),
        request_timeout_ms: Type.Integer({ minimum: 100, maximum: 600000, default: 30000, description: 'timeout of each request to a service' }),
      },
      { additionalProperties: false, default: {} },
    ),
    identity: Type.Object(
      {
        allow_private_servers: Type.Boolean({
          default: false,
          description: 'contact identity servers (for invites by e-mail address) on loopback, private, link-local or other special addresses',
        }),
      },
      { additionalProperties: false, default: {}, description: 'requests to the identity servers clients name' },
    ),
    push: Type.Object(
      {
        allow_private_gateways: Type.Boolean({
          default: false,
          description: 'push to gateways on loopback, private, link-local or other special addresses (a self-hosted gateway on the LAN)',
        }),
        allow_http_gateways: Type.Boolean({ default: false, description: 'accept plain http:// push gateway URLs' }),
        request_timeout_ms: Type.Integer({ minimum: 100, maximum: 600000, default: 15000, description: 'timeout of one request to a push gateway' }),
        retry_initial_ms: Type.Integer({ minimum: 10, default: 1000, description: 'first retry delay after a failed push' }),
        retry_max_ms: Type.Integer({ minimum: 10, default: 600000, description: 'longest retry delay (the delay doubles up to it, with jitter)' }),
        max_retry_duration_ms: Type.Integer({
          minimum: 1000,
          default: 86_400_000,
          description: 'once a gateway has been failing this long, notifications are dropped (logged) instead of retried',
        }),
        badge_interval_ms: Type.Integer({ minimum: 0, default: 10000, description: 'at most one badge-only update per user per interval' }),
      },
      { additionalProperties: false, default: {}, description: 'notifications to push gateways (http pushers)' },
    ),
    well_known: Type.Object(
      {
        server: Type.Optional(Type.String({ minLength: 1, description: 'm.server value, host[:port]' })),
        client: Type.Optional(Type.String({ pattern: '^https?://', description: 'm.homeserver base_url' })),
        client_extra: Type.Record(Type.String(), Type.Unknown(), {
          default: {},
          description: 'more keys for /.well-known/matrix/client (e.g. org.matrix.msc4143.rtc_foci for calls, m.identity_server); m.homeserver is set by the server',
        }),
        support: Type.Optional(
          Type.Object(
            {
              contacts: Type.Optional(
                Type.Array(
                  Type.Object(
                    {
                      matrix_id: Type.Optional(Type.String({ pattern: '^@[^:]+:.+$', description: 'a Matrix user ID, e.g. @admin:example.org' })),
                      email_address: Type.Optional(Type.String({ pattern: '^[^@\\s]+@[^@\\s]+$', description: 'an e-mail address' })),
                      role: Type.String({ minLength: 1, default: 'm.role.admin', description: 'm.role.admin, m.role.security or a namespaced role' }),
                    },
                    { additionalProperties: false },
                  ),
                  { minItems: 1 },
                ),
              ),
              support_page: Type.Optional(Type.String({ pattern: '^https?://', description: 'URL of a help page for this server' })),
            },
            { additionalProperties: false, description: 'what /.well-known/matrix/support announces' },
          ),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    federation: Type.Object(
      {
        key_validity_period_ms: Type.Integer({
          minimum: 3600000,
          default: 7 * 24 * 3600 * 1000,
          description: 'how long other servers may cache our signing key (valid_until_ts)',
        }),
        old_verify_keys: Type.Record(
          Type.String({ pattern: '^ed25519:[A-Za-z0-9_]+$' }),
          Type.Object(
            {
              key: Type.String({ minLength: 43, maxLength: 44, description: 'unpadded base64 public key' }),
              expired_ts: Type.Integer({ minimum: 0, description: 'when the key stopped being used (ms)' }),
            },
            { additionalProperties: false },
          ),
          { default: {}, description: 'signing keys this server used to use, published as old_verify_keys' },
        ),
        trusted_key_servers: Type.Array(
          Type.Object(
            {
              server_name: Type.String({ minLength: 1 }),
              verify_keys: Type.Record(Type.String({ pattern: '^ed25519:[A-Za-z0-9_]+$' }), Type.String({ minLength: 43, maxLength: 44 }), {
                description: 'key ID -> unpadded base64 public key of the notary',
              }),
            },
            { additionalProperties: false },
          ),
          { default: [], description: 'notary servers asked for keys when a server cannot be reached directly' },
        ),
        ca_files: Type.Array(Type.String({ minLength: 1 }), {
          default: [],
          description: 'extra PEM CA certificates trusted for federation, relative to the data directory',
        }),
        use_system_ca: Type.Boolean({ default: true, description: "trust the system's certificate authorities" }),
        insecure_skip_tls_verify: Type.Boolean({
          default: false,
          description: 'DEVELOPMENT ONLY: accept any TLS certificate from other servers',
        }),
        allowed_servers: Type.Optional(
          Type.Array(Type.String({ minLength: 1 }), { description: 'if set, federate only with these server names' }),
        ),
        request_timeout_ms: Type.Integer({ minimum: 1000, maximum: 600000, default: 60000 }),
        max_response_size: Type.Union(ByteSize.anyOf, { default: '100M' }),
      },
      { additionalProperties: false, default: {} },
    ),
    media: Type.Object(
      {
        store_path: Type.String({ minLength: 1, default: 'media', description: 'media files, relative to the data directory' }),
        max_upload_size: Type.Union(ByteSize.anyOf, { default: '50M', description: 'largest upload (and largest remote file fetched)' }),
        max_user_storage: Type.Optional(
          Type.Union(ByteSize.anyOf, { description: "total size of one user's uploads (unset: no quota)" }),
        ),
        freeze_unauthenticated: Type.Boolean({
          default: true,
          description: 'media uploaded (or remote media cached) while this is on is served only by the authenticated endpoints',
        }),
        max_pending_uploads: Type.Integer({ minimum: 1, default: 10, description: 'media IDs from /create a user may hold unused' }),
        pending_upload_lifetime_ms: Type.Integer({ minimum: 1000, default: 86_400_000, description: 'how long a /create media ID waits for its upload' }),
        max_thumbnail_source_size: Type.Union(ByteSize.anyOf, { default: '20M', description: 'larger images are not thumbnailed' }),
        max_thumbnail_pixels: Type.Integer({ minimum: 1, default: 40_000_000, description: 'images with more pixels are not thumbnailed' }),
        remote_fetch_timeout_ms: Type.Integer({ minimum: 1000, maximum: 600000, default: 60000, description: 'wait for a remote server to start (or continue) sending media' }),
        url_preview: Type.Object(
          {
            enabled: Type.Boolean({ default: false, description: 'serve URL previews (the server fetches pages for clients)' }),
            ip_blacklist: Type.Array(Type.String({ minLength: 1 }), {
              default: [],
              description: 'extra address ranges (CIDR) never fetched; private, loopback and link-local ranges are always refused',
            }),
            ip_whitelist: Type.Array(Type.String({ minLength: 1 }), {
              default: [],
              description: 'address ranges (CIDR) fetched even though a refused range contains them',
            }),
            max_size: Type.Union(ByteSize.anyOf, { default: '10M', description: 'largest page or image fetched for a preview' }),
            timeout_ms: Type.Integer({ minimum: 100, maximum: 120000, default: 10000, description: 'time limit of one preview fetch' }),
            max_redirects: Type.Integer({ minimum: 0, maximum: 20, default: 5 }),
          },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {}, description: 'the media repository (uploads, downloads, thumbnails)' },
    ),
    turn_uris: Type.Array(Type.String({ pattern: '^turns?:' }), {
      default: [],
      description: 'TURN server URIs handed to clients for calls, e.g. turn:turn.example.org:3478?transport=udp',
    }),
    turn_shared_secret: Type.Optional(
      Type.String({ minLength: 8, description: "coturn's static-auth-secret: time-limited TURN credentials are derived from it" }),
    ),
    turn_user_lifetime: Type.Union([Type.Integer({ minimum: 60000 }), Type.String({ pattern: '^[0-9]+\\s*(ms|s|m|h|d)$' })], {
      default: '1d',
      description: 'how long TURN credentials stay valid: milliseconds or a duration such as 1h, 1d',
    }),
    turn_allow_guests: Type.Boolean({ default: true, description: 'give TURN credentials to guest accounts too' }),
    tunnel: Type.Object(
      {
        enabled: Type.Boolean({ default: false, description: 'keep a reverse SSH tunnel to a relay open' }),
        host: Type.String({ default: '', description: 'relay host name or address' }),
        port: Type.Integer({ ...Port, minimum: 1, default: 22 }),
        user: Type.String({ default: 'myelin', minLength: 1 }),
        private_key_file: Type.String({ minLength: 1, default: 'tunnel_key', description: 'OpenSSH private key, relative to the data directory' }),
        passphrase: Type.Optional(Type.String({ description: "the private key's passphrase, if it has one" })),
        host_key: Type.Optional(
          Type.String({ minLength: 1, description: 'pinned relay host key: SHA256:… fingerprint or an "ssh-ed25519 AAAA…" line' }),
        ),
        accept_unknown_host_key: Type.Boolean({
          default: false,
          description: 'FIRST SETUP ONLY: accept any relay host key (logged loudly) when host_key is not set',
        }),
        remote_bind: Type.String({ default: '0.0.0.0', description: 'address the relay listens on (needs GatewayPorts clientspecified)' }),
        forward: Type.Object(
          {
            client: Type.Union([Type.Integer({ ...Port }), Type.Literal(false)], { default: 8008 }),
            federation: Type.Union([Type.Integer({ ...Port }), Type.Literal(false)], { default: 8448 }),
            metrics: Type.Union([Type.Integer({ ...Port }), Type.Literal(false)], { default: 9092 }),
          },
          { additionalProperties: false, default: {}, description: 'relay port forwarded to each local listener (false: none)' },
        ),
        keepalive_interval_ms: Type.Integer({ minimum: 500, maximum: 600000, default: 5000 }),
        keepalive_count_max: Type.Integer({ minimum: 1, maximum: 100, default: 3 }),
        ready_timeout_ms: Type.Integer({ minimum: 1000, maximum: 600000, default: 20000 }),
        backoff_initial_ms: Type.Integer({ minimum: 10, default: 1000 }),
        backoff_max_ms: Type.Integer({ minimum: 10, default: 60000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    acme: Type.Object(
      {
        enabled: Type.Boolean({ default: false, description: 'obtain and renew certificates with ACME (HTTP-01)' }),
        directory_url: Type.String({ pattern: '^https?://', default: 'https://acme-v02.api.letsencrypt.org/directory' }),
        terms_of_service_agreed: Type.Boolean({ default: false, description: "you agree to the CA's terms of service" }),
        email: Type.Optional(Type.String({ minLength: 3, description: 'contact address given to the CA' })),
        domains: Type.Array(Type.String({ pattern: '^[A-Za-z0-9.-]+$' }), {
          default: [],
          description: 'names on the certificate (default: the host of server_name)',
        }),
        listeners: Type.Array(Type.Union([Type.Literal('client'), Type.Literal('federation')]), {
          default: ['federation'],
          description: 'listeners that serve HTTPS with the certificate',
        }),
        challenge_port: Type.Optional(
          Type.Integer({ ...Port, description: 'extra plain-HTTP port answering only ACME challenges (when the client listener is HTTPS)' }),
        ),
        renew_before_days: Type.Integer({ minimum: 1, maximum: 3650, default: 30 }),
        retry_ms: Type.Integer({ minimum: 1000, default: 3600000, description: 'wait after a failed issuance before trying again' }),
        ca_file: Type.Optional(Type.String({ minLength: 1, description: "extra PEM CA trusted for the ACME directory's HTTPS" })),
      },
      { additionalProperties: false, default: {} },
    ),
    watchdog: Type.Object(
      {
        enabled: Type.Boolean({ default: false, description: 'check connectivity and run recovery_command after an outage' }),
        target: Type.Optional(Type.String({ pattern: '^.+:[0-9]{1,5}$', description: 'host:port probed by TCP (default: the tunnel relay)' })),
        check_interval_ms: Type.Integer({ minimum: 100, default: 15000 }),
        outage_ms: Type.Integer({ minimum: 100, default: 180000, description: 'time without connectivity before recovery' }),
        recovery_command: Type.String({ default: '', description: 'run with /bin/sh -c, e.g. "nmcli radio wifi off; nmcli radio wifi on"' }),
        recovery_period_ms: Type.Integer({ minimum: 100, default: 600000, description: 'at most one recovery per period' }),
        recovery_timeout_ms: Type.Integer({ minimum: 100, default: 120000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    mdns: Type.Object(
      {
        enabled: Type.Boolean({ default: false, description: 'announce the server on the local network (mDNS, _matrix._tcp)' }),
        instance_name: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
        interface: Type.Optional(Type.String({ minLength: 1, description: 'IPv4 address of the interface to announce on' })),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type RawConfig = Static<typeof ConfigSchema>;

/** The validated configuration, with derived values resolved. */
export type RawMediaConfig = RawConfig['media'];

/** Media settings with byte sizes resolved to numbers and the store path made absolute. */
export interface MediaConfig extends Omit<RawMediaConfig, 'max_upload_size' | 'max_user_storage' | 'max_thumbnail_source_size' | 'url_preview'> {
  max_upload_size: number;
  max_user_storage: number | undefined;
  max_thumbnail_source_size: number;
  url_preview: Omit<RawMediaConfig['url_preview'], 'max_size'> & { max_size: number };
}

export interface Config extends Omit<RawConfig, 'max_request_body' | 'public_baseurl' | 'federation' | 'media'> {
  public_baseurl: string;
  max_request_body: number;
  federation: Omit<RawConfig['federation'], 'max_response_size'> & { max_response_size: number };
  media: MediaConfig;
  /** Absolute data directory (not a config key: chosen by CLI flag or MYELIN_DATA_DIR). */
  data_dir: string;
}

export type { TSchema };
