/**
 * Failing storage under an idempotent acks=all KafkaJS producer: a data directory on a small
 * tmpfs that fills up, and injected EIO on write and on fdatasync. Whatever was
 * acknowledged is present exactly once, after space is freed and after a restart; nothing
 * is present twice; the broker stays up and serves reads throughout.
 *
 * Needs root (mount -t tmpfs), as CI and the developers' machines have: a missing
 * privilege fails the test, naming it.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { faultyIo } from '../helpers/faulty-io.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => void | Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function mountTmpfs(sizeBytes: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meridian-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`this test mounts a small tmpfs to fill it up and needs root (mount -t tmpfs): ${(err as Error).message}`);
  }
  cleanups.push(() => {
    execFileSync('umount', ['-l', dir]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

const value = (i: number) => `rec-${String(i).padStart(7, '0')}-`.padEnd(1000, 'x');

interface Outcome {
  acked: Set<string>;
  failed: Set<string>;
  errors: string[];
}

/** Sends batches of `perBatch` records, one request at a time, recording each outcome. */
async function produce(producer: Producer, topic: string, from: number, batches: number, perBatch: number, out: Outcome, stopWhen?: () => boolean): Promise<number> {
  let next = from;
  for (let b = 0; b < batches; b++) {
    const values = Array.from({ length: perBatch }, (_, i) => value(next + i));
    next += perBatch;
    try {
      await producer.send({ topic, acks: -1, messages: values.map((v) => ({ key: v.slice(0, 11), value: v })) });
      for (const v of values) out.acked.add(v);
    } catch (err) {
      for (const v of values) out.failed.add(v);
      out.errors.push(String((err as Error).message));
    }
    if (stopWhen?.()) break;
  }
  return next;
}

/** Every record of the topic's partition 0, by value, read with a fresh KafkaJS consumer. */
async function readAll(tb: TestBroker, topic: string): Promise<string[]> {
  const log = tb.broker.topics.partition(topic, 0)!;
  const end = Number(log.highWatermark);
  const kafka = new Kafka({ brokers: [tb.bootstrap], clientId: 'reader', logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `reader-${Math.random()}` });
  const got: string[] = [];
  let lastOffset = -1;
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value!.toString());
        lastOffset = Number(message.offset);
      },
    });
    await waitFor(`the consumer to reach offset ${end - 1}`, () => (end === 0 || lastOffset >= end - 1 ? true : undefined), 60_000);
  } finally {
    await consumer.disconnect();
  }
  return got;
}

function assertExactlyOnce(where: string, read: string[], out: Outcome): void {
  const counts = new Map<string, number>();
  for (const v of read) counts.set(v, (counts.get(v) ?? 0) + 1);
  const dups = [...counts].filter(([, n]) => n > 1);
  assert.equal(dups.length, 0, `${where}: ${dups.length} records present more than once (first: ${dups[0]?.[0].slice(0, 11)})`);
  const missing = [...out.acked].filter((v) => !counts.has(v));
  assert.equal(missing.length, 0, `${where}: ${missing.length} acknowledged records missing (first: ${missing[0]?.slice(0, 11)})`);
  for (const v of read) assert.ok(out.acked.has(v) || out.failed.has(v), `${where}: a record nobody sent: ${v.slice(0, 11)}`);
  // Per producer order is kept: values were sent in increasing order.
  const sorted = [...read].sort();
  assert.deepEqual(read, sorted, `${where}: records out of order`);
}

async function idempotentProducer(tb: TestBroker): Promise<Producer> {
  const kafka = new Kafka({ brokers: [tb.bootstrap], clientId: 'full-disk', logLevel: logLevel.NOTHING, retry: { retries: 2, initialRetryTime: 50, maxRetryTime: 200 } });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  return producer;
}

