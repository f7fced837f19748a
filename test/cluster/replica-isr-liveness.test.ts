/**
 * ISR membership needs a follower that is fetching (src/cluster/partition-replica.ts
 * `desiredIsr`), not only one whose last fetch offset reached the high watermark: on an idle
 * partition a follower that was caught up and then died keeps a fetch offset equal to the
 * log end forever. It must still leave the ISR after the lag time, and once out (the
 * controller also drops dead brokers from ISRs) it must not be proposed back until it
 * fetches again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PartitionReplica } from '../../src/cluster/partition-replica.js';
import type { NamedPartitionState } from '../../src/cluster/partition-state-source.js';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { encodeBatch } from '../../src/storage/record-batch.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const LAG_MS = 10_000;

test('a caught-up follower that stops fetching leaves the ISR after the lag time, and is not taken back until it fetches again', async () => {
  const d = tmpDir('meridian-isr-liveness-');
  const log = await PartitionLog.open(d.dir, { retentionMs: -1 });
  try {
    const t0 = Date.now();
    const s0: NamedPartitionState = { topic: 't', partition: 0, replicas: [1, 2], leader: 1, leaderEpoch: 1, partitionEpoch: 1, isr: [1, 2] };
    const r = new PartitionReplica(1, log, s0, false);
    r.lead(s0, t0);
    await log.append(encodeBatch({ records: [{ value: Buffer.from('a') }] }));
    r.followerFetched(2, 1n, t0 + 100);
    assert.equal(r.highWatermark, 1n);
    assert.equal(r.desiredIsr(t0 + 200, LAG_MS), undefined, 'a fetching, caught-up follower stays');

    // Follower 2 dies: no fetch after t0 + 100, nothing produced, its offset still the end.
    assert.equal(r.desiredIsr(t0 + 100 + LAG_MS - 1, LAG_MS), undefined, 'within the lag time it stays');
    assert.deepEqual(r.desiredIsr(t0 + 100 + LAG_MS + 1, LAG_MS), [1], 'past the lag time without a fetch it leaves, though its last offset is the log end');

    // The shrink is written (or the controller dropped the dead broker).
    const s1 = { ...s0, isr: [1], partitionEpoch: 2 };
    r.update(s1);
    assert.equal(r.desiredIsr(t0 + 100 + LAG_MS + 2, LAG_MS), undefined, 'a follower that is not fetching is not proposed back into the ISR');

    // It comes back and fetches at the log end: it joins.
    const back = t0 + 100 + LAG_MS + 500;
    r.followerFetched(2, 1n, back);
    assert.deepEqual(r.desiredIsr(back + 1, LAG_MS), [1, 2], 'a follower fetching at the high watermark joins again');
    r.close();
  } finally {
    await log.close();
    d.cleanup();
  }
});
