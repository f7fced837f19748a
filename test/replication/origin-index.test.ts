/**
 * OriginIndex: which origin (region, topic id) and origin offset each record of a partition
 * has, and consumer-offset translation between regions. Real PartitionLogs in temp dirs with
 * local batches and marker runs (as ReplicationTarget writes them); every answer is checked
 * against a brute-force scan of the records the test appended (the model).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import pino from 'pino';
import { MeridianError } from '../../src/errors.js';
import { encodeMarker } from '../../src/replication/marker.js';
import { decodeVector, encodeVector, OriginIndex, type OriginVector } from '../../src/replication/origin-index.js';
import { originKey } from '../../src/replication/replica-state.js';
import { PartitionLog, type LogOptions } from '../../src/storage/partition-log.js';
import { readBatchHeader } from '../../src/storage/record-batch.js';
import { garbledMarker, makeBatch } from '../helpers/batches.js';
import { rng } from '../helpers/seeded-random.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { bfTranslate, bfVector, type Rec } from '../helpers/origin-model.js';

const SNAPSHOT = 'origin-index.json';
const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir('meridian-origin-index-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** No fsync per append (the seals still fsync): these tests append thousands of batches. */
const FAST: Partial<LogOptions> = { flushMode: 'interval', flushIntervalMs: 60_000 };


/** One region's copy of a partition: its log, and the model of what the test appended. */
class Region {
  readonly key: string;
  readonly records: Rec[] = [];
  /** Batches produced here, with their base offset here (what other regions pull). */
  readonly local: Array<{ base: bigint; bytes: Buffer }> = [];
  readonly pulled = new Map<string, number>();
  #tag = 0;

  constructor(
    readonly name: string,
    readonly log: PartitionLog,
  ) {
    this.key = originKey(name, `tid-${name}`);
  }

  static async open(name: string, opts: Partial<LogOptions> = FAST, d = dir()): Promise<Region> {
    return new Region(name, await PartitionLog.open(d, opts));
  }

  async produce(records: number): Promise<void> {
    const b = makeBatch(`${this.name}-${this.#tag++}`, records);
    const bytes = Buffer.from(b);
    const r = await this.log.append(b);
    this.local.push({ base: r.baseOffset, bytes });
    for (let i = 0n; i <= r.lastOffset - r.baseOffset; i++) this.records.push({ offset: r.baseOffset + i, origin: this.key, originOffset: r.baseOffset + i });
  }

  /** A control batch that is not a marker: neutral. */
  async control(): Promise<void> {
    await this.log.append(garbledMarker());
  }

  /** Replicates the next (up to) `count` batches `from` produced, behind a marker; false when there were none. */
  async pull(from: Region, count: number): Promise<boolean> {
    const i = this.pulled.get(from.name) ?? 0;
    const batches = from.local.slice(i, i + count);
    if (batches.length === 0) return false;
    this.pulled.set(from.name, i + batches.length);
    const copies = batches.map((b) => Buffer.from(b.bytes));
    const last = batches[batches.length - 1];
    await appendMarked(this.log, from.name, `tid-${from.name}`, [from.name], copies, batches.map((b) => b.base), last.base + BigInt(readBatchHeader(last.bytes).lastOffsetDelta));
    copies.forEach((c, j) => {
      const h = readBatchHeader(c);
      for (let k = 0n; k <= BigInt(h.lastOffsetDelta); k++) this.records.push({ offset: h.baseOffset + k, origin: from.key, originOffset: batches[j].base + k });
    });
    return true;
  }
}

/** Marker + batches in one append, as ReplicationTarget writes them (stamps the batches' offsets in place). */
async function appendMarked(log: PartitionLog, origin: string, topicId: string, hops: string[], batches: Buffer[], originBases: bigint[], senderEnd?: bigint): Promise<void> {
  const marker = encodeMarker({
    originRegion: origin,
    originTopicId: topicId,
    originPartition: 0,
    senderRegion: hops[hops.length - 1],
    senderTopicId: topicId,
    hops,
    batches: batches.map((b, i) => ({ originBaseOffset: originBases[i], senderBaseOffset: originBases[i], crc: readBatchHeader(b).crc })),
    senderEndOffset: senderEnd ?? originBases[originBases.length - 1],
  });
  await log.appendAll([marker, ...batches]);
}

