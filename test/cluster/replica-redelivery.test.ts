/**
 * A partition state delivered again (src/cluster/partition-replica.ts `update`): etcd's
 * watch re-delivers every state after a compaction reload (etcd-state-source.ts), and a
 * CAS answer is followed by its own watch event. The same (leaderEpoch, partitionEpoch)
 * again must change nothing: in particular an ISR expansion in flight stays counted, so the
 * high watermark does not pass offsets the joining follower does not hold yet. Only a
 * higher partitionEpoch (the expansion written) settles the proposal.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PartitionReplica } from '../../src/cluster/partition-replica.js';
import type { NamedPartitionState } from '../../src/cluster/partition-state-source.js';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { encodeBatch } from '../../src/storage/record-batch.js';
import { tmpDir } from '../helpers/tmp-dir.js';

test('an identical state re-delivered while an ISR expansion is in flight keeps the joining follower counted in the high watermark', async () => {
  const d = tmpDir('meridian-redelivery-');
  const log = await PartitionLog.open(d.dir, { retentionMs: -1 });
  try {
    const s0: NamedPartitionState = { topic: 't', partition: 0, replicas: [1, 2], leader: 1, leaderEpoch: 3, partitionEpoch: 7, isr: [1] };
    const r = new PartitionReplica(1, log, s0, false);
    r.lead(s0, Date.now());
    await log.append(encodeBatch({ records: [{ value: Buffer.from('a') }] }));
    await log.append(encodeBatch({ records: [{ value: Buffer.from('b') }] }));
    assert.equal(r.highWatermark, 2n, 'the ISR is the leader alone: its log end is the high watermark');

    // Follower 2 caught up: the leader proposes it joins, and keeps counting it meanwhile.
    r.followerFetched(2, 2n, Date.now());
    const desired = r.desiredIsr(Date.now(), 10_000);
    assert.deepEqual(desired, [1, 2]);
    r.proposeIsr(desired!);
    await log.append(encodeBatch({ records: [{ value: Buffer.from('c') }] }));
    assert.equal(r.highWatermark, 2n, 'follower 2 does not hold offset 2 yet');

    // The same state again (a watch reload): nothing changes.
    r.update({ ...s0, isr: [...s0.isr] });
    assert.deepEqual(r.pendingIsr, [1, 2], 'the proposal in flight survives an identical state');
    assert.equal(r.highWatermark, 2n, 'the high watermark passed an offset the joining follower does not hold');

    // The expansion is written (partitionEpoch + 1): the committed ISR now counts it.
    r.update({ ...s0, isr: [1, 2], partitionEpoch: 8 });
    assert.equal(r.pendingIsr, undefined);
    assert.equal(r.highWatermark, 2n);
    r.followerFetched(2, 3n, Date.now());
    assert.equal(r.highWatermark, 3n, 'once the follower holds offset 2 the high watermark passes it');
    r.close();
  } finally {
    await log.close();
    d.cleanup();
  }
});
