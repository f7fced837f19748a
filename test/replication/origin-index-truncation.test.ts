/**
 * OriginIndex follows its log's truncations: a loaded index is cut (also while it walks), a
 * snapshot (`origin-index.json`) that outlived a truncation below its offset is never
 * trusted, however far the log has grown again, and a follower's reset to its leader's log
 * start does not carry the old records' vector over. Real PartitionLogs in temp dirs; after
 * each truncation the records at the cut offsets are replaced by records of another origin,
 * and every answer is checked against a brute-force scan of what the log now holds (the
 * model) and against an index built from scratch.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { encodeMarker } from '../../src/replication/marker.js';
import { OriginIndex, type OriginVector } from '../../src/replication/origin-index.js';
import { originKey } from '../../src/replication/replica-state.js';
import { PartitionLog, type LogOptions } from '../../src/storage/partition-log.js';
import { readBatchHeader } from '../../src/storage/record-batch.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { bfTranslate, bfVector, type Rec } from '../helpers/origin-model.js';

const SNAPSHOT = 'origin-index.json';
const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));

/** No fsync per append (the seals and the truncations still fsync). */
const FAST: Partial<LogOptions> = { flushMode: 'interval', flushIntervalMs: 60_000 };


/** A partition of region `self` and the model of the records its log holds. */
class Part {
  readonly key = originKey('self', 'tid-self');
  records: Rec[] = [];
  /** Base offsets of the batches appended (local batches and markers): where a cut may go. */
  bases: bigint[] = [];
  /** Per other origin, the next origin offset it sends. */
  #next = new Map<string, bigint>();
  #tag = 0;

  constructor(
    public log: PartitionLog,
    readonly dir: string,
  ) {}

  static async open(opts: Partial<LogOptions>): Promise<Part> {
    const t = tmpDir('meridian-origin-trunc-');
    cleanups.push(t.cleanup);
    return new Part(await PartitionLog.open(t.dir, { ...FAST, ...opts }), t.dir);
  }

  static originOf(region: string): string {
    return originKey(region, `tid-${region}`);
  }

  async local(n: number): Promise<void> {
    const r = await this.log.append(makeBatch(`self-${this.#tag++}`, n));
    this.bases.push(r.baseOffset);
    for (let o = r.baseOffset; o <= r.lastOffset; o++) this.records.push({ offset: o, origin: this.key, originOffset: o });
  }

  /** A marker and one batch of `n` records replicated from `region` (the next origin offsets of it). */
  async replicated(region: string, n: number): Promise<void> {
    const originBase = this.#next.get(region) ?? 0n;
    this.#next.set(region, originBase + BigInt(n));
    const batch = makeBatch(`${region}-${originBase}`, n);
    const marker = encodeMarker({
      originRegion: region,
      originTopicId: `tid-${region}`,
      originPartition: 0,
      senderRegion: region,
      senderTopicId: `tid-${region}`,
      hops: [region],
      batches: [{ originBaseOffset: originBase, senderBaseOffset: originBase, crc: readBatchHeader(batch).crc }],
      senderEndOffset: originBase + BigInt(n) - 1n,
    });
    const r = await this.log.appendAll([marker, batch]);
    this.bases.push(r.baseOffset);
    const first = r.baseOffset + 1n; // after the marker
    for (let i = 0n; i < BigInt(n); i++) this.records.push({ offset: first + i, origin: Part.originOf(region), originOffset: originBase + i });
  }

  /**
   * Truncates the log (and the model) at `offset`, a batch base. The dedup table forgets what
   * went, so each origin sends it again from there (now at other log offsets).
   */
  async truncateTo(offset: bigint): Promise<void> {
    await this.log.truncateTo(offset);
    this.records = this.records.filter((r) => r.offset < offset);
    this.bases = this.bases.filter((b) => b < offset);
    for (const region of this.#next.keys()) {
      const kept = this.records.filter((r) => r.origin === Part.originOf(region)).at(-1);
      this.#next.set(region, kept === undefined ? 0n : kept.originOffset + 1n);
    }
  }

  /** The next origin offset of `region` is `to` (a reset: the leader's log holds others). */
  rewind(region: string, to: bigint): void {
    this.#next.set(region, to);
  }

  async reopen(): Promise<void> {
    await this.log.close();
    this.log = await PartitionLog.open(this.dir, FAST);
  }
}

