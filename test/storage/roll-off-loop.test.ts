/**
 * A segment roll does not block the event loop (issue 15: produce tail latency): creating
 * the next segment's file, fsyncing the directory, and sealing the previous one (fdatasync,
 * index file written, fsynced, renamed, directory fsynced) all run on the libuv threadpool.
 * Every synchronous `fs` call is counted while appends roll and seal; there must be none.
 * Offsets stay assigned synchronously in call order, and the sealed segments reopen as
 * sealed (their index files were written).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const t = tmpDir('meridian-roll-');
after(t.cleanup);

/** Replaces every `fs.*Sync` function with a counting wrapper while `fn` runs. */
async function countSyncCalls(fn: () => Promise<void>): Promise<Map<string, number>> {
  const calls = new Map<string, number>();
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  const target = fs as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of Object.keys(fs)) {
    if (!name.endsWith('Sync') || typeof target[name] !== 'function') continue;
    const real = target[name];
    originals.set(name, real);
    target[name] = function (this: unknown, ...args: unknown[]) {
      calls.set(name, (calls.get(name) ?? 0) + 1);
      return real.apply(this, args);
    };
  }
  try {
    await fn();
  } finally {
    for (const [name, real] of originals) target[name] = real;
  }
  return calls;
}

test('appends that roll segments make no synchronous fs call, from the append to the sealed index', async () => {
  const log = await PartitionLog.open(t.dir, { segmentBytes: 1024, retentionMs: -1 });
  const offsets: bigint[] = [];
  const calls = await countSyncCalls(async () => {
    const pending = Array.from({ length: 30 }, (_, i) => {
      // Offsets are assigned in the call, before any I/O.
      const before = log.logEndOffset;
      const p = log.append(makeBatch(`roll${i}`, 2, 150));
      assert.equal(log.logEndOffset, before + 2n);
      return p;
    });
    for (const r of await Promise.all(pending)) offsets.push(r.baseOffset);
    // An operator's roll: resolves once the previous segment is sealed.
    await log.roll();
    await log.append(makeBatch('after-roll', 1, 10));
  });
  assert.deepEqual(
    offsets,
    Array.from({ length: 30 }, (_, i) => BigInt(i * 2)),
    'offsets follow call order',
  );
  assert.deepEqual([...calls.entries()], [], 'synchronous fs calls during appends, rolls and seals');
  const segs = log.segments();
  assert.ok(segs.length >= 6, `${segs.length} segments`);
  assert.ok(segs.slice(0, -1).every((s) => s.sealed && fs.existsSync(s.indexPath)), 'every rolled segment sealed with its index file');
  await log.close();

  const again = await PartitionLog.open(t.dir, { segmentBytes: 1024, retentionMs: -1 });
  try {
    assert.equal(again.highWatermark, 61n);
    assert.equal(again.recoveryStats.trustedSealed, segs.length - 1, 'the sealed segments reopen from their index files');
  } finally {
    await again.close();
  }
});
