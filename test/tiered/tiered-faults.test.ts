/**
 * Tiered storage under faults (issue 4, "Faults" and "Retention spans both tiers"), with real
 * servers and real clients only: s3rver and the directory backend as the object store,
 * KafkaJS as producer, consumer and admin, and a broker that is either in this process or a
 * child process we kill -9.
 *
 * 1. The object store goes away mid-offload and comes back: the offloader reports the failure
 *    and retries, nothing that is not in the manifest is deleted locally, every offset since
 *    the last successful offload stays readable, and once the store is back the offload
 *    completes and a full read from the beginning is complete and byte-identical.
 * 2. The broker is kill -9'd at random moments while it offloads, five times: after each
 *    crash the manifest names only complete, verified objects, is contiguous and only ever
 *    grows; every acknowledged record is read back exactly once, in order, byte-identical;
 *    and the offload completes after each restart.
 * 3. Retention spans both tiers: expired remote segments leave the manifest and the bucket,
 *    ListOffsets earliest moves forward, and ListOffsets by timestamp answers correctly for
 *    offsets that only the bucket holds.
 * 4. Both faults' neighbour: segments expire while the store is down; once it is back,
 *    exactly those leave the manifest, however many retention attempts failed meanwhile.
 *
 * Expiry needs record timestamps older than retention.ms; the producer sets them (KafkaJS
 * `timestamp`) to expire minutes from now, and the tests run retention as of a later time
 * they pick (`TieredStorage.tick(now)`), so no test waits out a real retention period or
 * races one. A check that nothing happened while the store was down first counts the failed
 * store calls that show the offloader or retention really tried.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { Kafka, logLevel } from 'kafkajs';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { BlobStoreError, type BlobStore } from '../../src/tiered/blobstore/blob-store.js';
import { FsBlobStore } from '../../src/tiered/blobstore/fs-blob-store.js';
import { loadManifest, remoteEndOffset, type PartitionManifest } from '../../src/tiered/manifest.js';
import { ObjectKeys, type PartitionRef } from '../../src/tiered/object-keys.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { countingStore } from '../helpers/counting-store.js';
import { collectMessages } from '../helpers/kafkajs-collect.js';
import { startRestartableS3rver, startS3rver } from '../helpers/object-stores.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Small segments, upload on seal, no local copy kept once offloaded, no deletion lag. */
const TIERED: BrokerConfigInput = {
  log: { segmentBytes: 64 * 1024, retention: { ms: -1 } },
  groups: { initialRebalanceDelayMs: 0 },
  tiered: {
    enabled: true,
    offload: { onSeal: true },
    localRetention: { bytes: 0 },
    deletionLagMs: 0,
    checkIntervalMs: 50,
    cache: { bytes: 4 * 1024 * 1024, blockBytes: 64 * 1024 },
  },
};

interface Rec {
  key: string;
  value: Buffer;
  timestamp?: number;
}

interface Got {
  offset: bigint;
  key: string;
  value: Buffer;
  timestamp: number;
}

/** `n` records tagged `tag`: varied sizes, contents derived from the key. */
function records(tag: string, from: number, n: number, timestampOf?: (i: number) => number): Rec[] {
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    const key = `${tag}-${i}`;
    const value = Buffer.concat([Buffer.from(`${key}:`), Buffer.alloc(150 + ((i * 37) % 650), (i * 31 + tag.length) % 251)]);
    return timestampOf ? { key, value, timestamp: timestampOf(i) } : { key, value };
  });
}

/** `retries: 0` where a failure must surface at once (a producer racing a kill -9). */
const kafkaAt = (bootstrap: string, clientId: string, retries?: number) =>
  new Kafka({ brokers: [bootstrap], clientId, logLevel: logLevel.NOTHING, ...(retries === undefined ? {} : { retry: { retries } }) });

async function createTopic(bootstrap: string, topic: string, configEntries: Array<{ name: string; value: string }> = []): Promise<void> {
  const admin = kafkaAt(bootstrap, 'faults-admin').admin();
  await admin.connect();
  try {
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1, configEntries }], waitForLeaders: true }), true);
  } finally {
    await admin.disconnect();
  }
}

