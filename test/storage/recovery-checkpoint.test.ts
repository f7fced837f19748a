/**
 * Recovery proportional to the unflushed tail (issue 15): with the data directory's recovery
 * checkpoint, a restart trusts every sealed segment from its index header (no scan, no
 * open) and scans each active segment only past the checkpointed position. Checked on 2,000
 * partitions of several segments with a real child process killed by SIGKILL mid-produce:
 * nothing acknowledged is lost, and the bytes scanned are at most what the child wrote.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PartitionLog, defaultLogOptions } from '../../src/storage/partition-log.js';
import { LOG_OVERHEAD, validateBatch } from '../../src/storage/record-batch.js';
import { RECOVERY_CHECKPOINT_FILE } from '../../src/storage/recovery-checkpoint.js';
import { TopicManager } from '../../src/storage/topic-manager.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const CHILD = fileURLToPath(new URL('./fixtures/checkpoint-appender.ts', import.meta.url));
const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir('meridian-ckpt-');
  cleanups.push(t.cleanup);
  return t.dir;
}

const TOPICS = 200;
const PARTITIONS = 10; // 2,000 partitions
const SEGMENT_BYTES = 1024;
const SETUP_BATCHES = 10; // ~4 segments per partition
/**
 * The child appends with segments this large, so it never rolls: every partition's active
 * segment is the one the checkpoint names, which makes the counts below exact (a kill
 * between a roll and its seal is crash.test.ts's subject).
 */
const CHILD_SEGMENT_BYTES = 1 << 20;

/** Every batch of a log by base offset, checked: contiguous, valid CRCs. */
async function readAll(log: PartitionLog): Promise<Map<bigint, Buffer>> {
  const out = new Map<bigint, Buffer>();
  let next = log.logStartOffset;
  while (next < log.highWatermark) {
    const { records } = await log.read(next, 1 << 20);
    assert.ok(records.length > 0, `nothing read at ${next} of ${log.dir}`);
    for (let p = 0; p < records.length; ) {
      const size = records.readInt32BE(p + 8) + LOG_OVERHEAD;
      const b = records.subarray(p, p + size);
      const h = validateBatch(b);
      assert.equal(h.baseOffset, next, `offsets contiguous in ${log.dir}`);
      out.set(h.baseOffset, Buffer.from(b));
      next = h.baseOffset + BigInt(h.lastOffsetDelta) + 1n;
      p += size;
    }
  }
  return out;
}

interface Acked {
  topic: number;
  partition: number;
  offset: bigint;
  tag: string;
  records: number;
}

/** Runs the appender until it has acknowledged `acks` appends, then kill -9s it. */
function produceAndKill(dataDir: string, acks: number): Promise<{ acked: Acked[]; writtenBytes: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dataDir, String(TOPICS), String(PARTITIONS), String(CHILD_SEGMENT_BYTES)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked: Acked[] = [];
    let writtenBytes = 0;
    let buf = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const [kind, a, b, c, tag, records] = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        if (kind === 'w') writtenBytes += Number(a);
        else if (kind === 'a') {
          acked.push({ topic: Number(a), partition: Number(b), offset: BigInt(c), tag, records: Number(records) });
          if (acked.length === acks) child.kill('SIGKILL');
        }
      }
    });
    child.on('close', (code, signal) => { // after its stdout is read to the end ('exit' can come first)
      if (signal === 'SIGKILL') resolve({ acked, writtenBytes });
      else reject(new Error(`appender exited ${code}: ${stderr}`));
    });
  });
}

