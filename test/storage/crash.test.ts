/**
 * Crash test with a real process: a child appends in a loop and reports each offset once it
 * is durable; we kill -9 it at random moments, reopen the log, and check that every reported
 * offset is readable with a valid CRC and identical bytes, and that the log takes new
 * appends (the next child continues it).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DataDirLock } from '../../src/storage/data-dir-lock.js';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { readBatchHeader, validateBatch } from '../../src/storage/record-batch.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const CHILD = fileURLToPath(new URL('../fixtures/crash-appender.ts', import.meta.url));
const ROUNDS = 24;
const t = tmpDir('meridian-crash-');
after(t.cleanup);

interface Reported {
  tag: string;
  records: number;
}

function runAndKill(round: number, reported: Map<bigint, Reported>): Promise<bigint> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, t.dir, String(round)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let stderr = '';
    let readyAt = -1n;
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const [a, b, c] = line.split(' ');
        if (a === 'ready') {
          readyAt = BigInt(b);
          // Let it append for a random while, then kill it mid-flight.
          setTimeout(() => child.kill('SIGKILL'), 50 + Math.floor(Math.random() * 400));
        } else {
          reported.set(BigInt(a), { tag: b, records: Number(c) });
        }
      }
    });
    child.on('close', (code, signal) => { // after its stdout is read to the end ('exit' can come first)
      if (signal === 'SIGKILL') resolve(readyAt);
      else reject(new Error(`child exited ${code}: ${stderr}`));
    });
  });
}

test(`kill -9 during durable appends loses nothing reported (${ROUNDS} rounds)`, { timeout: 180_000 }, async () => {
  const reported = new Map<bigint, Reported>();
  let previousEnd = 0n;
  for (let round = 0; round < ROUNDS; round++) {
    const readyAt = await runAndKill(round, reported);
    // The child reopened what the last round left: at least everything reported durable.
    assert.ok(readyAt >= previousEnd, `round ${round}: log reopened at ${readyAt}, below ${previousEnd}`);

    const lock = DataDirLock.acquire(t.dir); // the killed child's lock is stale
    const log = await PartitionLog.open(path.join(t.dir, 'p0'), { segmentBytes: 64 * 1024, retentionMs: -1 });
    try {
      // The log is one contiguous run of valid batches...
      let next = log.logStartOffset;
      const seen = new Map<bigint, Buffer>();
      while (next < log.highWatermark) {
        const { records } = await log.read(next, 1 << 20);
        for (let p = 0; p < records.length; ) {
          const size = records.readInt32BE(p + 8) + 12;
          const b = records.subarray(p, p + size);
          const h = validateBatch(b);
          assert.equal(h.baseOffset, next, 'offsets are contiguous');
          seen.set(h.baseOffset, b);
          next = h.baseOffset + BigInt(h.lastOffsetDelta) + 1n;
          p += size;
        }
      }
      // ...holding every reported offset with the bytes that were sent.
      for (const [offset, r] of reported) {
        const stored = seen.get(offset);
        assert.ok(stored, `round ${round}: reported offset ${offset} (${r.tag}) is missing`);
        const sent = makeBatch(r.tag, r.records, 40 + (Number(r.tag.split('-')[1]) + 1) % 300);
        assert.equal(readBatchHeader(stored).baseOffset, offset);
        assert.deepEqual(stored.subarray(8), sent.subarray(8), `round ${round}: bytes of offset ${offset} differ`);
      }
      previousEnd = log.highWatermark;
    } finally {
      await log.close();
      lock.release();
    }
  }
  assert.ok(reported.size > ROUNDS * 10, `only ${reported.size} durable appends were reported`);
});