/** Sends in batches of 100 with acks=-1; resolves once every one is acknowledged. */
async function produce(bootstrap: string, topic: string, recs: Rec[]): Promise<void> {
  const producer = kafkaAt(bootstrap, 'faults-producer').producer();
  await producer.connect();
  try {
    for (let i = 0; i < recs.length; i += 100) {
      const batch = recs.slice(i, i + 100);
      await producer.send({ topic, acks: -1, messages: batch.map((r) => ({ key: r.key, value: r.value, timestamp: r.timestamp === undefined ? undefined : String(r.timestamp) })) });
    }
  } finally {
    await producer.disconnect();
  }
}

/**
 * Reads partition 0 with a fresh consumer group until `count` records arrived and on to the
 * end of the partition, so a duplicate or a stray record shows too. `from` starts the group
 * at that offset (committed before the consumer joins) instead of the beginning.
 */
async function consume(bootstrap: string, topic: string, count: number, from?: bigint): Promise<Got[]> {
  const kafka = kafkaAt(bootstrap, 'faults-consumer');
  const groupId = `faults-${randomBytes(4).toString('hex')}`;
  if (from !== undefined) {
    const admin = kafka.admin();
    await admin.connect();
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: String(from) }] });
    await admin.disconnect();
  }
  // A short long-poll: disconnect waits for the fetch in flight.
  const got = await collectMessages(kafka, { groupId, topics: [topic], count, consumer: { maxBytesPerPartition: 256 * 1024, maxWaitTimeInMs: 100 } });
  return got.map((m) => ({ offset: BigInt(m.offset), key: m.key!.toString(), value: Buffer.from(m.value!), timestamp: Number(m.timestamp) }));
}

/** Exactly `expected`, in order, at consecutive offsets from `first`, byte for byte. */
function assertExactly(got: Got[], expected: Rec[], first: bigint, what: string): void {
  assert.equal(got.length, expected.length, `${what}: every record exactly once (got ${got.length}, want ${expected.length})`);
  for (let i = 0; i < got.length; i++) {
    if (got[i].offset !== first + BigInt(i) || got[i].key !== expected[i].key || !got[i].value.equals(expected[i].value)) {
      assert.fail(`${what}: record ${i} is offset ${got[i].offset} key ${got[i].key} (${got[i].value.length} bytes); want offset ${first + BigInt(i)} key ${expected[i].key} (${expected[i].value.length} bytes), byte-identical`);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const signal = AbortSignal.timeout(10 * 60_000);

/**
 * The test's own look into the bucket retries what the store calls retriable, as the
 * broker does: s3rver answers an occasional HTTP 500 to a listing just after it restarts,
 * and that says nothing about what the broker left in the bucket.
 */
async function retrying<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (attempt >= 5 || !(err instanceof BlobStoreError) || err.kind !== 'retriable') throw err;
      await sleep(200 * attempt);
    }
  }
}

async function listAll(store: BlobStore, prefix: string): Promise<Array<{ key: string; size: number }>> {
  const out: Array<{ key: string; size: number }> = [];
  let token: string | undefined;
  do {
    const page = await retrying(() => store.list(prefix, { signal, continuationToken: token }));
    out.push(...page.keys);
    token = page.nextToken;
  } while (token);
  return out;
}

async function partitionRef(store: BlobStore, topic: string): Promise<PartitionRef> {
  const d = JSON.parse((await retrying(() => store.get(ObjectKeys.topicDescriptor(topic), { signal }))).toString('utf8')) as { id: string };
  return { topic, topicId: d.id, partition: 0 };
}

/**
 * What the bucket says about partition 0, checked the way a restoring broker depends on it:
 * the manifest is one contiguous run, and every object it names is where its key layout says,
 * complete (exact size) and intact (the data's CRC-32C is the one recorded at seal). Returns
 * the manifest (null before the first commit) and the segment objects no manifest names.
 */
