import { describe, expect, it } from 'vitest';
import type { UserDataService } from '../../../src/services/accounts/user-data.js';
import { PushRulesService } from '../../../src/services/push/push-rules.js';
import { PushEvaluation, preparePushEvent, type PushEvent } from '../../../src/protocol/push-rules.js';

/** Account data in memory (what PushRulesService reads and writes). */
function userData() {
  const data = new Map<string, Record<string, unknown>>();
  return {
    getAccountData: async (userId: string, _room: string | null, type: string) => data.get(`${userId} ${type}`),
    setAccountData: async (userId: string, _room: string | null, type: string, content: Record<string, unknown>) => {
      data.set(`${userId} ${type}`, content);
      return 1;
    },
  } as unknown as UserDataService;
}

const A = '@a:example.org';
const B = '@b:example.org';
const message = (content: PushEvent['content']): PushEvent => ({ type: 'm.room.message', sender: '@s:example.org', room_id: '!r:example.org', content });

describe('PushRulesService compiled rules', () => {
  it('users whose rules differ only in naming themselves share one compiled object, until one changes their rules', async () => {
    const rules = new PushRulesService(userData());
    expect(rules.compiledCached(A)).toBeUndefined();
    const a = await rules.getCompiled(A);
    expect(rules.compiledCached(A)).toBe(a);
    expect(await rules.getCompiled(B)).toBe(a);

    await rules.put(A, 'content', { rule_id: 'lunch', default: false, enabled: true, actions: ['notify', { set_tweak: 'highlight' }], pattern: 'lunch' });
    const changed = await rules.getCompiled(A);
    expect(changed).not.toBe(a);
    expect(await rules.getCompiled(B)).toBe(a);
    // The shared outcome of B's rules is not A's.
    const evaluation = new PushEvaluation(preparePushEvent(message({ body: 'lunch?' })), 5);
    expect(evaluation.match(await rules.getCompiled(B), B)?.ruleId).toBe('.m.rule.message');
    expect(evaluation.match(changed, A)).toMatchObject({ ruleId: 'lunch', highlight: true });
    expect(evaluation.match(await rules.getCompiled(B), B)?.ruleId).toBe('.m.rule.message');

    await rules.delete(A, 'content', 'lunch');
    // Back to the defaults (stored now): the same shape as B's again.
    expect(await rules.getCompiled(A)).toBe(a);
  });

  it('mentions still reach only the mentioned user with shared rules', async () => {
    const rules = new PushRulesService(userData());
    const evaluation = new PushEvaluation(preparePushEvent(message({ body: 'hi b', 'm.mentions': { user_ids: [B] } })), 5);
    expect(evaluation.match(await rules.getCompiled(A), A)?.ruleId).toBe('.m.rule.message');
    expect(evaluation.match(await rules.getCompiled(B), B)).toMatchObject({ ruleId: '.m.rule.is_user_mention', highlight: true });
  });
});
