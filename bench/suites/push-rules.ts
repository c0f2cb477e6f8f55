/**
 * Push-rule evaluation of one event for every member of a room, as `PushActions` does it for
 * each new event: a plain message, a mention and a reaction against the server-default rules
 * of 9 recipients (each with their own ruleset object, as loaded per user).
 *
 *   npx tsx bench/suites/push-rules.ts
 */
import { report, throughput } from '../report.js';
import { compilePushRules, evaluateCompiledPushRules, evaluatePushRules, mergeRuleset, preparePushEvent, type PushEvent } from '../../src/protocol/push-rules.js';

const SUITE = 'push-rules';
const RECIPIENTS = Array.from({ length: 9 }, (_, i) => `@member${i}:bench.example.org`);
const rulesets = RECIPIENTS.map((u) => mergeRuleset(undefined, u));
// As PushRulesService keeps them: compiled once per loaded ruleset.
const compiled = rulesets.map(compilePushRules);
const base = { sender: '@sender:bench.example.org', room_id: '!room:bench.example.org', origin_server_ts: 1_700_000_000_000, event_id: '$abc' };
const events: Array<[string, PushEvent]> = [
  ['message', { ...base, type: 'm.room.message', content: { msgtype: 'm.text', body: 'hello there, how is everyone doing today?' } }],
  [
    'mention',
    {
      ...base,
      type: 'm.room.message',
      content: { msgtype: 'm.text', body: 'member3: look', 'm.mentions': { user_ids: ['@member3:bench.example.org'] } },
    },
  ],
  ['reaction', { ...base, type: 'm.reaction', content: { 'm.relates_to': { rel_type: 'm.annotation', event_id: '$x', key: '👍' } } }],
];

const ctx = (userId: string) => ({ userId, roomMemberCount: 10, senderPowerLevel: () => 0, notificationPowerLevel: () => 50 });
for (const [name, event] of events) {
  let notified = 0;
  const plain = throughput(() => {
    for (let i = 0; i < RECIPIENTS.length; i++) if (evaluatePushRules(rulesets[i]!, event, ctx(RECIPIENTS[i]!))) notified++;
  }, 1500);
  const prepared = throughput(() => {
    const ev = preparePushEvent(event);
    for (let i = 0; i < RECIPIENTS.length; i++) if (evaluateCompiledPushRules(compiled[i]!, ev, ctx(RECIPIENTS[i]!))) notified++;
  }, 1500);
  if (notified === 0 && name !== 'reaction') throw new Error(`${name}: nobody notified`);
  report(SUITE, `${name}: one event for 9 recipients, evaluatePushRules`, 1e6 / plain, 'µs');
  report(SUITE, `${name}: one event for 9 recipients, compiled rules and prepared event`, 1e6 / prepared, 'µs');
}