async function inspectBucket(store: BlobStore, ref: PartitionRef): Promise<{ manifest: PartitionManifest | null; orphans: string[] }> {
  const manifest = await retrying(() => loadManifest(store, ref, signal));
  const objects = await listAll(store, ObjectKeys.segmentsPrefix(ref));
  const named = new Set<string>();
  for (const [i, s] of (manifest?.segments ?? []).entries()) {
    const where = `manifest v${manifest!.version} segment ${i} [${s.baseOffset}, ${s.nextOffset})`;
    if (i === 0) assert.equal(s.baseOffset, manifest!.startOffset, `${where}: the run starts at the manifest's start offset`);
    else assert.equal(s.baseOffset, manifest!.segments[i - 1].nextOffset, `${where}: contiguous with the one before`);
    assert.ok(s.nextOffset > s.baseOffset, `${where}: not empty`);
    assert.equal(s.dataKey, ObjectKeys.segmentData(ref, s.baseOffset, s.attemptId), `${where}: data key follows the layout`);
    assert.equal(s.indexKey, ObjectKeys.segmentIndex(ref, s.baseOffset, s.attemptId), `${where}: index key follows the layout`);
    const data = await retrying(() => store.head(s.dataKey, { signal }));
    const index = await store.head(s.indexKey, { signal });
    assert.ok(data !== null, `${where}: data object ${s.dataKey} exists (no orphaned manifest entry)`);
    assert.ok(index !== null, `${where}: index object ${s.indexKey} exists (no orphaned manifest entry)`);
    assert.equal(data.size, s.sizeBytes, `${where}: data object complete`);
    assert.equal(index.size, s.indexSizeBytes, `${where}: index object complete`);
    assert.equal(crc32c(await store.get(s.dataKey, { signal })) >>> 0, s.dataCrc32c >>> 0, `${where}: data object intact`);
    named.add(s.dataKey).add(s.indexKey);
  }
  return { manifest, orphans: objects.map((o) => o.key).filter((k) => !named.has(k)) };
}

/** How far ahead of the wall clock the "old" records of the retention tests expire. */
const EXPIRES_IN = 10 * 60_000;

/**
 * Runs tiered retention as of `now` (a time the test picks, past some records' expiry) until
 * the remote tier starts at `start`. Each run is asynchronous and skipped while another is
 * running, hence the repeat.
 */
async function expireAsOf(tb: TestBroker, topic: string, now: number, start: bigint): Promise<void> {
  await waitFor(
    `the remote tier of ${topic} to start at ${start} after retention as of ${new Date(now).toISOString()}`,
    () => {
      tb.broker.tiered!.tick(now);
      return statusOf(tb, topic)!.remoteStartOffset === String(start);
    },
    30_000,
    50,
    () => JSON.stringify(statusOf(tb, topic)),
  );
}

const statusOf = (tb: TestBroker, topic: string) => tb.broker.tiered!.status().find((s) => s.topic === topic && s.partition === 0);

// ---------------------------------------------------------------------------------------

