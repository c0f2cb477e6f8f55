import { MatrixError, errors } from '../../errors.js';
import {
  compilePushRulesOf,
  isServerDefaultRuleId,
  mergeRuleset,
  rulesetToJson,
  type CompiledPushRules,
  type PushAction,
  type PushRule,
  type PushRuleKind,
  type PushRuleset,
} from '../../protocol/push-rules.js';
import { LruCache } from '../../util/lru.js';
import { KeyedMutex } from '../../util/mutex.js';
import type { UserDataService } from '../accounts/user-data.js';

/**
 * A user's push rules, kept in their `m.push_rules` global account data (so changes reach
 * their clients through /sync). What is stored is the whole ruleset as last written; on
 * read it is merged with the current server-default rules (see mergeRuleset), so only
 * user-defined rules and the `enabled`/`actions` of default rules come from storage.
 */
export class PushRulesService {
  private readonly cache = new LruCache<string, PushRuleset>(5000);
  /** Cached rulesets compiled for evaluation (a ruleset in the cache is never changed). */
  private readonly compiled = new WeakMap<PushRuleset, CompiledPushRules>();
  /**
   * Compiled rules by shape: users whose rules differ only in naming themselves (everyone on
   * the server-default rules) share one object, so an evaluation shares their outcome.
   */
  private readonly shapes = new LruCache<string, CompiledPushRules>(1000);
  private readonly locks = new KeyedMutex();

  constructor(private readonly userData: UserDataService) {}

  /** Forgets the cached ruleset (called when the user's account data changes). */
  invalidate(userId: string): void {
    this.cache.delete(userId);
  }

  async get(userId: string): Promise<PushRuleset> {
    const hit = this.cache.get(userId);
    if (hit) return hit;
    const stored = await this.userData.getAccountData(userId, null, 'm.push_rules');
    const rs = mergeRuleset(stored, userId);
    this.cache.set(userId, rs);
    return rs;
  }

  /** The user's ruleset compiled for evaluating events. */
  async getCompiled(userId: string): Promise<CompiledPushRules> {
    return this.compiledCached(userId) ?? this.compile(userId, await this.get(userId));
  }

  /** The user's compiled ruleset when it is cached (no wait), else undefined. */
  compiledCached(userId: string): CompiledPushRules | undefined {
    const rs = this.cache.get(userId);
    return rs && this.compile(userId, rs);
  }

  private compile(userId: string, rs: PushRuleset): CompiledPushRules {
    let c = this.compiled.get(rs);
    if (!c) {
      const fresh = compilePushRulesOf(rs, userId);
      c = this.shapes.get(fresh.shape) ?? fresh;
      this.shapes.set(fresh.shape, c);
      this.compiled.set(rs, c);
    }
    return c;
  }

  async getRule(userId: string, kind: PushRuleKind, ruleId: string): Promise<PushRule> {
    const r = (await this.get(userId))[kind].find((x) => x.rule_id === ruleId);
    if (!r) throw errors.notFound('The push rule was not found.');
    return r;
  }

  /** Creates or updates a user-defined rule, optionally placed before/after another user rule. */
  async put(userId: string, kind: PushRuleKind, rule: PushRule, before?: string, after?: string): Promise<void> {
    await this.modify(userId, (rs) => {
      const list = rs[kind];
      const existingIdx = list.findIndex((r) => r.rule_id === rule.rule_id);
      const existing = existingIdx >= 0 ? list[existingIdx] : undefined;
      const next: PushRule = { ...rule, enabled: existing ? existing.enabled : true };
      const anchorId = before ?? after;
      if (anchorId !== undefined) {
        if (isServerDefaultRuleId(anchorId) || !list.some((r) => r.rule_id === anchorId) || anchorId === rule.rule_id) {
          throw new MatrixError('M_UNKNOWN', 400, `before/after rule not found: ${anchorId}`);
        }
      }
      if (existingIdx >= 0) list.splice(existingIdx, 1);
      if (anchorId !== undefined) {
        const i = list.findIndex((r) => r.rule_id === anchorId);
        list.splice(before !== undefined ? i : i + 1, 0, next);
      } else if (existingIdx >= 0) {
        list.splice(existingIdx, 0, next);
      } else {
        // New rules are the most important user-defined rule of their kind (after .m.rule.master).
        const first = kind === 'override' ? list.findIndex((r) => r.rule_id !== '.m.rule.master') : 0;
        list.splice(first < 0 ? list.length : first, 0, next);
      }
    });
  }

  async delete(userId: string, kind: PushRuleKind, ruleId: string): Promise<void> {
    await this.modify(userId, (rs) => {
      const i = rs[kind].findIndex((r) => r.rule_id === ruleId);
      if (i < 0) throw errors.notFound('The push rule was not found.');
      if (rs[kind][i]!.default) throw errors.invalidParam('Server-default rules cannot be deleted');
      rs[kind].splice(i, 1);
    });
  }

  async setEnabled(userId: string, kind: PushRuleKind, ruleId: string, enabled: boolean): Promise<void> {
    await this.modify(userId, (rs) => {
      const r = rs[kind].find((x) => x.rule_id === ruleId);
      if (!r) throw errors.notFound('The push rule was not found.');
      r.enabled = enabled;
    });
  }

  async setActions(userId: string, kind: PushRuleKind, ruleId: string, actions: PushAction[]): Promise<void> {
    await this.modify(userId, (rs) => {
      const r = rs[kind].find((x) => x.rule_id === ruleId);
      if (!r) throw errors.notFound('The push rule was not found.');
      r.actions = actions;
    });
  }

  private async modify(userId: string, change: (rs: PushRuleset) => void): Promise<void> {
    await this.locks.run(userId, async () => {
      const stored = await this.userData.getAccountData(userId, null, 'm.push_rules');
      const rs = mergeRuleset(stored, userId);
      change(rs);
      this.cache.delete(userId);
      await this.userData.setAccountData(userId, null, 'm.push_rules', rulesetToJson(rs) as Record<string, unknown>);
      this.cache.delete(userId);
    });
  }
}
