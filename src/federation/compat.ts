/**
 * Field names that changed between the proposals and the stable specification, and that
 * deployed servers still use. Reading accepts both; writing sends both where that is harmless.
 */
import { isJsonObject, type JsonObject } from '../protocol/json.js';

/**
 * The room state of a `send_knock` answer: `knock_room_state` (stable), or `knock_state_events`
 * (MSC2403's name, the only one Synapse sent and read before it adopted the stable one).
 */
export function knockStateOf(answer: unknown): JsonObject[] {
  if (!isJsonObject(answer)) return [];
  const state = Array.isArray(answer['knock_room_state']) ? answer['knock_room_state'] : answer['knock_state_events'];
  return Array.isArray(state) ? state.filter(isJsonObject) : [];
}

/**
 * Our answer to `send_knock`: the stable field, and the same list under MSC2403's name, without
 * which older Synapse versions fail the knock after we accepted it.
 */
export function knockAnswer(state: JsonObject[]): JsonObject {
  return { knock_room_state: state, knock_state_events: state };
}
