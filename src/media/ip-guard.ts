/**
 * Which addresses the server may connect to on a user's behalf (URL previews, media redirects):
 * never loopback, private, link-local, shared, multicast, documentation or otherwise special
 * ranges, IPv4 and IPv6 alike (IPv4-mapped, NAT64 and 6to4 addresses are judged by the IPv4
 * address inside), plus configured extra ranges; a configured allow list overrides.
 */
import { isIP } from 'node:net';

/** Address ranges that are never fetched unless explicitly allowed. */
export const DEFAULT_DENIED_RANGES: readonly string[] = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::/128',
  '::1/128',
  '::/96',
  '100::/64',
  '2001::/32',
  '2001:10::/28',
  '2001:20::/28',
  '2001:db8::/32',
  'fc00::/7',
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
];

/** An IPv4 (4 bytes) or IPv6 (16 bytes) address; undefined if not an IP literal. */
export function parseIp(addr: string): Uint8Array | undefined {
  let a = addr.trim();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  const kind = isIP(a);
  if (kind === 4) return Uint8Array.from(a.split('.').map(Number));
  if (kind !== 6) return undefined;
  // Trailing dotted IPv4 part becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    a = `${a.slice(0, -v4[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) return undefined;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** The IPv4 address an IPv6 address stands for (mapped, NAT64 well-known prefix, 6to4), if any. */
function embeddedIpv4(b: Uint8Array): Uint8Array | undefined {
  if (b.length !== 16) return undefined;
  const zero = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0);
  // ::ffff:a.b.c.d
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return b.slice(12, 16);
  // 64:ff9b::a.b.c.d
  if (b[0] === 0 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return b.slice(12, 16);
  // 2002:aabb:ccdd::/48 (6to4)
  if (b[0] === 0x20 && b[1] === 0x02) return b.slice(2, 6);
  return undefined;
}

interface Range {
  bytes: Uint8Array;
  prefix: number;
}

export function parseCidr(cidr: string): Range {
  const slash = cidr.lastIndexOf('/');
  const addr = slash >= 0 ? cidr.slice(0, slash) : cidr;
  const bytes = parseIp(addr);
  if (!bytes) throw new Error(`not an IP address range: ${JSON.stringify(cidr)}`);
  const max = bytes.length * 8;
  const prefix = slash >= 0 ? Number(cidr.slice(slash + 1)) : max;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) throw new Error(`bad prefix length in ${JSON.stringify(cidr)}`);
  return { bytes, prefix };
}

function inRange(ip: Uint8Array, r: Range): boolean {
  if (ip.length !== r.bytes.length) return false;
  let bits = r.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip[i]! & mask) !== (r.bytes[i]! & mask)) return false;
  }
  return true;
}

export class IpGuard {
  private readonly denied: Range[];
  private readonly allowed: Range[];

  constructor(opts: { deny?: readonly string[]; allow?: readonly string[] } = {}) {
    this.denied = [...DEFAULT_DENIED_RANGES, ...(opts.deny ?? [])].map(parseCidr);
    this.allowed = (opts.allow ?? []).map(parseCidr);
  }

  /** Whether connecting to this IP address is allowed (non-IP strings are refused). */
  isAllowed(address: string): boolean {
    const ip = parseIp(address);
    if (!ip) return false;
    const candidates = [ip];
    const v4 = embeddedIpv4(ip);
    if (v4) candidates.push(v4);
    if (candidates.some((c) => this.allowed.some((r) => inRange(c, r)))) return true;
    return !candidates.some((c) => this.denied.some((r) => inRange(c, r)));
  }
}
