/**
 * The shared journal end to end, through the TopicManager (fsync mode): what was
 * acknowledged survives a crash that loses every byte the segments had not fdatasync'd,
 * because the start-up replay writes the journal back; a truncation and a topic deleted and
 * created again are never undone by it.
 *
 * A crash here is a copy of the data directory taken while the broker runs (nothing closed,
 * nothing flushed), with its segment files then cut back to what an fdatasync of theirs had
 * covered: what a power loss leaves. The running TopicManager, which still has every byte in
 * the page cache, is the reference every read of the copy is compared with.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { defaultLogOptions, type PartitionLog } from '../../src/storage/partition-log.js';
import { realIo } from '../../src/storage/fs-util.js';
import { TopicManager } from '../../src/storage/topic-manager.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

// journalMinLogs 1: every small round is journaled, also those of a single partition.
const opts = { ...defaultLogOptions, flushMode: 'fsync' as const, journal: true, journalMinLogs: 1, retentionMs: -1 };

/** Every batch of a log from its start to its end, as stored. */
async function readAll(log: PartitionLog): Promise<Buffer> {
  const parts: Buffer[] = [];
  let offset = log.logStartOffset;
  while (offset < log.highWatermark) {
    const r = await log.read(offset, 4 * 1024 * 1024);
    assert.ok(r.records.length > 0, `a read at ${offset} below the end returned nothing`);
    parts.push(Buffer.from(r.records));
    let p = 0;
    while (p < r.records.length) {
      const count = r.records.readInt32BE(p + 57);
      offset = r.records.readBigInt64BE(p) + BigInt(r.records.readInt32BE(p + 23)) + 1n;
      p += r.records.readInt32BE(p + 8) + 12;
      assert.ok(count > 0);
    }
  }
  return Buffer.concat(parts);
}

/** The active segment file of a partition directory. */
function activeSegment(partitionDir: string): string {
  const logs = fs.readdirSync(partitionDir).filter((n) => n.endsWith('.log')).sort();
  return path.join(partitionDir, logs.at(-1)!);
}

/** A crash: the data directory as it is now, in `to` (the broker keeps running on `from`). */
function crashCopy(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true });
  fs.rmSync(path.join(to, 'data-dir.lock'), { force: true });
}

test('acknowledged appends of 40 partitions survive losing every byte their segments had not fdatasync\'d: the journal writes them back at start-up', async () => {
  const d = dir();
  const tm = await TopicManager.open(d, opts);
  await tm.createTopic('j', 40);
  // Round 0: one large batch per partition, over the journal's round limit: fdatasync'd in its segment.
  await Promise.all(Array.from({ length: 40 }, (_, p) => tm.partition('j', p)!.append(makeBatch(`big-${p}`, 1, 300 * 1024))));
  const synced = Array.from({ length: 40 }, (_, p) => fs.statSync(activeSegment(path.join(d, 'logs', `j-${p}`))).size);
  // Rounds 1-6: small batches, made durable only through the journal.
  for (let round = 1; round <= 6; round++) {
    await Promise.all(Array.from({ length: 40 }, (_, p) => tm.partition('j', p)!.append(makeBatch(`r${round}-p${p}`, 1 + ((p + round) % 5), 200 + ((p * 37 + round * 101) % 3000)))));
  }
  assert.ok(tm.resourceStats().journalRecords >= 240, `the small rounds went through the journal (${tm.resourceStats().journalRecords} records)`);
  const copy = path.join(dir(), 'data');
  crashCopy(d, copy);
  // The power loss: each segment keeps only what its own fdatasync covered.
  for (let p = 0; p < 40; p++) {
    const file = activeSegment(path.join(copy, 'logs', `j-${p}`));
    assert.ok(fs.statSync(file).size > synced[p]!);
    fs.truncateSync(file, synced[p]!);
  }
  const restarted = await TopicManager.open(copy, opts);
  try {
    assert.equal(restarted.journalReplay?.applied, 240, 'every journaled round was written back');
    for (let p = 0; p < 40; p++) {
      const before = tm.partition('j', p)!;
      const after = restarted.partition('j', p)!;
      assert.equal(after.highWatermark, before.highWatermark, `j-${p}: every acknowledged offset is there`);
      assert.ok((await readAll(after)).equals(await readAll(before)), `j-${p}: byte-identical to what was acknowledged`);
    }
    // And the log goes on from there.
    await restarted.partition('j', 0)!.append(makeBatch('after', 2, 100));
  } finally {
    await restarted.close();
    await tm.close();
  }
});

