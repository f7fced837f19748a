/**
 * What the generated codecs promise beyond round trips: the index agrees with api-keys.ts,
 * absent fields decode to the defaults the clients rely on, version and nullability
 * mistakes are refused with a clear error, unknown tags are skipped, and no input bytes,
 * however broken, make a decoder throw anything but KafkaDecodeError.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { apiKeyName, firstFlexibleVersion, isApiKey } from '../../../../src/protocol/kafka/api-keys.js';
import { KafkaDecodeError } from '../../../../src/protocol/kafka/codec-errors.js';
import { Reader } from '../../../../src/protocol/kafka/reader.js';
import { Writer } from '../../../../src/protocol/kafka/writer.js';
import * as m from '../../../../src/protocol/kafka/messages/index.js';

function encode<T>(fn: (writer: Writer, version: number, msg: T) => void, version: number, msg: T): Buffer {
  const writer = new Writer();
  fn(writer, version, msg);
  return Buffer.from(writer.toBuffer());
}

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

function produceResponse(partition: Partial<m.ProduceResponsePartitionProduceResponse> = {}): m.ProduceResponse {
  return {
    responses: [
      {
        name: 't',
        partitionResponses: [
          {
            index: 0,
            errorCode: 0,
            baseOffset: 10n,
            logAppendTimeMs: -1n,
            logStartOffset: -1n,
            recordErrors: [],
            errorMessage: null,
            currentLeader: { leaderId: -1, leaderEpoch: -1 },
            ...partition,
          },
        ],
      },
    ],
    throttleTimeMs: 0,
    nodeEndpoints: [],
  };
}

function fetchPartition(partition: Partial<m.FetchResponsePartitionData> = {}): m.FetchResponsePartitionData {
  return {
    partitionIndex: 0,
    errorCode: 0,
    highWatermark: 5n,
    lastStableOffset: 5n,
    logStartOffset: 0n,
    divergingEpoch: { epoch: -1, endOffset: -1n },
    currentLeader: { leaderId: -1, leaderEpoch: -1 },
    snapshotId: { endOffset: -1n, epoch: -1 },
    abortedTransactions: [],
    preferredReadReplica: -1,
    records: Buffer.from('batch'),
    ...partition,
  };
}

function fetchResponse(partition: Partial<m.FetchResponsePartitionData> = {}): m.FetchResponse {
  return {
    throttleTimeMs: 0,
    errorCode: 0,
    sessionId: 0,
    responses: [{ topic: 't', topicId: m.ZERO_UUID, partitions: [fetchPartition(partition)] }],
    nodeEndpoints: [],
  };
}

describe('messageCodecs', () => {
  it('has one codec per API key of api-keys.ts, with the same first flexible version', () => {
    assert.equal(m.messageCodecs.size, 47);
    for (const [key, codec] of m.messageCodecs) {
      assert.ok(isApiKey(key), `${key} is in api-keys.ts`);
      assert.equal(codec.apiKey, key);
      assert.equal(codec.name, apiKeyName(key));
      assert.equal(codec.flexibleFrom, firstFlexibleVersion(key), codec.name);
      assert.equal(codec.minVersion, 0);
      assert.equal(m.messageCodecsByName[codec.name as m.MessageApiName], codec);
    }
    assert.deepEqual(
      [0, 1, 3, 18].map((key) => {
        const c = m.messageCodecs.get(key);
        return [c?.name, c?.maxVersion, c?.flexibleFrom];
      }),
      [
        ['Produce', 11, 9],
        ['Fetch', 17, 12],
        ['Metadata', 12, 9],
        ['ApiVersions', 4, 3],
      ],
    );
    assert.equal(m.messageCodecs.get(17)?.flexibleFrom, null, 'SaslHandshake is never flexible');
    // At this commit only EndTxn v5 and ConsumerGroupHeartbeat v1 are marked unstable
    // (ListOffsets and AddPartitionsToTxn state the flag as false).
    assert.deepEqual(
      [...m.messageCodecs.values()].filter((c) => c.latestVersionUnstable).map((c) => [c.name, c.maxVersion]),
      [['EndTxn', 5], ['ConsumerGroupHeartbeat', 1]],
    );
  });

  it('decodes through the map as through the named functions', () => {
    const body = hex('ffff 00000bb8 00000000');
    const codec = m.messageCodecs.get(0);
    assert.ok(codec !== undefined);
    assert.deepEqual(codec.decodeRequest(new Reader(body), 2), { transactionalId: null, acks: -1, timeoutMs: 3000, topicData: [] });
  });
});

describe('versions outside validVersions', () => {
  it('fail to decode with an UnsupportedVersionError, a KafkaDecodeError', () => {
    for (const codec of m.messageCodecs.values()) {
      for (const version of [-1, codec.maxVersion + 1]) {
        for (const decode of [codec.decodeRequest, codec.decodeResponse]) {
          assert.throws(
            () => decode(new Reader(Buffer.alloc(64)), version),
            (error: unknown) =>
              error instanceof m.UnsupportedVersionError &&
              error instanceof KafkaDecodeError &&
              error.code === 'KAFKA_DECODE' &&
              error.apiKey === codec.apiKey &&
              error.version === version &&
              error.message.includes(`version ${version} is not supported (valid versions 0-${codec.maxVersion})`),
          );
        }
      }
    }
  });

  it('fail to encode with a RangeError (a broker bug, not client input)', () => {
    assert.throws(() => encode(m.encodeProduceResponse, 12, produceResponse()), {
      name: 'RangeError',
      message: 'Cannot encode ProduceResponse version 12: valid versions are 0-11',
    });
  });
});

describe('fields a version lacks', () => {
  it('decode to the defaults the clients rely on', () => {
    const fetchV3 = m.decodeFetchRequest(new Reader(hex('ffffffff 000001f4 00000001 00100000 00000000')), 3);
    assert.equal(fetchV3.isolationLevel, 0);
    assert.equal(fetchV3.sessionId, 0);
    assert.equal(fetchV3.sessionEpoch, -1);
    assert.equal(fetchV3.rackId, '');
    assert.deepEqual(fetchV3.replicaState, { replicaId: -1, replicaEpoch: -1n });

    const fetchV10 = m.decodeFetchResponse(new Reader(encode(m.encodeFetchResponse, 10, fetchResponse())), 10);
    assert.equal(fetchV10.responses[0].partitions[0].preferredReadReplica, -1);

    const produceV0 = m.decodeProduceResponse(new Reader(encode(m.encodeProduceResponse, 0, produceResponse())), 0);
    assert.equal(produceV0.throttleTimeMs, 0);
    assert.equal(produceV0.responses[0].partitionResponses[0].logAppendTimeMs, -1n);
    assert.equal(produceV0.responses[0].partitionResponses[0].logStartOffset, -1n);

    const metadataV0 = m.decodeMetadataResponse(new Reader(hex('00000000 00000000')), 0);
    assert.equal(metadataV0.controllerId, -1);
    assert.equal(metadataV0.clusterId, null);
    assert.equal(metadataV0.clusterAuthorizedOperations, -2147483648);
  });

  it('are dropped when ignorable', () => {
    const bytes = encode(m.encodeProduceResponse, 1, produceResponse({ logAppendTimeMs: 1700000000000n, logStartOffset: 3n }));
    assert.deepEqual(bytes, encode(m.encodeProduceResponse, 1, produceResponse()));
  });

  it('are refused when not ignorable and not at their default, as Kafka refuses them', () => {
    // Anything but -1 redirects a KafkaJS or librdkafka consumer; below v11 it cannot be said.
    assert.throws(() => encode(m.encodeFetchResponse, 10, fetchResponse({ preferredReadReplica: 2 })), {
      name: 'RangeError',
      message: 'Cannot encode FetchResponse version 10: responses[].partitions[].preferredReadReplica has a non-default value but only exists in versions 11+',
    });
    assert.throws(() => encode(m.encodeFetchResponse, 11, fetchResponse({ currentLeader: { leaderId: 1, leaderEpoch: 0 } })), /currentLeader has a non-default value/);
    assert.throws(
      () => encode(m.encodeMetadataRequest, 3, { topics: null, allowAutoTopicCreation: false, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false }),
      /allowAutoTopicCreation has a non-default value but only exists in versions 4\+/,
    );
  });

  it('may not be null where the version cannot carry null', () => {
    // Metadata v0 has no null topic list: an empty one means "all topics" there.
    assert.throws(
      () => encode(m.encodeMetadataRequest, 0, { topics: null, allowAutoTopicCreation: true, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false }),
      { name: 'RangeError', message: 'Cannot encode MetadataRequest version 0: topics is null but is not nullable in this version' },
    );
    assert.deepEqual(
      encode(m.encodeMetadataRequest, 1, { topics: null, allowAutoTopicCreation: true, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false }),
      hex('ffffffff'),
    );
  });
});

describe('tagged fields', () => {
  // Produce v9: transactional_id null, acks 1, timeout 1000, one topic "t" with one partition.
  const head = '00 0001 000003e8 02 02 74 02 00000000 04 616263';

  it('skips unknown tags in nested structs', () => {
    const plain = m.decodeProduceRequest(new Reader(hex(`${head} 00 00 00`)), 9);
    const tagged = m.decodeProduceRequest(new Reader(hex(`${head} 02 09 01 ff 7f 00 00 01 0a 02 aaaa 00`)), 9);
    assert.deepEqual(tagged, plain);
    assert.deepEqual(plain.topicData[0].partitionData[0].records, Buffer.from('abc'));
  });

  it('rejects a known tag whose value does not fill its declared size', () => {
    // ProduceResponse v10 partition, tag 0 (current_leader) declares 12 bytes but holds 9.
    const bytes = encode(m.encodeProduceResponse, 10, produceResponse({ currentLeader: { leaderId: 1, leaderEpoch: 2 } }));
    const at = bytes.indexOf(hex('00 09 00000001 00000002 00'));
    assert.ok(at > 0);
    bytes[at + 1] = 12;
    assert.throws(() => m.decodeProduceResponse(new Reader(bytes), 10), (e: unknown) => e instanceof KafkaDecodeError);
  });

  it('are written only when they differ from their default', () => {
    const plain = encode(m.encodeFetchResponse, 12, fetchResponse());
    const withLeader = encode(m.encodeFetchResponse, 12, fetchResponse({ currentLeader: { leaderId: 3, leaderEpoch: 7 } }));
    // tag count 1, tag 1, size 9: leader_id, leader_epoch, empty tag buffer
    assert.equal(withLeader.length - plain.length, 11);
    assert.ok(withLeader.includes(hex('01 01 09 00000003 00000007 00')));
    assert.deepEqual(m.decodeFetchResponse(new Reader(withLeader), 12).responses[0].partitions[0].currentLeader, { leaderId: 3, leaderEpoch: 7 });
  });
});

describe('malformed input', () => {
  it('fails every truncation of a valid body with KafkaDecodeError', () => {
    const bytes = encode(
      m.encodeFetchResponse,
      16,
      {
        ...fetchResponse({ currentLeader: { leaderId: 1, leaderEpoch: 2 }, abortedTransactions: [{ producerId: 4n, firstOffset: 5n }] }),
        nodeEndpoints: [{ nodeId: 1, host: 'h', port: 9092, rack: null }],
      },
    );
    for (let length = 0; length < bytes.length; length++) {
      assert.throws(
        () => m.decodeFetchResponse(new Reader(bytes.subarray(0, length)), 16),
        (e: unknown) => e instanceof KafkaDecodeError,
        `prefix of ${length} bytes`,
      );
    }
  });

  it('never throws anything but KafkaDecodeError, and what decodes re-encodes to the same value', () => {
    const targets = [...m.messageCodecs.values()].flatMap((codec) => {
      const versions = Array.from({ length: codec.maxVersion - codec.minVersion + 1 }, (_, i) => codec.minVersion + i);
      return versions.flatMap((version) => [
        { name: `${codec.name}Request v${version}`, version, decode: codec.decodeRequest, encode: codec.encodeRequest },
        { name: `${codec.name}Response v${version}`, version, decode: codec.decodeResponse, encode: codec.encodeResponse },
      ]);
    });
    // Mostly small numbers, so lengths and counts are plausible and decoding gets past the first field.
    const byte = fc.oneof(fc.constantFrom(0, 1, 2, 0xff), fc.integer({ min: 0, max: 255 }));
    fc.assert(
      fc.property(fc.constantFrom(...targets), fc.array(byte, { maxLength: 48 }), (target, raw) => {
        let decoded: unknown;
        try {
          decoded = target.decode(new Reader(Buffer.from(raw)), target.version);
        } catch (error) {
          assert.ok(error instanceof KafkaDecodeError, `${target.name}: ${String(error)}`);
          return;
        }
        const writer = new Writer();
        target.encode(writer, target.version, decoded);
        assert.deepEqual(target.decode(new Reader(writer.toBuffer()), target.version), decoded, target.name);
      }),
      { numRuns: 20000 },
    );
  });
});

describe('generated files', () => {
  it('open with the generator, the spec commit and the grammar of each version', () => {
    const text = readFileSync(new URL('../../../../src/protocol/kafka/messages/produce.ts', import.meta.url), 'utf8');
    assert.match(text, /^\/\/ GENERATED by src\/protocol\/kafka\/gen\/gen-messages\.ts from Kafka's\n\/\/ ProduceRequest\.json and ProduceResponse\.json \(apache\/kafka commit 1eb7644349cb07139d6a3c1ad1986979647cac99,/);
    assert.match(text, /node --import tsx src\/protocol\/kafka\/gen\/gen-messages\.ts src\/protocol\/kafka\/spec src\/protocol\/kafka\/messages/);
    assert.ok(
      text.includes(
        [
          ' * Produce Request (Version: 3-8) => transactional_id acks timeout_ms [topic_data]',
          ' *   transactional_id => NULLABLE_STRING',
          ' *   acks => INT16',
          ' *   timeout_ms => INT32',
          ' *   topic_data => name [partition_data]',
          ' *     name => STRING',
          ' *     partition_data => index records',
          ' *       index => INT32',
          ' *       records => RECORDS',
        ].join('\n'),
      ),
    );
  });
});
