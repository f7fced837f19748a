/**
 * Property tests of every generated codec, every API and every version of the committed
 * schemas, request and response. Random messages come from an independent reading of the
 * JSON schemas (reference/), not from the generator, and for each one:
 *
 * - the generated encoder writes exactly the reference encoder's bytes;
 * - decoding them gives the message back (deep equal) and uses every byte;
 * - re-encoding the decoded message gives the same bytes;
 * - in flexible versions, the same message with random unknown tagged fields added to its
 *   tag buffers decodes to the same message (KIP-482: unknown tags are skipped).
 *
 * Tagged fields get random values, their defaults included. Runs per version are kept
 * small because there are about 600 API-version-direction cases.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { messageCodecsByName, type MessageCodec } from '../../../../src/protocol/kafka/messages/index.js';
import { Reader } from '../../../../src/protocol/kafka/reader.js';
import { Writer } from '../../../../src/protocol/kafka/writer.js';
import { isFlexible, loadApiSchemas, type MessageSchema } from './reference/kafka-schema.js';
import { messageArb, unknownTagsArb } from './reference/message-values.js';
import { referenceEncode } from './reference/reference-encoder.js';

const RUNS = 30;

type Direction = 'Request' | 'Response';

function codecFor(name: string): MessageCodec {
  const codec = (messageCodecsByName as Record<string, MessageCodec>)[name];
  assert.ok(codec !== undefined, `no generated codec for ${name}`);
  return codec;
}

function encodeWith(codec: MessageCodec, direction: Direction, version: number, msg: unknown): Buffer {
  const writer = new Writer();
  if (direction === 'Request') codec.encodeRequest(writer, version, msg);
  else codec.encodeResponse(writer, version, msg);
  return Buffer.from(writer.toBuffer());
}

function decodeAll(codec: MessageCodec, direction: Direction, version: number, bytes: Buffer): unknown {
  const reader = new Reader(bytes);
  const value = direction === 'Request' ? codec.decodeRequest(reader, version) : codec.decodeResponse(reader, version);
  assert.equal(reader.remaining, 0, 'decoding left bytes unread');
  return value;
}

function checkVersion(codec: MessageCodec, direction: Direction, schema: MessageSchema, version: number): void {
  const flexible = isFlexible(schema, version);
  fc.assert(
    fc.property(messageArb(schema, version), unknownTagsArb, (msg, unknownTags) => {
      const bytes = encodeWith(codec, direction, version, msg);
      assert.equal(bytes.toString('hex'), referenceEncode(schema, version, msg).toString('hex'), 'generated vs reference encoder');
      const decoded = decodeAll(codec, direction, version, bytes);
      assert.deepStrictEqual(decoded, msg);
      assert.ok(encodeWith(codec, direction, version, decoded).equals(bytes), 're-encoding changed the bytes');
      if (flexible) {
        const withUnknown = referenceEncode(schema, version, msg, { unknownTags });
        assert.deepStrictEqual(decodeAll(codec, direction, version, withUnknown), msg);
      }
    }),
    { numRuns: RUNS },
  );
}

const apis = loadApiSchemas();

describe('generated codecs against the schemas (property)', () => {
  it('cover exactly the APIs of the committed schemas', () => {
    assert.deepEqual([...apis.keys()].sort(), Object.keys(messageCodecsByName).sort());
    for (const api of apis.values()) {
      const codec = codecFor(api.name);
      assert.equal(codec.apiKey, api.request.apiKey, api.name);
      assert.deepEqual([codec.minVersion, codec.maxVersion], [api.request.lo, api.request.hi], api.name);
    }
  });

  for (const api of apis.values()) {
    for (const direction of ['Request', 'Response'] as const) {
      const schema = api[direction === 'Request' ? 'request' : 'response'];
      it(`${schema.name} v${schema.lo}-${schema.hi}: reference bytes, decode(encode(x)) = x, unknown tags skipped`, () => {
        const codec = codecFor(api.name);
        for (let version = schema.lo; version <= schema.hi; version++) {
          try {
            checkVersion(codec, direction, schema, version);
          } catch (error) {
            throw new Error(`${schema.name} version ${version}`, { cause: error });
          }
        }
      });
    }
  }
});