test('kill -9 mid-produce on 2,000 partitions: nothing acknowledged lost, no sealed segment scanned, only the tail past the checkpoint', { timeout: 600_000 }, async (ctx) => {
  const d = dir();
  const opts = { ...defaultLogOptions, segmentBytes: SEGMENT_BYTES, retentionMs: -1, flushMode: 'interval' as const, flushIntervalMs: 60_000 };
  // Setup: 2,000 partitions of several segments, closed cleanly.
  const setup = await TopicManager.open(d, opts);
  for (let t = 0; t < TOPICS; t++) await setup.createTopic(`t${t}`, PARTITIONS);
  for (let i = 0; i < SETUP_BATCHES; i++) {
    const appends: Promise<unknown>[] = [];
    for (let t = 0; t < TOPICS; t++) {
      for (let p = 0; p < PARTITIONS; p++) appends.push(setup.partition(`t${t}`, p)!.append(makeBatch(`s-${t}-${p}-${i}`, 2, 100), { sync: false }));
    }
    await Promise.all(appends);
  }
  // Seals run behind the writer; flush waits for them.
  for (let t = 0; t < TOPICS; t++) await Promise.all(setup.partitions(`t${t}`).map((log) => log.flush()));
  let sealedAtSetup = 0;
  for (let t = 0; t < TOPICS; t++) for (const log of setup.partitions(`t${t}`)) sealedAtSetup += log.segments().filter((s) => s.sealed).length;
  assert.ok(sealedAtSetup >= TOPICS * PARTITIONS * 3, `${sealedAtSetup} sealed segments: several per partition`);
  await setup.close();
  assert.ok(fs.existsSync(path.join(d, RECOVERY_CHECKPOINT_FILE)), 'a clean close writes the checkpoint');

  const { acked, writtenBytes } = await produceAndKill(d, 600);

  const started = performance.now();
  const tm = await TopicManager.open(d, { ...opts, flushMode: 'fsync' });
  const reopenMs = performance.now() - started;
  try {
    const stats = tm.recoveryStats();
    // Every sealed segment was trusted from its index header, none scanned; every active
    // segment resumed at the checkpoint; only the partitions the child wrote had a tail to
    // scan, and the bytes scanned are at most what the child wrote.
    assert.equal(stats.trustedSealed, sealedAtSetup, 'sealed segments trusted, not scanned');
    assert.equal(stats.partitionsFromCheckpoint, TOPICS * PARTITIONS);
    const touched = new Set(acked.map((a) => `${a.topic}-${a.partition}`)).size;
    assert.ok(stats.scannedSegments <= touched + 32, `${stats.scannedSegments} segments scanned; the child wrote to ${touched} partitions (plus up to 32 in flight)`);
    assert.ok(stats.scannedBytes <= writtenBytes, `scanned ${stats.scannedBytes} bytes; the child wrote at most ${writtenBytes}`);
    assert.ok(tm.openFiles() <= tm.maxOpenFiles);

    // Nothing acknowledged is lost: every acked batch is there, byte for byte.
    const byPartition = new Map<string, Acked[]>();
    for (const a of acked) {
      const k = `${a.topic}-${a.partition}`;
      byPartition.set(k, [...(byPartition.get(k) ?? []), a]);
    }
    for (const [k, list] of byPartition) {
      const [t, p] = k.split('-').map(Number);
      const stored = await readAll(tm.partition(`t${t}`, p)!);
      for (const a of list) {
        const b = stored.get(a.offset);
        assert.ok(b, `acknowledged offset ${a.offset} of t${t}/${p} is missing`);
        assert.deepEqual(b.subarray(8), makeBatch(a.tag, a.records, 100).subarray(8), `bytes of t${t}/${p} offset ${a.offset}`);
      }
    }
    // The setup's data is intact too (a sample: every tenth topic).
    for (let t = 0; t < TOPICS; t += 10) {
      for (let p = 0; p < PARTITIONS; p++) {
        const stored = await readAll(tm.partition(`t${t}`, p)!);
        for (let i = 0; i < SETUP_BATCHES; i++) assert.deepEqual(stored.get(BigInt(2 * i))!.subarray(8), makeBatch(`s-${t}-${p}-${i}`, 2, 100).subarray(8));
      }
    }
    // And the logs take appends again.
    assert.ok((await tm.partition('t0', 0)!.append(makeBatch('after', 1))).baseOffset >= BigInt(2 * SETUP_BATCHES));
    ctx.diagnostic(`reopen of ${TOPICS * PARTITIONS} partitions after kill -9: ${reopenMs.toFixed(0)} ms; ${JSON.stringify(stats)}; child wrote ${writtenBytes} bytes, acked ${acked.length}`);
  } finally {
    await tm.close();
  }
});

test('a truncation drops the partition from the checkpoint before it cuts: the rewritten bytes are scanned at the next open', async () => {
  const d = dir();
  const opts = { ...defaultLogOptions, retentionMs: -1 };
  let tm = await TopicManager.open(d, opts);
  await tm.createTopic('f', 1);
  for (let i = 0; i < 5; i++) await tm.partition('f', 0)!.append(makeBatch(`old${i}`, 2, 50));
  // A clean close: the checkpoint vouches for all ten old records.
  await tm.close();
  tm = await TopicManager.open(d, opts);
  assert.equal(tm.recoveryStats().partitionsFromCheckpoint, 1);
  const log = tm.partition('f', 0)!;
  await tm.truncatePartition('f', 0, 4n);
  const ckpt = JSON.parse(fs.readFileSync(path.join(d, RECOVERY_CHECKPOINT_FILE), 'utf8')) as { partitions: Record<string, unknown> };
  assert.equal(ckpt.partitions['f-0'], undefined, 'the truncated partition left the checkpoint before the cut');
  const fresh = [makeBatch('new0', 3, 70), makeBatch('new1', 1, 20)];
  const copies = fresh.map((b) => Buffer.from(b));
  for (const b of fresh) await log.append(b);
  // A crash now (no clean close): simulate by copying the directory as it is on disk.
  const crashed = path.join(dir(), 'copy');
  fs.cpSync(d, crashed, { recursive: true });
  await tm.close();

  tm = await TopicManager.open(crashed, opts);
  try {
    const stored = await readAll(tm.partition('f', 0)!);
    assert.equal(tm.partition('f', 0)!.highWatermark, 8n);
    assert.deepEqual(stored.get(4n)!.subarray(8), copies[0].subarray(8));
    assert.deepEqual(stored.get(7n)!.subarray(8), copies[1].subarray(8));
    assert.deepEqual(stored.get(0n)!.subarray(8), makeBatch('old0', 2, 50).subarray(8));
  } finally {
    await tm.close();
  }
});
