import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';

export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

export interface AcmeOptions {
  directoryUrl: string;
  termsOfServiceAgreed: boolean;
  email?: string;
  domains: string[];
  /** Where the account key, certificate and key live (<data_dir>/acme). */
  dir: string;
  renewBeforeMs: number;
  retryMs: number;
  /** Extra CA (PEM) trusted for the directory's HTTPS (a private or test CA). */
  caPem?: string;
  log: Logger;
  now?: () => number;
}

export interface CertificatePair {
  cert: string;
  key: string;
  notAfter: number;
  serial: string;
}

export interface AcmeStatus {
  domains: string[];
  notAfter?: number;
  serial?: string;
  lastError?: string;
  nextCheckAt?: number;
  issued: number;
}

/** setTimeout cannot wait longer than 2^31-1 ms; longer waits re-check after a day. */
const MAX_WAIT_MS = 24 * 3600 * 1000;

function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}

/**
 * Certificates by ACME (RFC 8555) with HTTP-01 challenges: the challenge answers are served by
 * the client listener (`/.well-known/acme-challenge/<token>`), directly or through the tunnel.
 * The account key, certificate and key are kept in <data_dir>/acme; a certificate is renewed
 * renewBeforeMs before it expires. One timer, armed for the next renewal (at most a day ahead).
 */
export class AcmeManager {
  private readonly challenges = new Map<string, string>();
  private current: CertificatePair | undefined;
  private context: SecureContext | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private inFlight: Promise<'fresh' | 'issued'> | undefined;
  private readonly listeners = new Set<(pair: CertificatePair) => void>();
  private readonly now: () => number;
  private readonly st: AcmeStatus;

  constructor(private readonly opts: AcmeOptions) {
    this.now = opts.now ?? Date.now;
    this.st = { domains: opts.domains, issued: 0 };
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    this.current = this.load();
  }

  get certPath(): string {
    return join(this.opts.dir, 'certificate.pem');
  }

  get keyPath(): string {
    return join(this.opts.dir, 'certificate.key');
  }

  status(): AcmeStatus {
    return { ...this.st, notAfter: this.current?.notAfter, serial: this.current?.serial };
  }

  certificate(): CertificatePair | undefined {
    return this.current;
  }

  /** The TLS context of the current certificate (undefined before the first issuance). */
  secureContext(): SecureContext | undefined {
    if (!this.context && this.current) this.context = createSecureContext({ cert: this.current.cert, key: this.current.key });
    return this.context;
  }

  /** Called with every new certificate (listeners swap their default TLS context). */
  onCertificate(fn: (pair: CertificatePair) => void): void {
    this.listeners.add(fn);
  }

  /** The key authorization for an HTTP-01 token, while its challenge is pending. */
  challengeResponse(token: string): string | undefined {
    return this.challenges.get(token);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.arm(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight?.catch(() => {});
  }

  /** Issues a certificate when there is none or the current one is due; returns what it did. */
  check(force = false): Promise<'fresh' | 'issued'> {
    this.inFlight ??= this.doCheck(force).finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private arm(delayMs: number): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(delayMs, MAX_WAIT_MS));
    this.st.nextCheckAt = this.now() + wait;
    this.timer = setTimeout(() => {
      this.check().then(
        () => this.arm(this.untilDue()),
        () => this.arm(this.opts.retryMs),
      );
    }, wait);
    this.timer.unref();
  }

  private untilDue(): number {
    if (!this.current) return 0;
    return this.current.notAfter - this.opts.renewBeforeMs - this.now();
  }

  private due(): boolean {
    if (!this.current) return true;
    const names = new Set(this.certNames(this.current.cert));
    if (!this.opts.domains.every((d) => names.has(d.toLowerCase()))) return true;
    return this.untilDue() <= 0;
  }

  private async doCheck(force: boolean): Promise<'fresh' | 'issued'> {
    if (!force && !this.due()) return 'fresh';
    try {
      const pair = await this.issue();
      this.st.lastError = undefined;
      return pair ? 'issued' : 'fresh';
    } catch (err) {
      this.st.lastError = (err as Error).message;
      this.opts.log.error({ err: (err as Error).message, retry_in_ms: this.opts.retryMs }, 'acme: certificate issuance failed');
      throw err;
    }
  }

