import { createHash } from 'node:crypto';

/** The OpenSSH fingerprint of a host key blob, as `ssh-keygen -lf` prints it: SHA256:<base64, unpadded>. */
export function sshFingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * The fingerprint a configured `tunnel.host_key` pins. Accepts a fingerprint ("SHA256:…"), a
 * public key line ("ssh-ed25519 AAAA… comment"), or a known_hosts line ("relay ssh-ed25519 AAAA…").
 */
export function pinnedFingerprint(configured: string): string {
  const text = configured.trim();
  if (/^SHA256:[A-Za-z0-9+/]+=*$/.test(text)) return text.replace(/=+$/, '');
  const parts = text.split(/\s+/);
  const blob = parts.find((p, i) => i > 0 && /^(ssh-|ecdsa-|sk-)/.test(parts[i - 1]!) && /^[A-Za-z0-9+/]+=*$/.test(p));
  if (blob) return sshFingerprint(Buffer.from(blob, 'base64'));
  throw new Error(
    `tunnel.host_key ${JSON.stringify(configured)} is neither a SHA256:… fingerprint nor an OpenSSH public key line ("ssh-ed25519 AAAA…")`,
  );
}
