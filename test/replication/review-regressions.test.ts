/**
 * Regression tests for faults a review of geo-replication found (each fixed since):
 *
 *   1. a mesh or relay region catching a link up from the object store sent the rest of a
 *      run it had received as its own data (the third region held those records twice, or
 *      under the wrong origin);
 *   2. a run torn at the end of a sealed segment stopped the worker for good;
 *   3. closing a link while requests were queued behind its concurrency left their callers
 *      waiting forever (Broker.close hung);
 *   4. abort listeners piled up on a worker's signal under in-flight budget contention;
 *   5. control batches were accepted from senders and from producing clients, and a garbled
 *      marker in a log broke every reader of it;
 *   6. forwarded batches pinned their whole read window while in flight;
 *   7. with the object store unreachable at startup, a worker skipped the offloaded history;
 *   8. retention or tiered local deletion could remove markers before the dedup snapshot
 *      held them, so after a restart the dedup table went backwards.
 *
 * Each asserts the correct behaviour the way a user would check it where that is possible
 * (records consumed, worker status, wire answers), in-process where only the worker sees it.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import pino from 'pino';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { LinkClient } from '../../src/replication/link-client.js';
import { encodeMarker } from '../../src/replication/marker.js';
import type { Link, Policy } from '../../src/replication/policy.js';
import { RemoteRegion } from '../../src/replication/remote-region.js';
import { ReplicaState, walkBatches } from '../../src/replication/replica-state.js';
import {
  NO_CONTINUITY_CHECK,
  readAppendResponse,
  readHandshakeResponse,
  ReplicationApiKey,
  writeAppendRequest,
  writeHandshakeRequest,
  type AppendRequest,
  type AppendResponse,
  type HandshakeResponse,
  type ReplicatedBatch,
  type ReplicatedEntry,
} from '../../src/replication/replication-api.js';
import { RunTracker } from '../../src/replication/run-tracker.js';
import { PartitionWorker, type WorkerStatus } from '../../src/replication/worker.js';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { Attributes, decodeRecords, encodeBatch, readBatchHeader } from '../../src/storage/record-batch.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { startRestartableS3rver } from '../helpers/object-stores.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { freePort, Regions, waitCaughtUp, waitFor, type Region, type RegionStatus } from '../helpers/regions.js';
import { assertExactUnion, consumeTopic, kcatLines, type Produced } from '../helpers/replication-check.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const KiB = 1024;
const INVALID_RECORD = 87;
const logger = pino({ level: process.env.MERIDIAN_TEST_LOG_LEVEL ?? 'silent' });

// ---------------------------------------------------------------------------------------
// In-process helpers: a worker over a real PartitionLog, talking to a fake remote region.

/** A batch of `records` records keyed `<tag>-<i>`, values of `valueBytes` bytes. */
function dataBatch(tag: string, records = 1, valueBytes = 100): Buffer {
  return encodeBatch({ records: Array.from({ length: records }, (_, i) => ({ key: Buffer.from(`${tag}-${i}`), value: Buffer.alloc(valueBytes, `${tag}/${i}/`) })), baseTimestamp: BigInt(Date.now()) });
}

function keysOf(batch: Buffer): string[] {
  return decodeRecords(batch).map((r) => String(r.key));
}

/** Appends a run as the receiving side does: a marker and the batches it describes, in one append. */
async function appendRun(log: PartitionLog, origin: string, originBase: bigint, batches: Buffer[], opts: { describe?: number } = {}): Promise<void> {
  let ob = originBase;
  const marked = batches.map((b) => {
    const h = readBatchHeader(b);
    const m = { originBaseOffset: ob, senderBaseOffset: ob, crc: h.crc };
    ob += BigInt(h.lastOffsetDelta) + 1n;
    return m;
  });
  // `describe` > batches.length: a torn run (the marker promises more than survived).
  const extra = Array.from({ length: Math.max(0, (opts.describe ?? batches.length) - batches.length) }, (_, i) => ({ originBaseOffset: ob + BigInt(i), senderBaseOffset: ob + BigInt(i), crc: 12345 + i }));
  const all = [...marked, ...extra];
  const marker = encodeMarker({ originRegion: origin, originTopicId: `${origin}-tid`, originPartition: 0, senderRegion: origin, senderTopicId: `${origin}-tid`, hops: [origin], batches: all, senderEndOffset: all.at(-1)!.originBaseOffset });
  await log.appendAll([marker, ...batches]);
}

function link(remote: string, relay: boolean): Link {
  const policy: Policy = { name: 'p', topics: ['t'], topology: relay ? 'relay' : 'mesh', regions: [], edges: [], backlogQuota: -1, rateLimit: -1 };
  return { remote, relay, policy };
}

interface SentRequest {
  continuesFrom: bigint;
  senderEndOffset: bigint;
  entries: ReplicatedEntry[];
}

/** What the remote received, flattened: each record's key with its entry's origin and hops. */
function receivedRecords(sent: readonly SentRequest[]): Array<{ key: string; origin: string; hops: string }> {
  return sent.flatMap((s) => s.entries.flatMap((e) => e.batches.flatMap((b) => keysOf(b.batch).map((key) => ({ key, origin: e.originRegion, hops: e.hops.join('>') })))));
}

