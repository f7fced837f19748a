/**
 * A fetch naming many partitions reads within the response's max_bytes (issue 15: a kcat
 * group's full fetch names all 10,000 partitions). 2,000 partitions of 64 KiB each, fetched
 * with max_bytes 1 MiB and max.partition.fetch.bytes 1 MiB: the read buffers held at once
 * stay near 1 MiB (they were a window per partition: gigabytes), partitions already read to
 * their end take no buffer, and fetching round after round returns every batch exactly
 * once, in order, byte-identical, each response within max_bytes (KIP-74).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fetchPartitions, type FetchPartitionRequest } from '../../src/broker/fetch-partitions.js';
import { BufferPool } from '../../src/storage/buffer-pool.js';
import { LogViews } from '../../src/storage/log-view.js';
import { defaultLogOptions } from '../../src/storage/partition-log.js';
import { LOG_OVERHEAD } from '../../src/storage/record-batch.js';
import { TopicManager } from '../../src/storage/topic-manager.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));

/** A pool that records the bytes it has handed out and not had back, at most. */
class CountingPool extends BufferPool {
  out = 0;
  peak = 0;
  acquired = 0;
  override acquire(size: number): Buffer {
    const b = super.acquire(size);
    this.acquired++;
    this.out += b.length;
    this.peak = Math.max(this.peak, this.out);
    return b;
  }
  override release(buf: Buffer): void {
    this.out -= buf.length;
    super.release(buf);
  }
}

const TOPICS = 200;
const PARTITIONS = 10;
const BATCHES = 8;
const MAX_BYTES = 1 << 20;

test('a fetch of 2,000 partitions holds read buffers near max_bytes, and rounds of fetches return every batch once, in order', { timeout: 240_000 }, async () => {
  const t = tmpDir('meridian-fetchbudget-');
  cleanups.push(t.cleanup);
  const tm = await TopicManager.open(t.dir, { ...defaultLogOptions, retentionMs: -1, flushMode: 'interval' });
  try {
    const names = Array.from({ length: TOPICS }, (_, i) => `fb-${i}`);
    await Promise.all(names.map((n) => tm.createTopic(n, PARTITIONS)));
    const written = new Map<string, Buffer[]>();
    const appends: Promise<unknown>[] = [];
    for (const n of names) {
      for (let p = 0; p < PARTITIONS; p++) {
        const list: Buffer[] = [];
        for (let b = 0; b < BATCHES; b++) {
          const batch = makeBatch(`${n}/${p}/${b}`, 1, 8 * 1024 - 100);
          list.push(Buffer.from(batch));
          appends.push(tm.partition(n, p)!.append(batch));
        }
        written.set(`${n}/${p}`, list);
      }
    }
    await Promise.all(appends);
    const views = new LogViews(tm);
    const pool = new CountingPool();
    const offsets = new Map<string, bigint>([...written.keys()].map((k) => [k, 0n]));
    const got = new Map<string, Buffer[]>([...written.keys()].map((k) => [k, []]));
    let rounds = 0;
    let emptyAcquiredCheck = -1;
    for (;;) {
      const reqs: FetchPartitionRequest[] = [];
      for (const n of names) for (let p = 0; p < PARTITIONS; p++) reqs.push({ topic: n, partition: p, fetchOffset: offsets.get(`${n}/${p}`)!, maxBytes: MAX_BYTES });
      const held: Buffer[] = [];
      const before = pool.acquired;
      const results = await fetchPartitions(views, reqs, { maxBytes: MAX_BYTES, minBytes: 0, maxWaitMs: 0, pool, keep: (b) => held.push(b) });
      let total = 0;
      for (const r of results) {
        assert.equal(r.errorCode, 0, `${r.topic}/${r.partition}: no error`);
        const recs = r.records!;
        total += recs.length;
        const key = `${r.topic}/${r.partition}`;
        for (let q = 0; q < recs.length; ) {
          const size = recs.readInt32BE(q + 8) + LOG_OVERHEAD;
          const b = Buffer.from(recs.subarray(q, q + size));
          assert.equal(b.readBigInt64BE(0), offsets.get(key), `${key}: batches in order, none skipped or repeated`);
          got.get(key)!.push(b);
          offsets.set(key, offsets.get(key)! + 1n);
          q += size;
        }
      }
      for (const b of held) pool.release(b);
      rounds++;
      if (total === 0) {
        emptyAcquiredCheck = pool.acquired - before;
        break;
      }
      assert.ok(total <= MAX_BYTES, `round ${rounds}: ${total} bytes, within max_bytes ${MAX_BYTES}`);
      assert.ok(rounds < 1000, 'fetching makes progress');
    }
    console.log(`rounds ${rounds}, read buffers held at once at most ${pool.peak} bytes`);
    // max_bytes, plus one window's slack per read in flight and power-of-two rounding.
    assert.ok(pool.peak <= 4 * MAX_BYTES, `read buffers peaked at ${pool.peak} bytes for a fetch of max_bytes ${MAX_BYTES}`);
    assert.equal(emptyAcquiredCheck, 0, 'a fetch where every partition is at its end takes no read buffer');
    for (const [key, want] of written) {
      const have = got.get(key)!;
      assert.equal(have.length, want.length, `${key}: every batch fetched`);
      for (let i = 0; i < want.length; i++) assert.ok(have[i].subarray(8).equals(want[i].subarray(8)), `${key} batch ${i}: identical bytes past the base offset`);
    }
  } finally {
    await tm.close();
  }
});
