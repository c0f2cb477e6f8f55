import { createHmac } from 'node:crypto';

export interface TurnCredentials {
  username: string;
  password: string;
  uris: string[];
  /** Seconds the credentials stay valid. */
  ttl: number;
}

/**
 * Time-limited TURN credentials for coturn's `use-auth-secret` mode (the "TURN REST API"):
 * username `<expiry unix seconds>:<user ID>`, password base64(HMAC-SHA1(secret, username)).
 * coturn recomputes the password from the username and refuses it after the expiry.
 */
export function turnCredentials(opts: {
  secret: string;
  userId: string;
  uris: string[];
  lifetimeMs: number;
  nowMs: number;
}): TurnCredentials {
  const expiry = Math.floor((opts.nowMs + opts.lifetimeMs) / 1000);
  const username = `${expiry}:${opts.userId}`;
  const password = createHmac('sha1', opts.secret).update(username).digest('base64');
  return { username, password, uris: [...opts.uris], ttl: Math.floor(opts.lifetimeMs / 1000) };
}
