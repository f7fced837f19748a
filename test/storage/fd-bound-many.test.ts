/**
 * The descriptor bound holds under load at many partitions (issue 15): 2,000 partitions with
 * `log.maxOpenFiles` 256, appended to and read from all at once, round after round; the
 * segment files this process holds open (counted in /proc/self/fd) stay near the bound, not
 * one per partition busy at that moment. Every append is read back byte-identical.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';
import { defaultLogOptions } from '../../src/storage/partition-log.js';
import { TopicManager } from '../../src/storage/topic-manager.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));

/** Descriptors of this process open on segment files under `root` (Linux /proc). */
function segmentFdsUnder(root: string): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(root) && target.endsWith('.log')) n++;
    } catch {
      // closed while listing
    }
  }
  return n;
}

const LIMIT = 256;
const TOPICS = 200;
const PARTITIONS = 10;
const ROUNDS = 4;
/** What the bound may be passed by at a moment: the reads and writes the I/O pool runs at once, and then some. */
const SLACK = 64;

test('2,000 partitions appended to and read from at once keep open segment files near log.maxOpenFiles 256', { timeout: 240_000 }, async () => {
  const t = tmpDir('meridian-fdbound-');
  cleanups.push(t.cleanup);
  const tm = await TopicManager.open(t.dir, { ...defaultLogOptions, segmentBytes: 4096, retentionMs: -1, maxOpenFiles: LIMIT });
  try {
    const names = Array.from({ length: TOPICS }, (_, i) => `fd-${i}`);
    await Promise.all(names.map((n) => tm.createTopic(n, PARTITIONS)));
    let peak = 0;
    let peakCache = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, segmentFdsUnder(t.dir));
      peakCache = Math.max(peakCache, tm.openFiles());
    }, 5);
    const written = new Map<string, Buffer[]>();
    try {
      for (let r = 0; r < ROUNDS; r++) {
        const appends: Promise<unknown>[] = [];
        for (const n of names) {
          for (let p = 0; p < PARTITIONS; p++) {
            const batch = makeBatch(`${n}/${p}/${r}`, 1, 700);
            const key = `${n}/${p}`;
            if (!written.has(key)) written.set(key, []);
            written.get(key)!.push(Buffer.from(batch));
            appends.push(tm.partition(n, p)!.append(batch));
          }
        }
        const reads: Promise<unknown>[] = [];
        for (const n of names) for (let p = 0; p < PARTITIONS; p++) reads.push(tm.partition(n, p)!.read(0n, 1 << 20).catch(() => undefined));
        await Promise.all([...appends, ...reads]);
        peak = Math.max(peak, segmentFdsUnder(t.dir));
      }
    } finally {
      clearInterval(sampler);
    }
    console.log(`peak segment descriptors ${peak} (cache said ${peakCache}), limit ${LIMIT}`);
    assert.ok(peak <= LIMIT + SLACK, `segment descriptors peaked at ${peak}, over log.maxOpenFiles ${LIMIT} + ${SLACK}`);
    // Every append reads back byte-identical, in order.
    for (const n of names) {
      for (let p = 0; p < PARTITIONS; p++) {
        const log = tm.partition(n, p)!;
        const got: Buffer[] = [];
        let next = 0n;
        while (next < log.highWatermark) {
          const { records } = await log.read(next, 1 << 20);
          for (let q = 0; q < records.length; ) {
            const size = records.readInt32BE(q + 8) + 12;
            const b = Buffer.from(records.subarray(q, q + size));
            got.push(b);
            next = b.readBigInt64BE(0) + BigInt(b.readInt32BE(23)) + 1n;
            q += size;
          }
        }
        const want = written.get(`${n}/${p}`)!;
        assert.equal(got.length, want.length, `${n}/${p}: every append read back`);
        for (let i = 0; i < want.length; i++) assert.ok(got[i].subarray(8).equals(want[i].subarray(8)), `${n}/${p} batch ${i}: identical bytes past the base offset`);
      }
    }
  } finally {
    await tm.close();
  }
});
