/**
 * The leader epoch cache (storage/leader-epoch-cache.ts) and how PartitionLog keeps it:
 * Kafka's endOffsetFor answers at every edge, the stamps a leader's append leaves on disk
 * (read back byte by byte, CRC-32C still valid, and consumed by kcat through a broker), the
 * checkpoint written before an epoch's first batch, what survives a restart, a kill -9, a
 * lost, stale or corrupt checkpoint, truncation, retention and DeleteRecords, and the
 * OffsetForLeaderEpoch answers built on it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { crc32c } from '@node-rs/crc32';
import { answerFromCache, singleBrokerAnswer } from '../../src/broker/kafka/offset-for-leader-epoch.js';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { kafkaCode } from '../../src/protocol/kafka/error-mapping.js';
import { realIo } from '../../src/storage/fs-util.js';
import { decodeCheckpoint, encodeCheckpoint, LeaderEpochCache, type EpochEntry } from '../../src/storage/leader-epoch-cache.js';
import { PartitionFiles } from '../../src/storage/partition-files.js';
import { PartitionLog, type LogOptions } from '../../src/storage/partition-log.js';
import { encodeBatch, LOG_OVERHEAD } from '../../src/storage/record-batch.js';
import { makeBatch } from '../helpers/batches.js';
import { startBroker } from '../helpers/broker.js';
import { kcat } from '../helpers/kcat.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir('meridian-epochs-');
  cleanups.push(t.cleanup);
  return t.dir;
}

const e = (epoch: number, startOffset: bigint): EpochEntry => ({ epoch, startOffset });
const OPTS: Partial<LogOptions> = { retentionMs: -1 };

/** Every batch of the log's segment files, in offset order, straight from disk. */
function rawBatches(logDir: string): Buffer[] {
  const out: Buffer[] = [];
  for (const f of fs.readdirSync(logDir).filter((n) => n.endsWith('.log')).sort()) {
    const buf = fs.readFileSync(path.join(logDir, f));
    for (let p = 0; p < buf.length; ) {
      const size = buf.readInt32BE(p + 8) + LOG_OVERHEAD;
      out.push(buf.subarray(p, p + size));
      p += size;
    }
  }
  return out;
}

/** The entries the stamps on disk imply: each stamp newer than the one before starts an epoch. */
function epochsFromStamps(batches: Buffer[]): EpochEntry[] {
  const out: EpochEntry[] = [];
  for (const b of batches) {
    const stamp = b.readInt32BE(12);
    if (stamp > (out[out.length - 1]?.epoch ?? -1)) out.push(e(stamp, b.readBigInt64BE(0)));
  }
  return out;
}

/** CRC-32C over bytes 21.. as a Kafka client checks it (independently of record-batch.ts). */
function crcHolds(b: Buffer): boolean {
  return crc32c(b.subarray(21)) === b.readUInt32BE(17);
}

function checkpointOf(logDir: string): EpochEntry[] | undefined {
  const file = PartitionFiles.leaderEpochCheckpoint(logDir);
  return fs.existsSync(file) ? decodeCheckpoint(fs.readFileSync(file, 'utf8')) : undefined;
}