// -- brute force over the model --------------------------------------------------------------

function bfCount(recs: readonly Rec[], origin: string, from: bigint, to: bigint): { count: bigint; first: bigint | null; last: bigint | null } {
  const hits = recs.filter((r) => r.origin === origin && r.offset >= from && r.offset < to);
  return { count: BigInt(hits.length), first: hits[0]?.offset ?? null, last: hits.at(-1)?.offset ?? null };
}

const obj = (v: OriginVector): Record<string, bigint> => Object.fromEntries([...v].sort(([a], [b]) => (a < b ? -1 : 1)));

/** Every offset of the log: vectorAt and countOf as the brute force says, translate(vectorAt(o)) the first record at or past o. */
function checkExact(idx: OriginIndex, region: Region): void {
  const end = region.log.highWatermark;
  assert.equal(idx.indexedTo, end);
  const origins = [...new Set(region.records.map((r) => r.origin))];
  for (let o = 0n; o <= end; o++) {
    const v = idx.vectorAt(o);
    assert.deepEqual(obj(v), obj(bfVector(region.records, o)), `vectorAt(${o})`);
    const firstAtOrAfter = region.records.find((r) => r.offset >= o)?.offset ?? end;
    assert.equal(idx.translate(v), firstAtOrAfter, `translate(vectorAt(${o}))`);
    for (const k of origins) assert.deepEqual(idx.countOf(k, 0n, o), bfCount(region.records, k, 0n, o), `countOf(${k}, 0, ${o})`);
  }
}

test('one origin: vectorAt at batch boundaries and mid-batch, a control batch is neutral, consecutive local batches are one run', async () => {
  const a = await Region.open('a');
  await a.produce(3); // 0..2
  await a.produce(1); // 3
  await a.control(); // 4
  await a.produce(4); // 5..8
  const idx = await OriginIndex.open(a.log, a.key);
  try {
    const k = a.key;
    assert.equal(idx.indexedTo, 9n);
    assert.deepEqual(obj(idx.vectorAt(0n)), {});
    assert.deepEqual(obj(idx.vectorAt(1n)), { [k]: 0n });
    assert.deepEqual(obj(idx.vectorAt(2n)), { [k]: 1n }); // mid-batch
    assert.deepEqual(obj(idx.vectorAt(4n)), { [k]: 3n });
    assert.deepEqual(obj(idx.vectorAt(5n)), { [k]: 3n }); // after the control batch
    assert.deepEqual(obj(idx.vectorAt(7n)), { [k]: 6n });
    assert.deepEqual(obj(idx.vectorAt(100n)), { [k]: 8n }); // clamped to indexedTo
    assert.equal(idx.translate(new Map()), 0n);
    assert.equal(idx.translate(new Map([[k, 1n]])), 2n);
    assert.equal(idx.translate(new Map([[k, 3n]])), 5n); // the control batch is covered
    assert.equal(idx.translate(new Map([[k, 1000n]])), 9n); // never past indexedTo
    assert.equal(idx.translate(new Map([['elsewhere/x', 1000n]])), 0n);
    assert.deepEqual(idx.countOf(k, 2n, 7n), { count: 4n, first: 2n, last: 6n });
    assert.deepEqual(idx.countOf(k, 4n, 5n), { count: 0n, first: null, last: null });
    assert.deepEqual(idx.countOf('elsewhere/x', 0n, 9n), { count: 0n, first: null, last: null });
    const s = idx.stats();
    assert.deepEqual({ runs: s.runs, origins: s.origins, indexedFrom: s.indexedFrom, indexedTo: s.indexedTo, checkpoints: s.checkpoints }, { runs: 2, origins: 1, indexedFrom: 0n, indexedTo: 9n, checkpoints: 0 });
    checkExact(idx, a);

    // catchUp indexes what came since; with nothing new it is a no-op.
    await a.produce(2);
    assert.equal(idx.indexedTo, 9n);
    await Promise.all([idx.catchUp(), idx.catchUp(), idx.catchUp()]);
    assert.equal(idx.indexedTo, 11n);
    assert.equal(idx.stats().runs, 2); // 9..10 continues the run 5..8
    await idx.catchUp();
    checkExact(idx, a);
  } finally {
    await idx.close();
    await a.log.close();
  }
});

