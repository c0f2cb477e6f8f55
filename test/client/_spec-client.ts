/** A TestClient that checks every JSON response against the spec's OpenAPI definitions. */
import { expectMatchesSpec } from '../_util/openapi.js';
import { TestClient, type Res } from './_client.js';

export class SpecClient extends TestClient {
  /** Responses checked so far, as "METHOD path → status" (for failure messages). */
  readonly checked: string[] = [];

  override async req(method: string, path: string, body?: unknown, opts: { token?: string | null; headers?: Record<string, string> } = {}): Promise<Res> {
    const res = await super.req(method, path, body, opts);
    expectMatchesSpec(method, path, res.status, res.body);
    this.checked.push(`${method} ${path.split('?')[0]} → ${res.status}`);
    return res;
  }
}
