import { describe, expect, it } from 'vitest';
import { hostOf, serverAllowedByAcl } from '../../../src/federation/acl.js';
import { topologicalOrder } from '../../../src/federation/event-handler.js';
import type { RoomEvent } from '../../../src/protocol/event.js';

describe('server ACLs', () => {
  it('allows everything without an ACL and nothing with an empty allow list', () => {
    expect(serverAllowedByAcl(undefined, 'evil.example')).toBe(true);
    expect(serverAllowedByAcl({}, 'good.example')).toBe(false);
  });

  it('deny wins over allow; globs are case-insensitive and ignore the port', () => {
    const acl = { allow: ['*'], deny: ['*.evil.example', 'bad?.org'] };
    expect(serverAllowedByAcl(acl, 'matrix.org')).toBe(true);
    expect(serverAllowedByAcl(acl, 'chat.EVIL.example:8448')).toBe(false);
    expect(serverAllowedByAcl(acl, 'bad1.org')).toBe(false);
    expect(serverAllowedByAcl(acl, 'bad12.org')).toBe(true);
    expect(serverAllowedByAcl({ allow: ['*.example.com'] }, 'example.com')).toBe(false);
    expect(serverAllowedByAcl({ allow: ['*.example.com'] }, 'a.example.com:443')).toBe(true);
  });

  it('IP literals are refused only when allow_ip_literals is false', () => {
    expect(serverAllowedByAcl({ allow: ['*'] }, '1.2.3.4:8448')).toBe(true);
    expect(serverAllowedByAcl({ allow: ['*'], allow_ip_literals: false }, '1.2.3.4:8448')).toBe(false);
    expect(serverAllowedByAcl({ allow: ['*'], allow_ip_literals: false }, '[::1]:8448')).toBe(false);
    expect(hostOf('[::1]:8448')).toBe('[::1]');
  });
});

describe('topological order of received events', () => {
  const ev = (id: string, depth: number, auth: string[], prev: string[]): RoomEvent =>
    ({ event_id: id, depth, auth_events: auth, prev_events: prev, type: 't', sender: '@a:x', content: {}, origin_server_ts: 0, hashes: { sha256: '' }, signatures: {} }) as RoomEvent;

  it('puts every event after the auth and prev events of the set it names, whatever the depths claim', () => {
    // Depths lie: the create event claims to be deepest.
    const events = [ev('$msg', 1, ['$pl', '$create'], ['$pl']), ev('$pl', 2, ['$create'], ['$create']), ev('$create', 9, [], []), ev('$other', 0, ['$unknown'], [])];
    const order = topologicalOrder(events).map((e) => e.event_id);
    expect(order).toHaveLength(4);
    expect(order.indexOf('$create')).toBeLessThan(order.indexOf('$pl'));
    expect(order.indexOf('$pl')).toBeLessThan(order.indexOf('$msg'));
  });
});
