import { describe, expect, it } from 'vitest';
import { defaultPushRules, evaluatePushRules, type PushEvent } from '../../../src/protocol/push-rules.js';
import { countsNotification, deviceOf, eventNotification, priorityOf, tweaksOf } from '../../../src/services/push/notification.js';

const pusher = (data: Record<string, unknown> = {}) => ({
  appId: 'org.example.app',
  pushkey: 'KEY',
  createdTs: 1_700_000_123_456,
  data: { url: 'https://push.example.org/_matrix/push/v1/notify', ...data },
});

const message = {
  event_id: '$ev',
  room_id: '!room:example.org',
  type: 'm.room.message',
  sender: '@alice:example.org',
  content: { msgtype: 'm.text', body: 'hello @bob' },
};

describe('tweaks', () => {
  it('collects set_tweak actions; highlight without a value is true; highlight false is left out', () => {
    expect(tweaksOf(['notify', { set_tweak: 'sound', value: 'default' }, { set_tweak: 'highlight' }])).toEqual({ sound: 'default', highlight: true });
    expect(tweaksOf(['notify', { set_tweak: 'highlight', value: false }])).toEqual({});
    expect(tweaksOf(['notify', { set_tweak: 'x-led', value: { colour: 'red' } }])).toEqual({ 'x-led': { colour: 'red' } });
    expect(tweaksOf(['notify', { set_tweak: 'sound', value: 'a' }, { set_tweak: 'sound', value: 'b' }])).toEqual({ sound: 'b' });
  });

  it('follow the default rules: a mention highlights with a sound, a call rings', () => {
    const rules = defaultPushRules('@bob:example.org');
    const ctx = { userId: '@bob:example.org', roomMemberCount: 3, senderPowerLevel: () => 0, notificationPowerLevel: () => 50 };
    const mention = evaluatePushRules(rules, { ...message, content: { ...message.content, 'm.mentions': { user_ids: ['@bob:example.org'] } } } as unknown as PushEvent, ctx);
    expect(tweaksOf(mention!.actions)).toEqual({ sound: 'default', highlight: true });
    const call = evaluatePushRules(rules, { ...message, type: 'm.call.invite', content: { call_id: 'c', version: 1 } } as unknown as PushEvent, ctx);
    expect(tweaksOf(call!.actions)).toEqual({ sound: 'ring' });
  });
});

describe('priority', () => {
  it('is high for messages, encrypted events and calls, and for sounds and highlights', () => {
    for (const t of ['m.room.message', 'm.room.encrypted', 'm.call.invite']) expect(priorityOf(t, {})).toBe('high');
    expect(priorityOf('m.room.member', {})).toBe('low');
    expect(priorityOf('m.room.member', { sound: 'default' })).toBe('high');
    expect(priorityOf('org.example.custom', { highlight: true })).toBe('high');
  });
});

describe('request bodies', () => {
  it('full format: event fields, room info, content, counts and the device without url', () => {
    const body = eventNotification(pusher({ format: 'full', extra: 1 }), '@bob:example.org', message, ['notify', { set_tweak: 'sound', value: 'default' }], { senderDisplayName: 'Alice', roomName: 'Room', roomAlias: '#r:example.org' }, { unread: 3 });
    expect(body).toEqual({
      notification: {
        event_id: '$ev',
        room_id: '!room:example.org',
        type: 'm.room.message',
        sender: '@alice:example.org',
        sender_display_name: 'Alice',
        room_name: 'Room',
        room_alias: '#r:example.org',
        prio: 'high',
        content: message.content,
        counts: { unread: 3 },
        devices: [{ app_id: 'org.example.app', pushkey: 'KEY', pushkey_ts: 1_700_000_123, data: { format: 'full', extra: 1 }, tweaks: { sound: 'default' } }],
      },
    });
  });

  it('event_id_only: only event_id, room_id, counts, prio and devices', () => {
    const body = eventNotification(pusher({ format: 'event_id_only' }), '@bob:example.org', message, ['notify'], { senderDisplayName: 'Alice', roomName: 'Room' }, { unread: 1, missedCalls: 2 });
    expect(body.notification).toEqual({
      event_id: '$ev',
      room_id: '!room:example.org',
      counts: { unread: 1, missed_calls: 2 },
      prio: 'high',
      devices: [{ app_id: 'org.example.app', pushkey: 'KEY', pushkey_ts: 1_700_000_123, data: { format: 'event_id_only' }, tweaks: {} }],
    });
  });

  it('member events say whether the user is their target; empty content is left out', () => {
    const invite = { ...message, type: 'm.room.member', state_key: '@bob:example.org', content: { membership: 'invite' } };
    expect(eventNotification(pusher(), '@bob:example.org', invite, ['notify'], {}, { unread: 1 }).notification['user_is_target']).toBe(true);
    expect(eventNotification(pusher(), '@carol:example.org', invite, ['notify'], {}, { unread: 1 }).notification['user_is_target']).toBe(false);
    expect('content' in eventNotification(pusher(), '@bob:example.org', { ...message, content: {} }, ['notify'], {}, { unread: 1 }).notification).toBe(false);
  });

  it('badge updates carry only counts (unread even when 0) and devices', () => {
    const body = countsNotification(pusher(), { unread: 0 });
    expect(body.notification['event_id']).toBeUndefined();
    expect(body.notification['counts']).toEqual({ unread: 0 });
    expect(body.notification['devices']).toEqual([deviceOf(pusher(), {})]);
  });
});
