/**
 * PartitionLog.appendAsFollower: a follower copies its leader's log verbatim. A leader log
 * is written through the leader path (epochs 1, 1, 2, 3), read back in Fetch-sized pieces
 * (some cut mid-batch, as a Fetch's size limit cuts), appended to a follower, and the two
 * logs are then byte-identical with equal epoch caches. A gap, an overlap or a corrupt batch
 * is refused with nothing appended.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { PartitionFiles } from '../../src/storage/partition-files.js';
import { PartitionLog, type LogOptions } from '../../src/storage/partition-log.js';
import { encodeBatch, LOG_OVERHEAD } from '../../src/storage/record-batch.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir('meridian-follower-');
  cleanups.push(t.cleanup);
  return t.dir;
}

const OPTS: Partial<LogOptions> = { retentionMs: -1, segmentBytes: 4096, indexIntervalBytes: 512 };

/** The whole log as bytes: its segment files concatenated in offset order. */
function logBytes(d: string): Buffer {
  return Buffer.concat(
    fs
      .readdirSync(d)
      .filter((f) => f.endsWith('.log'))
      .sort()
      .map((f) => fs.readFileSync(path.join(d, f))),
  );
}

/** A leader log with epochs 1, 1, 2, 3 (several batches each, some appended together). */
async function leaderLog(): Promise<{ log: PartitionLog; dir: string }> {
  const d = dir();
  const log = await PartitionLog.open(d, OPTS);
  let n = 0;
  for (const epoch of [1, 1, 2, 3]) {
    for (let i = 0; i < 6; i++) {
      const batches = i % 3 === 0 ? [makeBatch(`l${n++}`, 3, 90), makeBatch(`l${n++}`, 1, 400)] : [makeBatch(`l${n++}`, 1 + (i % 4), 50 + i * 40)];
      await log.appendAll(batches, { leaderEpoch: epoch });
    }
  }
  return { log, dir: d };
}

/** Reads `from`..end of `log` as Fetch answers of about `maxBytes`, each optionally with a cut-off start of the next batch. */
async function fetchAll(log: PartitionLog, from: bigint, maxBytes: number, cut: boolean): Promise<Buffer[]> {
  const answers: Buffer[] = [];
  let next = from;
  while (next < log.highWatermark) {
    const { records } = await log.read(next, maxBytes);
    let end = 0;
    let last = next;
    while (end < records.length) {
      last = records.readBigInt64BE(end) + BigInt(records.readInt32BE(end + 23)) + 1n;
      end += records.readInt32BE(end + 8) + LOG_OVERHEAD;
    }
    let answer = Buffer.from(records);
    if (cut && last < log.highWatermark) {
      const { records: following } = await log.read(last, 1);
      answer = Buffer.concat([answer, following.subarray(0, 1 + (answers.length * 37) % (following.length - 1))]);
    }
    answers.push(answer);
    next = last;
  }
  return answers;
}

test('a follower fed the leader’s Fetch answers holds a byte-identical log and the same epochs', async () => {
  const { log: leader, dir: leaderDir } = await leaderLog();
  const followerDir = dir();
  const follower = await PartitionLog.open(followerDir, OPTS);
  for (const [i, answer] of (await fetchAll(leader, 0n, 700, true)).entries()) {
    const before = follower.logEndOffset;
    const r = await follower.appendAsFollower(answer, { sync: i % 2 === 0 });
    assert.equal(r.baseOffset, before);
    assert.equal(r.lastOffset, follower.logEndOffset - 1n, 'the partial trailing batch was not appended');
  }
  await follower.flush();
  assert.equal(follower.logEndOffset, leader.logEndOffset);
  assert.deepEqual(logBytes(followerDir), logBytes(leaderDir), 'byte-identical logs: offsets and stamps kept verbatim');
  assert.equal(leader.leaderEpochs.entries().length, 3);
  assert.deepEqual(follower.leaderEpochs.entries(), leader.leaderEpochs.entries());
  assert.deepEqual(fs.readFileSync(PartitionFiles.leaderEpochCheckpoint(followerDir), 'utf8'), fs.readFileSync(PartitionFiles.leaderEpochCheckpoint(leaderDir), 'utf8'));
  assert.ok(fs.readdirSync(followerDir).filter((f) => f.endsWith('.log')).length > 3, 'the follower rolled its own segments');
  await follower.close();
  const reopened = await PartitionLog.open(followerDir, OPTS);
  assert.deepEqual(reopened.leaderEpochs.entries(), leader.leaderEpochs.entries());
  assert.equal(reopened.logEndOffset, leader.logEndOffset);
  await reopened.close();
  await leader.close();
});

test('one large answer spanning many segments, and an answer of nothing whole', async () => {
  const { log: leader, dir: leaderDir } = await leaderLog();
  const followerDir = dir();
  const follower = await PartitionLog.open(followerDir, OPTS);
  const all = logBytes(leaderDir);
  // Only a part of the first batch: nothing to append, nothing changes.
  assert.deepEqual(await follower.appendAsFollower(all.subarray(0, 40)), { baseOffset: 0n, lastOffset: -1n });
  assert.deepEqual(await follower.appendAsFollower(Buffer.alloc(0)), { baseOffset: 0n, lastOffset: -1n });
  assert.equal(follower.logEndOffset, 0n);
  assert.deepEqual(await follower.appendAsFollower(all), { baseOffset: 0n, lastOffset: leader.logEndOffset - 1n });
  assert.deepEqual(logBytes(followerDir), logBytes(leaderDir));
  for (const f of fs.readdirSync(followerDir).filter((n) => n.endsWith('.log'))) {
    assert.ok(fs.statSync(path.join(followerDir, f)).size <= OPTS.segmentBytes! + 1024, `${f} respects the segment size`);
  }
  assert.deepEqual(follower.leaderEpochs.entries(), leader.leaderEpochs.entries());
  await follower.close();
  await leader.close();
});

