/** Server ACLs (m.room.server_acl): which servers may take part in a room. */
import type { JsonObject } from '../protocol/json.js';

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'i');
}

/** The host part of a server name (without port; IPv6 literals keep their brackets). */
export function hostOf(serverName: string): string {
  if (serverName.startsWith('[')) {
    const end = serverName.indexOf(']');
    return end > 0 ? serverName.slice(0, end + 1) : serverName;
  }
  const colon = serverName.lastIndexOf(':');
  return colon >= 0 ? serverName.slice(0, colon) : serverName;
}

function isIpLiteral(host: string): boolean {
  return host.startsWith('[') || /^\d{1,3}(\.\d{1,3}){3}$/.test(host);
}

/** Whether the ACL content allows `serverName` (no ACL content: allowed). */
export function serverAllowedByAcl(content: JsonObject | undefined, serverName: string): boolean {
  if (!content) return true;
  const host = hostOf(serverName);
  const allowIp = content['allow_ip_literals'] !== false;
  if (!allowIp && isIpLiteral(host)) return false;
  const globs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  if (globs(content['deny']).some((g) => globToRegExp(g).test(host))) return false;
  return globs(content['allow']).some((g) => globToRegExp(g).test(host));
}