test('object store down mid-offload: offload backs off, nothing unconfirmed is deleted, local data stays readable; once back, the offload completes and everything reads back', async (t) => {
  const s3 = await startRestartableS3rver();
  cleanups.push(() => s3.stop());
  const counted = countingStore(s3.store);
  const tb = await startBroker(TIERED, undefined, { blobStore: counted.store });
  cleanups.push(() => tb.cleanup());
  const topic = 'outage';
  await createTopic(tb.bootstrap, topic);
  const log = tb.broker.topics.partition(topic, 0)!;
  const status = () => {
    const st = statusOf(tb, topic);
    assert.ok(st, 'the topic is tiered');
    return st;
  };
  await waitFor('the topic to be attached to tiered storage', () => statusOf(tb, topic) !== undefined);

  // Sampled throughout: the local log never starts past what the manifest holds (nothing
  // unconfirmed deleted), and while the store is down no local segment disappears at all.
  const violations: string[] = [];
  let held: Set<bigint> | null = null;
  const monitor = setInterval(() => {
    const st = statusOf(tb, topic);
    if (!st) return;
    const segs = log.segments();
    if (segs[0].baseOffset > BigInt(st.remoteEndOffset)) violations.push(`local log starts at ${segs[0].baseOffset} but the manifest ends at ${st.remoteEndOffset}`);
    if (held) {
      const now = new Set(segs.map((s) => s.baseOffset));
      for (const b of held) if (!now.has(b)) violations.push(`local segment ${b} deleted while the store was down`);
      held = now;
    }
  }, 5);
  cleanups.push(() => clearInterval(monitor));

  const sent: Rec[] = records('before', 0, 800);
  await produce(tb.bootstrap, topic, sent);
  await waitFor('the first segments offloaded', () => status().remoteSegments >= 3);

  // Keep producing, and take the store away while an upload is in flight.
  const during = records('during', 0, 1500);
  const producing = produce(tb.bootstrap, topic, during);
  await waitFor('an upload in flight', () => status().copying !== null, 20_000, 1);
  const atStop = status();
  await s3.stopServer();
  t.diagnostic(`store stopped while uploading ${atStop.copying}; manifest then ended at ${atStop.remoteEndOffset}`);
  await producing;
  sent.push(...during);

  // The offloader notices and reports it. (Its state alternates between 'backing-off' and
  // 'uploading' as retries start; lastError stays until an upload succeeds.)
  await waitFor('the offload to report the failure', () => status().lastError !== null, 30_000, 2, () => JSON.stringify(status()));
  const failing = status();
  assert.notEqual(failing.state, 'idle', 'not idle while its uploads fail');
  assert.match(failing.lastError!, /ECONNREFUSED|unavailable|socket|ECONNRESET/i, 'lastError says why');
  // Local copies the manifest does hold may still go (their deletion was already due);
  // after that, not one more.
  await waitFor('due local deletions to finish', () => log.logStartOffset === BigInt(status().remoteEndOffset));
  const remoteEnd = BigInt(status().remoteEndOffset);
  const manifestVersion = status().manifestVersion;
  held = new Set(log.segments().map((s) => s.baseOffset));
  const segmentsAtOutage = log.segments().length;

  // More data while the store is down: more segments seal and cannot be offloaded.
  const downFrom = BigInt(sent.length);
  const down = records('down', 0, 1500);
  await produce(tb.bootstrap, topic, down);
  sent.push(...down);
  // The offloader keeps trying with the new segments sealed: three more uploads fail.
  const failedAtDown = counted.counts('put').failed;
  await waitFor('three more failed uploads with the store still gone', () => counted.counts('put').failed >= failedAtDown + 3, 30_000, 10);
  const st = status();
  assert.ok(st.lastError, 'still failing while the store is down');
  assert.notEqual(st.state, 'idle');
  assert.equal(BigInt(st.remoteEndOffset), remoteEnd, 'nothing committed while the store is down');
  assert.equal(st.manifestVersion, manifestVersion);
  const sealedWhileDown = log.segments().filter((s) => s.sealed && s.baseOffset >= downFrom).length;
  assert.ok(sealedWhileDown >= 10, `segments sealed while the store was down (${sealedWhileDown}) wait for it`);
  assert.ok(log.segments().length >= segmentsAtOutage + 10, 'the local log only grew');
  assert.equal(log.logStartOffset, remoteEnd, 'every offset since the last successful offload is still local');

  // Consumers keep reading. What only the bucket holds cannot be read while the bucket is
  // gone (the local copies of offloaded segments are deleted on purpose, localRetention 0,
  // so that the deletion rule is pressing the whole time); so the reader starts where the
  // manifest ends, i.e. exactly the range that exists only on local disk, and must get all
  // of it, byte-identical.
  const localOnly = sent.slice(Number(remoteEnd));
  assert.ok(localOnly.length > 1500);
  assertExactly(await consume(tb.bootstrap, topic, localOnly.length, remoteEnd), localOnly, remoteEnd, 'local range while the store is down');
  assert.ok(status().lastError, 'the store was down for the whole read');

  assert.deepEqual(violations, [], 'while the store was down: no local segment deleted, none unconfirmed before');

  // The store comes back with the same port and the same objects.
  held = null;
  await s3.startServer();
  const back = Date.now();
  await waitFor(
    'the offload to resume and complete, and the local copies to be deleted',
    () => {
      const s = status();
      const segs = log.segments();
      return s.lastError === null && s.copying === null && segs.length === 1 && BigInt(s.remoteEndOffset) === segs[0].baseOffset;
    },
    30_000,
    20,
    () => JSON.stringify({ status: status(), local: log.segments().map((s) => [String(s.baseOffset), String(s.nextOffset), s.sealed]) }),
  );
  t.diagnostic(`offload completed ${Date.now() - back} ms after the store returned`);
  clearInterval(monitor);
  assert.deepEqual(violations, [], 'no local segment deleted before the manifest held it');

  const final = status();
  assert.ok(BigInt(final.remoteEndOffset) > remoteEnd + 1000n);
  const { manifest } = await inspectBucket(s3.store, await partitionRef(s3.store, topic));
  assert.ok(manifest);
  assert.equal(manifest.startOffset, 0n);
  assert.equal(remoteEndOffset(manifest), BigInt(final.remoteEndOffset), 'the bucket agrees with the broker');
  assertExactly(await consume(tb.bootstrap, topic, sent.length), sent, 0n, 'full read after the store returned');
});

// ---------------------------------------------------------------------------------------

