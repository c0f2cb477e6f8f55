/**
 * A certificate authority for tests, made with node:crypto and a small DER writer (node:crypto
 * parses X.509 but cannot issue it). ECDSA P-256 keys, SHA-256 signatures, X.509 v3 with
 * basicConstraints, keyUsage, extKeyUsage, subjectAltName (DNS names and IP addresses) and key
 * identifiers — what OpenSSL's chain verification expects.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n >>= 8;
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}

const seq = (...c: Buffer[]) => tlv(0x30, ...c);
const set = (...c: Buffer[]) => tlv(0x31, ...c);
const octets = (b: Buffer) => tlv(0x04, b);
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));

function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  let v = b.subarray(i);
  if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return tlv(0x02, v);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const stack = [p & 0x7f];
    let x = p >> 7;
    while (x > 0) {
      stack.unshift(0x80 | (x & 0x7f));
      x >>= 7;
    }
    out.push(...stack);
  }
  return tlv(0x06, Buffer.from(out));
}

function time(d: Date): Buffer {
  const p = (n: number) => String(n).padStart(2, '0');
  const y = d.getUTCFullYear();
  const body = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return y < 2050 ? tlv(0x17, Buffer.from(`${String(y).slice(2)}${body}`)) : tlv(0x18, Buffer.from(`${y}${body}`));
}

const name = (cn: string) => seq(set(seq(oid('2.5.4.3'), utf8(cn))));
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // IPv6: expand "::".
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.concat(groups.map((g) => Buffer.from([parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff])));
}

function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function keyId(spki: Buffer): Buffer {
  return createHash('sha1').update(spki).digest();
}

interface CertSpec {
  subject: string;
  issuer: string;
  spki: Buffer;
  signer: KeyObject;
  ca: boolean;
  dnsNames?: string[];
  ips?: string[];
  notBefore: Date;
  notAfter: Date;
  authorityKeyId: Buffer;
}

function certificate(s: CertSpec): Buffer {
  const exts: Buffer[] = [
    extension('2.5.29.19', true, s.ca ? seq(bool(true)) : seq()),
    // keyUsage: CA keyCertSign+cRLSign; leaf digitalSignature.
    extension('2.5.29.15', true, s.ca ? tlv(0x03, Buffer.from([0x01, 0x06])) : tlv(0x03, Buffer.from([0x07, 0x80]))),
    extension('2.5.29.14', false, octets(keyId(s.spki))),
    extension('2.5.29.35', false, seq(tlv(0x80, s.authorityKeyId))),
  ];
  if (!s.ca) {
    exts.push(extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2'))));
    const names = [
      ...(s.dnsNames ?? []).map((d) => tlv(0x82, Buffer.from(d, 'ascii'))),
      ...(s.ips ?? []).map((ip) => tlv(0x87, ipBytes(ip))),
    ];
    if (names.length > 0) exts.push(extension('2.5.29.17', false, seq(...names)));
  }
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))),
    integer(Buffer.concat([Buffer.from([0x01]), randomBytes(15)])),
    ECDSA_SHA256,
    name(s.issuer),
    seq(time(s.notBefore), time(s.notAfter)),
    name(s.subject),
    s.spki,
    tlv(0xa3, seq(...exts)),
  );
  const sig = sign('sha256', tbs, s.signer);
  return seq(tbs, ECDSA_SHA256, tlv(0x03, Buffer.concat([Buffer.from([0]), sig])));
}

export interface IssuedCert {
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  dnsNames?: string[];
  ips?: string[];
  notBefore?: Date;
  notAfter?: Date;
}

export interface TestCa {
  certPem: string;
  /** A leaf certificate for a server (subject is the first name). */
  issue(opts: IssueOptions): IssuedCert;
}

export function createTestCa(cn = 'Myelin Test CA'): TestCa {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const now = Date.now();
  const caDer = certificate({
    subject: cn,
    issuer: cn,
    spki,
    signer: privateKey,
    ca: true,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 10 * 365 * 24 * 3600_000),
    authorityKeyId: keyId(spki),
  });
  return {
    certPem: pem('CERTIFICATE', caDer),
    issue(opts) {
      const leaf = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const leafSpki = leaf.publicKey.export({ type: 'spki', format: 'der' });
      const der = certificate({
        subject: opts.dnsNames?.[0] ?? opts.ips?.[0] ?? 'server',
        issuer: cn,
        spki: leafSpki,
        signer: privateKey,
        ca: false,
        dnsNames: opts.dnsNames,
        ips: opts.ips,
        notBefore: opts.notBefore ?? new Date(now - 3600_000),
        notAfter: opts.notAfter ?? new Date(now + 365 * 24 * 3600_000),
        authorityKeyId: keyId(spki),
      });
      return { certPem: pem('CERTIFICATE', der), keyPem: leaf.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
    },
  };
}
