/**
 * Fuzz: random bytes, truncated frames, absurd length prefixes and mutated valid requests
 * thrown at the Kafka port from many connections, while a KafkaJS producer writes alongside.
 * The broker must survive, keep serving, and the producer's data must be intact.
 * Deterministic (seeded) and bounded in count and time.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { encodeBatch } from '../../src/storage/record-batch.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { collectMessages } from '../helpers/kafkajs-collect.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { rng } from '../helpers/seeded-random.js';

let tb: TestBroker;
before(async () => {
  tb = await startBroker({ kafka: { maxFrameBytes: 4 * 1024 * 1024 }, log: { maxBatchBytes: 1024 * 1024 } });
});
after(() => tb.cleanup());


function sendAndClose(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(bytes);
      // Give the broker a moment to react, then go away whatever happened.
      setTimeout(() => s.destroy(), 20);
    });
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => resolve());
  });
}

test('random, truncated, oversize and mutated frames never hurt the broker or a concurrent producer', { timeout: 120_000 }, async () => {
  const kafka = new Kafka({ brokers: [tb.bootstrap], clientId: 'fuzz-bystander', logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'safe', numPartitions: 2 }, { topic: 'target', numPartitions: 1 }] });
  await admin.disconnect();
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();

  const template = await RawClient.connect(tb.port);
  const validFrames = [
    template.frame(ApiKey.Produce, 7, { transactionalId: null, acks: -1, timeoutMs: 1000, topicData: [{ name: 'target', partitionData: [{ index: 0, records: encodeBatch({ records: [{ key: Buffer.from('k'), value: Buffer.from('v') }] }) }] }] }),
    template.frame(ApiKey.Metadata, 4, { topics: [{ topicId: '00000000-0000-0000-0000-000000000000', name: 'target' }], allowAutoTopicCreation: false, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false }),
    template.frame(ApiKey.ApiVersions, 3, { clientSoftwareName: 'fuzz', clientSoftwareVersion: '1' }),
    template.frame(ApiKey.JoinGroup, 5, { groupId: 'fz', sessionTimeoutMs: 10000, rebalanceTimeoutMs: 10000, memberId: '', groupInstanceId: null, protocolType: 'consumer', protocols: [{ name: 'range', metadata: Buffer.from([0, 1]) }], reason: null }),
    template.frame(ApiKey.OffsetCommit, 2, { groupId: 'fz', generationIdOrMemberEpoch: -1, memberId: '', groupInstanceId: null, retentionTimeMs: -1n, topics: [{ name: 'target', partitions: [{ partitionIndex: 0, committedOffset: 1n, committedLeaderEpoch: -1, commitTimestamp: -1n, committedMetadata: null }] }] }),
  ];
  template.close();

  // The producer writes while the fuzzer runs.
  const sent: string[] = [];
  const producing = (async () => {
    for (let i = 0; i < 40; i++) {
      const messages = Array.from({ length: 50 }, (_, j) => ({ key: `k${j % 5}`, value: `safe-${i * 50 + j}` }));
      await producer.send({ topic: 'safe', acks: -1, messages });
      sent.push(...messages.map((m) => m.value));
    }
  })();

  const rand = rng(20261126);
  const int = (n: number) => Math.floor(rand() * n);
  let cases = 0;
  const kinds = new Map<string, number>();
  const count = (k: string) => kinds.set(k, (kinds.get(k) ?? 0) + 1);
  for (let round = 0; round < 400; round++) {
    let bytes: Buffer;
    const kind = int(6);
    if (kind === 0) {
      // Pure noise, any length prefix.
      bytes = Buffer.from(Array.from({ length: 1 + int(300) }, () => int(256)));
      count('noise');
    } else if (kind === 1) {
      // An absurd or negative length prefix, then a little data.
      bytes = Buffer.alloc(4 + int(64));
      bytes.writeInt32BE([-1, -0x7fffffff, 0x7fffffff, 5 * 1024 * 1024, 4 * 1024 * 1024 + 1][int(5)], 0);
      count('absurd-length');
    } else if (kind === 2) {
      // A valid frame cut short but with its length prefix rewritten to match.
      const f = validFrames[int(validFrames.length)];
      const cut = 4 + int(f.length - 4);
      bytes = Buffer.from(f.subarray(0, cut));
      bytes.writeInt32BE(cut - 4, 0);
      count('truncated');
    } else if (kind === 3) {
      // A valid frame with random bytes flipped (length prefix kept).
      bytes = Buffer.from(validFrames[int(validFrames.length)]);
      for (let k = 0, n = 1 + int(8); k < n; k++) bytes[4 + int(bytes.length - 4)] = int(256);
      count('mutated');
    } else if (kind === 4) {
      // A valid header for a random API/version and a random body.
      const body = Buffer.from(Array.from({ length: int(200) }, () => int(256)));
      bytes = Buffer.alloc(4 + 10 + body.length);
      bytes.writeInt32BE(10 + body.length, 0);
      bytes.writeInt16BE(int(40), 4);
      bytes.writeInt16BE(int(12), 6);
      bytes.writeInt32BE(round, 8);
      bytes.writeInt16BE(-1, 12);
      body.copy(bytes, 14);
      count('random-body');
    } else {
      // A frame whose prefix promises more than ever comes, then the client leaves.
      bytes = Buffer.alloc(4 + 100);
      bytes.writeInt32BE(1000, 0);
      count('stalled');
    }
    await sendAndClose(tb.port, bytes);
    cases++;
  }
  await producing;
  await producer.disconnect();
  assert.equal(cases, 400);
  assert.ok([...kinds.values()].every((n) => n > 20), `every kind ran: ${JSON.stringify([...kinds])}`);

  // Still serving.
  const c = await RawClient.connect(tb.port);
  assert.equal((await c.request(ApiKey.ApiVersions, 2, {})).body.errorCode, 0);
  c.close();

  // Every acknowledged message is there exactly once, in order per key.
  const got = (await collectMessages(kafka, { groupId: 'fuzz-check', topics: ['safe'], count: sent.length })).map((m) => ({ key: m.key!.toString(), value: m.value!.toString() }));
  assert.equal(got.length, 2000);
  assert.equal(new Set(got.map((g) => g.value)).size, 2000, 'no duplicates');
  for (let k = 0; k < 5; k++) {
    const mine = got.filter((g) => g.key === `k${k}`).map((g) => g.value);
    assert.deepEqual(mine, sent.filter((v) => Number(v.slice(5)) % 50 % 5 === k));
  }
});