// With the shared journal (taking this one partition's writes: journalMinPartitions 1), the journal gives its space back when a write runs out of it
// (it retires its generations at once), so the consumer group's commits still find room.
for (const journal of [false, true]) test(`disk full${journal ? ' (with the shared journal)' : ''}: produce gets KAFKA_STORAGE_ERROR, reads go on, writes resume once space is freed, and every acknowledged record is there exactly once, also after a restart`, async () => {
  const mount = mountTmpfs(24 * 1024 * 1024);
  const dataDir = path.join(mount, 'data');
  const ballast = path.join(mount, 'ballast');
  fs.writeFileSync(ballast, Buffer.alloc(6 * 1024 * 1024, 1));
  let tb = await startBroker({ log: { segmentBytes: 1024 * 1024, retention: { ms: -1 }, flush: { journal, journalMinPartitions: 1 } }, topics: { autoCreate: true, defaultPartitions: 1 } }, { dataDir, cleanup: () => {} });
  cleanups.push(() => tb.cleanup());
  const producer = await idempotentProducer(tb);
  const out: Outcome = { acked: new Set(), failed: new Set(), errors: [] };
  const st = fs.statfsSync(mount);
  const free = st.bavail * st.bsize;

  // Fill the disk: stop after a few refused sends in a row.
  let refusedInARow = 0;
  let next = 0;
  for (let round = 0; round < 200 && refusedInARow < 3; round++) {
    const before = out.failed.size;
    next = await produce(producer, 'full', next, 1, 100, out);
    refusedInARow = out.failed.size > before ? refusedInARow + 1 : 0;
  }
  assert.ok(refusedInARow >= 3, `the disk never filled (${out.acked.size} records acknowledged)`);
  // The data gets the disk: the journal's second copy of recent writes is given back when a
  // write runs out of space (before, the disk filled at half the data).
  const ackedBytes = out.acked.size * value(0).length;
  assert.ok(ackedBytes >= 0.85 * free, `${ackedBytes} bytes acknowledged on a disk with ${free} free`);
  if (journal) assert.ok(tb.broker.topics.resourceStats().journalCheckpoints > 0, 'the journal gave its space back');
  assert.ok(out.errors.some((e) => /storage|disk/i.test(e)), `produce failed with a storage error, got: ${out.errors.at(-1)}`);
  const log = tb.broker.topics.partition('full', 0)!;
  assert.equal(log.offline, false, 'a full disk does not take the partition offline');
  assert.ok(log.stats().refusedOutOfSpace > 0);

  // The broker serves reads while the disk is full.
  const whileFull = await readAll(tb, 'full');
  assertExactlyOnce('while the disk is full', whileFull, out);

  // Free space: writes are accepted again without a restart.
  fs.rmSync(ballast);
  const ackedBefore = out.acked.size;
  next = await produce(producer, 'full', next, 20, 100, out);
  assert.equal(out.acked.size, ackedBefore + 2000, `after space was freed every send is acknowledged (errors: ${out.errors.slice(-2).join('; ')})`);
  await producer.disconnect();
  assertExactlyOnce('after space was freed', await readAll(tb, 'full'), out);

  tb = await tb.restart();
  assertExactlyOnce('after a restart', await readAll(tb, 'full'), out);
});


// With the shared journal (log.flush.journal) the fdatasync that fails is the journal's: it
// goes offline, and the log, whose segment fdatasync fails too, goes offline with it. A
// journaled round's write goes through writevSync, a write that fails there the same way.
for (const [which, journal] of [['write', false], ['write', true], ['fdatasync', false], ['fdatasync', true]] as const) {
  test(`EIO on ${which}${journal ? ' (with the shared journal)' : ''}: the partition goes offline with KAFKA_STORAGE_ERROR, the broker stays up, and after a restart every acknowledged record is there exactly once`, async () => {
    const io = faultyIo(which);
    const overrides = { log: { segmentBytes: 1024 * 1024, retention: { ms: -1 }, flush: { journal, journalMinPartitions: 1 } }, topics: { autoCreate: true, defaultPartitions: 1 } };
    let tb = await startBroker(overrides, undefined, { logIo: io });
    cleanups.push(() => tb.cleanup());
    const producer = await idempotentProducer(tb);
    const out: Outcome = { acked: new Set(), failed: new Set(), errors: [] };
    let next = await produce(producer, 'eio', 0, 10, 50, out);
    assert.equal(out.failed.size, 0);
    io.failing = true;
    next = await produce(producer, 'eio', next, 3, 50, out);
    assert.equal(out.failed.size, 150, 'every send after the disk failed is refused');
    assert.ok(out.errors.every((e) => /storage|disk/i.test(e)), `refused with a storage error: ${out.errors[0]}`);
    const log = tb.broker.topics.partition('eio', 0)!;
    assert.equal(log.offline, true, 'the partition is offline');
    // The broker is up and serves reads of what it holds.
    assertExactlyOnce('while offline', await readAll(tb, 'eio'), out);
    await producer.disconnect().catch(() => {});

    io.failing = false;
    tb = await tb.restart();
    const again = await idempotentProducer(tb);
    next = await produce(again, 'eio', next, 5, 50, out);
    await again.disconnect();
    assert.equal(out.acked.size, 750, 'after the restart every send is acknowledged');
    assertExactlyOnce('after a restart', await readAll(tb, 'eio'), out);
  });
}