test('a truncation is never undone by a replay: the cut tail stays cut, what was written after it comes back', async () => {
  const d = dir();
  const tm = await TopicManager.open(d, opts);
  await tm.createTopic('t', 1);
  const log = tm.partition('t', 0)!;
  for (let i = 0; i < 10; i++) await log.append(makeBatch(`before-${i}`, 1, 500));
  await tm.truncatePartition('t', 0, 4n);
  const cutSize = fs.statSync(activeSegment(path.join(d, 'logs', 't-0'))).size;
  for (let i = 0; i < 3; i++) await log.append(makeBatch(`after-${i}`, 1, 800));
  const copy = path.join(dir(), 'data');
  crashCopy(d, copy);
  // The truncation fdatasync'd the cut; the three appends after it reached only the journal.
  fs.truncateSync(activeSegment(path.join(copy, 'logs', 't-0')), cutSize);
  const restarted = await TopicManager.open(copy, opts);
  try {
    assert.equal(restarted.journalReplay?.voided, 10, 'the records before the truncation are void');
    assert.equal(restarted.journalReplay?.applied, 3);
    const after = restarted.partition('t', 0)!;
    assert.equal(after.highWatermark, 7n);
    assert.ok((await readAll(after)).equals(await readAll(log)), 'offsets 0-3 as before, then the three appends; nothing of the cut tail');
  } finally {
    await restarted.close();
    await tm.close();
  }
});

test('a topic deleted and created again under the same name gets none of the old topic\'s journaled records back', async () => {
  const d = dir();
  const tm = await TopicManager.open(d, opts);
  await tm.createTopic('x', 1);
  for (let i = 0; i < 5; i++) await tm.partition('x', 0)!.append(makeBatch(`old-${i}`, 1, 2000));
  await tm.deleteTopic('x');
  await tm.createTopic('x', 1);
  await tm.partition('x', 0)!.append(makeBatch('new', 1, 100));
  const copy = path.join(dir(), 'data');
  crashCopy(d, copy);
  fs.truncateSync(activeSegment(path.join(copy, 'logs', 'x-0')), 0);
  const restarted = await TopicManager.open(copy, opts);
  try {
    assert.equal(restarted.journalReplay?.voided, 5);
    const after = restarted.partition('x', 0)!;
    assert.equal(after.highWatermark, 1n, 'one record: the new topic\'s');
    assert.ok((await readAll(after)).equals(await readAll(tm.partition('x', 0)!)));
  } finally {
    await restarted.close();
    await tm.close();
  }
});

