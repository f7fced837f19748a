import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { codeRetriability, ErrorCode, MeridianError } from '../src/errors.js';
import { KafkaErrorCode, type KafkaErrorName } from '../src/protocol/kafka/error-codes.js';
import { fromRemoteKafkaError, KAFKA_MAPPING, kafkaErrorNameFor, toKafkaError, WIRE_RETRIABILITY_DIFFERS } from '../src/protocol/kafka/error-mapping.js';

const CODES: readonly ErrorCode[] = Object.values(ErrorCode);

/** The rows of the error table in src/README.md, by code. */
function documentedCodes(): Map<string, { retriable: string; kafka: string[]; marked: boolean }> {
  const text = readFileSync(new URL('../src/README.md', import.meta.url), 'utf8');
  const rows = new Map<string, { retriable: string; kafka: string[]; marked: boolean }>();
  for (const line of text.split('\n')) {
    const m = /^\| `([A-Z_]+)` \| (\w+) \| (.+?) \| .+ \|$/.exec(line);
    if (m === null) continue;
    assert.ok(!rows.has(m[1]!), `${m[1]} is documented twice`);
    rows.set(m[1]!, { retriable: m[2]!, kafka: [...m[3]!.matchAll(/`([A-Z_]+)`/g)].map((k) => k[1]!), marked: m[3]!.includes('¹') });
  }
  return rows;
}

/** The Kafka errors a code can become: one, or one for retriable errors and one for the others. */
function kafkaNamesOf(code: ErrorCode): { retriable: KafkaErrorName; permanent: KafkaErrorName } {
  return { retriable: kafkaErrorNameFor(code, true), permanent: kafkaErrorNameFor(code, false) };
}

describe('error codes', () => {
  it('every code is mapped to a Kafka error', () => {
    for (const code of CODES) assert.ok(Object.hasOwn(KAFKA_MAPPING, code), `${code} has no Kafka mapping in protocol/kafka/error-mapping.ts`);
    assert.deepEqual(Object.keys(KAFKA_MAPPING).sort(), [...CODES].sort(), 'the mapping names only codes of errors.ts');
  });

  it('every code is documented in src/README.md with its retriability and Kafka error', () => {
    const rows = documentedCodes();
    for (const code of CODES) {
      const row = rows.get(code);
      assert.ok(row !== undefined, `${code} is not documented in the error table of src/README.md`);
      assert.equal(row.retriable, codeRetriability(code), `${code}: retriability in src/README.md`);
      const { retriable, permanent } = kafkaNamesOf(code);
      assert.deepEqual(row.kafka, retriable === permanent ? [retriable] : [retriable, permanent], `${code}: Kafka error in src/README.md`);
      assert.equal(row.marked, WIRE_RETRIABILITY_DIFFERS.has(code), `${code}: the ¹ mark in src/README.md`);
    }
    assert.deepEqual([...rows.keys()].sort(), [...CODES].sort(), 'src/README.md documents only codes of errors.ts');
  });

  it("each Kafka error has the code's retriability, except the documented few", () => {
    for (const code of CODES) {
      const { retriable, permanent } = kafkaNamesOf(code);
      const r = codeRetriability(code);
      const consistent =
        (r !== 'never' ? KafkaErrorCode[retriable].retriable : true) && (r !== 'always' ? !KafkaErrorCode[permanent].retriable : true);
      assert.equal(
        consistent,
        !WIRE_RETRIABILITY_DIFFERS.has(code),
        WIRE_RETRIABILITY_DIFFERS.has(code)
          ? `${code} is listed as an exception but its Kafka errors agree with it: take it off the list`
          : `${code} is ${r} retriable but maps to ${retriable} (retriable ${KafkaErrorCode[retriable].retriable}) / ${permanent} (retriable ${KafkaErrorCode[permanent].retriable})`,
      );
    }
  });

  it('an error takes its retriability from its cause, else from its code', () => {
    assert.equal(new MeridianError(ErrorCode.LinkUnreachable, 'x').retriable, true);
    assert.equal(new MeridianError(ErrorCode.RemoteRefused, 'x').retriable, false);
    assert.equal(new MeridianError(ErrorCode.StorageIo, 'x').retriable, false, 'varies: not retriable unless the error says so');
    assert.equal(new MeridianError(ErrorCode.StorageIo, 'x', { retriable: true }).retriable, true);
    const cause = new MeridianError(ErrorCode.StorageIo, 'disk full', { retriable: true });
    assert.equal(new MeridianError(ErrorCode.CorruptBatch, 'wrapped', { cause }).retriable, true, 'the root cause decides');
    assert.equal(new MeridianError('BLOB_FATAL', 'another module').retriable, false);
  });

  it("toKafkaError follows the error's own flag where the code's retriability varies", () => {
    assert.equal(toKafkaError(new MeridianError(ErrorCode.StorageIo, 'full', { retriable: true })).name, 'KAFKA_STORAGE_ERROR');
    assert.equal(toKafkaError(new MeridianError(ErrorCode.LinkUnreachable, 'x')).name, 'NETWORK_EXCEPTION');
    assert.deepEqual(toKafkaError(new MeridianError(ErrorCode.UnknownTopic, 'topic t does not exist')), { code: 3, name: 'UNKNOWN_TOPIC_OR_PARTITION', message: 'topic t does not exist' });
    assert.equal(toKafkaError(new Error('a bug')).name, 'UNKNOWN_SERVER_ERROR');
    assert.equal(toKafkaError(new MeridianError('BLOB_FATAL', 'x')).name, 'UNKNOWN_SERVER_ERROR');
  });

  it("a replicating region reads a remote's refusals as REMOTE_REFUSED and everything else as REMOTE_UNAVAILABLE", () => {
    // What a receiving region answers for each error it raises, as the sender classifies it.
    const refused: readonly ErrorCode[] = [ErrorCode.CorruptBatch, ErrorCode.InvalidBatch, ErrorCode.BatchTooLarge, ErrorCode.InvalidPartitions, ErrorCode.ReplicationMisrouted];
    const unavailable = [ErrorCode.OutOfOrderSequence, ErrorCode.UnknownTopic, ErrorCode.LogClosed, ErrorCode.StorageIo, ErrorCode.CorruptLog];
    for (const code of [...refused, ...unavailable]) {
      const sent = toKafkaError(new MeridianError(code, `refusal ${code}`));
      const got = fromRemoteKafkaError(sent.code, sent.message, 'region eu-west');
      assert.equal(got.code, refused.includes(code) ? ErrorCode.RemoteRefused : ErrorCode.RemoteUnavailable, code);
      assert.equal(got.retriable, !refused.includes(code), code);
      assert.equal(got.message, `region eu-west: refusal ${code}`);
    }
    assert.equal(fromRemoteKafkaError(56, null, 'region eu-west').message, 'region eu-west: KAFKA_STORAGE_ERROR', 'without a message, the Kafka name');
  });
});