const CHILD = fileURLToPath(new URL('../fixtures/tiered-broker.ts', import.meta.url));

interface ChildStatus {
  remoteEndOffset: string;
  lastError: string | null;
  copying: string | null;
  local: Array<{ baseOffset: string; nextOffset: string; sealed: boolean }>;
}

/** A broker in a child process (see test/fixtures/tiered-broker.ts). */
class ChildBroker {
  readonly proc: ChildProcess;
  readonly port: number;
  readonly bootstrap: string;
  /** 'segment uploaded' log lines seen so far from this incarnation. */
  uploads = 0;
  #waiters: Array<(s: ChildStatus[]) => void> = [];
  readonly exited: Promise<void>;

  private constructor(proc: ChildProcess, port: number) {
    this.proc = proc;
    this.port = port;
    this.bootstrap = `127.0.0.1:${port}`;
    this.exited = proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : new Promise((r) => proc.once('exit', () => r()));
  }

  static start(overrides: BrokerConfigInput): Promise<ChildBroker> {
    const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(overrides)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise((resolve, reject) => {
      let broker: ChildBroker | undefined;
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`child broker did not start within 30 s:\n${stderr}`));
      }, 30_000);
      proc.once('exit', (code, sig) => {
        if (broker) return;
        clearTimeout(timer);
        reject(new Error(`child broker exited (${code ?? sig}) before listening:\n${stderr}`));
      });
      readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
        if (line.startsWith('LISTENING ')) {
          clearTimeout(timer);
          broker = new ChildBroker(proc, Number(line.slice(10)));
          resolve(broker);
        } else if (line.startsWith('STATUS ')) {
          const s = JSON.parse(line.slice(7)) as ChildStatus[];
          if (broker) for (const w of broker.#waiters.splice(0)) w(s);
        } else if (broker && line.startsWith('{') && line.includes('"segment uploaded"')) {
          broker.uploads++;
        }
      });
    });
  }

  status(): Promise<ChildStatus> {
    return new Promise((resolve) => {
      this.#waiters.push((all) => resolve(all[0]));
      this.proc.stdin!.write('status\n');
    });
  }

  async kill9(): Promise<void> {
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
    assert.equal(this.proc.exitCode, 0, 'a clean shutdown');
  }
}