test('a clean close leaves nothing to write back, and with the journal turned off a journal left behind is still replayed', async () => {
  const d = dir();
  let tm = await TopicManager.open(d, opts);
  await tm.createTopic('c', 2);
  for (let i = 0; i < 4; i++) await tm.partition('c', i % 2)!.append(makeBatch(`c-${i}`, 1, 300));
  await tm.close();
  tm = await TopicManager.open(d, opts);
  assert.equal(tm.journalReplay?.applied, 0, 'every record was voided by its log\'s close');
  assert.equal(tm.journalReplay?.voided, 4);
  await tm.partition('c', 0)!.append(makeBatch('left', 1, 300));
  const copy = path.join(dir(), 'data');
  crashCopy(d, copy);
  const seg = activeSegment(path.join(copy, 'logs', 'c-0'));
  fs.truncateSync(seg, fs.statSync(seg).size - 100);
  // A spare generation file, as a journal that reuses its files leaves: nothing will reuse it now.
  fs.writeFileSync(path.join(copy, 'journal', '00000000000000000099.spare'), Buffer.alloc(4096, 1));
  const off = await TopicManager.open(copy, { ...opts, journal: false });
  try {
    assert.equal(off.journalReplay?.applied, 1);
    assert.equal(off.partition('c', 0)!.highWatermark, 3n);
    assert.equal(fs.existsSync(path.join(copy, 'journal')) ? fs.readdirSync(path.join(copy, 'journal')).length : 0, 0, 'no journal, and no spare file, is kept when it is off');
  } finally {
    await off.close();
    await tm.close();
  }
});

test('a busy log journals at most 1 MiB between fdatasyncs of its own segment, so a seal never has tens of MiB to flush; a crash still loses nothing', async () => {
  const d = dir();
  // What each segment file's own fdatasyncs covered (its size at the call).
  const synced = new Map<string, number>();
  const io = {
    ...realIo,
    fdatasync: async (fd: number) => {
      await realIo.fdatasync(fd);
      const file = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (file.endsWith('.log')) synced.set(file, Math.max(synced.get(file) ?? 0, fs.fstatSync(fd).size));
    },
  };
  const tm = await TopicManager.open(d, { ...opts, io });
  await tm.createTopic('busy', 1);
  const log = tm.partition('busy', 0)!;
  // 4 MiB in 40 KB rounds, one at a time: each small enough for the journal.
  for (let i = 0; i < 100; i++) await log.append(makeBatch(`busy-${i}`, 4, 10 * 1024));
  const file = activeSegment(path.join(d, 'logs', 'busy-0'));
  const size = fs.statSync(file).size;
  const covered = synced.get(file) ?? 0;
  assert.ok(size - covered <= 1024 * 1024, `${size - covered} bytes of the segment not covered by its own fdatasync (at most 1 MiB)`);
  const records = tm.resourceStats().journalRecords;
  assert.ok(records >= 80 && records < 100, `most rounds went through the journal, one in ~25 to the segment's own fdatasync (${records} of 100 journaled)`);
  const copy = path.join(dir(), 'data');
  crashCopy(d, copy);
  fs.truncateSync(activeSegment(path.join(copy, 'logs', 'busy-0')), covered);
  const restarted = await TopicManager.open(copy, opts);
  try {
    assert.equal(restarted.partition('busy', 0)!.highWatermark, log.highWatermark);
    assert.ok((await readAll(restarted.partition('busy', 0)!)).equals(await readAll(log)), 'byte-identical to what was acknowledged');
  } finally {
    await restarted.close();
    await tm.close();
  }
});

test('by default a partition writing alone keeps its own fdatasync; partitions writing together go through the journal', async () => {
  const d = dir();
  const tm = await TopicManager.open(d, { ...opts, journalMinLogs: undefined });
  try {
    await tm.createTopic('alone', 1);
    await tm.createTopic('many', 8);
    const solo = tm.partition('alone', 0)!;
    for (let i = 0; i < 20; i++) await solo.append(makeBatch(`solo-${i}`, 1, 500));
    assert.equal(tm.resourceStats().journalRecords, 0, 'nothing journaled for one partition');
    assert.ok(solo.stats().fsyncs >= 20, `each append fdatasync'd its own segment (${solo.stats().fsyncs})`);
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 8 }, (_, p) => tm.partition('many', p)!.append(makeBatch(`m${round}-${p}`, 1, 500))));
    }
    assert.ok(tm.resourceStats().journalRecords >= 8, `eight partitions at once went through the journal (${tm.resourceStats().journalRecords} records)`);
  } finally {
    await tm.close();
  }
});
