/** Row types of migration 0008-federation (timestamps in ms). */
export interface ServerSigningKeysTable {
  server_name: string;
  key_id: string;
  /** Unpadded base64 ed25519 public key. */
  public_key: string;
  /** The key may verify signatures made up to this time. */
  valid_until_ts: number;
  /** Set for keys published in old_verify_keys. */
  expired_ts: number | null;
  fetched_ts: number;
  /** The server the key was fetched from: the key's own server, or a notary. */
  fetched_from: string;
}

export interface ServerKeyResponsesTable {
  server_name: string;
  valid_until_ts: number;
  fetched_ts: number;
  /** The server's self-signed /_matrix/key/v2/server response. */
  json: string;
}

export interface FederationTables {
  server_signing_keys: ServerSigningKeysTable;
  server_key_responses: ServerKeyResponsesTable;
}