const obj = (v: OriginVector): Record<string, bigint> => Object.fromEntries([...v].sort(([a], [b]) => (a < b ? -1 : 1)));


/**
 * Every offset from the log start: vectorAt as the brute force says; translate of that vector,
 * and of vectors that cover every origin but one up to its end, the brute-force answer.
 */
function checkExact(idx: OriginIndex, p: Part, what: string): void {
  const start = p.log.logStartOffset;
  const end = p.log.highWatermark;
  assert.equal(idx.indexedTo, end, `${what}: indexedTo`);
  const recs = p.records.filter((r) => r.offset >= start);
  for (let o = start; o <= end; o++) {
    const v = bfVector(p.records, o);
    assert.deepEqual(obj(idx.vectorAt(o)), obj(v), `${what}: vectorAt(${o})`);
    assert.equal(idx.translate(v), bfTranslate(recs, v, end), `${what}: translate(vector at ${o})`);
  }
  const origins = [...new Set(recs.map((r) => r.origin))];
  for (const missing of origins) {
    const v: OriginVector = new Map(origins.filter((k) => k !== missing).map((k) => [k, 1n << 40n]));
    assert.equal(idx.translate(v), bfTranslate(recs, v, end), `${what}: translate(all but ${missing})`);
  }
}

test('a loaded index follows truncateTo: records of another origin at the cut offsets are answered from the new records; a walk racing the truncation re-adds nothing past the cut', async () => {
  const p = await Part.open({ segmentBytes: 100_000 });
  for (let i = 0; i < 12; i++) {
    await p.local(2);
    await p.replicated('eu', 3);
  }
  const idx = await OriginIndex.open(p.log, p.key, { persist: false });
  try {
    checkExact(idx, p, 'before');
    const oldEnd = p.log.highWatermark;
    // Cut at a marker (a batch base): eu 9.. and what follows go; us replaces them.
    const cut = p.bases[7];
    await p.truncateTo(cut);
    assert.equal(idx.indexedTo, cut, 'the index is cut with the log, before any catch-up');
    assert.deepEqual(obj(idx.vectorAt(oldEnd)), obj(bfVector(p.records, cut)));
    for (let i = 0; i < 14; i++) {
      await p.replicated('us', 2);
      await p.local(1);
    }
    assert.ok(p.log.highWatermark > oldEnd, 'the new records reach past the old end');
    await idx.catchUp();
    checkExact(idx, p, 'after the cut');

    // A walk under way when the log is cut: its read returns the old records after the cut is done.
    for (let i = 0; i < 6; i++) await p.replicated('eu', 2);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reading!: () => void;
    const started = new Promise<void>((resolve) => (reading = resolve));
    const read = p.log.read.bind(p.log);
    p.log.read = async (...args: Parameters<PartitionLog['read']>) => {
      const r = await read(...args);
      reading();
      await gate;
      return r;
    };
    const walking = idx.catchUp();
    await started;
    const cut2 = p.bases.at(-4)!;
    await p.truncateTo(cut2);
    release();
    await walking;
    p.log.read = read;
    assert.ok(idx.indexedTo <= cut2, `the walk stopped: indexed to ${idx.indexedTo}, cut at ${cut2}`);
    for (let i = 0; i < 5; i++) {
      await p.local(3);
      await p.replicated('us', 1);
      await p.replicated('eu', 2);
    }
    await idx.catchUp();
    checkExact(idx, p, 'after the cut during a walk');
  } finally {
    await idx.close();
    await p.log.close();
  }
});