test('two origins: local batches and marker runs, exact vectors at every offset, translation between the regions', async () => {
  const us = await Region.open('us');
  const eu = await Region.open('eu');
  await us.produce(2);
  await us.produce(3);
  await eu.produce(1);
  await eu.pull(us, 1); // marker, us[0..1]
  await eu.produce(2);
  await us.produce(1);
  await eu.pull(us, 5); // marker, us[2..4], us[5]
  await us.pull(eu, 2);
  await eu.produce(4);
  const idxEu = await OriginIndex.open(eu.log, eu.key);
  const idxUs = await OriginIndex.open(us.log, us.key);
  try {
    // eu: 0 local, 1 marker, 2..3 us 0..1, 4..5 local, 6 marker, 7..9 us 2..4, 10 us 5, 11..14 local
    assert.deepEqual(obj(idxEu.vectorAt(3n)), { [eu.key]: 0n, [us.key]: 0n }); // mid-batch
    assert.deepEqual(obj(idxEu.vectorAt(11n)), { [eu.key]: 5n, [us.key]: 5n });
    // eu's own: 0, 4..5, 11..14; us: 2..3 (us 0..1), then 7..10 (us 2..5: one run over two batches).
    assert.equal(idxEu.stats().runs, 5);
    checkExact(idxEu, eu);
    checkExact(idxUs, us);
    // A consumer of us that committed offset o resumes in eu where it misses nothing.
    for (let o = 0n; o <= us.log.highWatermark; o++) {
      const v = idxUs.vectorAt(o);
      assert.equal(idxEu.translate(v), bfTranslate(eu.records, v, eu.log.highWatermark), `us@${o} -> eu`);
    }
    for (let o = 0n; o <= eu.log.highWatermark; o++) {
      const v = idxEu.vectorAt(o);
      assert.equal(idxUs.translate(v), bfTranslate(us.records, v, us.log.highWatermark), `eu@${o} -> us`);
    }
  } finally {
    await idxEu.close();
    await idxUs.close();
    await eu.log.close();
    await us.log.close();
  }
});

test('three origins interleaved, one relayed (hops), gaps in origin offsets split runs', async () => {
  const r = await Region.open('hub');
  const other = (n: string): string => originKey(n, `tid-${n}`);
  // Origin offsets with gaps (the origin's own markers), a relayed origin (ap via eu).
  const put = async (origin: string, hops: string[], bases: bigint[], sizes: number[]): Promise<void> => {
    const batches = sizes.map((n, i) => makeBatch(`${origin}-${bases[i]}`, n));
    await appendMarked(r.log, origin, `tid-${origin}`, hops, batches, bases);
    batches.forEach((b, i) => {
      const h = readBatchHeader(b);
      for (let k = 0n; k < BigInt(sizes[i]); k++) r.records.push({ offset: h.baseOffset + k, origin: other(origin), originOffset: bases[i] + k });
    });
  };
  await r.produce(2);
  await put('eu', ['eu'], [0n, 2n, 10n], [2, 3, 1]); // 0..1 and 2..4 merge; 10 starts a run
  await put('ap', ['ap', 'eu'], [5n], [4]);
  await r.produce(1);
  await put('eu', ['eu'], [11n], [2]);
  await r.control();
  await put('ap', ['ap', 'eu'], [9n, 20n], [1, 1]);
  await r.produce(3);
  const idx = await OriginIndex.open(r.log, r.key);
  try {
    assert.equal(idx.stats().origins, 3);
    checkExact(idx, r);
    const end = r.log.highWatermark;
    const random = rng(7);
    const keys = [r.key, other('eu'), other('ap')];
    for (let i = 0; i < 300; i++) {
      const v: OriginVector = new Map();
      for (const k of keys) if (random() < 0.8) v.set(k, BigInt(Math.floor(random() * 25)) - 1n);
      const t = idx.translate(v);
      assert.equal(t, bfTranslate(r.records, v, end), JSON.stringify(encodeVector(v)));
      assert.ok(t <= idx.indexedTo);
      const from = BigInt(Math.floor(random() * Number(end + 2n)));
      const to = from + BigInt(Math.floor(random() * 10));
      for (const k of keys) assert.deepEqual(idx.countOf(k, from, to), bfCount(r.records, k, from, to));
    }
  } finally {
    await idx.close();
    await r.log.close();
  }
});