describe('endOffsetFor (Kafka LeaderEpochFileCache semantics)', () => {
  const cache = new LeaderEpochCache('/nonexistent', [e(1, 0n), e(3, 100n), e(5, 250n)]);
  const at = (epoch: number) => cache.endOffsetFor(epoch, 400n);

  test('the latest epoch ends at the log end', () => assert.deepEqual(at(5), { epoch: 5, endOffset: 400n }));
  test('a cached epoch ends where the next one starts', () => {
    assert.deepEqual(at(3), { epoch: 3, endOffset: 250n });
    assert.deepEqual(at(1), { epoch: 1, endOffset: 100n });
  });
  test('an epoch between entries answers the largest epoch below it and that epoch’s end', () => {
    assert.deepEqual(at(2), { epoch: 1, endOffset: 100n });
    assert.deepEqual(at(4), { epoch: 3, endOffset: 250n });
  });
  test('an epoch below the first answers itself and the first start (Kafka 2.1+; the data is gone)', () => {
    assert.deepEqual(at(0), { epoch: 0, endOffset: 0n });
    const trimmed = new LeaderEpochCache('/nonexistent', [e(4, 90n), e(6, 120n)]);
    assert.deepEqual(trimmed.endOffsetFor(2, 200n), { epoch: 2, endOffset: 90n });
  });
  test('UNDEFINED_EPOCH, an epoch past the latest and an empty cache answer (-1, -1)', () => {
    assert.deepEqual(at(-1), { epoch: -1, endOffset: -1n });
    assert.deepEqual(at(6), { epoch: -1, endOffset: -1n });
    assert.deepEqual(new LeaderEpochCache('/nonexistent').endOffsetFor(0, 10n), { epoch: -1, endOffset: -1n });
  });
  test('a single entry: itself ends at the log end, below it at its start', () => {
    const one = new LeaderEpochCache('/nonexistent', [e(2, 10n)]);
    assert.deepEqual(one.endOffsetFor(2, 50n), { epoch: 2, endOffset: 50n });
    assert.deepEqual(one.endOffsetFor(1, 50n), { epoch: 1, endOffset: 10n });
    assert.deepEqual(one.endOffsetFor(3, 50n), { epoch: -1, endOffset: -1n });
  });
});

describe('cache changes', () => {
  test('assign takes only newer epochs and drops entries at or past the new start', () => {
    const c = new LeaderEpochCache('/nonexistent');
    assert.equal(c.tracked, false);
    assert.equal(c.assign(1, 0n), true);
    assert.equal(c.tracked, true);
    assert.equal(c.assign(1, 5n), false);
    assert.equal(c.assign(0, 9n), false);
    assert.equal(c.assign(2, 10n), true);
    assert.equal(c.assign(3, 10n), true, 'an epoch with no data (10) gives way');
    assert.deepEqual(c.entries(), [e(1, 0n), e(3, 10n)]);
    assert.throws(() => c.assign(-1, 20n), (err: MeridianError) => err.code === ErrorCode.InvalidBatch);
    assert.throws(() => c.assign(2 ** 31, 20n), (err: MeridianError) => err.code === ErrorCode.InvalidBatch);
  });

  test('truncateFromEnd removes the entries starting at or past the end', () => {
    const c = new LeaderEpochCache('/nonexistent', [e(1, 0n), e(3, 100n), e(5, 250n)]);
    assert.equal(c.truncateFromEnd(400n), false);
    assert.equal(c.truncateFromEnd(250n), true);
    assert.deepEqual(c.entries(), [e(1, 0n), e(3, 100n)]);
    c.truncateFromEnd(101n);
    assert.deepEqual(c.entries(), [e(1, 0n), e(3, 100n)]);
    c.truncateFromEnd(0n);
    assert.deepEqual(c.entries(), []);
  });

  test('truncateFromStart keeps the epoch that covers the new start, moved up to it', () => {
    const base = () => new LeaderEpochCache('/nonexistent', [e(1, 0n), e(3, 100n), e(5, 250n)]);
    const cases: Array<[bigint, EpochEntry[], boolean]> = [
      [0n, [e(1, 0n), e(3, 100n), e(5, 250n)], false],
      [50n, [e(1, 50n), e(3, 100n), e(5, 250n)], true],
      [100n, [e(3, 100n), e(5, 250n)], true],
      [150n, [e(3, 150n), e(5, 250n)], true],
      [300n, [e(5, 300n)], true],
    ];
    for (const [start, want, changed] of cases) {
      const c = base();
      assert.equal(c.truncateFromStart(start), changed, `start ${start}`);
      assert.deepEqual(c.entries(), want, `start ${start}`);
    }
  });

  test('the checkpoint is Kafka’s text format and a bad one is refused with the rule it breaks', () => {
    const text = encodeCheckpoint([e(1, 0n), e(4, 123456789012n)]);
    assert.equal(text, '0\n2\n1 0\n4 123456789012\n');
    assert.deepEqual(decodeCheckpoint(text), [e(1, 0n), e(4, 123456789012n)]);
    assert.throws(() => decodeCheckpoint('1\n0\n'), /version/);
    assert.throws(() => decodeCheckpoint('0\n2\n1 0\n'), /count/);
    assert.throws(() => decodeCheckpoint('0\n2\n3 0\n2 5\n'), /does not follow/);
    assert.throws(() => decodeCheckpoint('0\n1\n1 x\n'), /bad entry/);
  });

  test('persist writes atomically, shares piled-up writes, and never writes an untracked cache', async () => {
    const d = dir();
    const file = path.join(d, 'leader-epoch-checkpoint');
    const untracked = new LeaderEpochCache(file);
    await untracked.persist();
    assert.equal(fs.existsSync(file), false);
    const c = new LeaderEpochCache(file);
    c.assign(1, 0n);
    const first = c.persist();
    c.assign(2, 10n);
    const second = c.persist();
    c.assign(3, 20n);
    const third = c.persist();
    await Promise.all([first, second, third]);
    assert.equal(fs.readFileSync(file, 'utf8'), '0\n3\n1 0\n2 10\n3 20\n');
    assert.deepEqual(fs.readdirSync(d), ['leader-epoch-checkpoint'], 'no temp file left');
    assert.equal(c.dirty, false);
    const loaded = LeaderEpochCache.load(file);
    assert.equal(loaded.corrupt, undefined);
    assert.deepEqual(loaded.cache.entries(), c.entries());
  });
});

