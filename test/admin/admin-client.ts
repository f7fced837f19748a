/**
 * The tests' view of the admin API: one `call` over either transport (fastify's
 * `app.inject()` without a socket, or real HTTP with fetch), and a checker that validates a
 * response body against the schema the OpenAPI document gives for that route and status.
 */
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { Ajv } from 'ajv';

export interface Answer {
  status: number;
  body: any;
  contentType: string;
}

export type Transport = (method: string, path: string, body?: unknown, token?: string) => Promise<Answer>;

function parse(text: string, contentType: string): unknown {
  return contentType.includes('json') && text !== '' ? JSON.parse(text) : text;
}

export function injectTransport(app: FastifyInstance): Transport {
  return async (method, path, body, token) => {
    const res = await app.inject({
      method: method as 'GET',
      url: path,
      headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    const contentType = String(res.headers['content-type'] ?? '');
    return { status: res.statusCode, body: parse(res.body, contentType), contentType };
  };
}

export function httpTransport(base: string): Transport {
  return async (method, path, body, token) => {
    const res = await fetch(base + path, {
      method,
      headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const contentType = res.headers.get('content-type') ?? '';
    return { status: res.status, body: parse(await res.text(), contentType), contentType };
  };
}

/** Validates answers against the OpenAPI document's response schemas (ajv, the whole document as one schema). */
export class OpenApiChecker {
  readonly doc: any;
  #ajv = new Ajv({ strict: false, allErrors: true });

  constructor(doc: any) {
    this.doc = doc;
    this.#ajv.addSchema(doc, 'openapi');
  }

  /** `route` as OpenAPI spells it: /v1/topics/{name}. */
  check(method: string, route: string, a: Answer): void {
    const op = this.doc.paths[route]?.[method.toLowerCase()];
    assert.ok(op, `the OpenAPI document has no ${method} ${route}`);
    const response = op.responses[String(a.status)];
    assert.ok(response, `${method} ${route} answered ${a.status}, which the OpenAPI document does not list (${Object.keys(op.responses).join(', ')}): ${JSON.stringify(a.body)}`);
    const media = response.content?.['application/json'];
    if (media === undefined) return; // 204, text/plain
    const pointer = `openapi#/paths/${route.replaceAll('~', '~0').replaceAll('/', '~1')}/${method.toLowerCase()}/responses/${a.status}/content/application~1json/schema`;
    const validate = this.#ajv.getSchema(pointer) ?? this.#ajv.compile({ $ref: pointer });
    assert.ok(validate(a.body), `${method} ${route} ${a.status}: the body does not fit its schema: ${this.#ajv.errorsText(validate.errors)}\n${JSON.stringify(a.body).slice(0, 2000)}`);
  }
}