/** An active-active mesh of 3 regions, each forwarding only its own records, in a random order, some lagging. */
type Step = { at: number; kind: 'produce'; n: number } | { at: number; kind: 'pull'; from: number; n: number };
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ at: fc.nat(2), kind: fc.constant('produce' as const), n: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ at: fc.nat(2), kind: fc.constant('pull' as const), from: fc.nat(2), n: fc.integer({ min: 1, max: 3 }) }),
);

async function mesh(steps: readonly Step[], segmentBytes: number): Promise<Region[]> {
  const regions = await Promise.all(['r0', 'r1', 'r2'].map((n) => Region.open(n, { ...FAST, segmentBytes })));
  for (const s of steps) {
    const r = regions[s.at];
    if (s.kind === 'produce' || s.from === s.at) await r.produce(s.kind === 'produce' ? s.n : 1);
    else if (!(await r.pull(regions[s.from], s.n))) await r.produce(1);
  }
  return regions;
}

test('property: in a 3-region mesh, translate(A.vectorAt(o)) in B is the brute-force answer; with a tiny budget it is conservative', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 60 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 6 }), async (steps, points, maxRuns) => {
      const regions = await mesh(steps, 1500);
      const exact = await Promise.all(regions.map((r) => OriginIndex.open(r.log, r.key)));
      const tiny = await Promise.all(regions.map((r) => OriginIndex.open(r.log, r.key, { maxRuns, maxCheckpoints: 3, persist: false })));
      try {
        for (let a = 0; a < 3; a++) {
          const A = regions[a];
          for (const p of points) {
            const o = BigInt(Math.round(p * Number(A.log.highWatermark)));
            const v = exact[a].vectorAt(o);
            assert.deepEqual(obj(v), obj(bfVector(A.records, o)));
            // The tiny index's vector is a lower bound.
            for (const [k, x] of tiny[a].vectorAt(o)) assert.ok(x <= (v.get(k) ?? -1n), `tiny vectorAt(${o})[${k}]`);
            for (let b = 0; b < 3; b++) {
              const B = regions[b];
              const want = bfTranslate(B.records, v, B.log.highWatermark);
              assert.equal(exact[b].translate(v), want, `r${a}@${o} -> r${b}`);
              const got = tiny[b].translate(v);
              assert.ok(got <= want, `tiny r${a}@${o} -> r${b}: ${got} > ${want}`);
              const floor = tiny[b].checkpointOffsets().filter((c) => c <= want).at(-1)!;
              assert.ok(got >= floor, `tiny r${a}@${o} -> r${b}: ${got} below the checkpoint ${floor}`);
              if (want >= tiny[b].stats().exactFrom) assert.equal(got, want, 'exact in the kept runs');
            }
          }
        }
        for (const t of tiny) {
          assert.ok(t.stats().runs <= maxRuns);
          assert.ok(t.stats().checkpoints <= 3);
        }
      } finally {
        await Promise.all([...exact, ...tiny].map((i) => i.close()));
        await Promise.all(regions.map((r) => r.log.close()));
      }
    }),
    { numRuns: 100, seed: 20240611 },
  );
});