describe('a leader’s appends', () => {
  test('stamp the epoch in every batch (bytes 12..15), keep the CRC valid, and start each new epoch in the cache', async () => {
    const d = dir();
    const log = await PartitionLog.open(d, { ...OPTS, segmentBytes: 2048 });
    const plan: number[] = [1, 1, 2, 3, 3, 3];
    const bases: bigint[] = [];
    for (const [i, epoch] of plan.entries()) {
      // A producer's own stamp (here 77) is replaced by the leader's epoch.
      const batches = [encodeBatch({ records: [{ value: Buffer.alloc(300, i) }, { value: Buffer.from('x') }], partitionLeaderEpoch: 77 }), makeBatch(`b${i}`, 3, 200)];
      bases.push((await log.appendAll(batches, { leaderEpoch: epoch })).baseOffset);
    }
    assert.deepEqual(log.leaderEpochs.entries(), [e(1, 0n), e(2, bases[2]), e(3, bases[3])]);
    assert.deepEqual(log.leaderEpochs.latest(), e(3, bases[3]));
    assert.ok(fs.readdirSync(d).filter((f) => f.endsWith('.log')).length >= 3, 'spans several segments');
    const raw = rawBatches(d);
    assert.equal(raw.length, plan.length * 2);
    raw.forEach((b, i) => {
      assert.equal(b.readInt32BE(12), plan[Math.floor(i / 2)], `batch ${i} stamped with its leader's epoch`);
      assert.ok(crcHolds(b), `batch ${i} CRC-32C still valid`);
    });
    assert.deepEqual(checkpointOf(d), log.leaderEpochs.entries());
    await log.close();
  });

  test('the checkpoint holds a new epoch before the epoch’s first batch is written', async () => {
    const d = dir();
    const seen: Array<EpochEntry[] | undefined> = [];
    const io = {
      writev: (fd: number, buffers: Buffer[], position: number) => {
        seen.push(checkpointOf(d));
        return realIo.writev(fd, buffers, position);
      },
      fdatasync: realIo.fdatasync,
    };
    const log = await PartitionLog.open(d, { ...OPTS, io });
    await log.append(makeBatch('a', 2), { leaderEpoch: 4 });
    await log.append(makeBatch('b', 2), { leaderEpoch: 4 });
    await log.append(makeBatch('c', 2), { leaderEpoch: 6 });
    assert.deepEqual(seen, [[e(4, 0n)], [e(4, 0n)], [e(4, 0n), e(6, 4n)]]);
    await log.close();
  });

  test('an epoch older than the newest in the log is refused (FENCED_LEADER_EPOCH) and nothing is appended', async () => {
    const d = dir();
    const log = await PartitionLog.open(d, OPTS);
    await log.append(makeBatch('a', 1), { leaderEpoch: 3 });
    const before = fs.readFileSync(path.join(d, '00000000000000000000.log'));
    await assert.rejects(log.append(makeBatch('b', 1), { leaderEpoch: 2 }), (err: MeridianError) => err.code === ErrorCode.FencedLeaderEpoch && err.retriable && /epoch 3/.test(err.message));
    await assert.rejects(log.append(makeBatch('b', 1), { leaderEpoch: -2 }), (err: MeridianError) => err.code === ErrorCode.InvalidBatch);
    assert.equal(log.logEndOffset, 1n);
    await log.flush();
    assert.deepEqual(fs.readFileSync(path.join(d, '00000000000000000000.log')), before);
    await log.close();
  });

  test('a new epoch whose first append is refused (disk full) leaves the cache; the retry records it again', async () => {
    const d = dir();
    let full = false;
    const io = {
      writev: (fd: number, buffers: Buffer[], position: number) => {
        if (full) return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 }));
        return realIo.writev(fd, buffers, position);
      },
      fdatasync: realIo.fdatasync,
    };
    const log = await PartitionLog.open(d, { ...OPTS, io });
    await log.append(makeBatch('a', 2), { leaderEpoch: 1 });
    full = true;
    await assert.rejects(log.append(makeBatch('b', 2), { leaderEpoch: 2 }), (err: MeridianError) => err.code === ErrorCode.StorageIo && err.retriable);
    assert.deepEqual(log.leaderEpochs.entries(), [e(1, 0n)], 'the refused epoch is gone');
    assert.equal(log.logEndOffset, 2n);
    full = false;
    await log.append(makeBatch('b', 2), { leaderEpoch: 3 });
    assert.deepEqual(log.leaderEpochs.entries(), [e(1, 0n), e(3, 2n)]);
    assert.deepEqual(checkpointOf(d), [e(1, 0n), e(3, 2n)]);
    assert.deepEqual(epochsFromStamps(rawBatches(d)), [e(1, 0n), e(3, 2n)]);
    await log.close();
  });

  test('single-broker mode: stamps stay as produced, no checkpoint, no epochs, also after a reopen', async () => {
    const d = dir();
    let log = await PartitionLog.open(d, OPTS);
    await log.append(encodeBatch({ records: [{ value: Buffer.from('v') }], partitionLeaderEpoch: 7 }));
    await log.append(encodeBatch({ records: [{ value: Buffer.from('w') }], partitionLeaderEpoch: 0 }));
    assert.deepEqual(rawBatches(d).map((b) => b.readInt32BE(12)), [7, 0]);
    assert.deepEqual(log.leaderEpochs.entries(), []);
    await log.close();
    log = await PartitionLog.open(d, OPTS);
    assert.deepEqual(log.leaderEpochs.entries(), []);
    assert.equal(log.leaderEpochs.tracked, false);
    assert.equal(checkpointOf(d), undefined);
    await log.close();
  });

  test('kcat (librdkafka, CRC checks on) consumes batches a leader stamped, records intact', { timeout: 60_000 }, async () => {
    const tb = await startBroker();
    try {
      await tb.broker.topics.createTopic('stamped', 1);
      const log = tb.broker.topics.partition('stamped', 0)!;
      for (let i = 0; i < 6; i++) await log.append(makeBatch(`k${i}`, 2, 20), { leaderEpoch: 1 + Math.floor(i / 2) });
      assert.deepEqual(log.leaderEpochs.entries(), [e(1, 0n), e(2, 4n), e(3, 8n)]);
      const r = await kcat(['-b', tb.bootstrap, '-C', '-t', 'stamped', '-p', '0', '-o', 'beginning', '-e', '-q', '-X', 'check.crcs=true', '-f', '%o %k\\n']);
      assert.equal(r.code, 0, r.stderr);
      const want = Array.from({ length: 6 }, (_, i) => [`${2 * i} k${i}-0`, `${2 * i + 1} k${i}-1`]).flat();
      assert.deepEqual(r.stdout.toString().trim().split('\n'), want);
    } finally {
      await tb.stop();
      await tb.cleanup();
    }
  });
});

