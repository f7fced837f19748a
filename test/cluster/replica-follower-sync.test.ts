/**
 * "Each broker still fsyncs according to its flush mode" (issue 16), on the follower side
 * (src/cluster/replica-fetcher.ts): three real brokers in this process on the in-memory
 * partition-state source (replica-cluster.ts), broker 3's logs on a LogIo whose fdatasyncs
 * the test can hold.
 *
 * - flush mode fsync: with broker 3's fdatasyncs held, an acks=all produce to the leader is
 *   not answered although broker 3 has written the records: broker 3 fetches again only once
 *   they are durable, so the leader does not count them, and the high watermark stays below
 *   them while broker 2 (real disk) is already past. Released, the produce is answered.
 * - flush mode interval: the same hold does not stop the produce (a follower there, like its
 *   leader, leaves durability to the interval flush): what the first case measures is the
 *   follower's own fdatasync, not some other wait.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { realIo, type LogIo } from '../../src/storage/fs-util.js';
import { waitFor } from '../helpers/wait.js';
import { startReplicaCluster, type ReplicaCluster } from './replica-cluster.js';
import { rawProduce } from './replica-raw.js';

/** Real I/O whose fdatasyncs wait while `held` (counting those waiting), then go to disk. */
class HeldSyncs implements LogIo {
  held = false;
  waiting = 0;
  #release: Array<() => void> = [];

  writev(fd: number, buffers: Buffer[], position: number): Promise<number> {
    return realIo.writev(fd, buffers, position);
  }

  async fdatasync(fd: number): Promise<void> {
    if (this.held) {
      this.waiting++;
      await new Promise<void>((resolve) => this.#release.push(resolve));
      this.waiting--;
    }
    await realIo.fdatasync(fd);
  }

  release(): void {
    this.held = false;
    for (const r of this.#release.splice(0)) r();
  }
}

async function withCluster(mode: 'fsync' | 'interval', body: (cluster: ReplicaCluster, io: HeldSyncs) => Promise<void>): Promise<void> {
  const io = new HeldSyncs();
  const cluster = await startReplicaCluster({ brokers: 3, fetchMaxWaitMs: 100, overrides: { log: { flush: { mode } } }, logIo: (id) => (id === 3 ? io : undefined) });
  try {
    await body(cluster, io);
  } finally {
    io.release();
    await cluster.close();
  }
}

const TOPIC = 'follower-sync';

async function setUp(cluster: ReplicaCluster): Promise<void> {
  await cluster.createTopic(TOPIC, 1, 1);
  await waitFor('broker 1 leads', () => cluster.node(1).broker.replicaManager!.replica(TOPIC, 0)?.role === 'leader');
  // Every replica in step first: 2 records acknowledged by all three.
  assert.equal((await rawProduce(cluster.node(1).port, TOPIC, 0, ['a', 'b'], -1)).errorCode, 0);
}

test('flush mode fsync: the leader counts a follower\'s records only once the follower fdatasynced them; acks=all waits for that', async () => {
  await withCluster('fsync', async (cluster, io) => {
    await setUp(cluster);
    const leader = cluster.node(1).broker.replicaManager!.replica(TOPIC, 0)!;
    io.held = true;
    let answered = false;
    const produce = rawProduce(cluster.node(1).port, TOPIC, 0, ['c', 'd', 'e'], -1).finally(() => (answered = true));
    // Broker 3 has written them and waits for their fdatasync; broker 2 has them durably and
    // told the leader so with its next fetch.
    await waitFor('broker 3 to write the records and wait for their fdatasync', () => cluster.node(3).log(TOPIC, 0).logEndOffset === 5n && io.waiting > 0);
    await waitFor('broker 2 to fetch past them', () => (leader.followerProgress(2)?.fetchOffset ?? -1n) === 5n);
    assert.equal(leader.followerProgress(3)?.fetchOffset, 2n, 'the leader counts broker 3 at what it holds durably');
    assert.equal(leader.highWatermark, 2n);
    assert.equal(answered, false, 'acks=all answered before every in-sync replica made the records durable');
    io.release();
    const r = await produce;
    assert.equal(r.errorCode, 0);
    assert.equal(r.baseOffset, 2n);
    assert.equal(leader.highWatermark, 5n);
  });
});

test('flush mode interval: the same held fdatasyncs do not hold a follower, so acks=all is answered', async () => {
  await withCluster('interval', async (cluster, io) => {
    await setUp(cluster);
    const leader = cluster.node(1).broker.replicaManager!.replica(TOPIC, 0)!;
    io.held = true;
    const r = await rawProduce(cluster.node(1).port, TOPIC, 0, ['c', 'd', 'e'], -1);
    assert.equal(r.errorCode, 0);
    assert.equal(leader.followerProgress(3)?.fetchOffset, 5n);
    assert.equal(cluster.node(3).log(TOPIC, 0).logEndOffset, 5n);
  });
});
