/** Prefixes of the client API: v3, and r0 for clients that still call the old paths. */
export const V3 = ['/_matrix/client/v3', '/_matrix/client/r0'] as const;
export const V1 = ['/_matrix/client/v1'] as const;

/** The value of a JSON body field when it is of the expected type; M_BAD_JSON otherwise. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
