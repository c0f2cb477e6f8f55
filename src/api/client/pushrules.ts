import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import {
  checkActions,
  cleanActions,
  isServerDefaultRuleId,
  PUSH_RULE_KINDS,
  rulesetToJson,
  validateNewRule,
  type PushAction,
  type PushRule,
  type PushRuleKind,
} from '../../protocol/push-rules.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { isPlainObject, V3 } from './paths.js';

function kindOf(kind: string): PushRuleKind {
  if (!(PUSH_RULE_KINDS as readonly string[]).includes(kind)) throw errors.invalidParam(`Unknown push rule kind ${kind}`);
  return kind as PushRuleKind;
}

/** A rule as the API returns it (kind-specific fields only where they belong). */
function ruleJson(r: PushRule): Record<string, unknown> {
  return { ...r };
}

/**
 * Push rules: GET /pushrules/, GET /pushrules/global/, and GET/PUT/DELETE
 * /pushrules/global/{kind}/{ruleId} with its /enabled and /actions.
 */
export function registerPushRules(app: HttpApp, ctx: AppContext): void {
  const P = Type.Object({ kind: Type.String(), ruleId: Type.String() });
  const Q = Type.Object({ before: Type.Optional(Type.String()), after: Type.Optional(Type.String()) });
  for (const prefix of V3) {
    app.get(`${prefix}/pushrules/`, async (req) => {
      const me = await requireUser(ctx, req);
      return rulesetToJson(await ctx.pushRules.get(me.userId));
    });
    app.get(`${prefix}/pushrules/global/`, async (req) => {
      const me = await requireUser(ctx, req);
      return await ctx.pushRules.get(me.userId);
    });

    app.get(`${prefix}/pushrules/global/:kind/:ruleId`, { schema: { params: P } }, async (req) => {
      const me = await requireUser(ctx, req);
      return ruleJson(await ctx.pushRules.getRule(me.userId, kindOf(req.params.kind), req.params.ruleId));
    });

    app.put(`${prefix}/pushrules/global/:kind/:ruleId`, { schema: { params: P, querystring: Q } }, async (req) => {
      const me = await requireUser(ctx, req);
      const kind = kindOf(req.params.kind);
      const { ruleId } = req.params;
      if (isServerDefaultRuleId(ruleId)) throw errors.invalidParam('Rule IDs starting with "." are reserved for server-default rules');
      if (ruleId.includes('/') || ruleId.includes('\\')) throw errors.invalidParam('Rule IDs cannot contain slashes or backslashes');
      if (ruleId === '') throw errors.invalidParam('Empty rule ID');
      const rule = validateNewRule(kind, ruleId, req.body);
      if (typeof rule === 'string') throw errors.badJson(rule);
      await ctx.pushRules.put(me.userId, kind, rule, req.query.before, req.query.after);
      return {};
    });

    app.delete(`${prefix}/pushrules/global/:kind/:ruleId`, { schema: { params: P } }, async (req) => {
      const me = await requireUser(ctx, req);
      await ctx.pushRules.delete(me.userId, kindOf(req.params.kind), req.params.ruleId);
      return {};
    });

    app.get(`${prefix}/pushrules/global/:kind/:ruleId/enabled`, { schema: { params: P } }, async (req) => {
      const me = await requireUser(ctx, req);
      const r = await ctx.pushRules.getRule(me.userId, kindOf(req.params.kind), req.params.ruleId);
      return { enabled: r.enabled };
    });

    app.put(`${prefix}/pushrules/global/:kind/:ruleId/enabled`, { schema: { params: P } }, async (req) => {
      const me = await requireUser(ctx, req);
      const kind = kindOf(req.params.kind);
      const body = req.body;
      if (!isPlainObject(body) || typeof body.enabled !== 'boolean') throw errors.badJson('enabled must be a boolean');
      await ctx.pushRules.setEnabled(me.userId, kind, req.params.ruleId, body.enabled);
      return {};
    });

    app.get(`${prefix}/pushrules/global/:kind/:ruleId/actions`, { schema: { params: P } }, async (req) => {
      const me = await requireUser(ctx, req);
      const r = await ctx.pushRules.getRule(me.userId, kindOf(req.params.kind), req.params.ruleId);
      return { actions: r.actions };
    });

    app.put(`${prefix}/pushrules/global/:kind/:ruleId/actions`, { schema: { params: P } }, async (req) => {
      const me = await requireUser(ctx, req);
      const kind = kindOf(req.params.kind);
      const body = req.body;
      if (!isPlainObject(body)) throw errors.badJson('The body must be a JSON object');
      const bad = checkActions(body.actions);
      if (bad) throw errors.badJson(bad);
      await ctx.pushRules.setActions(me.userId, kind, req.params.ruleId, cleanActions(body.actions as PushAction[]));
      return {};
    });
  }
}
