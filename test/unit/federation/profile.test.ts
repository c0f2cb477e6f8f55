import { describe, expect, it } from 'vitest';
import { MatrixError } from '../../../src/errors.js';
import { FederationConnectionError, FederationHttpError, FederationNotAllowedError } from '../../../src/federation/errors.js';
import { queryRemoteProfile } from '../../../src/federation/profile.js';
import type { RequestOptions } from '../../../src/federation/client.js';

/** A client stub that records the request and answers with `answer` (or throws it). */
function stub(answer: unknown) {
  const calls: { destination: string; path: string; options?: RequestOptions }[] = [];
  const client = {
    get: async <T>(destination: string, path: string, options?: RequestOptions): Promise<T> => {
      calls.push({ destination, path, options });
      if (answer instanceof Error) throw answer;
      return answer as T;
    },
  };
  return { client, calls };
}

describe('profiles of users of other servers', () => {
  it("asks the user's server and drops the null fields Synapse sends for unset ones", async () => {
    // The exact answer of Synapse 1.67 for a user with a display name and no avatar.
    const { client, calls } = stub({ displayname: 'Bob S', avatar_url: null });
    const profile = await queryRemoteProfile(client, '@bob:127.0.0.3:8448');
    expect(profile).toEqual({ displayname: 'Bob S' });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.destination).toBe('127.0.0.3:8448');
    expect(calls[0]!.path).toBe('/_matrix/federation/v1/query/profile');
    expect(calls[0]!.options?.query).toEqual({ user_id: '@bob:127.0.0.3:8448', field: undefined });
  });

  it('asks for one field and keeps only that field', async () => {
    const { client, calls } = stub({ displayname: 'Bob S', 'org.example.extra': 1 });
    expect(await queryRemoteProfile(client, '@bob:remote.example', 'displayname')).toEqual({ displayname: 'Bob S' });
    expect(calls[0]!.options?.query).toMatchObject({ field: 'displayname' });
    const unset = stub({ avatar_url: null });
    expect(await queryRemoteProfile(unset.client, '@bob:remote.example', 'avatar_url')).toEqual({});
  });

  it('maps failures of the other server to client errors', async () => {
    const notFound = stub(new FederationHttpError('remote.example', 404, 'M_NOT_FOUND', 'Profile was not found', {}));
    await expect(queryRemoteProfile(notFound.client, '@nobody:remote.example')).rejects.toMatchObject({ errcode: 'M_NOT_FOUND', status: 404 });
    const down = stub(new FederationConnectionError('remote.example', 'connect ECONNREFUSED', 'ECONNREFUSED'));
    const err = await queryRemoteProfile(down.client, '@bob:remote.example').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MatrixError);
    expect(err).toMatchObject({ errcode: 'M_UNKNOWN', status: 502 });
    const refused = stub(new FederationNotAllowedError('remote.example'));
    await expect(queryRemoteProfile(refused.client, '@bob:remote.example')).rejects.toMatchObject({ errcode: 'M_FORBIDDEN', status: 403 });
  });
});
