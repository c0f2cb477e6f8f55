/** Row type of migration 0020-openid-tokens (timestamps ms). */
export interface OpenIdTokensTable {
  /** Hex SHA-256 of the token (the token itself is never stored). */
  token_hash: string;
  user_id: string;
  expires_ts: number;
}

export interface OpenIdTables {
  openid_tokens: OpenIdTokensTable;
}
