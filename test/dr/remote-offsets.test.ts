/**
 * The remote-offsets file (src/dr/remote-offsets.ts) after a restart holds exactly what the
 * last acknowledged syncs said: commits (with their vectors), partition ends and the heard
 * times. Each entry's JSON is made once and reused by later writes, so the checks here are
 * that an entry a later sync replaced is written anew (never its first version) and that
 * entries no sync touched since are still written.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';
import type { OffsetSyncRequest } from '../../src/dr/dr-api.js';
import { RemoteOffsets } from '../../src/dr/remote-offsets.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const t = tmpDir('meridian-remote-offsets-');
after(t.cleanup);

function sync(sentAt: number, commits: OffsetSyncRequest['commits'], ends: OffsetSyncRequest['ends']): OffsetSyncRequest {
  return { targetRegion: 'eu-west', senderRegion: 'us-east', sentAt, commits, ends };
}

const commit = (partition: number, offset: bigint, commitTimestamp: number) => ({ group: 'g1', topic: 'orders', partition, offset, commitTimestamp, vector: [['us-east/t1', offset - 1n]] as Array<[string, bigint]> });
const end = (partition: number, endOffset: bigint, lastTimestamp: number) => ({ topic: 'orders', topicId: 't1', partition, endOffset, lastTimestamp });

test('a restart reads back the newest commit, end and heard time of each partition, whichever sync wrote them', async () => {
  const a = new RemoteOffsets(t.dir);
  await a.apply(sync(1_000, [commit(0, 10n, 100), commit(1, 20n, 100), commit(2, 30n, 100)], [end(0, 11n, 100), end(1, 21n, 100), end(2, 31n, 100)]), 1_001).durable;
  // The second sync replaces partition 1's commit and partition 2's end; the rest stays as written first.
  await a.apply(sync(2_000, [commit(1, 25n, 200)], [end(2, 40n, 200)]), 2_001).durable;
  // An older commit for partition 0 changes nothing: not written (its heard time goes with the next write).
  await a.apply(sync(3_000, [commit(0, 5n, 50)], []), 3_001).durable;
  assert.equal(a.stats().writes, 2, 'the two syncs that changed something were written, the third not');

  const text = fs.readFileSync(a.file, 'utf8');
  const parsed = JSON.parse(text) as { version: number; commits: unknown[]; ends: unknown[] };
  assert.equal(parsed.version, 1);
  assert.equal(parsed.commits.length, 3);
  assert.equal(parsed.ends.length, 3);

  const b = new RemoteOffsets(t.dir);
  const offsets = [0, 1, 2].map((p) => b.commitsFor('g1', 'orders', p).map((c) => [c.region, c.offset, c.commitTimestamp, [...c.vector]]));
  assert.deepEqual(offsets, [
    [['us-east', 10n, 100, [['us-east/t1', 9n]]]],
    [['us-east', 25n, 200, [['us-east/t1', 24n]]]],
    [['us-east', 30n, 100, [['us-east/t1', 29n]]]],
  ]);
  assert.deepEqual(
    [0, 1, 2].map((p) => b.endOf('orders', p, 'us-east')?.endOffset),
    [11n, 21n, 40n],
  );
  // The heard time written with the last write confirms every end held then.
  assert.equal(b.endOf('orders', 0, 'us-east')?.sentAt, 2_000);
  assert.deepEqual(b.groups(), [{ group: 'g1', partitions: [0, 1, 2].map((partition) => ({ topic: 'orders', partition })) }]);
});