test('a gap, an overlap, a break between batches or a corrupt batch is refused and nothing is appended', async () => {
  const { log: leader } = await leaderLog();
  const answers = await fetchAll(leader, 0n, 700, false);
  const followerDir = dir();
  const follower = await PartitionLog.open(followerDir, OPTS);
  await follower.appendAsFollower(answers[0]);
  await follower.appendAsFollower(answers[1]);
  const end = follower.logEndOffset;
  const bytes = logBytes(followerDir);
  const entries = follower.leaderEpochs.entries();
  const unchanged = async (what: string) => {
    await follower.flush();
    assert.equal(follower.logEndOffset, end, `${what}: log end unchanged`);
    assert.deepEqual(logBytes(followerDir), bytes, `${what}: files unchanged`);
    assert.deepEqual(follower.leaderEpochs.entries(), entries, `${what}: epochs unchanged`);
  };
  const refused = (code: string, pattern: RegExp) => (err: MeridianError) => err instanceof MeridianError && err.code === code && pattern.test(err.message) && /nothing was appended/.test(err.message);

  await assert.rejects(follower.appendAsFollower(answers[3]), refused(ErrorCode.UnexpectedAppendOffset, /a gap/));
  await unchanged('gap');
  await assert.rejects(follower.appendAsFollower(answers[1]), refused(ErrorCode.UnexpectedAppendOffset, /an overlap/));
  await unchanged('overlap');
  await assert.rejects(follower.appendAsFollower(Buffer.concat([answers[2], answers[4]])), refused(ErrorCode.UnexpectedAppendOffset, /the batch before it ended/));
  await unchanged('break between batches');

  const corrupt = Buffer.concat([answers[2], answers[3]]);
  const at = answers[2].length + 70; // inside the second answer's first batch, under its CRC
  corrupt[at] ^= 0x10;
  await assert.rejects(follower.appendAsFollower(corrupt), refused(ErrorCode.CorruptBatch, /CRC-32C/));
  await unchanged('corrupt batch');
  const badLength = Buffer.from(answers[2]);
  badLength.writeInt32BE(10, 8);
  await assert.rejects(follower.appendAsFollower(badLength), refused(ErrorCode.CorruptBatch, /less than a batch header/));
  await unchanged('bad length');

  // After all that, the right answer still lands.
  await follower.appendAsFollower(Buffer.concat([answers[2], answers[3]]));
  assert.equal(follower.logEndOffset, endOf(answers[3]));
  await follower.close();
  await leader.close();
});

/** One past the last offset of a Fetch answer. */
function endOf(answer: Buffer): bigint {
  let last = -1n;
  for (let p = 0; p < answer.length; p += answer.readInt32BE(p + 8) + LOG_OVERHEAD) last = answer.readBigInt64BE(p) + BigInt(answer.readInt32BE(p + 23));
  return last + 1n;
}

test('stamps below the latest epoch (a producer’s, written in single-broker mode) are not learned; a follower turned leader continues the epochs', async () => {
  const leaderDir = dir();
  const leader = await PartitionLog.open(leaderDir, OPTS);
  await leader.append(makeBatch('a', 2), { leaderEpoch: 2 });
  // Appended without an epoch (single-broker mode): keeps the producer's stamp, 1.
  await leader.append(encodeBatch({ records: [{ value: Buffer.from('b') }], partitionLeaderEpoch: 1 }));
  await leader.append(makeBatch('c', 2), { leaderEpoch: 4 });
  const follower = await PartitionLog.open(dir(), OPTS);
  await follower.appendAsFollower(logBytes(leaderDir));
  assert.deepEqual(follower.leaderEpochs.entries(), [
    { epoch: 2, startOffset: 0n },
    { epoch: 4, startOffset: 3n },
  ]);
  assert.deepEqual(follower.leaderEpochs.entries(), leader.leaderEpochs.entries());
  // Elected leader of epoch 5: it stamps 5 from its log end; a stale epoch 3 is fenced.
  await follower.append(makeBatch('d', 1), { leaderEpoch: 5 });
  await assert.rejects(follower.append(makeBatch('e', 1), { leaderEpoch: 3 }), (err: MeridianError) => err.code === ErrorCode.FencedLeaderEpoch);
  assert.deepEqual(follower.leaderEpochs.latest(), { epoch: 5, startOffset: 5n });
  await follower.close();
  await leader.close();
});

test('a follower refuses appends while truncating and appends again after it', async () => {
  const { log: leader, dir: leaderDir } = await leaderLog();
  const all = logBytes(leaderDir);
  const follower = await PartitionLog.open(dir(), OPTS);
  await follower.appendAsFollower(all);
  const entries = leader.leaderEpochs.entries();
  // Diverged: cut back to the start of epoch 3 and copy it again.
  const cut = entries[2].startOffset;
  const truncation = follower.truncateTo(cut);
  await assert.rejects(follower.appendAsFollower(all), (err: MeridianError) => err.code === ErrorCode.LogClosed && err.retriable);
  await truncation;
  assert.deepEqual(follower.leaderEpochs.entries(), entries.slice(0, 2));
  for (const answer of await fetchAll(leader, cut, 900, true)) await follower.appendAsFollower(answer);
  assert.deepEqual(follower.leaderEpochs.entries(), entries);
  assert.equal(follower.logEndOffset, leader.logEndOffset);
  await follower.close();
  await leader.close();
});
