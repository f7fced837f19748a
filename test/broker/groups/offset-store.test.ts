/**
 * The offset store's files: the record codec, recovery of a torn or corrupt log tail,
 * compaction into a snapshot, and refusal of a damaged snapshot.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { decodeFrames, encodeRecord, RecordType, type PartitionCommit } from '../../../src/broker/groups/offset-record.js';
import { OffsetStore } from '../../../src/broker/groups/offset-store.js';
import { MeridianError } from '../../../src/errors.js';
import { cleanupAll, freshDir } from './group-helpers.js';

after(cleanupAll);

const stores: OffsetStore[] = [];
after(async () => {
  for (const s of stores) await s.close();
});

async function open(dir: string, compactThresholdBytes?: number): Promise<OffsetStore> {
  const s = await OffsetStore.open({ dir, compactThresholdBytes });
  stores.push(s);
  return s;
}

function pc(topic: string, partition: number, offset: bigint, metadata: string | null = null): PartitionCommit {
  return { topic, partition, offset, leaderEpoch: 7, commitTimestamp: 1_700_000_000_000, metadata };
}

function logFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith('.log'));
}

test('record codec: round trip, and decoding stops at the first bad frame', () => {
  const records = [
    { type: RecordType.Commit, groupId: 'g-✓', commits: [pc('a', 0, -1n, null), pc('a', 1, 2n ** 63n - 1n, ''), pc('b', 5, 0n, 'x'.repeat(300))] },
    { type: RecordType.DeleteTopic, topic: 'a' },
    { type: RecordType.DeleteGroup, groupId: 'g-✓' },
  ] as const;
  const frames = records.map((r) => encodeRecord(r));
  const all = Buffer.concat(frames);
  const decoded = decodeFrames(all);
  assert.equal(decoded.validBytes, all.length);
  assert.deepEqual(decoded.records, records);

  const torn = all.subarray(0, all.length - 3);
  assert.equal(decodeFrames(torn).validBytes, frames[0].length + frames[1].length);
  const flipped = Buffer.from(all);
  flipped[frames[0].length + 10] ^= 0xff; // inside the second body
  assert.deepEqual(decodeFrames(flipped), { records: [records[0]], validBytes: frames[0].length });
  assert.equal(decodeFrames(Buffer.concat([frames[0], Buffer.alloc(64)])).validBytes, frames[0].length, 'zeros after a crash');
});

test('a torn tail is cut on open without losing earlier commits, and the log keeps working', async () => {
  const dir = freshDir();
  const s = await open(dir);
  await s.commit('g', [pc('t', 0, 1n)]);
  await s.commit('g', [pc('t', 0, 2n), pc('t', 1, 10n)]);
  await s.commit('h', [pc('t', 0, 3n, 'meta')]);
  await s.close();

  const logPath = path.join(dir, logFiles(dir)[0]);
  const good = fs.statSync(logPath).size;
  const half = encodeRecord({ type: RecordType.Commit, groupId: 'g', commits: [pc('t', 0, 999n)] });
  fs.appendFileSync(logPath, half.subarray(0, half.length - 5)); // the crash hit mid-write

  const s2 = await open(dir);
  assert.equal(s2.stats().truncatedBytesOnOpen, half.length - 5);
  assert.equal(fs.statSync(logPath).size, good, 'cut exactly at the last whole record');
  assert.equal(s2.get('g', 't', 0)?.offset, 2n);
  assert.equal(s2.get('g', 't', 1)?.offset, 10n);
  assert.deepEqual(s2.get('h', 't', 0), { offset: 3n, leaderEpoch: 7, metadata: 'meta', commitTimestamp: 1_700_000_000_000 });
  await s2.commit('g', [pc('t', 0, 4n)]);
  await s2.close();

  const s3 = await open(dir);
  assert.equal(s3.stats().truncatedBytesOnOpen, 0);
  assert.equal(s3.get('g', 't', 0)?.offset, 4n);
  await s3.close();
});

test('a corrupt last record is dropped; the records before it stay', async () => {
  const dir = freshDir();
  const s = await open(dir);
  await s.commit('g', [pc('t', 0, 1n)]);
  await s.commit('g', [pc('t', 1, 2n)]);
  await s.commit('g', [pc('t', 0, 3n)]);
  await s.close();
  const logPath = path.join(dir, logFiles(dir)[0]);
  const bytes = fs.readFileSync(logPath);
  bytes[bytes.length - 4] ^= 0x55; // bit rot inside the last record's offset
  fs.writeFileSync(logPath, bytes);

  const s2 = await open(dir);
  assert.ok(s2.stats().truncatedBytesOnOpen > 0);
  assert.equal(s2.get('g', 't', 0)?.offset, 1n, 'the damaged commit is gone, the one before it is back');
  assert.equal(s2.get('g', 't', 1)?.offset, 2n);
  await s2.close();
});

test('compaction keeps only the latest offset per partition, and survives reopen', async () => {
  const dir = freshDir();
  const s = await open(dir, 2048);
  for (let i = 0; i < 400; i++) await s.commit(`g${i % 3}`, [pc('t', i % 4, BigInt(i), `m${i}`)]);
  const stats = s.stats();
  assert.ok(stats.compactions > 0, 'the log was compacted');
  assert.ok(stats.logBytes < 4096, `log holds only what came after the snapshot (${stats.logBytes} bytes)`);
  assert.equal(stats.partitions, 12, 'three groups x four partitions');
  assert.deepEqual(logFiles(dir).length, 1, 'old logs are deleted');
  assert.ok(fs.existsSync(path.join(dir, 'offsets.snapshot')));
  const expected = new Map<string, bigint>();
  for (let i = 0; i < 400; i++) expected.set(`g${i % 3}/${i % 4}`, BigInt(i));
  await s.compact(); // and once more with nothing after it
  assert.equal(s.stats().logBytes, 0);
  await s.deleteTopic('gone'); // no such topic: nothing written
  await s.commit('g0', [pc('doomed', 0, 1n)]);
  await s.deleteTopic('doomed');
  await s.close();

  const s2 = await open(dir, 2048);
  for (const [key, offset] of expected) {
    const [g, p] = key.split('/');
    assert.equal(s2.get(g, 't', Number(p))?.offset, offset, key);
    assert.equal(s2.get(g, 't', Number(p))?.metadata, `m${offset}`);
  }
  assert.equal(s2.stats().partitions, 12);
  assert.equal(s2.offsetsOf('g0')?.has('doomed'), false, 'a deleted topic stays deleted');
  await s2.compact();
  await s2.close();
  const s3 = await open(dir, 2048);
  assert.equal(s3.stats().partitions, 12);
  assert.equal(s3.get('g2', 't', 3)?.offset, expected.get('g2/3'));
  await s3.deleteGroup('g2');
  await s3.close();
  const s4 = await open(dir);
  assert.deepEqual(s4.groupIds().sort(), ['g0', 'g1']);
  await s4.close();
});

test('a leftover log of another generation is ignored and removed (a crash during compaction)', async () => {
  const dir = freshDir();
  const s = await open(dir);
  await s.commit('g', [pc('t', 0, 5n)]);
  await s.close();
  // Compaction creates the next log before the snapshot names it; a crash in between
  // leaves this file behind, holding nothing acknowledged.
  fs.writeFileSync(path.join(dir, 'offsets-1.log'), encodeRecord({ type: RecordType.Commit, groupId: 'g', commits: [pc('t', 0, 666n)] }));
  const s2 = await open(dir);
  assert.equal(s2.get('g', 't', 0)?.offset, 5n);
  assert.deepEqual(logFiles(dir), ['offsets-0.log']);
  await s2.close();
});

test('a damaged snapshot refuses to open rather than rewinding every group', async () => {
  const dir = freshDir();
  const s = await open(dir);
  await s.commit('g', [pc('t', 0, 5n)]);
  await s.compact();
  await s.close();
  const snap = path.join(dir, 'offsets.snapshot');
  const bytes = fs.readFileSync(snap);
  bytes[bytes.length - 1] ^= 1;
  fs.writeFileSync(snap, bytes);
  await assert.rejects(OffsetStore.open({ dir }), (err: unknown) => err instanceof MeridianError && err.code === 'CORRUPT_OFFSET_SNAPSHOT');
});

test('close drains queued commits and then refuses new ones', async () => {
  const dir = freshDir();
  const s = await open(dir);
  const pending = Array.from({ length: 20 }, (_, i) => s.commit('g', [pc('t', i, BigInt(i))]));
  const closing = s.close();
  await assert.rejects(s.commit('g', [pc('t', 0, 1n)]), (err: unknown) => err instanceof MeridianError && err.code === 'LOG_CLOSED');
  await Promise.all(pending);
  await closing;
  const s2 = await open(dir);
  assert.equal(s2.stats().partitions, 20);
  await s2.close();
});