test('broker kill -9 mid-offload, five times: no orphaned manifest entry, no lost or duplicated record, offload completes after each restart', async (t) => {
  const ROUNDS = 5;
  const seed = randomBytes(4).readUInt32BE();
  t.diagnostic(`seed ${seed}`);
  let state = seed || 1;
  const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32); // reproducible from the seed

  const dirs = tmpDir('meridian-tiered-crash-');
  cleanups.push(dirs.cleanup);
  const storeDir = path.join(dirs.dir, 'bucket');
  const overrides: BrokerConfigInput = {
    ...TIERED,
    region: 'crash-region',
    dataDir: path.join(dirs.dir, 'data'),
    logging: { level: 'info' },
    kafka: { host: '127.0.0.1', port: 0 },
    topics: { autoCreate: false },
    tiered: { ...TIERED.tiered, store: { type: 'fs', dir: storeDir } },
  };
  // The broker's store is `<dir>/<prefix>/<region>` (tiered-config.ts); this one reads the
  // same objects, through the same code a restoring broker would use.
  const store = new FsBlobStore({ dir: path.join(storeDir, 'crash-region') });
  cleanups.push(() => store.close());
  const topic = 'crashy';

  let broker = await ChildBroker.start(overrides);
  cleanups.push(() => broker.kill9());
  await createTopic(broker.bootstrap, topic);
  const ref = await partitionRef(store, topic);

  /** The partition as every restart so far has read it back: it only ever grows. */
  let log: Rec[] = [];
  /** The batch whose send failed at the kill: never acknowledged, so it may or may not be there. */
  let pending: Rec[] = [];
  let lastManifest: PartitionManifest | null = null;
  const everOrphaned = new Set<string>();

  /** The manifest only grows: a later one starts with every segment an earlier one listed. */
  const checkManifest = (m: PartitionManifest | null, when: string) => {
    if (lastManifest) {
      assert.ok(m, `${when}: the manifest is still there`);
      assert.ok(m.version >= lastManifest.version, `${when}: manifest version ${m.version} >= ${lastManifest.version}`);
      assert.deepEqual(m.segments.slice(0, lastManifest.segments.length), lastManifest.segments, `${when}: no segment the manifest held is lost or replaced`);
    }
    for (const s of m?.segments ?? []) {
      assert.equal(everOrphaned.has(s.dataKey) || everOrphaned.has(s.indexKey), false, `${when}: ${s.dataKey} was left by an interrupted attempt and must never be referenced`);
    }
    lastManifest = m;
  };

  for (let round = 0; round <= ROUNDS; round++) {
    if (round > 0) {
      // After the restart: the offload catches up and the local copies go.
      await waitFor(
        `round ${round}: the offload to complete after the restart`,
        async () => {
          const s = await broker.status();
          return s.lastError === null && s.copying === null && s.local.length === 1 && s.remoteEndOffset === s.local[0].baseOffset;
        },
        30_000,
        50,
        () => '',
      ).catch(async (err: Error) => assert.fail(`${err.message}: ${JSON.stringify(await broker.status())}`));
      const s = await broker.status();
      const after = await inspectBucket(store, ref);
      checkManifest(after.manifest, `round ${round}, after restart`);
      assert.equal(String(after.manifest ? remoteEndOffset(after.manifest) : 0n), s.remoteEndOffset, 'the bucket agrees with the broker');
      // Everything acknowledged, exactly once, in order, byte-identical.
      const admin = kafkaAt(broker.bootstrap, 'faults-admin').admin();
      await admin.connect();
      const [{ high, low }] = await admin.fetchTopicOffsets(topic);
      await admin.disconnect();
      assert.equal(low, '0');
      const got = await consume(broker.bootstrap, topic, Number(high));
      // The batch in flight at the kill was never acknowledged: it is there whole or not at all.
      const present = got.slice(log.length);
      assert.ok(present.length === 0 || present.length === pending.length, `round ${round}: the unacknowledged batch is all there or absent (${present.length} of ${pending.length})`);
      assertExactly(got, [...log, ...pending.slice(0, present.length)], 0n, `round ${round}: full read after restart`);
      log = [...log, ...pending.slice(0, present.length)];
      t.diagnostic(`round ${round}: ${got.length} records, ${after.manifest?.segments.length ?? 0} remote segments, unacked batch ${present.length ? 'kept' : 'gone'}`);
      if (round === ROUNDS) break;
    }

    // Produce (acks=-1, no client retries, so an acknowledgement means one copy) and kill -9
    // the broker at a random moment while it offloads.
    const producer = kafkaAt(broker.bootstrap, 'faults-producer', 0).producer({ retry: { retries: 0 } });
    await producer.connect();
    const uploadsAtStart = broker.uploads;
    const killAfterUploads = 2 + Math.floor(random() * 8);
    const extraDelayMs = Math.floor(random() * 40);
    let killed = false;
    pending = [];
    const producing = (async () => {
      for (let i = 0; !killed && i < 20_000; i += 50) {
        const batch = records(`r${round}`, i, 50);
        try {
          await producer.send({ topic, acks: -1, messages: batch.map((r) => ({ key: r.key, value: r.value })) });
          log.push(...batch);
        } catch {
          pending = batch;
          return;
        }
      }
    })();
    await waitFor(`round ${round}: uploads under way`, () => broker.uploads - uploadsAtStart >= killAfterUploads, 30_000, 1);
    await sleep(extraDelayMs);
    await broker.kill9();
    killed = true;
    await producing;
    await producer.disconnect().catch(() => {});
    t.diagnostic(`round ${round}: kill -9 after ${broker.uploads - uploadsAtStart} uploads + ${extraDelayMs} ms; ${log.length} records acknowledged so far`);

    // The bucket as the crash left it: only complete objects named, one contiguous run.
    const crashed = await inspectBucket(store, ref);
    checkManifest(crashed.manifest, `round ${round}, after kill -9`);
    for (const k of crashed.orphans) everOrphaned.add(k);
    const end = crashed.manifest ? remoteEndOffset(crashed.manifest) : 0n;
    t.diagnostic(`round ${round}: at the crash the manifest ended at ${end} of ${log.length + pending.length} offsets; ${crashed.orphans.length} objects of interrupted attempts`);

    broker = await ChildBroker.start(overrides);
  }
  await broker.stop();
  t.diagnostic(`${everOrphaned.size} objects of interrupted attempts seen over ${ROUNDS} crashes`);
});

// ---------------------------------------------------------------------------------------