describe('the cache across restarts', () => {
  async function epochLog(d: string, opts: Partial<LogOptions> = OPTS): Promise<PartitionLog> {
    const log = await PartitionLog.open(d, opts);
    for (const [i, epoch] of [1, 1, 2, 2, 5, 5, 5].entries()) await log.append(makeBatch(`r${i}`, 3, 120), { leaderEpoch: epoch });
    return log;
  }

  test('a clean close and reopen keep the entries', async () => {
    const d = dir();
    const log = await epochLog(d);
    const entries = log.leaderEpochs.entries();
    await log.close();
    const again = await PartitionLog.open(d, OPTS);
    assert.deepEqual(again.leaderEpochs.entries(), entries);
    assert.deepEqual(entries, [e(1, 0n), e(2, 6n), e(5, 12n)]);
    await again.close();
  });

  test('entries past the recovered end are dropped and the file rewritten; missing ones are learned from the scanned stamps', async () => {
    const d = dir();
    await (await epochLog(d)).close();
    const file = PartitionFiles.leaderEpochCheckpoint(d);
    // What a crash can leave: an epoch recorded whose batch never reached the disk (9 at 21),
    // and a file that lacks epochs (the safety net: recovery reads the stamps).
    fs.writeFileSync(file, encodeCheckpoint([e(1, 0n), e(9, 21n)]));
    let log = await PartitionLog.open(d, OPTS);
    assert.deepEqual(log.leaderEpochs.entries(), [e(1, 0n), e(2, 6n), e(5, 12n)]);
    assert.deepEqual(checkpointOf(d), [e(1, 0n), e(2, 6n), e(5, 12n)]);
    await log.close();
    fs.writeFileSync(file, 'garbage');
    log = await PartitionLog.open(d, OPTS);
    assert.deepEqual(log.leaderEpochs.entries(), [e(1, 0n), e(2, 6n), e(5, 12n)], 'a corrupt file is rebuilt from every stamp');
    assert.deepEqual(checkpointOf(d), [e(1, 0n), e(2, 6n), e(5, 12n)]);
    await log.close();
  });

  test('kill -9 while appending across epoch changes: the reopened cache matches the stamps on disk, nothing reported is lost', { timeout: 120_000 }, async () => {
    const d = dir();
    const CHILD = fileURLToPath(new URL('./fixtures/epoch-appender.ts', import.meta.url));
    const reported = new Map<bigint, { epoch: number; tag: string; records: number }>();
    let previousEpoch = -1;
    for (let round = 0; round < 6; round++) {
      const ready = await new Promise<{ end: bigint; epoch: number }>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', CHILD, d, String(round)], { stdio: ['ignore', 'pipe', 'pipe'] });
        let buf = '';
        let stderr = '';
        let opened: { end: bigint; epoch: number } | undefined;
        let lines = 0;
        child.stderr.on('data', (c) => (stderr += c));
        child.stdout.on('data', (c: Buffer) => {
          buf += c.toString();
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const [a, b, c2, d2] = buf.slice(0, nl).split(' ');
            buf = buf.slice(nl + 1);
            if (a === 'ready') {
              opened = { end: BigInt(b), epoch: Number(c2) };
            } else {
              reported.set(BigInt(a), { epoch: Number(b), tag: c2, records: Number(d2) });
              // Kill it after a varying amount of appends, mid-flight.
              if (++lines === 40 + round * 37) child.kill('SIGKILL');
            }
          }
        });
        child.on('exit', (code, signal) => (signal === 'SIGKILL' && opened ? resolve(opened) : reject(new Error(`child exited ${code} ${signal}: ${stderr}`))));
      });
      assert.ok(ready.epoch >= previousEpoch, `round ${round}: the cache reopened at epoch ${ready.epoch}, below ${previousEpoch}`);
      const log = await PartitionLog.open(path.join(d, 'p0'), { segmentBytes: 16 * 1024, retentionMs: -1 });
      try {
        const raw = rawBatches(path.join(d, 'p0'));
        const byBase = new Map(raw.map((b) => [b.readBigInt64BE(0), b]));
        for (const [base, r] of reported) {
          const b = byBase.get(base);
          assert.ok(b !== undefined, `round ${round}: reported batch at ${base} is on disk`);
          assert.equal(b.readInt32BE(12), r.epoch, `round ${round}: batch ${base} stamped ${r.epoch}`);
          assert.ok(crcHolds(b));
          assert.equal(b.readInt32BE(57), r.records);
        }
        assert.equal(raw.reduce((n, b) => n + b.readInt32BE(57), 0), Number(log.logEndOffset), 'the files hold exactly the log');
        const stamps = epochsFromStamps(raw);
        assert.deepEqual(log.leaderEpochs.entries(), stamps, `round ${round}: cache = epochs of the stamps on disk`);
        assert.deepEqual(checkpointOf(path.join(d, 'p0')), stamps, `round ${round}: and so is the checkpoint`);
        previousEpoch = stamps[stamps.length - 1]?.epoch ?? -1;
      } finally {
        await log.close();
      }
    }
    assert.ok(previousEpoch >= 6, `epochs moved on across rounds (reached ${previousEpoch})`);
  });
});