/** A remote region that acknowledges every append (as a RemoteRegion would, minus the network). */
function fakeRemote(opts: { cursor?: bigint; hold?: boolean } = {}) {
  const sent: SentRequest[] = [];
  const held: Array<() => void> = [];
  let grantedBytes = 0;
  const remote = {
    name: 'c',
    partitionCountOf: () => 1,
    resumePoint: async () => opts.cursor ?? -1n,
    acquire: async (bytes: number) => {
      let have = bytes;
      grantedBytes += have;
      return {
        shrink: (n: number) => {
          if (n < have) {
            grantedBytes -= have - n;
            have = n;
          }
        },
        release: () => {
          grantedBytes -= have;
          have = 0;
        },
      };
    },
    append: async (_l: Link, req: SentRequest): Promise<AppendResponse> => {
      sent.push({ continuesFrom: req.continuesFrom, senderEndOffset: req.senderEndOffset, entries: req.entries });
      if (opts.hold) await new Promise<void>((r) => held.push(r)); // a slow WAN: answered when the test says
      return { errorCode: 0, errorMessage: null, senderCursor: req.senderEndOffset, appendedBatches: 0, duplicateBatches: 0 };
    },
  };
  return {
    sent,
    remote: remote as unknown as RemoteRegion,
    get grantedBytes() {
      return grantedBytes;
    },
    answerAll: () => held.splice(0).forEach((r) => r()),
  };
}

const WORKER_OPTIONS = { pipelineDepth: 4, retryInitialMs: 10, retryMaxMs: 100 };

function newWorker(log: PartitionLog, remote: RemoteRegion, l: Link, extra: { tiered?: unknown; maxRequestBytes?: number } = {}): PartitionWorker {
  return new PartitionWorker({
    region: 'b',
    topic: 't',
    topicId: 'b-tid',
    partition: 0,
    link: l,
    log,
    remote,
    tiered: extra.tiered as never,
    options: { maxRequestBytes: extra.maxRequestBytes ?? 1 << 20, ...WORKER_OPTIONS },
    logger,
  });
}

async function waitIdle(w: PartitionWorker, what: string, timeoutMs = 10_000): Promise<WorkerStatus> {
  return waitFor(
    what,
    () => {
      const s = w.status();
      if (s.state === 'idle' && s.backlogRecords === 0) return s;
      if (s.state === 'error') throw new Error(`worker in error: ${s.error}`);
      return undefined;
    },
    timeoutMs,
    20,
  );
}

/**
 * A fresh PartitionLog for one test. `track` registers a worker to stop (after `before`, if
 * given) before the log closes: t.after hooks run in registration order.
 */
async function scratchLog(t: TestContext, prefix: string): Promise<{ log: PartitionLog; track: (w: PartitionWorker, before?: () => void) => PartitionWorker }> {
  const d = tmpDir(prefix);
  const log = await PartitionLog.open(d.dir);
  const workers: Array<{ w: PartitionWorker; before?: () => void }> = [];
  t.after(async () => {
    for (const { w, before } of workers) {
      before?.();
      await w.stop();
    }
    await log.close();
    d.cleanup();
  });
  return {
    log,
    track: (w, before) => {
      workers.push({ w, before });
      return w;
    },
  };
}

/**
 * A stand-in for tiered storage over `log`: everything below `localStart` is "offloaded" and
 * read back one segment at a time, as TieredStorage reads. `reachable` false: the store is
 * down (its part of the partition unknown), as at a broker start without the store.
 */
function fakeTiered(log: PartitionLog, opts: { reachable: boolean }) {
  const down = () => new MeridianError(ErrorCode.StorageIo, "the object store holding t's older data is not reachable yet", { retriable: true });
  const segmentOf = (offset: bigint) => log.segments().find((s) => s.baseOffset <= offset && offset < s.nextOffset);
  return {
    opts,
    logStartOffset: () => {
      if (!opts.reachable) throw down();
      return 0n;
    },
    read: async (_t: string, _p: number, offset: bigint, maxBytes: number) => {
      if (!opts.reachable) throw down();
      const seg = segmentOf(offset);
      if (seg === undefined) return undefined;
      const r = await log.read(offset, maxBytes, { upTo: seg.nextOffset });
      return { records: Buffer.from(r.records), highWatermark: log.highWatermark, logStartOffset: 0n };
    },
    remoteSegmentEnd: (_t: string, _p: number, offset: bigint) => segmentOf(offset)?.nextOffset,
  };
}