  private certNames(pem: string): string[] {
    const san = new X509Certificate(pem).subjectAltName ?? '';
    return san
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.startsWith('DNS:'))
      .map((s) => s.slice(4).toLowerCase());
  }

  private load(): CertificatePair | undefined {
    if (!existsSync(this.certPath) || !existsSync(this.keyPath)) return undefined;
    try {
      const cert = readFileSync(this.certPath, 'utf8');
      const key = readFileSync(this.keyPath, 'utf8');
      const x = new X509Certificate(cert);
      return { cert, key, notAfter: Date.parse(x.validTo), serial: x.serialNumber };
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message, path: this.certPath }, 'acme: stored certificate unreadable; issuing a new one');
      return undefined;
    }
  }

  private async issue(): Promise<CertificatePair> {
    const o = this.opts;
    if (!o.termsOfServiceAgreed) {
      throw new Error(`acme.terms_of_service_agreed must be true: read the CA's terms (${o.directoryUrl}) first`);
    }
    const acme = (await import('acme-client')).default;
    if (o.caPem) acme.axios.defaults.httpsAgent = new Agent({ ca: o.caPem });
    const accountKeyPath = join(o.dir, 'account.key');
    let accountKey: string;
    if (existsSync(accountKeyPath)) accountKey = readFileSync(accountKeyPath, 'utf8');
    else {
      accountKey = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
      writeAtomic(accountKeyPath, accountKey, 0o600);
    }
    const client = new acme.Client({ directoryUrl: o.directoryUrl, accountKey });
    const [keyBuf, csr] = await acme.crypto.createCsr(
      { commonName: o.domains[0]!, altNames: o.domains },
      await acme.crypto.createPrivateEcdsaKey('P-256'),
    );
    o.log.info({ domains: o.domains, directory: o.directoryUrl }, 'acme: requesting a certificate');
    const cert = await client.auto({
      csr,
      email: o.email,
      termsOfServiceAgreed: true,
      challengePriority: ['http-01'],
      // The CA checks the challenge itself; a self-check from behind NAT often cannot.
      skipChallengeVerification: true,
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
        if (challenge.type !== 'http-01') throw new Error(`unsupported challenge ${challenge.type}`);
        this.challenges.set(challenge.token, keyAuthorization);
      },
      challengeRemoveFn: async (_authz, challenge) => {
        this.challenges.delete(challenge.token);
      },
    });
    const key = keyBuf.toString();
    const x = new X509Certificate(cert);
    // Key first: a certificate is never on disk without its key.
    writeAtomic(this.keyPath, key, 0o600);
    writeAtomic(this.certPath, cert, 0o644);
    const pair: CertificatePair = { cert, key, notAfter: Date.parse(x.validTo), serial: x.serialNumber };
    this.current = pair;
    this.context = createSecureContext({ cert, key });
    this.st.issued += 1;
    o.log.info({ domains: o.domains, not_after: x.validTo, serial: x.serialNumber }, 'acme: certificate issued');
    for (const fn of this.listeners) fn(pair);
    return pair;
  }
}

/**
 * A plain-HTTP server answering only ACME challenges (acme.challenge_port), for when the
 * client listener itself serves HTTPS; every other request is redirected to https.
 */
export function createChallengeServer(acme: AcmeManager): Server {
  return createServer((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith(ACME_CHALLENGE_PREFIX)) {
      const answer = acme.challengeResponse(url.slice(ACME_CHALLENGE_PREFIX.length));
      res.writeHead(answer ? 200 : 404, { 'content-type': 'text/plain' }).end(answer ?? 'unknown challenge');
      return;
    }
    const host = (req.headers.host ?? '').replace(/:[0-9]+$/, '');
    res.writeHead(host ? 301 : 404, host ? { location: `https://${host}${url}` } : {}).end();
  });
}
