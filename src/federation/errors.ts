/** Typed failures of outgoing federation requests. Every one names the destination. */
export class FederationError extends Error {
  constructor(
    readonly destination: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'FederationError';
  }
}

/** The destination's name could not be resolved to an address (no DNS records, DNS failure). */
export class FederationDiscoveryError extends FederationError {
  constructor(destination: string, message: string, options?: { cause?: unknown }) {
    super(destination, message, options);
    this.name = 'FederationDiscoveryError';
  }
}

/** TCP connection failed or was cut (refused, unreachable, reset). */
export class FederationConnectionError extends FederationError {
  constructor(
    destination: string,
    message: string,
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(destination, message, options);
    this.name = 'FederationConnectionError';
  }
}

/** The TLS handshake failed: untrusted or expired certificate, wrong name, protocol error. */
export class FederationTlsError extends FederationConnectionError {
  constructor(destination: string, message: string, code: string | undefined, options?: { cause?: unknown }) {
    super(destination, message, code, options);
    this.name = 'FederationTlsError';
  }
}

export class FederationTimeoutError extends FederationError {
  constructor(destination: string, readonly timeoutMs: number) {
    super(destination, `request to ${destination} timed out after ${timeoutMs} ms`);
    this.name = 'FederationTimeoutError';
  }
}

export class FederationResponseTooLargeError extends FederationError {
  constructor(destination: string, readonly limit: number) {
    super(destination, `response from ${destination} exceeds ${limit} bytes`);
    this.name = 'FederationResponseTooLargeError';
  }
}

/** The response was not a JSON object (or not JSON at all). */
export class FederationBadResponseError extends FederationError {
  constructor(destination: string, message: string, readonly status: number) {
    super(destination, message);
    this.name = 'FederationBadResponseError';
  }
}

/** The destination answered with a non-2xx status; `errcode`/`error` when it sent a Matrix error. */
export class FederationHttpError extends FederationError {
  constructor(
    destination: string,
    readonly status: number,
    readonly errcode: string | undefined,
    readonly errorText: string | undefined,
    readonly body: unknown,
  ) {
    super(destination, `${destination} answered ${status}${errcode ? ` ${errcode}` : ''}${errorText ? `: ${errorText}` : ''}`);
    this.name = 'FederationHttpError';
  }
}

/** Federation with this server is not allowed by the configuration (federation.allowed_servers). */
export class FederationNotAllowedError extends FederationError {
  constructor(destination: string) {
    super(destination, `federation with ${destination} is not allowed by federation.allowed_servers`);
    this.name = 'FederationNotAllowedError';
  }
}

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
]);

/** Classifies a socket-level error of a request to `destination`. */
export function connectionError(destination: string, err: unknown): FederationError {
  if (err instanceof FederationError) return err;
  const e = err as NodeJS.ErrnoException & { reason?: string };
  const code = e?.code;
  const msg = e?.message ?? String(err);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ENODATA') {
    return new FederationDiscoveryError(destination, `cannot resolve ${destination}: ${msg}`, { cause: err });
  }
  if ((code && (TLS_CODES.has(code) || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS'))) || /certificate|ssl|tls/i.test(msg)) {
    return new FederationTlsError(destination, `TLS with ${destination} failed: ${msg}`, code, { cause: err });
  }
  return new FederationConnectionError(destination, `connection to ${destination} failed: ${msg}`, code, { cause: err });
}
