/**
 * The remote-offsets files (src/dr/remote-offsets.ts: a snapshot and the journal it names)
 * after a restart hold exactly what the last acknowledged syncs said: commits (with their
 * vectors), partition ends and the heard times. Each entry's JSON is made once and reused by
 * later writes, so the checks here are that an entry a later sync replaced is written anew
 * (never its first version) and that entries no sync touched since are still written; then
 * that a write costs what changed (a journal line each), that the journal is compacted into
 * a new snapshot, and that a crash's leftovers (a torn last line, a journal no snapshot
 * names) lose nothing acknowledged and are cleaned up.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import type { OffsetSyncRequest } from '../../src/dr/dr-api.js';
import { JOURNAL_MIN_BYTES, RemoteOffsets } from '../../src/dr/remote-offsets.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const t = tmpDir('meridian-remote-offsets-');
after(t.cleanup);
/** A directory of its own for each test. */
function fresh(name: string): string {
  const dir = path.join(t.dir, name);
  fs.mkdirSync(dir);
  return dir;
}
const journals = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.journal')).sort();

function sync(sentAt: number, commits: OffsetSyncRequest['commits'], ends: OffsetSyncRequest['ends']): OffsetSyncRequest {
  return { targetRegion: 'eu-west', senderRegion: 'us-east', sentAt, commits, ends };
}

const commit = (partition: number, offset: bigint, commitTimestamp: number) => ({ group: 'g1', topic: 'orders', partition, offset, commitTimestamp, vector: [['us-east/t1', offset - 1n]] as Array<[string, bigint]> });
const end = (partition: number, endOffset: bigint, lastTimestamp: number) => ({ topic: 'orders', topicId: 't1', partition, endOffset, lastTimestamp });

