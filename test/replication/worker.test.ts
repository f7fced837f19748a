/**
 * The replication worker (one partition towards one remote region), in process over a real
 * PartitionLog, against the stand-in remote and tiered storage of test/helpers/worker-harness.ts:
 *
 *   - catching a link up from the object store, a run received from another region and cut
 *     by the read budget is never sent as this region's own data (mesh) and is forwarded
 *     under its true origin (relay);
 *   - a run torn at the end of a sealed segment does not stop the worker;
 *   - forwarded batches are copies, so requests in flight pin only the bytes they send, and
 *     nothing more is read while the pipeline is full;
 *   - with the object store unreachable, the worker backs off naming it instead of skipping
 *     the offloaded history, then sends everything once the store is back;
 *   - a caught-up worker sends each new durable batch at once, while its earlier requests
 *     wait for the remote's answers (up to pipelineDepth), not one request per answer;
 *   - in the interval flush mode it sends acknowledged records before any fdatasync, each
 *     below the ship fence the log persisted first; records acknowledged without one in
 *     the fsync mode (acks=1) are made durable before they go.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { BufferPool } from '../../src/storage/buffer-pool.js';
import { PartitionFiles } from '../../src/storage/partition-files.js';
import { readShipFence } from '../../src/storage/ship-fence.js';
import { waitFor } from '../helpers/wait.js';
import {
  appendRun,
  dataBatch,
  fakeRemote,
  fakeTiered,
  keysOf,
  link,
  newWorker,
  receivedRecords,
  scratchLog,
  waitIdle,
  withLocalStart,
  WORKER_OPTIONS,
} from '../helpers/worker-harness.js';

const KiB = 1024;

for (const relay of [false, true]) {
  test(`${relay ? 'relay' : 'mesh'} link catching up from the object store: a received run cut by the read budget is never sent as this region's data`, async (t) => {
    const { log, track } = await scratchLog(t, 'meridian-worker-');
    // Region b's log: a run received from a (3 batches), then 2 batches produced in b.
    await appendRun(log, 'a', 0n, [dataBatch('a0', 1, 300), dataBatch('a1', 1, 300), dataBatch('a2', 1, 300)]);
    await log.appendAll([dataBatch('b0', 1, 300)]);
    await log.appendAll([dataBatch('b1', 1, 300)]);
    await log.flush();
    const hw = log.highWatermark;
    // All offloaded, local copies gone; requests of 1 KiB cut the 3-batch run.
    const fr = fakeRemote();
    const w = newWorker(withLocalStart(log, () => hw), fr.remote, link('c', relay), { tiered: fakeTiered(log, { reachable: true }), maxRequestBytes: 1024 });
    track(w).start();
    const s = await waitIdle(w, 'the link to catch up');
    assert.equal(s.replicatedOffset, String(hw - 1n));
    const expected = [
      ...(relay ? ['a0-0', 'a1-0', 'a2-0'].map((key) => ({ key, origin: 'a', hops: 'a>b' })) : []),
      { key: 'b0-0', origin: 'b', hops: 'b' },
      { key: 'b1-0', origin: 'b', hops: 'b' },
    ];
    assert.deepEqual(receivedRecords(fr.sent), expected);
  });
}

for (const relay of [false, true]) {
  test(`a run torn at the end of a sealed segment does not stop the ${relay ? 'relay' : 'mesh'} worker: it goes idle with everything replicated`, async (t) => {
    const { log, track } = await scratchLog(t, 'meridian-worker-');
    await log.appendAll([dataBatch('b-local-0')]);
    // What survived of a torn run: a marker describing 3 batches of region a, 2 of them.
    await appendRun(log, 'a', 0n, [dataBatch('a0'), dataBatch('a1')], { describe: 3 });
    await log.roll(); // the age rule, or a size roll after the restart
    await log.appendAll([dataBatch('b-local-1')]);
    await log.flush();
    const fr = fakeRemote();
    const w = newWorker(log, fr.remote, link('c', relay));
    track(w).start();
    const s = await waitIdle(w, 'the worker to replicate past the torn run');
    assert.deepEqual({ state: s.state, error: s.error, replicatedOffset: s.replicatedOffset, backlogRecords: s.backlogRecords, retries: s.retries }, { state: 'idle', error: null, replicatedOffset: String(log.highWatermark - 1n), backlogRecords: 0, retries: 0 });
    const expected = [
      { key: 'b-local-0-0', origin: 'b', hops: 'b' },
      ...(relay ? ['a0-0', 'a1-0'].map((key) => ({ key, origin: 'a', hops: 'a>b' })) : []),
      { key: 'b-local-1-0', origin: 'b', hops: 'b' },
    ];
    assert.deepEqual(receivedRecords(fr.sent), expected);
  });
}

test('forwarded batches that are a small part of their read window are copies: requests in flight pin only what they send', async (t) => {
  const { log, track } = await scratchLog(t, 'meridian-worker-');
  // A mesh region's log: large runs received from a, a small batch produced here after each.
  for (let i = 0; i < 8; i++) {
    await appendRun(log, 'a', BigInt(i * 10), Array.from({ length: 10 }, (_, j) => dataBatch(`a${i}-${j}`, 1, 90_000)));
    await log.appendAll([dataBatch(`b${i}`, 1, 50)]);
  }
  await log.flush();
  const fr = fakeRemote({ hold: true }); // a slow WAN: nothing is answered until the end
  const w = newWorker(log, fr.remote, link('c', false));
  track(w, () => fr.answerAll()).start();
  await waitFor('four requests in flight', () => fr.sent.length >= WORKER_OPTIONS.pipelineDepth, 10_000, 10);
  assert.equal(fr.sent.length, WORKER_OPTIONS.pipelineDepth);
  const forwarded = fr.sent.flatMap((s) => s.entries.flatMap((e) => e.batches.map((b) => b.batch)));
  assert.deepEqual(forwarded.flatMap(keysOf), ['b0-0', 'b1-0', 'b2-0', 'b3-0']);
  const sentBytes = forwarded.reduce((n, b) => n + b.length, 0);
  assert.equal(fr.grantedBytes, sentBytes, 'the in-flight budget holds exactly the forwarded bytes');
  // Each read window is ~1 MiB (mostly a received run); a forwarded batch must not keep its
  // window alive: its memory is its own copy (or a slot of Node's small-buffer pool).
  for (const b of forwarded) assert.ok(b.buffer.byteLength <= Math.max(Buffer.poolSize, b.length), `a ${b.length}-byte batch in flight pins ${b.buffer.byteLength} bytes`);
  const pinnedBytes = [...new Set(forwarded.map((b) => b.buffer))].reduce((n, ab) => n + ab.byteLength, 0);
  assert.ok(pinnedBytes < 64 * KiB, `requests in flight pin ${pinnedBytes} bytes to send ${sentBytes}`);

  // Nothing more was read while the pipeline was full, and the worker is live: one answer
  // frees one slot, and exactly one more request goes out.
  fr.answerNext();
  await waitFor('a fifth request once the first is answered', () => fr.sent.length > WORKER_OPTIONS.pipelineDepth, 10_000, 10);
  assert.equal(fr.sent.length, WORKER_OPTIONS.pipelineDepth + 1, 'one slot freed, one request more');
  const inFlight = fr.sent.slice(1).flatMap((s) => s.entries.flatMap((e) => e.batches.map((b) => b.batch)));
  assert.deepEqual(inFlight.flatMap(keysOf), ['b1-0', 'b2-0', 'b3-0', 'b4-0']);
  assert.equal(fr.grantedBytes, inFlight.reduce((n, b) => n + b.length, 0), 'the answered request gave its budget back');
});

test('pooled read buffers: a request\'s batches stay intact until it is answered, then their buffer is reused; every record arrives byte-identical', async (t) => {
  const { log, track } = await scratchLog(t, 'meridian-worker-');
  // Batches of ~40 KiB, one per request: each read takes a 64 KiB buffer from the pool.
  const appended = Array.from({ length: 12 }, (_, i) => dataBatch(`p${i}`, 1, 40 * KiB));
  for (const b of appended) await log.appendAll([Buffer.from(b)]);
  await log.flush();
  const pool = new BufferPool();
  const fr = fakeRemote({ hold: true, copy: true });
  const w = newWorker(log, fr.remote, link('c', false), { maxRequestBytes: 48 * KiB, pool });
  track(w, () => fr.answerAll()).start();
  const sentBatch = (i: number) => fr.sent[i].entries[0].batches[0].batch;
  await waitFor('four requests in flight', () => fr.sent.length >= WORKER_OPTIONS.pipelineDepth, 10_000, 10);
  const inFlight = fr.sent.map((_, i) => sentBatch(i));
  assert.equal(new Set(inFlight.map((b) => b.buffer)).size, WORKER_OPTIONS.pipelineDepth, 'each request in flight has a buffer of its own');

  // The first answer gives its buffer back; the next read takes it, while the three
  // requests still in flight keep their bytes.
  fr.answerNext();
  await waitFor('a fifth request once the first is answered', () => fr.sent.length > WORKER_OPTIONS.pipelineDepth, 10_000, 10);
  assert.equal(sentBatch(WORKER_OPTIONS.pipelineDepth).buffer, inFlight[0].buffer, 'the answered request\'s buffer was reused');
  for (let i = 1; i < WORKER_OPTIONS.pipelineDepth; i++) assert.ok(sentBatch(i).equals(fr.copies[i].entries[0].batches[0].batch), `request ${i} in flight kept its bytes`);

  fr.answerAll();
  const hold = setInterval(() => fr.answerAll(), 5);
  t.after(() => clearInterval(hold));
  await waitIdle(w, 'the worker to send everything');
  // What each request carried when it was sent (as a link writes it out) is exactly what was appended.
  const received = fr.copies.flatMap((s) => s.entries.flatMap((e) => e.batches.map((b) => b.batch)));
  assert.equal(received.length, appended.length);
  received.forEach((b, i) => {
    const want = Buffer.from(appended[i]);
    want.writeBigInt64BE(BigInt(i), 0); // the log stamped its offset
    assert.ok(b.equals(want), `batch ${i} differs from what was appended`);
  });
  assert.ok(pool.pooledBytes > 0, 'the buffers went back to the pool');
});

test('object store unreachable at startup, in-process: the worker backs off with a clear error, then replicates everything, offloaded part included', async (t) => {
  const { log, track } = await scratchLog(t, 'meridian-worker-');
  for (let i = 0; i < 10; i++) await log.appendAll([dataBatch(`r${i}`)]);
  await log.flush();
  const tiered = fakeTiered(log, { reachable: false });
  const fr = fakeRemote();
  const w = newWorker(withLocalStart(log, () => 6n), fr.remote, link('c', false), { tiered }); // 0..5 only in the store
  track(w).start();
  const down = await waitFor('the worker to back off', () => (w.status().retries >= 2 ? w.status() : undefined), 5000, 10);
  assert.equal(down.state, 'backing-off');
  assert.match(down.error ?? '', /object store .* not reachable/);
  assert.deepEqual(fr.sent, [], 'nothing is sent, nothing skipped, while the store is unknown');
  tiered.opts.reachable = true;
  const s = await waitIdle(w, 'the worker to catch up once the store is back');
  assert.deepEqual({ state: s.state, error: s.error, replicatedOffset: s.replicatedOffset }, { state: 'idle', error: null, replicatedOffset: '9' });
  assert.deepEqual(receivedRecords(fr.sent).map((r) => r.key), Array.from({ length: 10 }, (_, i) => `r${i}-0`));
});

test('a caught-up worker sends new data at once, without waiting for the answers of its requests in flight', async (t) => {
  const { log, track } = await scratchLog(t, 'meridian-worker-');
  await log.appendAll([dataBatch('live-0')]);
  await log.flush();
  const fr = fakeRemote({ hold: true }); // the remote takes its time (its fdatasync): nothing is answered yet
  const w = newWorker(log, fr.remote, link('c', false));
  track(w, () => fr.answerAll()).start();
  await waitFor('the first request', () => fr.sent.length === 1, 10_000, 5);
  // Live produce: each new durable batch goes out while the earlier requests are unanswered,
  // up to pipelineDepth in flight.
  for (let i = 1; i < WORKER_OPTIONS.pipelineDepth; i++) {
    await log.appendAll([dataBatch(`live-${i}`)]);
    await log.flush();
    await waitFor(`request ${i + 1} while ${i} are unanswered`, () => fr.sent.length === i + 1, 10_000, 5);
  }
  assert.deepEqual(
    fr.sent.map((s) => [s.continuesFrom, s.senderEndOffset]),
    Array.from({ length: WORKER_OPTIONS.pipelineDepth }, (_, i) => [BigInt(i - 1), BigInt(i)]),
  );
  // The pipeline is full: the next batch waits for an answer.
  await log.appendAll([dataBatch('live-full')]);
  await log.flush();
  fr.answerAll();
  await waitFor('the batch behind the full pipeline', () => fr.sent.length === WORKER_OPTIONS.pipelineDepth + 1, 10_000, 5);
  fr.answerAll();
  const s = await waitIdle(w, 'everything to be answered');
  assert.equal(s.replicatedOffset, String(WORKER_OPTIONS.pipelineDepth));
  assert.deepEqual(receivedRecords(fr.sent).map((r) => r.key), [...Array.from({ length: WORKER_OPTIONS.pipelineDepth }, (_, i) => `live-${i}-0`), 'live-full-0']);
});

test('interval mode: records go out before any fdatasync, each below the ship fence persisted first; in the fsync mode an acks=1 record is made durable before it goes', async (t) => {
  const { log, track } = await scratchLog(t, 'meridian-worker-', { flushMode: 'interval', flushIntervalMs: 600_000, bootId: 'boot-a' });
  const fenceAtSend: bigint[] = [];
  const fr = fakeRemote({ onSend: () => fenceAtSend.push(readShipFence(PartitionFiles.shipFence(log.dir))?.fence ?? -1n) });
  const w = newWorker(log, fr.remote, link('c', false));
  track(w).start();
  for (let i = 0; i < 20; i++) {
    await log.append(dataBatch(`i${i}`, 3), { sync: false });
    if (i % 5 === 4) await waitFor(`the records up to batch ${i} to be sent`, () => fr.sent.at(-1)?.senderEndOffset === BigInt(i * 3 + 2), 10_000, 5);
  }
  const s = await waitIdle(w, 'the link to catch up');
  assert.equal(s.replicatedOffset, '59');
  assert.equal(log.durableOffset, 0n, 'nothing was fdatasync\'d for the sends');
  assert.equal(log.stats().fsyncs, 0);
  assert.deepEqual(
    fr.sent.map((r, i) => fenceAtSend[i] > r.senderEndOffset),
    fr.sent.map(() => true),
    'every request was sent below a fence already on disk',
  );
  assert.deepEqual(receivedRecords(fr.sent).map((r) => r.key), Array.from({ length: 20 }, (_, i) => [0, 1, 2].map((k) => `i${i}-${k}`)).flat());

  const fsync = await scratchLog(t, 'meridian-worker-', { bootId: 'boot-a' });
  const durableAtSend: bigint[] = [];
  const fr2 = fakeRemote({ onSend: () => durableAtSend.push(fsync.log.durableOffset) });
  fsync.track(newWorker(fsync.log, fr2.remote, link('c', false))).start();
  await fsync.log.append(dataBatch('acks1', 2), { sync: false }); // acks=1: answered at the write
  await waitFor('the acks=1 record to be sent', () => fr2.sent.length === 1, 10_000, 5);
  assert.equal(durableAtSend[0], 2n, 'made durable before it went');
  assert.equal(fs.existsSync(PartitionFiles.shipFence(fsync.log.dir)), false, 'the fsync mode never writes a fence');
});
