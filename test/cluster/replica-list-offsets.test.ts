/**
 * ListOffsets on a replicated partition follows Kafka's rules (KIP-207), on two real brokers
 * sharing an in-memory partition-state source (a test double standing in for etcd:
 * replica-cluster.ts), where the test plays the controller: a new leader whose high watermark
 * is still below the start of its epoch answers LATEST, and a timestamp lookup landing at or
 * past its high watermark, with OFFSET_NOT_AVAILABLE (retriable: answering the stale high
 * watermark would make the latest offset go backwards); once the high watermark passes the
 * epoch start it answers them, and a lookup never names an offset past the high watermark.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { kafkaCode } from '../../src/protocol/kafka/error-mapping.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { waitFor } from '../helpers/wait.js';
import { startReplicaCluster, type ReplicaCluster } from './replica-cluster.js';
import { rawProduce } from './replica-raw.js';

const TOPIC = 'list-offsets';
const LATEST = -1n;
let cluster: ReplicaCluster;

before(async () => {
  // Followers long-poll 1.5 s: a follower learns a higher high watermark only in the answer
  // to its next fetch, which gives the test a wide window to stop the old leader in.
  cluster = await startReplicaCluster({ brokers: 2, replicaLagTimeMaxMs: 4000, fetchMaxWaitMs: 1500 });
});

after(async () => {
  await cluster?.close();
});

async function listOffset(port: number, timestamp: bigint): Promise<{ errorCode: number; offset: bigint }> {
  const c = await RawClient.connect(port);
  try {
    const r = await c.request(ApiKey.ListOffsets, 7, {
      replicaId: -1,
      isolationLevel: 0,
      topics: [{ name: TOPIC, partitions: [{ partitionIndex: 0, currentLeaderEpoch: -1, timestamp, maxNumOffsets: 1 }] }],
      timeoutMs: 0,
    });
    const p = r.body.topics[0].partitions[0];
    return { errorCode: p.errorCode, offset: p.offset };
  } finally {
    c.close();
  }
}

test('a new leader answers OFFSET_NOT_AVAILABLE while its high watermark is below its epoch start, then the offsets', async () => {
  await cluster.createTopic(TOPIC, 1, 1);
  const [a, b] = [cluster.node(1), cluster.node(2)];
  await waitFor('broker 1 leads', () => a.broker.replicaManager!.replica(TOPIC, 0)?.role === 'leader');
  assert.equal((await rawProduce(a.port, TOPIC, 0, ['a', 'b'], -1)).errorCode, 0);
  const mid = Date.now();
  await waitFor('the clock to pass the first records', () => Date.now() > mid + 1, 1000, 1);
  // acks=1: broker 2 copies c and d, but the high watermark it was told is still 2.
  assert.equal((await rawProduce(a.port, TOPIC, 0, ['c', 'd'], 1)).errorCode, 0);
  await waitFor('broker 2 copied c and d', () => b.log(TOPIC, 0).logEndOffset === 4n, 5000, 2);
  await a.broker.close();

  // Broker 2 leads epoch 1 from offset 4; broker 1 stays in the ISR but never fetches, so the
  // high watermark stays at the 2 broker 2 knew until the ISR drops it.
  cluster.source.elect(TOPIC, 0, 2, [2, 1]);
  await waitFor('broker 2 leads', () => b.broker.replicaManager!.replica(TOPIC, 0)?.role === 'leader');
  const notAvailable = kafkaCode('OFFSET_NOT_AVAILABLE');
  assert.deepEqual(await listOffset(b.port, LATEST), { errorCode: notAvailable, offset: -1n }, 'LATEST while lagging');
  assert.deepEqual(await listOffset(b.port, BigInt(mid + 1)), { errorCode: notAvailable, offset: -1n }, 'a lookup landing on c, past the high watermark');
  assert.deepEqual(await listOffset(b.port, 0n), { errorCode: 0, offset: 0n }, 'a lookup below the high watermark is answered');
  assert.deepEqual(await listOffset(b.port, -2n), { errorCode: 0, offset: 0n }, 'EARLIEST is answered');

  // Broker 1 leaves the ISR after the lag time: the high watermark is broker 2's own end.
  await waitFor('the latest offset to be 4', async () => {
    const r = await listOffset(b.port, LATEST);
    return r.errorCode === 0 && r.offset === 4n;
  }, 15_000);
  assert.deepEqual(await listOffset(b.port, BigInt(mid + 1)), { errorCode: 0, offset: 2n });
  // A lookup past every record finds nothing.
  assert.deepEqual(await listOffset(b.port, BigInt(Date.now() + 60_000)), { errorCode: 0, offset: -1n });
});