test('a snapshot past a truncation is never trusted, even after the log grew past it again with no index loaded (or a crash before its delete), while one below the cut still is', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const p = await Part.open({ segmentBytes: 1500 });
  for (let i = 0; i < 24; i++) {
    await p.local(1 + (i % 3));
    await p.replicated('eu', 2);
  }
  await p.log.flush(); // seals run behind the writer
  let idx = await OriginIndex.open(p.log, p.key);
  await idx.close(); // waits for the snapshot of the last sealed segment
  const file = path.join(p.dir, SNAPSHOT);
  const snapAt = (): bigint => BigInt((JSON.parse(fs.readFileSync(file, 'utf8')) as { offset: string }).offset);
  const s = snapAt();
  const sealed = p.log.segments().filter((g) => g.sealed);
  assert.ok(sealed.length >= 3, `${sealed.length} sealed segments`);
  assert.equal(s, sealed.at(-1)!.nextOffset);

  // A cut past the snapshot leaves it valid: the next load walks only what follows it.
  const above = p.bases.find((b) => b > s);
  assert.ok(above !== undefined && above < p.log.highWatermark, 'a batch after the snapshot');
  await p.truncateTo(above);
  await p.replicated('us', 2);
  let reads = 0;
  const read = p.log.read.bind(p.log);
  p.log.read = (...args: Parameters<PartitionLog['read']>) => {
    reads++;
    assert.ok(args[0] >= s, `read at ${args[0]}, below the snapshot at ${s}`);
    return read(...args);
  };
  idx = await OriginIndex.open(p.log, p.key, { logger });
  p.log.read = read;
  assert.ok(reads >= 1);
  checkExact(idx, p, 'snapshot below the cut');
  await idx.close();
  assert.equal(snapAt(), s);

  // No index loaded: the log is cut below the snapshot and grows past it again with records
  // of another origin, and the broker restarts. This is also what a crash between the cut
  // and the listener's delete leaves.
  const cut = p.bases.find((b) => b > sealed[1].baseOffset && b < sealed[2].baseOffset)!;
  assert.ok(cut !== undefined, 'a batch inside the second segment');
  await p.truncateTo(cut);
  for (let i = 0; i < 20; i++) {
    await p.replicated('us', 2);
    await p.replicated('eu', 1);
    await p.local(1);
  }
  assert.ok(p.log.highWatermark > s + 20n, `the log (end ${p.log.highWatermark}) grew past the snapshot (${s})`);
  assert.equal(snapAt(), s, 'the old snapshot is still there');
  await p.reopen();
  lines.length = 0;
  idx = await OriginIndex.open(p.log, p.key, { logger });
  const scratch = await OriginIndex.open(p.log, p.key, { persist: false });
  try {
    checkExact(idx, p, 'after a cut below the snapshot');
    assert.ok(
      lines.some((l) => /does not match the log/.test(String(l.msg))),
      JSON.stringify(lines.map((l) => l.msg)),
    );
    for (let o = 0n; o <= p.log.highWatermark; o++) assert.deepEqual(obj(idx.vectorAt(o)), obj(scratch.vectorAt(o)), `vectorAt(${o}) as built from scratch`);

    // A loaded index deletes the snapshot past a cut at once; its next one is of the new log.
    await p.log.flush();
    await idx.close();
    idx = await OriginIndex.open(p.log, p.key, { logger });
    const s2 = snapAt();
    assert.ok(s2 > cut, `a snapshot of the new log at ${s2}`);
    await p.truncateTo(p.bases.find((b) => b > cut && b < s2)!);
    assert.equal(fs.existsSync(file), false, 'the snapshot past the cut is deleted');
    for (let i = 0; i < 10; i++) await p.replicated('us', 3);
    await idx.catchUp();
    checkExact(idx, p, 'loaded index, cut below its snapshot');
  } finally {
    await idx.close();
    await scratch.close();
    await p.log.close();
  }
});

test('a follower reset to its leader\'s log start (resetTo): the records it held are not carried over as the vector there, loaded or from the snapshot', async () => {
  const p = await Part.open({ segmentBytes: 700 });
  for (let i = 0; i < 12; i++) {
    await p.local(1);
    await p.replicated('eu', 2);
  }
  await p.log.flush();
  const idx = await OriginIndex.open(p.log, p.key);
  let again: OriginIndex | undefined;
  try {
    const oldEnd = p.log.highWatermark;
    // The leader's log starts past this whole log, and holds eu 5.. after its start (this
    // follower's eu records up to 23 were never the leader's).
    const leaderStart = oldEnd + 10n;
    await p.log.resetTo(leaderStart);
    p.records = [];
    p.bases = [];
    p.rewind('eu', 5n);
    for (let i = 0; i < 6; i++) {
      await p.replicated('eu', 2);
      await p.local(1);
    }
    assert.equal(p.log.logStartOffset, leaderStart);
    await idx.catchUp();
    checkExact(idx, p, 'loaded across the reset');
    await p.log.flush();
    await idx.close();
    // The snapshot left from before the reset (if no seal replaced it yet) lies below the log start.
    again = await OriginIndex.open(p.log, p.key);
    checkExact(again, p, 'loaded after the reset');
  } finally {
    await idx.close();
    await again?.close();
    await p.log.close();
  }
});
