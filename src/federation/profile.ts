/**
 * Profiles of users of other servers: `GET /_matrix/federation/v1/query/profile` on the user's
 * server, for the client API's `GET /profile/{userId}` and `GET /profile/{userId}/{keyName}`.
 */
import { MatrixError, errors } from '../errors.js';
import { serverNameOf } from '../protocol/identifiers.js';
import type { JsonObject } from '../protocol/json.js';
import type { FederationClient } from './client.js';
import { FederationHttpError, FederationNotAllowedError } from './errors.js';

/** How long a client waits for another server's profile answer. */
export const REMOTE_PROFILE_TIMEOUT_MS = 10_000;
/** A profile answer larger than this is refused (a profile is a handful of short strings). */
const MAX_PROFILE_BYTES = 64 * 1024;

/**
 * Asks the user's server for their profile, or for one field of it. The answer is returned as
 * the client API shapes it: an object of the fields the other server gave (only `field` when
 * one was asked for). A 404 from the other server is `M_NOT_FOUND`; a server we may not talk
 * to is `M_FORBIDDEN`; anything else (unreachable, bad answer) is `502 M_UNKNOWN`.
 */
export async function queryRemoteProfile(
  client: Pick<FederationClient, 'get'>,
  userId: string,
  field?: string,
): Promise<JsonObject> {
  const server = serverNameOf(userId);
  if (!server) throw errors.invalidParam(`${userId} is not a valid user ID`);
  let answer: JsonObject;
  try {
    answer = await client.get<JsonObject>(server, '/_matrix/federation/v1/query/profile', {
      query: { user_id: userId, field },
      timeoutMs: REMOTE_PROFILE_TIMEOUT_MS,
      maxBytes: MAX_PROFILE_BYTES,
    });
  } catch (err) {
    if (err instanceof FederationHttpError && err.status === 404) throw errors.notFound('Profile not found');
    if (err instanceof FederationNotAllowedError) throw errors.forbidden(`Federation with ${server} is not allowed`);
    throw new MatrixError('M_UNKNOWN', 502, `Could not fetch the profile from ${server}: ${(err as Error).message}`);
  }
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(answer)) {
    // Unset fields come back as null from some servers; the client API leaves them out.
    if (value === null || value === undefined) continue;
    if (field !== undefined && key !== field) continue;
    out[key] = value;
  }
  return out;
}
