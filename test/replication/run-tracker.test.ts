/**
 * RunTracker: walking a log in order, which batches were produced here and which were
 * replicated (and from where), by following the markers and matching each batch to its
 * marker entry by CRC.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeMarker, type Marker } from '../../src/replication/marker.js';
import { RunTracker, type BatchKind } from '../../src/replication/run-tracker.js';
import { Attributes, encodeBatch, readBatchHeader } from '../../src/storage/record-batch.js';
import { makeBatch } from '../helpers/batches.js';

function classify(t: RunTracker, b: Buffer): BatchKind {
  return t.classify(b, readBatchHeader(b));
}

/** A marker describing `batches` as origin offsets originBase, originBase+10, ... */
function markerFor(batches: Buffer[], opts: Partial<Marker> & { originBase?: bigint; senderBase?: bigint } = {}): { marker: Marker; buf: Buffer } {
  const originBase = opts.originBase ?? 100n;
  const senderBase = opts.senderBase ?? 500n;
  const marker: Marker = {
    originRegion: opts.originRegion ?? 'us-east',
    originTopicId: opts.originTopicId ?? 'topic-id-us-east',
    originPartition: opts.originPartition ?? 2,
    senderRegion: opts.senderRegion ?? 'ap-south',
    senderTopicId: opts.senderTopicId ?? 'topic-id-ap-south',
    hops: opts.hops ?? ['us-east', 'ap-south'],
    batches: batches.map((b, i) => ({ originBaseOffset: originBase + BigInt(i) * 10n, senderBaseOffset: senderBase + BigInt(i) * 10n, crc: readBatchHeader(b).crc })),
    senderEndOffset: opts.senderEndOffset ?? senderBase + BigInt(batches.length) * 10n,
  };
  return { marker, buf: encodeMarker(marker) };
}

test('batches without a marker are local', () => {
  const t = new RunTracker();
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(classify(t, makeBatch(`local-${i}`, 1 + i)), { kind: 'local' });
    assert.equal(t.inRun, false);
    assert.equal(t.runRemaining, 0);
  }
});

test('a marker followed by its batches: each is replicated with its origin offsets, lastOfRun on the last only; then local again', () => {
  const t = new RunTracker();
  const data = [makeBatch('r0', 3), makeBatch('r1', 1), makeBatch('r2', 2)];
  const { marker, buf } = markerFor(data);
  const k = classify(t, buf);
  assert.equal(k.kind, 'marker');
  assert.deepEqual(k.kind === 'marker' && k.marker, marker);
  assert.equal(t.inRun, true);
  assert.equal(t.runRemaining, 3);
  data.forEach((b, i) => {
    const c = classify(t, b);
    assert.equal(c.kind, 'replicated', `batch ${i}`);
    if (c.kind !== 'replicated') return;
    assert.equal(c.origin.region, 'us-east');
    assert.equal(c.origin.partition, 2);
    assert.equal(c.origin.baseOffset, 100n + BigInt(i) * 10n);
    assert.equal(c.origin.senderBaseOffset, 500n + BigInt(i) * 10n);
    assert.equal(c.origin.senderRegion, 'ap-south');
    assert.deepEqual([...c.origin.hops], ['us-east', 'ap-south']);
    assert.equal(c.origin.lastOfRun, i === data.length - 1);
    assert.equal(t.runRemaining, data.length - 1 - i);
  });
  assert.equal(t.inRun, false);
  assert.deepEqual(classify(t, makeBatch('after')), { kind: 'local' });
});

test('batches are matched by CRC, not by position: a different batch after the marker ends the run and is local', () => {
  const t = new RunTracker();
  const data = [makeBatch('x0'), makeBatch('x1')];
  const { buf } = markerFor(data);
  classify(t, buf);
  assert.equal(classify(t, makeBatch('intruder')).kind, 'local');
  assert.equal(t.inRun, false);
  // The batches the marker described, seen after the run was broken, are local too.
  assert.equal(classify(t, data[0]).kind, 'local');
  assert.equal(classify(t, data[1]).kind, 'local');
});

test('a torn run (marker says 3 batches, 2 follow, then a local batch): the local batch is local and no batch claims lastOfRun', () => {
  const t = new RunTracker();
  const data = [makeBatch('t0', 2), makeBatch('t1', 2), makeBatch('t2', 2)];
  const { buf } = markerFor(data);
  const kinds = [buf, data[0], data[1], makeBatch('local-after-tear', 4)].map((b) => classify(t, b));
  assert.deepEqual(kinds.map((k) => k.kind), ['marker', 'replicated', 'replicated', 'local']);
  assert.ok(kinds.every((k) => k.kind !== 'replicated' || !k.origin.lastOfRun), 'no batch of a torn run completes it');
  assert.equal(t.inRun, false);
  assert.equal(t.runRemaining, 0);
});

test('a torn run followed directly by a new marker: the new run is tracked from its own marker', () => {
  const t = new RunTracker();
  const first = [makeBatch('a0'), makeBatch('a1'), makeBatch('a2')];
  const second = [makeBatch('b0'), makeBatch('b1')];
  const m1 = markerFor(first, { originRegion: 'us-east' });
  const m2 = markerFor(second, { originRegion: 'eu-west', originBase: 7n });
  const kinds = [m1.buf, first[0], m2.buf, ...second].map((b) => classify(t, b));
  assert.deepEqual(kinds.map((k) => k.kind), ['marker', 'replicated', 'marker', 'replicated', 'replicated']);
  const last = kinds[4];
  assert.ok(last.kind === 'replicated' && last.origin.region === 'eu-west' && last.origin.baseOffset === 17n && last.origin.lastOfRun);
  assert.ok(kinds[1].kind === 'replicated' && !kinds[1].origin.lastOfRun);
});

test('a marker with no batches opens no run', () => {
  const t = new RunTracker();
  const { buf } = markerFor([]);
  assert.equal(classify(t, buf).kind, 'marker');
  assert.equal(t.inRun, false);
  assert.equal(classify(t, makeBatch('next')).kind, 'local');
});

test('a non-Meridian control batch (Kafka COMMIT/ABORT) is classified "control", neither local nor replicated', () => {
  const t = new RunTracker();
  for (const type of [0, 1]) {
    const txn = encodeBatch({ records: [{ key: Buffer.from([0, 0, 0, type]), value: Buffer.from([0, 0, 0, 0, 0, 1]) }], attributes: Attributes.control | Attributes.transactional, producerId: 9n, producerEpoch: 0 });
    assert.deepEqual(classify(t, txn), { kind: 'control' });
  }
  assert.equal(classify(t, makeBatch('plain')).kind, 'local');
});
