/**
 * Byte fixtures for every API, direction and version of the committed schemas: a
 * deterministic message (reference/message-values.ts sampleMessage) must encode, through the
 * generated codec, to exactly the committed bytes of fixtures/message-bytes.json, which the
 * reference encoder (reference/reference-encoder.ts, written from the protocol rules and
 * walking the JSON at run time) must also produce; decoding the bytes must give the message
 * back. Two independent encoders plus a committed file: a change to any one of them fails
 * here. The reference encoder itself is pinned to hand-assembled bytes below. Real clients'
 * bytes are in kafkajs-requests.test.ts and kafkajs-responses.test.ts.
 *
 * Regenerate the fixtures (after a schema update, reviewing the diff) with
 *   node --import tsx test/protocol/kafka/messages/reference/byte-fixtures.ts
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { messageCodecsByName, type MessageCodec } from '../../../../src/protocol/kafka/messages/index.js';
import { Reader } from '../../../../src/protocol/kafka/reader.js';
import { Writer } from '../../../../src/protocol/kafka/writer.js';
import { readFixtures } from './reference/byte-fixtures.js';
import { loadApiSchemas, type MessageSchema } from './reference/kafka-schema.js';
import { sampleMessage } from './reference/message-values.js';
import { referenceEncode } from './reference/reference-encoder.js';

const REGENERATE = 'node --import tsx test/protocol/kafka/messages/reference/byte-fixtures.ts';

/** Hex with `#` comments to the end of the line. */
function hex(text: string): string {
  return text.replace(/#[^\n]*/g, '').replace(/\s+/g, '');
}

const apis = loadApiSchemas();
const fixtures = readFixtures();

describe('byte fixtures', () => {
  it('exist for exactly the messages and versions of the committed schemas', () => {
    const expected: Record<string, string[]> = {};
    for (const api of apis.values()) {
      for (const schema of [api.request, api.response]) {
        expected[schema.name] = Array.from({ length: schema.hi - schema.lo + 1 }, (_, i) => String(schema.lo + i));
      }
    }
    const actual = Object.fromEntries(Object.entries(fixtures).map(([name, versions]) => [name, Object.keys(versions)]));
    assert.deepEqual(actual, expected, `fixtures are out of date; regenerate with ${REGENERATE}`);
  });

  for (const api of apis.values()) {
    const codec = (messageCodecsByName as Record<string, MessageCodec>)[api.name];
    for (const [schema, encode, decode] of [
      [api.request, codec.encodeRequest, codec.decodeRequest],
      [api.response, codec.encodeResponse, codec.decodeResponse],
    ] as [MessageSchema, MessageCodec['encodeRequest'], MessageCodec['decodeRequest']][]) {
      it(`${schema.name} v${schema.lo}-${schema.hi}: generated and reference encoders write the fixture, decoding gives the message`, () => {
        for (let version = schema.lo; version <= schema.hi; version++) {
          const where = `${schema.name} v${version}`;
          const expected = fixtures[schema.name]?.[String(version)];
          assert.ok(expected !== undefined, `${where}: no fixture; regenerate with ${REGENERATE}`);
          const msg = sampleMessage(schema, version);
          const writer = new Writer();
          encode(writer, version, msg);
          assert.equal(Buffer.from(writer.toBuffer()).toString('hex'), expected, `${where}: generated encoder`);
          assert.equal(referenceEncode(schema, version, msg).toString('hex'), expected, `${where}: reference encoder`);
          const reader = new Reader(Buffer.from(expected, 'hex'));
          assert.deepStrictEqual(decode(reader, version), msg, where);
          assert.equal(reader.remaining, 0, `${where}: bytes left after decoding`);
        }
      });
    }
  }
});

describe('the reference encoder', () => {
  const schema = (name: string): MessageSchema => {
    const api = apis.get(name.replace(/(Request|Response)$/, ''));
    assert.ok(api !== undefined);
    return name.endsWith('Request') ? api.request : api.response;
  };

  it('writes classic and compact strings', () => {
    const msg = { clientSoftwareName: 'kcat', clientSoftwareVersion: '1.7' };
    assert.equal(referenceEncode(schema('ApiVersionsRequest'), 2, { clientSoftwareName: '', clientSoftwareVersion: '' }).toString('hex'), '');
    assert.equal(
      referenceEncode(schema('ApiVersionsRequest'), 3, msg).toString('hex'),
      hex(`05 6b636174   # compact string: length 4 + 1
           04 312e37     # "1.7"
           00            # no tagged fields`),
    );
    const findCoordinator = { key: 'g', keyType: 0, coordinatorKeys: [] };
    assert.equal(referenceEncode(schema('FindCoordinatorRequest'), 0, findCoordinator).toString('hex'), hex('0001 67'));
    assert.equal(referenceEncode(schema('FindCoordinatorRequest'), 1, findCoordinator).toString('hex'), hex('0001 67  00'));
  });

  it('writes tagged fields in tag order with unsigned varint tag and size, and skips defaults', () => {
    const response = {
      errorCode: 0,
      apiKeys: [{ apiKey: 18, minVersion: 0, maxVersion: 4 }],
      throttleTimeMs: 0,
      supportedFeatures: [],
      finalizedFeaturesEpoch: 5n,
      finalizedFeatures: [],
      zkMigrationReady: true,
    };
    assert.equal(
      referenceEncode(schema('ApiVersionsResponse'), 3, response).toString('hex'),
      hex(`0000                     # error_code
           02 0012 0000 0004 00     # api_keys: compact array of 1, struct tag buffer
           00000000                 # throttle_time_ms
           02                       # two tagged fields (supported_features, finalized_features empty: default)
           01 08 0000000000000005   # tag 1, 8 bytes: finalized_features_epoch
           03 01 01                 # tag 3, 1 byte: zk_migration_ready`),
    );
    assert.equal(
      referenceEncode(schema('ApiVersionsResponse'), 0, { ...response, finalizedFeaturesEpoch: -1n, zkMigrationReady: false }).toString('hex'),
      hex('0000 00000001 0012 0000 0004'),
    );
  });

  it('adds unknown tags in order, two-byte varints included, leaving known tags alone', () => {
    const msg = { clientSoftwareName: '', clientSoftwareVersion: '' };
    const data = new Uint8Array(130).fill(7);
    const bytes = referenceEncode(schema('ApiVersionsRequest'), 3, msg, { unknownTags: [[{ tag: 300, data }, { tag: 2, data: Uint8Array.of(9) }]] });
    assert.equal(bytes.toString('hex'), hex(`01 01  02   02 01 09   ac02 8201 ${'07'.repeat(130)}`));
  });

  it('writes a nullable struct behind an INT8 marker', () => {
    const base = { throttleTimeMs: 0, errorCode: 0, errorMessage: null, memberId: null, memberEpoch: 1, heartbeatIntervalMs: 2 };
    const prefix = '00000000 0000 00 00 00000001 00000002';
    assert.equal(referenceEncode(schema('ConsumerGroupHeartbeatResponse'), 0, { ...base, assignment: null }).toString('hex'), hex(`${prefix} ff 00`));
    assert.equal(
      referenceEncode(schema('ConsumerGroupHeartbeatResponse'), 0, { ...base, assignment: { topicPartitions: [] } }).toString('hex'),
      hex(`${prefix} 01 01 00 00`),
    );
  });
});