describe('truncation, retention and DeleteRecords', () => {
  test('truncateTo removes the entries at or past the new end, durably, and a new epoch follows', async () => {
    const d = dir();
    const log = await PartitionLog.open(d, { ...OPTS, segmentBytes: 1024 });
    for (const [i, epoch] of [1, 1, 2, 2, 3, 3].entries()) await log.append(makeBatch(`t${i}`, 2, 150), { leaderEpoch: epoch });
    assert.deepEqual(log.leaderEpochs.entries(), [e(1, 0n), e(2, 4n), e(3, 8n)]);
    await log.truncateTo(8n);
    assert.deepEqual(log.leaderEpochs.entries(), [e(1, 0n), e(2, 4n)]);
    assert.deepEqual(checkpointOf(d), [e(1, 0n), e(2, 4n)]);
    await log.truncateTo(6n);
    assert.deepEqual(log.leaderEpochs.entries(), [e(1, 0n), e(2, 4n)], 'epoch 2 still holds 4..5');
    assert.deepEqual(log.leaderEpochs.endOffsetFor(2, log.logEndOffset), { epoch: 2, endOffset: 6n });
    await log.append(makeBatch('n', 2), { leaderEpoch: 4 });
    assert.deepEqual(log.leaderEpochs.entries(), [e(1, 0n), e(2, 4n), e(4, 6n)]);
    await log.close();
    const again = await PartitionLog.open(d, { ...OPTS, segmentBytes: 1024 });
    assert.deepEqual(again.leaderEpochs.entries(), [e(1, 0n), e(2, 4n), e(4, 6n)]);
    assert.deepEqual(epochsFromStamps(rawBatches(d)), [e(1, 0n), e(2, 4n), e(4, 6n)]);
    await again.close();
  });

  test('retention moves the first entry up to the log start, keeping the epoch that covers it', async () => {
    const d = dir();
    const log = await PartitionLog.open(d, { retentionMs: -1, segmentBytes: 1024, retentionBytes: 1500 });
    for (const [i, epoch] of [1, 1, 1, 2, 2, 2, 2, 2].entries()) await log.append(makeBatch(`k${i}`, 2, 250), { leaderEpoch: epoch });
    assert.deepEqual(log.leaderEpochs.entries(), [e(1, 0n), e(2, 6n)]);
    const deleted = await log.applyRetention();
    assert.ok(deleted.length > 0, 'retention deleted segments');
    const start = log.logStartOffset;
    assert.ok(start > 6n, `start ${start} passed epoch 2's start`);
    assert.deepEqual(log.leaderEpochs.entries(), [e(2, start)]);
    // Tiered storage's local deletion of an offloaded segment moves it too.
    await log.append(makeBatch('k8', 2, 250), { leaderEpoch: 3 });
    assert.equal(await log.deleteOldestSegment(start), true);
    const next = log.logStartOffset;
    assert.ok(next > start);
    assert.deepEqual(log.leaderEpochs.entries(), [e(2, next), e(3, 16n)]);
    await log.close();
    const again = await PartitionLog.open(d, { retentionMs: -1, segmentBytes: 1024 });
    assert.deepEqual(again.leaderEpochs.entries(), [e(2, next), e(3, 16n)]);
    await again.close();
  });

  test('DeleteRecords moves the first entry even inside a segment', async () => {
    const d = dir();
    const log = await PartitionLog.open(d, OPTS);
    for (const [i, epoch] of [1, 1, 3, 3].entries()) await log.append(makeBatch(`d${i}`, 2), { leaderEpoch: epoch });
    await log.deleteRecordsBefore(3n);
    assert.deepEqual(log.leaderEpochs.entries(), [e(1, 3n), e(3, 4n)]);
    await log.deleteRecordsBefore(5n);
    assert.deepEqual(log.leaderEpochs.entries(), [e(3, 5n)]);
    await log.close();
    const again = await PartitionLog.open(d, OPTS);
    assert.deepEqual(again.leaderEpochs.entries(), [e(3, 5n)]);
    await again.close();
  });
});