test('restart: the snapshot at the last sealed segment end gives the same answers, and the walk covers only the segments after it', async () => {
  const steps: Step[] = [];
  const random = rng(42);
  for (let i = 0; i < 400; i++) {
    const at = Math.floor(random() * 3);
    steps.push(random() < 0.5 ? { at, kind: 'produce', n: 1 + Math.floor(random() * 4) } : { at, kind: 'pull', from: Math.floor(random() * 3), n: 1 + Math.floor(random() * 3) });
  }
  const regions = await mesh(steps, 4000);
  const r = regions[1];
  try {
    const idx = await OriginIndex.open(r.log, r.key);
    const sealed = r.log.segments().filter((s) => s.sealed);
    assert.ok(sealed.length >= 3, `${sealed.length} sealed segments`);
    const before = Array.from({ length: Number(r.log.highWatermark) + 1 }, (_, o) => idx.vectorAt(BigInt(o)));
    checkExact(idx, r);
    await idx.close(); // waits for the snapshot of the sealed segments
    const snap = JSON.parse(fs.readFileSync(path.join(r.log.dir, SNAPSHOT), 'utf8')) as { offset: string };
    assert.equal(BigInt(snap.offset), sealed.at(-1)!.nextOffset);

    // Reopen the log: the index loads the snapshot and walks the active segment only.
    const d = r.log.dir;
    await r.log.close();
    const log = await PartitionLog.open(d, { ...FAST, segmentBytes: 4000 });
    (r as { log: PartitionLog }).log = log;
    let reads = 0;
    const read = log.read.bind(log);
    log.read = (...args: Parameters<PartitionLog['read']>) => {
      reads++;
      assert.ok(args[0] >= sealed.at(-1)!.nextOffset, `read at ${args[0]} below the snapshot`);
      return read(...args);
    };
    const again = await OriginIndex.open(log, r.key);
    try {
      assert.ok(reads >= 1);
      before.forEach((v, o) => assert.deepEqual(obj(again.vectorAt(BigInt(o))), obj(v), `vectorAt(${o}) after restart`));
      checkExact(again, r);
    } finally {
      await again.close();
    }
  } finally {
    await Promise.all(regions.map((x) => x.log.close()));
  }
});

test('a tiny budget keeps runs and checkpoints bounded and stays conservative across a restart', async () => {
  const steps: Step[] = [];
  const random = rng(9);
  for (let i = 0; i < 300; i++) {
    const at = Math.floor(random() * 3);
    steps.push(random() < 0.5 ? { at, kind: 'produce', n: 1 + Math.floor(random() * 3) } : { at, kind: 'pull', from: Math.floor(random() * 3), n: 1 + Math.floor(random() * 2) });
  }
  const regions = await mesh(steps, 3000);
  const [a, b] = regions;
  // Seals run behind the writer: the snapshot checked below is of the last sealed segment.
  await Promise.all(regions.map((r) => r.log.flush()));
  try {
    const exactA = await OriginIndex.open(a.log, a.key);
    let tinyB = await OriginIndex.open(b.log, b.key, { maxRuns: 8, maxCheckpoints: 4 });
    const check = (): void => {
      assert.ok(tinyB.stats().runs <= 8);
      assert.ok(tinyB.stats().checkpoints <= 4);
      assert.ok(tinyB.stats().exactFrom > 0n);
      for (let o = 0n; o <= a.log.highWatermark; o += 3n) {
        const v = exactA.vectorAt(o);
        const want = bfTranslate(b.records, v, b.log.highWatermark);
        const got = tinyB.translate(v);
        assert.ok(got <= want && got >= tinyB.checkpointOffsets().filter((c) => c <= want).at(-1)!, `a@${o}: ${got} vs ${want}`);
      }
    };
    check();
    await tinyB.close();
    // The runs around the last seal were dropped: the snapshot starts its exact region at the
    // seal, with the vector the walk recorded when it crossed that segment boundary.
    const snap = JSON.parse(fs.readFileSync(path.join(b.log.dir, SNAPSHOT), 'utf8')) as { offset: string; exactFrom: string; runs: Record<string, string> };
    assert.equal(BigInt(snap.offset), b.log.segments().filter((x) => x.sealed).at(-1)!.nextOffset);
    assert.equal(snap.exactFrom, snap.offset);
    assert.deepEqual(snap.runs, {});
    tinyB = await OriginIndex.open(b.log, b.key, { maxRuns: 8, maxCheckpoints: 4 });
    check();
    await tinyB.close();
    await exactA.close();
  } finally {
    await Promise.all(regions.map((x) => x.log.close()));
  }
});

