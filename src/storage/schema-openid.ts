/**
 * Row type of migration 0020-openid-tokens (timestamps ms). Type aliases rather than interfaces,
 * so that they can be added to a Kysely instance with `withTables`.
 */
export type OpenIdTokensTable = {
  /** Hex SHA-256 of the token (the token itself is never stored). */
  token_hash: string;
  user_id: string;
  expires_ts: number;
};

export type OpenIdTables = {
  openid_tokens: OpenIdTokensTable;
};
