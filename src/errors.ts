/**
 * Matrix errors as data: every failure the server reports carries an errcode,
 * a human-readable message and the HTTP status the spec names.
 * The list of errcodes is closed on purpose: test/unit/errors.test.ts checks that
 * each one is documented in the Matrix specification.
 */
export const ERRCODES = [
  'M_APPSERVICE_LOGIN_UNSUPPORTED',
  'M_BAD_ALIAS',
  'M_BAD_JSON',
  'M_BAD_STATE',
  'M_BAD_STATUS',
  'M_CANNOT_LEAVE_SERVER_NOTICE_ROOM',
  'M_CANNOT_OVERWRITE_MEDIA',
  'M_CAPTCHA_INVALID',
  'M_CAPTCHA_NEEDED',
  'M_CONNECTION_FAILED',
  'M_CONNECTION_TIMEOUT',
  'M_DUPLICATE_ANNOTATION',
  'M_EXCLUSIVE',
  'M_FORBIDDEN',
  'M_GUEST_ACCESS_FORBIDDEN',
  'M_INCOMPATIBLE_ROOM_VERSION',
  'M_INVALID_PARAM',
  'M_INVITE_BLOCKED',
  'M_INVALID_ROOM_STATE',
  'M_INVALID_SIGNATURE',
  'M_INVALID_USERNAME',
  'M_KEY_TOO_LARGE',
  'M_LIMIT_EXCEEDED',
  'M_MISSING_PARAM',
  'M_MISSING_TOKEN',
  'M_NOT_FOUND',
  'M_NOT_JSON',
  'M_NOT_YET_UPLOADED',
  'M_RESOURCE_LIMIT_EXCEEDED',
  'M_ROOM_IN_USE',
  'M_SERVER_NOT_TRUSTED',
  'M_THREEPID_AUTH_FAILED',
  'M_THREEPID_DENIED',
  'M_THREEPID_IN_USE',
  'M_THREEPID_MEDIUM_NOT_SUPPORTED',
  'M_THREEPID_NOT_FOUND',
  'M_TOO_LARGE',
  'M_UNABLE_TO_AUTHORISE_JOIN',
  'M_UNABLE_TO_GRANT_JOIN',
  'M_UNAUTHORIZED',
  'M_UNKNOWN',
  'M_UNKNOWN_DEVICE',
  'M_UNKNOWN_TOKEN',
  'M_UNRECOGNIZED',
  'M_UNSUPPORTED_ROOM_VERSION',
  'M_URL_NOT_SET',
  'M_USER_DEACTIVATED',
  'M_USER_IN_USE',
  'M_USER_LOCKED',
  'M_USER_SUSPENDED',
  'M_WEAK_PASSWORD',
  'M_WRONG_ROOM_KEYS_VERSION',
] as const;

/**
 * Errcodes of unstable features, not yet in the specification: each with the proposal that
 * defines it (test/unit/errors.test.ts checks they are still missing from the specification, so
 * they move to ERRCODES once adopted).
 */
export const UNSTABLE_ERRCODES = {
  /** MSC4186 (simplified sliding sync): a connection position the server does not know (any more). */
  M_UNKNOWN_POS: 'MSC4186',
} as const;

export type Errcode = (typeof ERRCODES)[number] | keyof typeof UNSTABLE_ERRCODES;

export type ErrorExtra = Record<string, unknown>;

export class MatrixError extends Error {
  readonly errcode: Errcode;
  readonly status: number;
  readonly extra: ErrorExtra;

  constructor(errcode: Errcode, status: number, message: string, extra: ErrorExtra = {}) {
    super(message);
    this.name = 'MatrixError';
    this.errcode = errcode;
    this.status = status;
    this.extra = extra;
  }

  toJSON(): Record<string, unknown> {
    return { ...this.extra, errcode: this.errcode, error: this.message };
  }
}

/** Shorthands for the errors every part of the server raises. */
export const errors = {
  unrecognized: (message = 'Unrecognized request') => new MatrixError('M_UNRECOGNIZED', 404, message),
  methodNotAllowed: (method: string) => new MatrixError('M_UNRECOGNIZED', 405, `Method ${method} is not allowed on this endpoint`),
  notJson: (message = 'Content not JSON') => new MatrixError('M_NOT_JSON', 400, message),
  badJson: (message: string) => new MatrixError('M_BAD_JSON', 400, message),
  missingParam: (message: string) => new MatrixError('M_MISSING_PARAM', 400, message),
  invalidParam: (message: string) => new MatrixError('M_INVALID_PARAM', 400, message),
  tooLarge: (message = 'Request body too large') => new MatrixError('M_TOO_LARGE', 413, message),
  notFound: (message = 'Not found') => new MatrixError('M_NOT_FOUND', 404, message),
  forbidden: (message: string) => new MatrixError('M_FORBIDDEN', 403, message),
  unknown: (message = 'Internal server error') => new MatrixError('M_UNKNOWN', 500, message),
};