describe('OffsetForLeaderEpoch answers', () => {
  const log = (entries: EpochEntry[], logEndOffset: bigint) => ({ leaderEpochs: new LeaderEpochCache('/nonexistent', entries), logEndOffset });

  test('a cluster leader answers from its cache with its log end', () => {
    const l = log([e(1, 0n), e(3, 100n)], 150n);
    assert.deepEqual(answerFromCache(l, 1, -1, 3), { errorCode: 0, leaderEpoch: 1, endOffset: 100n });
    assert.deepEqual(answerFromCache(l, 2, 3, 3), { errorCode: 0, leaderEpoch: 1, endOffset: 100n });
    assert.deepEqual(answerFromCache(l, 3, 3, 3), { errorCode: 0, leaderEpoch: 3, endOffset: 150n });
    assert.deepEqual(answerFromCache(l, -1, 3, 3), { errorCode: 0, leaderEpoch: -1, endOffset: -1n });
  });

  test('its own epoch, before anything was appended in it, ends at the log end', () => {
    const l = log([e(1, 0n), e(3, 100n)], 150n);
    assert.deepEqual(answerFromCache(l, 4, 4, 4), { errorCode: 0, leaderEpoch: 4, endOffset: 150n });
    assert.deepEqual(answerFromCache(l, 3, 4, 4), { errorCode: 0, leaderEpoch: 3, endOffset: 150n });
    assert.deepEqual(answerFromCache(l, 1, 4, 4), { errorCode: 0, leaderEpoch: 1, endOffset: 100n });
    assert.deepEqual(answerFromCache(l, 5, -1, 4), { errorCode: 0, leaderEpoch: -1, endOffset: -1n });
    assert.deepEqual(answerFromCache(log([], 0n), 0, 0, 0), { errorCode: 0, leaderEpoch: 0, endOffset: 0n });
  });

  test('currentLeaderEpoch fences as Kafka does', () => {
    const l = log([e(1, 0n)], 10n);
    assert.deepEqual(answerFromCache(l, 1, 0, 1), { errorCode: kafkaCode('FENCED_LEADER_EPOCH'), leaderEpoch: -1, endOffset: -1n });
    assert.deepEqual(answerFromCache(l, 1, 2, 1), { errorCode: kafkaCode('UNKNOWN_LEADER_EPOCH'), leaderEpoch: -1, endOffset: -1n });
  });

  test('the single-broker answer is unchanged: one epoch 0 ending at the high watermark', () => {
    const l = { highWatermark: 42n };
    assert.deepEqual(singleBrokerAnswer(l, { leaderEpoch: 0, currentLeaderEpoch: -1 }), { errorCode: 0, leaderEpoch: 0, endOffset: 42n });
    assert.deepEqual(singleBrokerAnswer(l, { leaderEpoch: 7, currentLeaderEpoch: 0 }), { errorCode: 0, leaderEpoch: 0, endOffset: 42n });
    assert.deepEqual(singleBrokerAnswer(l, { leaderEpoch: -1, currentLeaderEpoch: -1 }), { errorCode: 0, leaderEpoch: -1, endOffset: -1n });
    assert.deepEqual(singleBrokerAnswer(l, { leaderEpoch: 0, currentLeaderEpoch: 1 }), { errorCode: kafkaCode('UNKNOWN_LEADER_EPOCH'), leaderEpoch: -1, endOffset: -1n });
  });
});
