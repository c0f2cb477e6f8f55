import type { Generated } from 'kysely';

/** Row types of migration 0002-accounts (booleans are 0/1 integers, timestamps ms). */
export interface UsersTable {
  user_id: string;
  password_hash: string | null;
  is_admin: Generated<number>;
  is_guest: Generated<number>;
  deactivated: Generated<number>;
  user_type: string | null;
  created_ts: number;
  displayname: string | null;
  avatar_url: string | null;
  profile_extra: string | null;
  /** 0016: suspended by an administrator (0/1). */
  suspended: Generated<number>;
  /** 0016: locked by an administrator (0/1). */
  locked: Generated<number>;
}

export interface DevicesTable {
  user_id: string;
  device_id: string;
  display_name: string | null;
  last_seen_ts: number | null;
  last_seen_ip: string | null;
  /** 0021: the User-Agent header of its last recorded request. */
  last_seen_user_agent: string | null;
  created_ts: number;
}

export interface AccessTokensTable {
  id: Generated<number>;
  token_hash: string;
  user_id: string;
  device_id: string;
  created_ts: number;
  expires_ts: number | null;
  refresh_token_id: number | null;
}

export interface RefreshTokensTable {
  id: Generated<number>;
  token_hash: string;
  user_id: string;
  device_id: string;
  created_ts: number;
}

export interface LoginTokensTable {
  token_hash: string;
  user_id: string;
  expires_ts: number;
}

export interface RegistrationTokensTable {
  token: string;
  uses_allowed: number | null;
  pending: Generated<number>;
  completed: Generated<number>;
  expiry_time: number | null;
  created_ts: number;
}

export interface UiaSessionsTable {
  session_id: string;
  purpose: string;
  /** JSON array of completed stage types. */
  completed: string;
  /** JSON object of per-session data (e.g. the registration token used). */
  data: string;
  created_ts: number;
}

export interface FiltersTable {
  id: Generated<number>;
  user_id: string;
  filter_json: string;
}

export interface AccountDataTable {
  stream_id: Generated<number>;
  user_id: string;
  /** '' for global account data. */
  room_id: string;
  type: string;
  content: string;
}

export interface PresenceTable {
  stream_id: Generated<number>;
  user_id: string;
  state: string;
  status_msg: string | null;
  last_active_ts: number;
}

export interface AccountTables {
  users: UsersTable;
  devices: DevicesTable;
  access_tokens: AccessTokensTable;
  refresh_tokens: RefreshTokensTable;
  login_tokens: LoginTokensTable;
  registration_tokens: RegistrationTokensTable;
  uia_sessions: UiaSessionsTable;
  filters: FiltersTable;
  account_data: AccountDataTable;
  presence: PresenceTable;
}
