/**
 * KafkaJS 2.2.4 as a black-box oracle for the generated codecs: its own request builders
 * produce the request bodies a real client sends, and its own response decoders read what
 * our encoders write. Loaded through createRequire because KafkaJS is CommonJS and these
 * modules are internal (no types), so everything that comes back is `any` and the tests
 * assert on it field by field.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Reader } from '../../../../src/protocol/kafka/reader.js';
import { Writer } from '../../../../src/protocol/kafka/writer.js';

const require = createRequire(import.meta.url);

interface KafkaJSRequest {
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly apiName: string;
  encode(): Promise<{ readonly buffer: Buffer }>;
}

interface KafkaJSResponse {
  decode(rawData: Buffer): Promise<unknown>;
  parse(data: unknown): Promise<any>;
}

/** A module of kafkajs/src/protocol, e.g. `recordBatch/v0/index.js`. */
export function kafkajsModule(path: string): any {
  return require(`kafkajs/src/protocol/${path}`);
}

/** The body (no header, no size) KafkaJS sends for `api` version `version` built from `args`. */
export async function kafkajsRequestBody(api: string, version: number, args: Record<string, unknown> = {}): Promise<Buffer> {
  const build = kafkajsModule(`requests/${api}/v${version}/request.js`) as (args: Record<string, unknown>) => KafkaJSRequest;
  const request = build(args);
  assert.equal(request.apiVersion, version);
  return (await request.encode()).buffer;
}

/** What KafkaJS makes of a response body: decode then parse, exactly as its connection does. */
export async function kafkajsParseResponse(api: string, version: number, body: Buffer): Promise<any> {
  const response = kafkajsModule(`requests/${api}/v${version}/response.js`) as KafkaJSResponse;
  return response.parse(await response.decode(body));
}

/** A KafkaJS Long, for the builders that take one (firstOffset, producerId). */
export function kafkajsLong(value: number | string): unknown {
  return require('kafkajs/src/utils/long').fromValue(value);
}

export function encodeBody<T>(encode: (writer: Writer, version: number, msg: T) => void, version: number, msg: T): Buffer {
  const writer = new Writer();
  encode(writer, version, msg);
  return Buffer.from(writer.toBuffer());
}

/** Decodes a whole body and checks that nothing is left over. */
export function decodeBody<T>(decode: (reader: Reader, version: number) => T, version: number, body: Buffer): T {
  const reader = new Reader(body);
  const value = decode(reader, version);
  assert.equal(reader.remaining, 0, `${reader.remaining} bytes left after decoding`);
  return value;
}