test('a snapshot past the log end, of another origin key, or garbage is ignored with a warning; the index rebuilds from the log', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const big = await Region.open('big', { ...FAST, segmentBytes: 1000 });
  for (let i = 0; i < 40; i++) await big.produce(2);
  // Seals run behind the writer: the index snapshots the last sealed segment, so wait for them.
  await big.log.flush();
  const idx = await OriginIndex.open(big.log, big.key);
  await idx.close();
  const snapshot = fs.readFileSync(path.join(big.log.dir, SNAPSHOT), 'utf8');
  assert.ok(BigInt((JSON.parse(snapshot) as { offset: string }).offset) > 20n);

  const small = await Region.open('big'); // same key, a shorter log
  for (let i = 0; i < 5; i++) await small.produce(2);
  const file = path.join(small.log.dir, SNAPSHOT);
  try {
    for (const [text, key, warning] of [
      [snapshot, small.key, /past the log end/],
      [snapshot, 'someone/else', /another origin key/],
      ['{"version":1,"selfKey":', small.key, /unreadable/],
      [snapshot.replace(/"offset":"\d+"/, '"offset":"4"'), small.key, /unreadable/], // runs past its offset
    ] as const) {
      lines.length = 0;
      fs.writeFileSync(file, text);
      const i2 = await OriginIndex.open(small.log, key, { logger });
      try {
        assert.ok(lines.some((l) => warning.test(String(l.msg))), `${warning}: ${JSON.stringify(lines)}`);
        assert.equal(i2.indexedTo, 10n);
        if (key === small.key) checkExact(i2, small);
      } finally {
        await i2.close();
      }
    }
  } finally {
    await big.log.close();
    await small.log.close();
  }
});

test('truncatedTo forgets what lies at or past the offset (in the exact region, and below it with a tiny budget); the next catchUp re-walks', async () => {
  const r = await Region.open('tr', { ...FAST, segmentBytes: 1200 });
  const eu = await Region.open('eu');
  for (let i = 0; i < 30; i++) await eu.produce(2);
  for (let i = 0; i < 12; i++) {
    await r.produce(1 + (i % 3));
    await r.pull(eu, 1 + (i % 2));
  }
  // Seals run behind the writer: the index snapshots the last sealed segment, so wait for them.
  await r.log.flush();
  const idx = await OriginIndex.open(r.log, r.key);
  const tiny = await OriginIndex.open(r.log, r.key, { maxRuns: 2, maxCheckpoints: 4, persist: false });
  const all = new Map([
    [r.key, 10_000n],
    [eu.key, 10_000n],
  ]);
  try {
    await idx.close(); // the snapshot is written
    const snapFile = path.join(r.log.dir, SNAPSHOT);
    const snapAt = BigInt((JSON.parse(fs.readFileSync(snapFile, 'utf8')) as { offset: string }).offset);
    const idx2 = await OriginIndex.open(r.log, r.key);
    try {
      const end = r.log.highWatermark;
      // A log truncates at a batch boundary, and new data follows: here the same data follows,
      // so the cut is where no marker's run is open (a local batch).
      const cut = r.local[Math.floor(r.local.length / 3)].base;
      assert.ok(cut < snapAt, `${cut} < ${snapAt}`);
      const prefix = r.records.filter((x) => x.offset < cut);
      idx2.truncatedTo(cut);
      assert.equal(idx2.indexedTo, cut);
      assert.equal(fs.existsSync(snapFile), false, 'a snapshot past the truncation is deleted');
      for (let o = 0n; o <= cut; o++) assert.deepEqual(obj(idx2.vectorAt(o)), obj(bfVector(prefix, o)), `vectorAt(${o}) after truncatedTo`);
      assert.deepEqual(obj(idx2.vectorAt(end)), obj(bfVector(prefix, cut)));
      assert.equal(idx2.translate(all), cut);
      assert.deepEqual(idx2.countOf(eu.key, 0n, end), bfCount(prefix, eu.key, 0n, cut));
      await idx2.catchUp();
      checkExact(idx2, r);

      // Below the kept runs of a tiny index: back to a checkpoint, rebuilt on the next catchUp.
      assert.ok(tiny.stats().exactFrom > 5n);
      tiny.truncatedTo(5n);
      assert.ok(tiny.indexedTo <= 5n);
      assert.ok(tiny.translate(all) <= 5n);
      await tiny.catchUp();
      assert.equal(tiny.indexedTo, end);
      assert.ok(tiny.stats().runs <= 2);
      for (let o = 0n; o <= end; o++) {
        const v = bfVector(r.records, o);
        const got = tiny.translate(v);
        const want = bfTranslate(r.records, v, end);
        assert.ok(got <= want && got >= tiny.checkpointOffsets().filter((c) => c <= want).at(-1)!, `${o}: ${got} vs ${want}`);
      }

      // A truncation while a walk is under way: the walk stops, the next catchUp finishes.
      for (let i = 0; i < 5; i++) {
        await r.produce(2);
        await r.pull(eu, 1);
      }
      const walking = idx2.catchUp();
      idx2.truncatedTo(r.local.filter((b) => b.base < end).at(-1)!.base);
      await walking;
      await idx2.catchUp();
      checkExact(idx2, r);
    } finally {
      await idx2.close();
    }
  } finally {
    await tiny.close();
    await r.log.close();
    await eu.log.close();
  }
});

