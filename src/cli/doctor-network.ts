import { connect } from 'node:net';
import type { Config } from '../config/schema.js';
import { systemResolver, type DnsResolver } from '../federation/dns.js';
import { ServerDiscovery } from '../federation/discovery.js';
import { parseKeyResponse } from '../federation/server-keys.js';
import { FederationTransport, tlsSettingsFromConfig, type ConnectTarget } from '../federation/transport.js';
import { parseServerName } from '../protocol/identifiers.js';
import { encodeBase64 } from '../protocol/base64.js';
import type { SigningKey } from '../protocol/signing.js';
import type { Check } from './doctor.js';

export interface NetworkCheckOptions {
  /** DNS used for every lookup (default: the system resolver). */
  resolver?: DnsResolver;
  /** Where connections for host:port really go (tests). */
  connectPort?: (host: string, port: number) => number;
  timeoutMs?: number;
}

function tcpReachable(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((res) => {
    const s = connect({ host, port });
    const done = (err?: string) => {
      s.destroy();
      res(err);
    };
    s.setTimeout(timeoutMs, () => done(`no answer within ${timeoutMs} ms`));
    s.once('connect', () => done());
    s.once('error', (e) => done(e.message));
  });
}

/**
 * Looks at this server the way another homeserver and a client would: DNS, the well-known
 * documents, server discovery, TLS and the published signing key, and the tunnel's relay.
 */
export async function runNetworkChecks(config: Config, ownKey: SigningKey, opts: NetworkCheckOptions = {}): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const resolver = opts.resolver ?? systemResolver({ timeoutMs });
  const transport = new FederationTransport({ resolver, tls: tlsSettingsFromConfig(config.federation), connectPort: opts.connectPort });
  const discovery = new ServerDiscovery({ transport });
  const name = parseServerName(config.server_name);

  try {
    if (name.kind === 'dns') {
      const v4 = await resolver.resolve4(name.host).catch(() => [] as string[]);
      const v6 = await resolver.resolve6(name.host).catch(() => [] as string[]);
      const addrs = [...v4, ...v6];
      add(
        addrs.length
          ? { name: 'dns', status: 'ok', detail: `${name.host} → ${addrs.join(', ')}` }
          : { name: 'dns', status: 'warn', detail: `${name.host} has no A or AAAA record`, fix: `publish an A/AAAA record for ${name.host} (or delegate with .well-known or SRV)` },
      );
      const wk = await discovery.getWellKnown(name.host);
      add(
        wk.server
          ? { name: 'well-known server', status: 'ok', detail: `https://${name.host}/.well-known/matrix/server delegates to ${wk.server}` }
          : { name: 'well-known server', status: 'warn', detail: `no delegation at https://${name.host}/.well-known/matrix/server (${wk.error ?? 'none'})`, fix: 'fine if federation answers on port 8448 or through SRV; otherwise serve /.well-known/matrix/server' },
      );
    } else {
      add({ name: 'dns', status: 'warn', detail: `server_name ${config.server_name} is an IP literal`, fix: 'other servers can reach it, but most expect a DNS name' });
    }

    let target: ConnectTarget | undefined;
    try {
      const resolved = await discovery.resolve(config.server_name);
      target = resolved;
      add({ name: 'federation discovery', status: 'ok', detail: `${config.server_name} → ${resolved.host}:${resolved.port} (${resolved.step})` });
    } catch (err) {
      add({ name: 'federation discovery', status: 'fail', detail: (err as Error).message, fix: 'publish DNS, an SRV record or /.well-known/matrix/server for the server name' });
    }
    if (target) {
      try {
        const res = await transport.send(target, {
          destination: config.server_name,
          method: 'GET',
          path: '/_matrix/key/v2/server',
          headers: { accept: 'application/json' },
          timeoutMs,
          maxBytes: 1024 * 1024,
        });
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        const parsed = parseKeyResponse(JSON.parse(res.body.toString('utf8')), config.server_name, Date.now());
        const mine = parsed.keys.find((k) => k.keyId === ownKey.keyId);
        if (!mine || mine.key !== encodeBase64(ownKey.publicKey)) {
          add({ name: 'federation keys', status: 'fail', detail: `${target.host}:${target.port} serves keys ${parsed.keys.map((k) => k.keyId).join(', ')}, not this server's ${ownKey.keyId}`, fix: 'the name points at another server: fix DNS/SRV/well-known, or the data directory' });
        } else {
          add({ name: 'federation keys', status: 'ok', detail: `TLS to ${target.tlsName} verified; ${ownKey.keyId} published and self-signed` });
        }
      } catch (err) {
        const msg = (err as Error).message;
        const tlsProblem = /certificate|self.signed|CERT|TLS|SSL|altname/i.test(msg);
        add({
          name: 'federation keys',
          status: 'fail',
          detail: `GET https://${target.hostHeader}/_matrix/key/v2/server: ${msg}`,
          fix: tlsProblem
            ? `serve a certificate for ${target.tlsName} from a public CA (acme.enabled, or a reverse proxy)`
            : `make ${target.host}:${target.port} reachable from the internet (port forwarding, the tunnel, or a reverse proxy)`,
        });
      }
    }

    if (name.kind === 'dns') {
      try {
        const res = await transport.send(
          { host: name.host, port: 443, hostHeader: name.host, tlsName: name.host },
          { destination: name.host, method: 'GET', path: '/.well-known/matrix/client', headers: { accept: 'application/json' }, timeoutMs, maxBytes: 64 * 1024 },
        );
        const base = (JSON.parse(res.body.toString('utf8')) as { 'm.homeserver'?: { base_url?: string } })['m.homeserver']?.base_url;
        add(
          res.status === 200 && base
            ? { name: 'well-known client', status: 'ok', detail: `clients are sent to ${base}` }
            : { name: 'well-known client', status: 'warn', detail: `https://${name.host}/.well-known/matrix/client answered ${res.status}`, fix: 'serve it so clients find the server from a user ID' },
        );
      } catch (err) {
        add({ name: 'well-known client', status: 'warn', detail: `https://${name.host}/.well-known/matrix/client: ${(err as Error).message}`, fix: `clients must be given ${config.public_baseurl} by hand; serve the well-known document to avoid that` });
      }
    }

    const t = (config as Config & { tunnel?: { enabled: boolean; host: string; port: number } }).tunnel;
    if (t?.enabled && t.host) {
      const err = await tcpReachable(t.host, t.port, timeoutMs);
      add(
        err
          ? { name: 'tunnel relay', status: 'fail', detail: `${t.host}:${t.port}: ${err}`, fix: 'check the network connection and that the relay runs sshd' }
          : { name: 'tunnel relay', status: 'ok', detail: `${t.host}:${t.port} answers` },
      );
    }
  } finally {
    transport.close();
  }
  return checks;
}