test('a restart reads back the newest commit, end and heard time of each partition, whichever sync wrote them', async () => {
  const dir = fresh('restart');
  const a = new RemoteOffsets(dir);
  await a.apply(sync(1_000, [commit(0, 10n, 100), commit(1, 20n, 100), commit(2, 30n, 100)], [end(0, 11n, 100), end(1, 21n, 100), end(2, 31n, 100)]), 1_001).durable;
  // The second sync replaces partition 1's commit and partition 2's end; the rest stays as written first.
  await a.apply(sync(2_000, [commit(1, 25n, 200)], [end(2, 40n, 200)]), 2_001).durable;
  // An older commit for partition 0 changes nothing: not written (its heard time goes with the next write).
  await a.apply(sync(3_000, [commit(0, 5n, 50)], []), 3_001).durable;
  assert.equal(a.stats().writes, 2, 'the two syncs that changed something were written, the third not');
  assert.equal(a.stats().snapshots, 1, 'the first write is a snapshot, the second a journal append');

  const text = fs.readFileSync(a.file, 'utf8');
  const parsed = JSON.parse(text) as { version: number; commits: unknown[]; ends: unknown[]; journal: number };
  assert.equal(parsed.version, 1);
  assert.equal(parsed.commits.length, 3);
  assert.equal(parsed.ends.length, 3);
  assert.equal(path.basename(a.journalFile!), `remote-offsets.${parsed.journal}.journal`);
  const lines = fs.readFileSync(a.journalFile!, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, { partition?: number }>);
  assert.deepEqual(lines.map((l) => Object.keys(l)[0]), ['c', 'e', 'heard'], 'the second sync appended its commit, its end and the heard times');
  assert.deepEqual([lines[0].c.partition, lines[1].e.partition], [1, 2]);

  const b = new RemoteOffsets(dir);
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

test('a sync that changes a few of 10,000 partition ends appends their lines only; the journal is compacted into a new snapshot once it outgrows it', async () => {
  const dir = fresh('compact');
  const a = new RemoteOffsets(dir);
  const all = Array.from({ length: 10_000 }, (_, p) => end(p, 1n, 100));
  await a.apply(sync(1_000, [], all), 1_001).durable;
  const snapshot = fs.readFileSync(a.file);
  const firstJournal = a.journalFile!;
  assert.equal(fs.statSync(firstJournal).size, 0);

  // Ten ends change: ten lines (and the heard times), the snapshot untouched.
  await a.apply(sync(2_000, [], Array.from({ length: 10 }, (_, i) => end(i * 1000, 2n, 200))), 2_001).durable;
  const appended = fs.statSync(firstJournal).size;
  assert.ok(appended > 0 && appended < 2_000, `ten ends appended ${appended} bytes (the snapshot is ${snapshot.length})`);
  assert.ok(fs.readFileSync(a.file).equals(snapshot), 'the snapshot is not rewritten for a change');
  assert.equal(fs.readFileSync(firstJournal, 'utf8').trimEnd().split('\n').length, 11);

  // Every end changes, sync after sync, until the journal has outgrown the snapshot (and the floor).
  let round = 0;
  while (a.stats().snapshots === 1) {
    round++;
    await a.apply(sync(2_000 + round * 1_000, [], all.map((e) => ({ ...e, endOffset: BigInt(10 + round) }))), 2_001 + round * 1_000).durable;
    assert.ok(round < 100, 'the journal was never compacted');
  }
  const threshold = Math.max(JOURNAL_MIN_BYTES, snapshot.length);
  assert.ok(a.stats().journalBytes >= threshold, `compacted after ${a.stats().journalBytes} journal bytes, not before ${threshold}`);
  assert.notEqual(a.journalFile, firstJournal);
  assert.deepEqual(journals(dir), [path.basename(a.journalFile!)], 'the old journal is deleted');
  // One more change after the compaction goes to the new journal.
  await a.apply(sync(500_000, [], [end(7, 999n, 300)]), 500_001).durable;
  await a.flush();

  const b = new RemoteOffsets(dir);
  for (const p of [0, 1, 6_543, 9_999]) assert.equal(b.endOf('orders', p, 'us-east')?.endOffset, BigInt(10 + round), `partition ${p}`);
  assert.equal(b.endOf('orders', 7, 'us-east')?.endOffset, 999n);
  assert.equal(b.endOf('orders', 7, 'us-east')?.sentAt, 500_000);
});

test("a crash's leftovers: a torn last journal line is not loaded, a journal no snapshot names is ignored, and the next write starts a new journal", async () => {
  const dir = fresh('crash');
  const a = new RemoteOffsets(dir);
  await a.apply(sync(1_000, [commit(0, 10n, 100)], [end(0, 11n, 100)]), 1_001).durable;
  await a.apply(sync(2_000, [commit(0, 20n, 200)], [end(0, 21n, 200)]), 2_001).durable;
  await a.flush();
  const journal = a.journalFile!;
  // A crash during the next append: half a line, never acknowledged.
  const torn = JSON.stringify({ e: { topic: 'orders', partition: 0, region: 'us-east', topicId: 't1', endOffset: '99', lastTimestamp: 300, sentAt: 3_000, receivedAt: 3_001 } });
  fs.appendFileSync(journal, torn.slice(0, 40));
  // A crash between a snapshot's rename and the delete of the journal before it leaves one no snapshot names.
  const stale = path.join(dir, 'remote-offsets.0.journal');
  fs.writeFileSync(stale, `${JSON.stringify({ e: { topic: 'orders', partition: 0, region: 'us-east', topicId: 't1', endOffset: '5', lastTimestamp: 1, sentAt: 9_999, receivedAt: 9_999 } })}\n`);

  const b = new RemoteOffsets(dir);
  assert.deepEqual(b.commitsFor('g1', 'orders', 0).map((c) => c.offset), [20n], 'the last acknowledged commit');
  assert.equal(b.endOf('orders', 0, 'us-east')?.endOffset, 21n, 'the torn line and the stale journal are not loaded');
  // The next write is a snapshot with a new journal (nothing is appended after a torn line); both leftovers go.
  await b.apply(sync(4_000, [], [end(1, 41n, 400)]), 4_001).durable;
  assert.equal(b.stats().snapshots, 1);
  assert.notEqual(b.journalFile, journal);
  assert.deepEqual(journals(dir), [path.basename(b.journalFile!)]);
  await b.apply(sync(5_000, [commit(0, 30n, 500)], []), 5_001).durable;
  await b.flush();

  const c = new RemoteOffsets(dir);
  assert.deepEqual(c.commitsFor('g1', 'orders', 0).map((x) => x.offset), [30n]);
  assert.deepEqual([0, 1].map((p) => c.endOf('orders', p, 'us-east')?.endOffset), [21n, 41n]);
});

test('a topic dropped is dropped after a restart too (a journal line), and other topics stay', async () => {
  const dir = fresh('drop');
  const a = new RemoteOffsets(dir);
  const other = { topic: 'other', topicId: 't2', partition: 0, endOffset: 7n, lastTimestamp: 100 };
  await a.apply(sync(1_000, [commit(0, 10n, 100)], [end(0, 11n, 100), other]), 1_001).durable;
  await a.apply(sync(2_000, [], [end(0, 12n, 200)]), 2_001).durable;
  a.dropTopic('orders');
  await a.flush();
  assert.equal(a.stats().snapshots, 1, 'the drop went to the journal');

  const b = new RemoteOffsets(dir);
  assert.equal(b.endOf('orders', 0, 'us-east'), undefined);
  assert.deepEqual(b.commitsFor('g1', 'orders', 0), []);
  assert.equal(b.endOf('other', 0, 'us-east')?.endOffset, 7n);
  assert.deepEqual(b.topics(), ['other']);
});