/** `log` as a worker sees it once everything below `localStart` was deleted locally. */
function withLocalStart(log: PartitionLog, localStart: () => bigint): PartitionLog {
  return new Proxy(log, {
    get: (target, prop) => {
      if (prop === 'logStartOffset') return localStart();
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

// ---------------------------------------------------------------------------------------
// Wire helpers: a peer region talking to an in-process broker's replication API.

async function handshake(client: LinkClient, target: string, topic: string, sender = 'us-east', senderTopicId = 'us-tid'): Promise<HandshakeResponse> {
  const r = await client.request(ReplicationApiKey.Handshake, 0, (w) => writeHandshakeRequest(w, { targetRegion: target, senderRegion: sender, senderTopicId, topic, partitionCount: 1, createIfMissing: true }));
  return readHandshakeResponse(r);
}

async function replicatedAppend(client: LinkClient, target: string, req: Pick<AppendRequest, 'topic' | 'entries' | 'senderEndOffset'> & Partial<AppendRequest>): Promise<AppendResponse> {
  const r = await client.request(ReplicationApiKey.Append, 0, (w) => writeAppendRequest(w, { targetRegion: target, senderRegion: 'us-east', senderTopicId: 'us-tid', partition: 0, continuesFrom: NO_CONTINUITY_CHECK, ...req }));
  return readAppendResponse(r);
}

/** Origin batches (one record each) from origin offset `base` on, tagged for content checks. */
function originBatches(tag: string, count: number, base = 0n): { batches: ReplicatedBatch[]; end: bigint } {
  const batches = Array.from({ length: count }, (_, i) => {
    const offset = base + BigInt(i);
    return { originBaseOffset: offset, senderBaseOffset: offset, batch: encodeBatch({ records: [{ key: Buffer.from(`${tag}-${offset}`), value: Buffer.from(`${tag} value ${offset}`) }], baseOffset: offset, baseTimestamp: BigInt(Date.now()) }) };
  });
  return { batches, end: base + BigInt(count) - 1n };
}

function usEntry(batches: ReplicatedBatch[]): ReplicatedEntry[] {
  return [{ originRegion: 'us-east', originTopicId: 'us-tid', originPartition: 0, hops: ['us-east'], batches }];
}

/** A control batch shaped like a marker (key type 0x4D52) whose value is garbage. */
function garbledMarker(): Buffer {
  return encodeBatch({ records: [{ key: Buffer.from([0, 0, 0x4d, 0x52]), value: Buffer.from([0, 0, 0xff]) }], attributes: Attributes.control, baseTimestamp: 0n, producerId: -1n, producerEpoch: -1, baseSequence: -1 });
}

/** Records of `topic` as a Kafka consumer reads them (kcat, byte for byte). */
async function consumeValues(bootstrap: string, topic: string): Promise<string[]> {
  return (await new KcatClient(bootstrap).consumeAll(topic)).map((m) => String(m.payload));
}

// =======================================================================================
// 1. Tiered catch-up of a region that received data must not send it on as its own.

interface Msg {
  key: Buffer | null;
  value: Buffer;
}

/** `n` unique records naming their origin, ~250 bytes each. */
function records(origin: string, from: number, n: number): Msg[] {
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    return { key: Buffer.from(`k${i % 11}`), value: Buffer.from(`${origin}/${i}/${'x'.repeat(150 + ((i * 37) % 200))}`) };
  });
}

async function produce(region: Region, topic: string, msgs: readonly Msg[]): Promise<void> {
  // Small batches: a run received from another region is many batches long.
  const r = await new KcatClient(region.bootstrap).produce(topic, kcatLines(msgs), ['-p', '0', '-K', '\t', '-X', 'batch.num.messages=10']);
  assert.equal(r.code, 0, `kcat produce to ${region.name}: ${r.stderr}`);
}

async function createTopic(region: Region, topic: string): Promise<void> {
  const admin = new Kafka({ clientId: 'review-admin', brokers: [region.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    assert.ok(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true }), `${topic} created in ${region.name}`);
  } finally {
    await admin.disconnect();
  }
}

function describeWorkers(s: RegionStatus): string {
  return s.workers.map((w) => `${w.topic}/${w.partition}->${w.remote} ${w.state} backlog ${w.backlogRecords}${w.error ? `: ${w.error}` : ''}`).join('; ');
}

test('mesh: a region catching a link up from the object store sends only its own records; the third region holds each record once, under its true origin', { timeout: 60_000 }, async (t) => {
  const [US, EU, AP] = ['us-east', 'eu-west', 'ap-south'];
  const TOPIC = 'mesh-cold';
  const store = tmpDir('meridian-review-tiered-');
  const regions = await Regions.create({
    names: [US, EU, AP],
    policies: [{ name: 'mesh', topics: TOPIC, topology: 'mesh', regions: [US, EU, AP] }],
    overrides: (name): BrokerConfigInput => {
      const base: BrokerConfigInput = { topics: { autoCreate: false }, logging: { level: 'warn' } };
      // us-east sends runs of up to 32 KiB; eu-west reads 4 KiB at a time, so its catch-up
      // reads from the object store end inside the runs it received from us-east.
      if (name === US) return { ...base, replication: { maxRequestBytes: 32 * KiB } as BrokerConfigInput['replication'] };
      if (name === EU) {
        return {
          ...base,
          log: { segmentBytes: 128 * KiB },
          tiered: { enabled: true, store: { type: 'fs', dir: store.dir }, offload: { onSeal: true }, localRetention: { bytes: 0 }, deletionLagMs: 0, checkIntervalMs: 100 },
          replication: { maxRequestBytes: 4 * KiB } as BrokerConfigInput['replication'],
        };
      }
      return base;
    },
  });
  t.after(async () => {
    await regions.close();
    store.cleanup();
  });
  await regions.start();
  const us = regions.get(US);
  const eu = regions.get(EU);
  const ap = regions.get(AP);
  // Created in us-east; its links create it in the other regions (the mesh links start there).
  await createTopic(us, TOPIC);
  await waitFor('eu-west to have the topic and its links', async () => ((await eu.status()).workers.filter((w) => w.topic === TOPIC).length === 2 ? true : undefined), 15_000);
  await ap.stop(); // ap-south is away while both produce

  const fromUs: Msg[] = [];
  const fromEu: Msg[] = [];
  for (let round = 0; round < 3; round++) {
    const u = records(US, fromUs.length, 1000);
    const e = records(EU, fromEu.length, 150);
    await produce(us, TOPIC, u);
    await produce(eu, TOPIC, e);
    fromUs.push(...u);
    fromEu.push(...e);
  }
  const total = BigInt(fromUs.length + fromEu.length);
  await waitFor('us-east to have sent eu-west everything', async () => ((await us.status()).workers.some((w) => w.topic === TOPIC && w.remote === EU && w.state === 'idle' && w.backlogRecords === 0) ? true : undefined), 30_000);
  // eu-west holds everything, offloaded and deleted locally down to its active segment.
  await waitFor(
    'eu-west to hold both origins and to have offloaded most of them',
    async () => {
      const s = await eu.status();
      const p = s.topics.find((x) => x.name === TOPIC)?.partitions[0];
      const tier = s.tiered.find((x) => x.topic === TOPIC);
      // Markers take offsets too: eu-west's log is longer than the record count.
      if (p === undefined || tier === undefined || BigInt(p.highWatermark) < total) return undefined;
      if (BigInt(p.logStartOffset) < (BigInt(p.highWatermark) * 3n) / 4n) return undefined;
      return BigInt(tier.remoteEndOffset) >= BigInt(p.logStartOffset) ? true : undefined;
    },
    30_000,
  );

  await ap.start();
  try {
    await waitCaughtUp([us, eu], 30_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}; us-east: ${describeWorkers(await us.status())}; eu-west: ${describeWorkers(await eu.status())}`);
  }
  const euToAp = (await eu.status()).workers.find((w) => w.topic === TOPIC && w.remote === AP)!;
  assert.equal(euToAp.sentRecords, fromEu.length, `eu-west sent ap-south ${euToAp.sentRecords} records, it produced ${fromEu.length} (received records sent on as its own?)`);
  const msgs = await consumeTopic(ap.bootstrap, TOPIC);
  assert.equal(msgs.length, fromUs.length + fromEu.length, `ap-south holds ${msgs.length} records, ${fromUs.length + fromEu.length} were produced`);
  const produced = (list: Msg[]): Produced => new Map([[0, list]]);
  assertExactUnion(AP, msgs, new Map([[US, produced(fromUs)], [EU, produced(fromEu)]]));

  // Each record is held under its true origin: the marker before it names the region that produced it.
  await ap.stop();
  const log = await PartitionLog.open(path.join(ap.dataDir, 'logs', `${TOPIC}-0`));
  try {
    const tracker = new RunTracker();
    const wrong: string[] = [];
    let replicated = 0;
    await walkBatches(log, log.logStartOffset, log.highWatermark, (b, h) => {
      const kind = tracker.classify(b, h);
      if (kind.kind === 'local') wrong.push(`local batch at ${h.baseOffset}`);
      if (kind.kind !== 'replicated') return;
      for (const r of decodeRecords(b)) {
        replicated++;
        const producer = String(r.value).split('/')[0];
        if (producer !== kind.origin.region) wrong.push(`${String(r.value).slice(0, 16)} held as ${kind.origin.region}'s`);
      }
    });
    assert.equal(replicated, fromUs.length + fromEu.length);
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} records under the wrong origin`);
  } finally {
    await log.close();
  }
});

for (const relay of [false, true]) {
  test(`${relay ? 'relay' : 'mesh'} link catching up from the object store: a received run cut by the read budget is never sent as this region's data`, async (t) => {
    const { log, track } = await scratchLog(t, 'meridian-review-e1-');
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

// =======================================================================================
// 2. A torn run at the end of a sealed segment.

for (const relay of [false, true]) {
  test(`a run torn at the end of a sealed segment does not stop the ${relay ? 'relay' : 'mesh'} worker: it goes idle with everything replicated`, async (t) => {
    const { log, track } = await scratchLog(t, 'meridian-review-e2-');
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

// =======================================================================================
// 3. Closing a busy link.

/** A peer that accepts connections and never answers (a hung remote region). */
async function silentPeer(t: TestContext): Promise<{ port: number; receivedBytes: () => number }> {
  const sockets = new Set<net.Socket>();
  let received = 0;
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('data', (d: Buffer) => (received += d.length));
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { port: (server.address() as net.AddressInfo).port, receivedBytes: () => received };
}

test('RemoteRegion.close settles every request, also those queued behind the link concurrency', async (t) => {
  const { port, receivedBytes } = await silentPeer(t);
  const remote = new RemoteRegion({ region: 'b', remote: 'c', address: `127.0.0.1:${port}`, maxInFlightBytes: 1 << 20, concurrency: 2, requestTimeoutMs: 60_000, partitionCountOf: () => 1, logger });
  const ac = new AbortController();
  const outcomes: string[] = [];
  const pending = Array.from({ length: 4 }, (_, i) =>
    remote
      .append(link('c', false), { topic: 't', senderTopicId: 'tid', partition: 0, senderEndOffset: BigInt(i), continuesFrom: BigInt(i - 1), entries: [{ originRegion: 'b', originTopicId: 'tid', originPartition: 0, hops: ['b'], batches: [{ originBaseOffset: BigInt(i), senderBaseOffset: BigInt(i), batch: dataBatch(`x${i}`) }] }] }, 100, ac.signal)
      .then(
        () => (outcomes[i] = 'answered'),
        () => (outcomes[i] = 'failed'),
      ),
  );
  await waitFor('the first requests to reach the peer', () => (receivedBytes() > 0 ? true : undefined), 5000, 10); // two sent (never answered), two queued
  ac.abort();
  remote.close();
  const settled = await Promise.race([Promise.all(pending).then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
  assert.ok(settled, `requests still pending 5 s after close: ${JSON.stringify(Array.from({ length: 4 }, (_, i) => outcomes[i] ?? 'PENDING'))}`);
  assert.deepEqual(outcomes, ['failed', 'failed', 'failed', 'failed']);
});

/**
 * Cleanup that cannot hang the file when Broker.close itself hangs (the fault under test):
 * the test has already failed by then.
 */
function boundedCleanup(tb: TestBroker): () => Promise<unknown> {
  return () => Promise.race([tb.cleanup(), new Promise((r) => setTimeout(r, 5000).unref())]);
}

async function closesWithin(tb: TestBroker, ms: number): Promise<void> {
  const closed = await Promise.race([tb.broker.close().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  assert.ok(closed, `Broker.close() had not returned after ${ms} ms`);
}

test('Broker.close returns promptly while the link to a hung remote has requests queued', async (t) => {
  const { port, receivedBytes } = await silentPeer(t);
  const tb = await startBroker({
    region: 'us-east',
    replication: {
      regions: [{ name: 'us-east', address: '127.0.0.1:1' }, { name: 'eu-west', address: `127.0.0.1:${port}` }],
      policies: [{ topics: 'hung-*', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
      concurrency: 1,
      requestTimeoutMs: 600_000,
    },
  } as BrokerConfigInput);
  t.after(boundedCleanup(tb));
  for (const topic of ['hung-1', 'hung-2', 'hung-3']) {
    await tb.broker.topics.createTopic(topic, 1);
    await tb.broker.topics.partition(topic, 0)!.append(dataBatch(topic));
  }
  // Three handshakes on a link with concurrency 1: one sent and never answered, two queued.
  await waitFor('the first handshake to reach the peer', () => (receivedBytes() > 0 && tb.broker.replicator.status().filter((w) => w.state === 'starting').length === 3 ? true : undefined), 5000, 10);
  await closesWithin(tb, 5000);
});

test('Broker.close returns promptly while a healthy link is busy (requests queued behind its concurrency)', async (t) => {
  const eu = await startBroker({ region: 'eu-west' });
  t.after(() => eu.cleanup());
  const us = await startBroker({
    region: 'us-east',
    replication: {
      regions: [{ name: 'us-east', address: '127.0.0.1:1' }, { name: 'eu-west', address: eu.bootstrap }],
      policies: [{ topics: 'busy', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
      concurrency: 2,
      maxRequestBytes: 4096,
    },
  } as BrokerConfigInput);
  t.after(boundedCleanup(us));
  await us.broker.topics.createTopic('busy', 16);
  const deadline = Date.now() + 1500;
  let rounds = 0;
  while (Date.now() < deadline) {
    await Promise.all(Array.from({ length: 16 }, (_, p) => us.broker.topics.partition('busy', p)!.appendAll([dataBatch(`x${rounds}`, 1, 3000), dataBatch(`y${rounds}`, 1, 3000)])));
    rounds++;
  }
  const sending = us.broker.replicator.status().filter((w) => w.state === 'running' || w.backlogRecords > 0).length;
  assert.ok(sending > 2, `the link is busy: ${sending} of 16 workers have data to send with concurrency 2`);
  await closesWithin(us, 5000);
});

// =======================================================================================
// 4. Abort listeners under budget contention.

test('abort listeners do not pile up on a worker signal: 10 000 contended budget acquires leave none behind', async () => {
  const remote = new RemoteRegion({ region: 'b', remote: 'c', address: '127.0.0.1:1', maxInFlightBytes: 1000, concurrency: 1, requestTimeoutMs: 1000, partitionCountOf: () => 1, logger });
  try {
    const ac = new AbortController();
    for (let i = 0; i < 10_000; i++) {
      const first = await remote.acquire(1000, ac.signal); // fills the budget
      const second = remote.acquire(1000, ac.signal); // waits for it
      assert.ok(getEventListeners(ac.signal, 'abort').length <= 1, `iteration ${i}: listeners while waiting`);
      first.release();
      (await second).release();
    }
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    assert.equal(remote.inFlightBytes, 0);
  } finally {
    remote.close();
  }
});

// =======================================================================================
// 5. Control batches: refused from senders and from clients; a garbled marker in a log.

test('a ReplicatedAppend carrying a control batch is refused with a clear error and nothing of it is appended; the broker restarts clean', async (t) => {
  let tb = await startBroker({ region: 'eu-west' });
  t.after(() => tb.cleanup());
  let peer = new LinkClient({ address: tb.bootstrap, clientId: 'review-peer', requestTimeoutMs: 10_000 });
  t.after(() => peer.close());
  const topic = 'poison';
  assert.equal((await handshake(peer, 'eu-west', topic)).errorCode, 0);
  const { batches, end } = originBatches('ok', 2);
  const poisoned = [batches[0], { originBaseOffset: 1n, senderBaseOffset: 1n, batch: garbledMarker() }, batches[1]];
  const statsBefore = { ...tb.broker.replicationTarget.stats };
  const r = await replicatedAppend(peer, 'eu-west', { topic, senderEndOffset: end, entries: usEntry(poisoned) });
  assert.equal(r.errorCode, INVALID_RECORD);
  assert.match(r.errorMessage ?? '', /control batch/);
  assert.equal(r.appendedBatches, 0);
  assert.equal(tb.broker.topics.partition(topic, 0)!.logEndOffset, 0n, 'nothing appended: no marker, no data, no control batch');
  assert.deepEqual(tb.broker.replicationTarget.stats, statsBefore);
  // The good batches afterwards go in whole; a restart rebuilds the dedup state cleanly.
  const ok = await replicatedAppend(peer, 'eu-west', { topic, senderEndOffset: end, entries: usEntry(batches) });
  assert.deepEqual({ code: ok.errorCode, appended: ok.appendedBatches }, { code: 0, appended: 2 });
  peer.close();
  tb = await tb.restart();
  peer = new LinkClient({ address: tb.bootstrap, clientId: 'review-peer', requestTimeoutMs: 10_000 });
  const hs = await handshake(peer, 'eu-west', topic);
  assert.deepEqual({ code: hs.errorCode, cursor: hs.partitions[0]?.senderCursor }, { code: 0, cursor: end });
  assert.deepEqual(await consumeValues(tb.bootstrap, topic), ['ok value 0', 'ok value 1']);
});

test('a client producing a control batch (a forged or garbled marker, a COMMIT) gets INVALID_RECORD and nothing is appended', async (t) => {
  const tb = await startBroker({ region: 'eu-west' });
  t.after(() => tb.cleanup());
  const c = await RawClient.connect(tb.port);
  t.after(() => c.close());
  const topic = 'forged';
  await tb.broker.topics.createTopic(topic, 1);
  const forged = encodeMarker({ originRegion: 'us-east', originTopicId: 'us-tid', originPartition: 0, senderRegion: 'us-east', senderTopicId: 'us-tid', hops: ['us-east'], batches: [{ originBaseOffset: 1_000_000n, senderBaseOffset: 1_000_000n, crc: readBatchHeader(dataBatch('forged')).crc }], senderEndOffset: 1_000_000n });
  const commit = encodeBatch({ records: [{ key: Buffer.from([0, 0, 0, 1]), value: Buffer.from([0, 0, 0, 0, 0, 0]) }], attributes: Attributes.control, baseTimestamp: 0n, producerId: -1n, producerEpoch: -1, baseSequence: -1 });
  for (const [what, records] of [['garbled marker', garbledMarker()], ['forged marker + data', Buffer.concat([forged, dataBatch('forged')])], ['COMMIT control batch', commit]] as const) {
    const r = await c.request(ApiKey.Produce, 7, { transactionalId: null, acks: -1, timeoutMs: 30_000, topicData: [{ name: topic, partitionData: [{ index: 0, records }] }] });
    const p = r.body.responses[0].partitionResponses[0];
    assert.equal(p.errorCode, INVALID_RECORD, `${what}: error code`);
  }
  assert.equal(tb.broker.topics.partition(topic, 0)!.logEndOffset, 0n, 'nothing appended');
  // An ordinary produce still works, and the topic holds only it.
  const ok = await c.request(ApiKey.Produce, 7, { transactionalId: null, acks: -1, timeoutMs: 30_000, topicData: [{ name: topic, partitionData: [{ index: 0, records: encodeBatch({ records: [{ value: Buffer.from('plain') }] }) }] }] });
  assert.equal(ok.body.responses[0].partitionResponses[0].errorCode, 0);
  assert.deepEqual(await consumeValues(tb.bootstrap, topic), ['plain']);
});

test('a garbled marker already in a log breaks neither ReplicaState.load nor the worker', async (t) => {
  const { log } = await scratchLog(t, 'meridian-review-e5-');
  await appendRun(log, 'a', 0n, [dataBatch('a0'), dataBatch('a1')]);
  await log.appendAll([garbledMarker()]); // a damaged disk, or an older broker that let one in
  await log.appendAll([dataBatch('b0')]);
  await appendRun(log, 'a', 2n, [dataBatch('a2')]);
  await log.appendAll([dataBatch('b1')]);
  await log.flush();
  const state = await ReplicaState.load(log, logger);
  try {
    assert.equal(state.table.lastOrigin('a', 'a-tid'), 2n, 'both runs of a are counted');
    assert.equal(state.table.lastSender('a', 'a-tid'), 2n);
  } finally {
    await state.close();
  }
  for (const relay of [false, true]) {
    const fr = fakeRemote();
    const w = newWorker(log, fr.remote, link('c', relay));
    w.start();
    try {
      const s = await waitIdle(w, 'the worker to replicate past the garbled marker');
      assert.deepEqual({ error: s.error, replicatedOffset: s.replicatedOffset }, { error: null, replicatedOffset: String(log.highWatermark - 1n) });
      const a = (k: string) => ({ key: k, origin: 'a', hops: 'a>b' });
      const b = (k: string) => ({ key: k, origin: 'b', hops: 'b' });
      assert.deepEqual(receivedRecords(fr.sent), relay ? [a('a0-0'), a('a1-0'), b('b0-0'), a('a2-0'), b('b1-0')] : [b('b0-0'), b('b1-0')]);
    } finally {
      await w.stop();
    }
  }
});

test('a broker whose log holds a garbled marker restarts and replicates that topic: the remote gets exactly its records', { timeout: 30_000 }, async (t) => {
  const eu = await startBroker({ region: 'eu-west' });
  t.after(() => eu.cleanup());
  const config: BrokerConfigInput = {
    region: 'us-east',
    replication: {
      regions: [{ name: 'us-east', address: '127.0.0.1:1' }, { name: 'eu-west', address: eu.bootstrap }],
      policies: [{ topics: 'damaged', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
      retry: { initialMs: 50, maxMs: 500 },
    },
  } as BrokerConfigInput;
  let us = await startBroker({ ...config, replication: { ...config.replication, policies: [] } as BrokerConfigInput['replication'] });
  t.after(() => us.cleanup());
  await us.broker.topics.createTopic('damaged', 1);
  const log = us.broker.topics.partition('damaged', 0)!;
  await log.appendAll([dataBatch('before')]);
  await log.appendAll([garbledMarker()]);
  await log.appendAll([dataBatch('after')]);
  await log.flush();
  await us.stop();
  us = await startBroker(config, { dataDir: us.dataDir, cleanup: () => fs.rmSync(us.dataDir, { recursive: true, force: true }) });
  const w = await waitFor('us-east to replicate the damaged topic', () => us.broker.replicator.status().find((x) => x.topic === 'damaged' && x.state === 'idle' && x.backlogRecords === 0), 15_000);
  assert.equal(w.error, null);
  assert.deepEqual((await new KcatClient(eu.bootstrap).consumeAll('damaged')).map((m) => String(m.key)), ['before-0', 'after-0']);
});

// =======================================================================================
// 6. Pinned memory.

test('forwarded batches that are a small part of their read window are copies: requests in flight pin only what they send', async (t) => {
  const { log, track } = await scratchLog(t, 'meridian-review-e6-');
  // A mesh region's log: large runs received from a, a small batch produced here after each.
  for (let i = 0; i < 8; i++) {
    await appendRun(log, 'a', BigInt(i * 10), Array.from({ length: 10 }, (_, j) => dataBatch(`a${i}-${j}`, 1, 90_000)));
    await log.appendAll([dataBatch(`b${i}`, 1, 50)]);
  }
  await log.flush();
  const fr = fakeRemote({ hold: true }); // a slow WAN: nothing is answered until the end
  const w = newWorker(log, fr.remote, link('c', false));
  track(w, () => fr.answerAll()).start();
  await waitFor('four requests in flight', () => (fr.sent.length === WORKER_OPTIONS.pipelineDepth ? true : undefined), 10_000, 10);
  await new Promise((r) => setTimeout(r, 100)); // nothing more is read while the pipeline is full
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
});

// =======================================================================================
// 7. Object store unreachable at startup.

test('object store unreachable at startup, in-process: the worker backs off with a clear error, then replicates everything, offloaded part included', async (t) => {
  const { log, track } = await scratchLog(t, 'meridian-review-e7-');
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

test('object store unreachable when the source region starts: its link backs off saying so, then sends everything, offloaded part included, once each', { timeout: 60_000 }, async (t) => {
  const TOPIC = 'cold-start';
  const f = await startRestartableS3rver();
  t.after(() => f.stop());
  const euPort = await freePort();
  const config: BrokerConfigInput = {
    region: 'us-east',
    log: { segmentBytes: 16 * KiB, retention: { ms: -1 } },
    tiered: { enabled: true, offload: { onSeal: true }, localRetention: { bytes: 0 }, deletionLagMs: 0, checkIntervalMs: 100 },
    replication: {
      regions: [{ name: 'us-east', address: '127.0.0.1:1' }, { name: 'eu-west', address: `127.0.0.1:${euPort}` }],
      policies: [{ topics: TOPIC, topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
      retry: { initialMs: 50, maxMs: 500 },
      requestTimeoutMs: 5000,
    },
  } as BrokerConfigInput;
  let us = await startBroker(config, undefined, { blobStore: f.store });
  t.after(() => us.cleanup());
  await us.broker.topics.createTopic(TOPIC, 1);
  // Attaching the new topic to the store is asynchronous (and retried if a request to
  // s3rver fails on a busy machine): it must be tiered before it can be offloaded.
  await waitFor('the topic attached to the object store', () => (us.broker.tiered!.status().some((x) => x.topic === TOPIC) && us.broker.tiered!.pendingTopics.length === 0 ? true : undefined), 20_000, 25);
  // eu-west is not up yet: the whole topic is backlog. Produced, offloaded, deleted locally.
  const sent: string[] = [];
  for (let i = 0; i < 600; i++) sent.push(`cold-${i}-${'v'.repeat(100 + (i % 50))}`);
  const r = await new KcatClient(us.bootstrap).produce(TOPIC, sent.join('\n') + '\n', ['-p', '0', '-X', 'batch.num.messages=20']);
  assert.equal(r.code, 0, r.stderr);
  await us.broker.tiered!.offloadNow(TOPIC);
  await waitFor('us-east to delete its offloaded local copies', () => (us.broker.topics.partition(TOPIC, 0)!.segments().length === 1 ? true : undefined), 20_000, 25);
  const localStart = us.broker.topics.partition(TOPIC, 0)!.logStartOffset;
  assert.ok(localStart > 300n, `most of the topic is only in the object store (local log starts at ${localStart})`);

  // us-east restarts while the object store is down; eu-west comes up.
  await f.stopServer();
  await us.stop();
  us = await startBroker(config, { dataDir: us.dataDir, cleanup: () => fs.rmSync(us.dataDir, { recursive: true, force: true }), port: us.port }, { blobStore: f.openStore() });
  assert.deepEqual(us.broker.tiered!.pendingTopics, [TOPIC]);
  const eu = await startBroker({ region: 'eu-west', kafka: { host: '127.0.0.1', port: euPort } });
  t.after(() => eu.cleanup());
  // (Connection errors while eu-west was starting do not count: wait for the handshake.)
  const down = await waitFor(
    'the link to reach eu-west and then stop, or to move on',
    () => us.broker.replicator.status().find((w) => w.topic === TOPIC && ((w.state === 'backing-off' && /object store/.test(w.error ?? '')) || w.state === 'idle' || w.sentRecords > 0)),
    15_000,
    25,
  );
  assert.equal(down.state, 'backing-off', `the link is ${down.state} (eu-west holds up to ${down.replicatedOffset}, ${down.sentRecords} records sent) while the store's part of the topic is unknown`);
  assert.match(down.error ?? '', /object store .* not reachable/);
  assert.equal(down.replicatedOffset, '-1', 'eu-west holds nothing of it');
  assert.equal(down.backlogRecords, sent.length, 'the whole topic is still backlog: nothing skipped');
  assert.equal(eu.broker.topics.partition(TOPIC, 0)?.highWatermark ?? 0n, 0n, 'eu-west got nothing yet');

  await f.startServer();
  const done = await waitFor('the link to catch up once the store is back', () => us.broker.replicator.status().find((w) => w.topic === TOPIC && w.state === 'idle' && w.backlogRecords === 0), 30_000, 50);
  assert.equal(done.replicatedOffset, String(sent.length - 1));
  assert.equal(done.sentRecords, sent.length, 'every record sent once');
  assert.deepEqual(await consumeValues(eu.bootstrap, TOPIC), sent, 'eu-west holds the whole topic, in order, byte for byte');
});

// =======================================================================================
// 8. The dedup table never goes backwards.

for (const deletion of ['retention', 'tiered local deletion'] as const) {
  test(`dedup state survives ${deletion} of the segments holding the markers before anything loads it after a restart`, async (t) => {
    const TOPIC = 'dedup';
    const store = tmpDir('meridian-review-e8-store-');
    t.after(() => store.cleanup());
    const small: BrokerConfigInput = { log: { segmentBytes: 4 * KiB } };
    const deleting: BrokerConfigInput =
      deletion === 'retention'
        ? { log: { segmentBytes: 4 * KiB, retention: { bytes: 6 * KiB, ms: -1, checkIntervalMs: 50 } } }
        : { log: { segmentBytes: 4 * KiB, retention: { ms: -1 } }, tiered: { enabled: true, store: { type: 'fs', dir: store.dir }, offload: { onSeal: true }, localRetention: { bytes: 0 }, deletionLagMs: 0, checkIntervalMs: 50 } };
    let tb = await startBroker({ region: 'eu-west', ...small });
    t.after(() => tb.cleanup());
    let peer = new LinkClient({ address: tb.bootstrap, clientId: 'review-peer', requestTimeoutMs: 10_000 });
    t.after(() => peer.close());
    // us-east replicates its offsets 0..9, then 10..19, into eu-west.
    assert.equal((await handshake(peer, 'eu-west', TOPIC)).errorCode, 0);
    const first = originBatches('us', 10, 0n);
    const second = originBatches('us', 10, 10n);
    assert.equal((await replicatedAppend(peer, 'eu-west', { topic: TOPIC, senderEndOffset: first.end, continuesFrom: -1n, entries: usEntry(first.batches) })).appendedBatches, 10);
    await tb.broker.topics.partition(TOPIC, 0)!.roll();
    assert.equal((await replicatedAppend(peer, 'eu-west', { topic: TOPIC, senderEndOffset: second.end, continuesFrom: first.end, entries: usEntry(second.batches) })).appendedBatches, 10);
    const markersEnd = tb.broker.topics.partition(TOPIC, 0)!.logEndOffset;
    peer.close();

    // Restart with deletion on. us-east stays quiet (nothing loads the dedup table) while
    // local producers fill new segments and the old ones, markers and all, are deleted.
    await tb.stop();
    tb = await startBroker({ region: 'eu-west', ...deleting }, { dataDir: tb.dataDir, cleanup: () => fs.rmSync(tb.dataDir, { recursive: true, force: true }), port: tb.port });
    const log = tb.broker.topics.partition(TOPIC, 0)!;
    for (let i = 0; i < 12; i++) await log.appendAll([dataBatch(`local${i}`, 1, 1500)]);
    await waitFor(`${deletion} to delete every segment holding a marker`, () => (log.logStartOffset >= markersEnd ? true : undefined), 15_000, 25);

    // us-east comes back: eu-west still knows it holds 0..19 and takes a resend for duplicates.
    peer = new LinkClient({ address: tb.bootstrap, clientId: 'review-peer', requestTimeoutMs: 10_000 });
    const hs = await handshake(peer, 'eu-west', TOPIC);
    assert.deepEqual({ code: hs.errorCode, cursor: hs.partitions[0]?.senderCursor }, { code: 0, cursor: second.end }, 'us-east resumes after its offset 19');
    const end = log.logEndOffset;
    // A resend of both runs (no continuity check: dedup by origin offset alone).
    const resend = await replicatedAppend(peer, 'eu-west', { topic: TOPIC, senderEndOffset: second.end, continuesFrom: NO_CONTINUITY_CHECK, entries: usEntry([...first.batches, ...second.batches]) });
    assert.deepEqual({ code: resend.errorCode, appended: resend.appendedBatches, duplicates: resend.duplicateBatches }, { code: 0, appended: 0, duplicates: 20 });
    assert.equal(log.logEndOffset, end, 'nothing appended');
    // And the same after one more restart (the snapshot holds it, not only memory).
    peer.close();
    tb = await tb.restart();
    peer = new LinkClient({ address: tb.bootstrap, clientId: 'review-peer', requestTimeoutMs: 10_000 });
    assert.equal((await handshake(peer, 'eu-west', TOPIC)).partitions[0]?.senderCursor, second.end);
  });
}