test('retention: runs below the log start go, indexedFrom follows it, translate never answers below it', async () => {
  const r = await Region.open('rt', { ...FAST, segmentBytes: 1000 });
  const eu = await Region.open('eu');
  for (let i = 0; i < 20; i++) await eu.produce(2);
  for (let i = 0; i < 10; i++) {
    await r.produce(2);
    await r.pull(eu, 2);
  }
  const idx = await OriginIndex.open(r.log, r.key);
  try {
    const runs = idx.stats().runs;
    const start = await r.log.deleteRecordsBefore(r.records[r.records.length >> 1].offset);
    await r.produce(1);
    await idx.catchUp();
    const s = idx.stats();
    assert.equal(s.indexedFrom, start);
    assert.ok(s.runs < runs + 1, `${s.runs} runs`);
    const end = r.log.highWatermark;
    const kept = r.records.filter((x) => x.offset >= start);
    assert.equal(idx.translate(new Map()), start);
    assert.deepEqual(obj(idx.vectorAt(0n)), obj(bfVector(r.records, start))); // clamped: what preceded the log start
    for (let o = start; o <= end; o++) {
      const v = bfVector(r.records, o);
      assert.deepEqual(obj(idx.vectorAt(o)), obj(v));
      assert.equal(idx.translate(v), bfTranslate(kept, v, end));
    }
  } finally {
    await idx.close();
    await r.log.close();
    await eu.log.close();
  }
});

test('encodeVector / decodeVector round-trip; garbage is refused with BAD_CONFIG naming the entry', () => {
  const v: OriginVector = new Map([
    ['us/a', 0n],
    ['eu/b', 9_007_199_254_740_993n],
    ['ap/c', -1n],
  ]);
  const json = JSON.parse(JSON.stringify(encodeVector(v))) as unknown;
  assert.deepEqual(decodeVector(json), v);
  assert.deepEqual(decodeVector({ 'x/y': 12 }), new Map([['x/y', 12n]]));
  for (const [bad, re] of [
    [null, /not null/],
    [[1], /not an array/],
    ['x', /not string/],
    [{ 'a/b': 'ten' }, /"a\/b" must be an offset/],
    [{ 'a/b': 1.5 }, /"a\/b" must be an offset/],
    [{ 'a/b': '-2' }, /out of range/],
    [{ 'a/b': '99999999999999999999' }, /out of range/],
    [{ '': '1' }, /empty origin key/],
    [{ 'a/b': { n: 1 } }, /must be an offset/],
  ] as const) {
    assert.throws(
      () => decodeVector(bad),
      (err: unknown) => err instanceof MeridianError && err.code === 'BAD_CONFIG' && re.test(err.message),
      String(re),
    );
  }
});