test('retention spans both tiers: expired remote segments leave the manifest and the bucket, earliest moves forward, ListOffsets by time answers from the bucket', async (t) => {
  const s3 = await startS3rver();
  cleanups.push(() => s3.stop());
  const tb = await startBroker(TIERED, undefined, { blobStore: s3.store });
  cleanups.push(() => tb.cleanup());
  const topic = 'expiring';
  const HOUR = 3_600_000;
  await createTopic(tb.bootstrap, topic, [{ name: 'retention.ms', value: String(HOUR) }]);
  await waitFor('the topic to be attached to tiered storage', () => statusOf(tb, topic) !== undefined);
  const log = tb.broker.topics.partition(topic, 0)!;
  const admin = kafkaAt(tb.bootstrap, 'faults-admin').admin();
  await admin.connect();
  cleanups.push(() => admin.disconnect());
  const offsets = async () => (await admin.fetchTopicOffsets(topic))[0];
  const byTime = async (ts: number) => BigInt((await admin.fetchTopicOffsetsByTimestamp(topic, ts))[0].offset);

  // "old" records fall out of the hour's retention ten minutes from now, "recent" ones half an
  // hour later. Retention runs on a timer with the wall clock, so nothing expires during the
  // test until it runs retention itself as of `later`, when only the old records have expired.
  const t0 = Date.now();
  const old = records('old', 0, 1000, (i) => t0 - HOUR + EXPIRES_IN + 2 * i);
  const recent = records('recent', 0, 1000, (i) => t0 - 30 * 60_000 + 100 * i);
  const later = t0 + EXPIRES_IN + 60_000;
  const N = BigInt(old.length);
  await produce(tb.bootstrap, topic, old);
  await tb.broker.tiered!.offloadNow(topic); // also rolls: no segment mixes old and recent
  await produce(tb.bootstrap, topic, recent);
  await tb.broker.tiered!.offloadNow(topic);
  await waitFor('local copies deleted', () => log.segments().length === 1);
  assert.equal(log.logStartOffset, N + BigInt(recent.length), 'everything is remote-only');

  // Before the expiry: both runs are in the bucket; earliest is 0; time lookups in the
  // remote-only range find the first record at or after the time.
  const ref = await partitionRef(s3.store, topic);
  const before = await inspectBucket(s3.store, ref);
  assert.ok(before.manifest);
  assert.equal(before.manifest.startOffset, 0n);
  assert.equal(remoteEndOffset(before.manifest), N + BigInt(recent.length));
  const oldSegments = before.manifest.segments.filter((s) => s.baseOffset < N);
  const recentSegments = before.manifest.segments.filter((s) => s.baseOffset >= N);
  assert.ok(oldSegments.length >= 5 && recentSegments.length >= 5, `${oldSegments.length} old and ${recentSegments.length} recent remote segments`);
  assert.equal(oldSegments[oldSegments.length - 1].nextOffset, N, 'old and recent records in separate segments');
  assert.deepEqual(await offsets(), { partition: 0, offset: String(N + BigInt(recent.length)), high: String(N + BigInt(recent.length)), low: '0' });
  for (const i of [0, 1, 333, 999]) {
    assert.equal(await byTime(old[i].timestamp!), BigInt(i), `old record ${i} by its exact timestamp`);
  }

  // The old segments expire: the manifest drops them, then their objects go.
  await expireAsOf(tb, topic, later, N);
  await waitFor('their objects to be deleted', async () => (await s3.store.head(oldSegments[oldSegments.length - 1].indexKey, { signal })) === null);
  const afterExpiry = await inspectBucket(s3.store, ref);
  assert.ok(afterExpiry.manifest);
  assert.equal(afterExpiry.manifest.startOffset, N);
  assert.deepEqual(afterExpiry.manifest.segments, recentSegments, 'exactly the unexpired segments remain, unchanged');
  for (const s of oldSegments) {
    assert.equal(await s3.store.head(s.dataKey, { signal }), null, `${s.dataKey} deleted`);
    assert.equal(await s3.store.head(s.indexKey, { signal }), null, `${s.indexKey} deleted`);
  }
  assert.deepEqual(afterExpiry.orphans, [], 'nothing else left in the bucket');

  // Earliest moved forward; time lookups land in the remote-only recent run.
  assert.equal((await offsets()).low, String(N), 'ListOffsets earliest moved past the expired segments');
  for (const i of [0, 1, 137, 500, 999]) {
    assert.equal(await byTime(recent[i].timestamp!), N + BigInt(i), `recent record ${i} by its exact timestamp`);
    assert.equal(await byTime(recent[i].timestamp! - 50), N + BigInt(i), `recent record ${i} by a time just before it`);
  }
  assert.equal(await byTime(old[500].timestamp!), N, 'a time in the expired range answers the first retained record');
  assert.equal(await byTime(recent[999].timestamp! + 1), N + BigInt(recent.length), 'a time after every record: none (KafkaJS shows the high watermark)');

  // A consumer from the beginning gets exactly the retained records, from the bucket.
  const got = await consume(tb.bootstrap, topic, recent.length);
  assertExactly(got, recent, N, 'retained records');
  assert.deepEqual(got.map((g) => g.timestamp), recent.map((r) => r.timestamp), 'timestamps kept');
});

// ---------------------------------------------------------------------------------------

test('retention while the object store is down: once it is back, exactly the expired segments leave the manifest', async (t) => {
  const s3 = await startRestartableS3rver();
  cleanups.push(() => s3.stop());
  const counted = countingStore(s3.store);
  const tb = await startBroker(TIERED, undefined, { blobStore: counted.store });
  cleanups.push(() => tb.cleanup());
  const topic = 'expiring-in-outage';
  const HOUR = 3_600_000;
  await createTopic(tb.bootstrap, topic, [{ name: 'retention.ms', value: String(HOUR) }]);
  await waitFor('the topic to be attached to tiered storage', () => statusOf(tb, topic) !== undefined);
  const log = tb.broker.topics.partition(topic, 0)!;

  // As above: as of `later` the "old" records have expired, the "recent" ones have not.
  const t0 = Date.now();
  const old = records('old', 0, 600, (i) => t0 - HOUR + EXPIRES_IN + i);
  const recent = records('recent', 0, 1000, (i) => t0 - 30 * 60_000 + 100 * i);
  const later = t0 + EXPIRES_IN + 60_000;
  const N = BigInt(old.length);
  await produce(tb.bootstrap, topic, old);
  await tb.broker.tiered!.offloadNow(topic);
  await produce(tb.bootstrap, topic, recent);
  await tb.broker.tiered!.offloadNow(topic);
  await waitFor('local copies deleted', () => log.segments().length === 1);
  const ref = await partitionRef(s3.store, topic);
  const before = (await inspectBucket(s3.store, ref)).manifest!;
  const recentSegments = before.segments.filter((s) => s.baseOffset >= N);
  assert.equal(before.startOffset, 0n);
  assert.ok(recentSegments.length >= 5);

  // The old segments expire while the store is down: retention cannot write the manifest
  // and keeps trying on every run. Three runs as of `later` fail at the manifest write before
  // the check that nothing was dropped.
  await s3.stopServer();
  const failedAtStop = counted.counts('put').failed;
  await waitFor('three retention runs to fail at the manifest write', () => {
    tb.broker.tiered!.tick(later);
    return counted.counts('put').failed >= failedAtStop + 3;
  }, 30_000, 50);
  assert.equal(statusOf(tb, topic)!.remoteStartOffset, '0', 'nothing dropped while the store is down');
  await s3.startServer();

  await expireAsOf(tb, topic, later, N);
  // The retention run that dropped them ends by deleting their objects.
  await waitFor('the last old segment\'s objects to be deleted', async () => (await s3.store.head(before.segments.filter((x) => x.baseOffset < N).at(-1)!.indexKey, { signal })) === null);
  const st = statusOf(tb, topic)!;
  t.diagnostic(JSON.stringify({ remoteStartOffset: st.remoteStartOffset, remoteSegments: st.remoteSegments, manifestVersion: st.manifestVersion }));
  assert.equal(st.remoteStartOffset, String(N), 'the remote tier starts at the first unexpired record');
  const afterOutage = (await inspectBucket(s3.store, ref)).manifest!;
  assert.equal(afterOutage.startOffset, N);
  assert.deepEqual(afterOutage.segments, recentSegments, 'exactly the unexpired segments remain, unchanged');
  const admin = kafkaAt(tb.bootstrap, 'faults-admin').admin();
  await admin.connect();
  const [{ low, high }] = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  assert.deepEqual([low, high], [String(N), String(N + BigInt(recent.length))]);
  assertExactly(await consume(tb.bootstrap, topic, recent.length), recent, N, 'retained records after the outage');
});
