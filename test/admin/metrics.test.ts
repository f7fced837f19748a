/**
 * The Prometheus metrics of real brokers, scraped as Prometheus would (the text a GET
 * /metrics serves, from createBrokerMetrics) and read with a real parser. Clients are KafkaJS
 * and the checks are what an operator would make: request counts equal what the client sent
 * (KafkaJS's own request events count them), bytes at least what was produced, each topic's
 * bytes per tier equal to the segment files on disk and in the bucket, group lag equal to
 * the high watermark minus the committed offset as KafkaJS's admin reads them, and the
 * replication lag of a live link rising while the link is cut and producing continues, and
 * falling back once it is restored. The two-region test scrapes GET /metrics of each
 * region's admin API over HTTP.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { createBrokerMetrics } from '../../src/admin/metrics.js';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { derivedMaxOpenFiles } from '../../src/storage/fd-cache.js';
import { PartitionFiles } from '../../src/storage/partition-files.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { ParsedScrape } from './prometheus-scrape.js';

const KiB = 1024;

function kafkaOf(tb: TestBroker, clientId: string): Kafka {
  return new Kafka({ clientId, brokers: [tb.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 50 } });
}

/** Bytes of the files under `dir` (recursively) whose path matches. */
function fileBytes(dir: string, match: (file: string) => boolean): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  if (!fs.existsSync(dir)) return { files, bytes };
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const file = path.join(entry.parentPath, entry.name);
    if (!entry.isFile() || !match(file)) continue;
    files++;
    bytes += fs.statSync(file).size;
  }
  return { files, bytes };
}

/** Requests KafkaJS saw answered, per API name, with their response sizes (frame size prefix excluded). */
class ClientRequests {
  readonly count = new Map<string, number>();
  readonly responseBytes = new Map<string, number>();

  watch(client: { on(event: string, listener: (e: { payload: { apiName: string; size: number } }) => void): unknown; events: { REQUEST: string } }): void {
    client.on(client.events.REQUEST, ({ payload }) => {
      this.count.set(payload.apiName, (this.count.get(payload.apiName) ?? 0) + 1);
      this.responseBytes.set(payload.apiName, (this.responseBytes.get(payload.apiName) ?? 0) + payload.size);
    });
  }
}

test('one broker: requests, bytes, topic bytes per tier, offload, cold reads and group lag as a user checks them', { timeout: 120_000 }, async (t) => {
  const TOPIC = 'metrics-orders';
  const GROUP = 'metrics-readers';
  const store = tmpDir('meridian-metrics-store-');
  t.after(store.cleanup);
  const tb = await startBroker({
    region: 'us-east',
    log: { segmentBytes: 16 * KiB },
    topics: { autoCreate: false },
    groups: { initialRebalanceDelayMs: 0 },
    // Offloaded segments leave the disk at once, so the consumer reads them from the bucket.
    tiered: { enabled: true, store: { type: 'fs', dir: store.dir }, localRetention: { bytes: 0 }, deletionLagMs: 0, checkIntervalMs: 100 },
    metrics: { perPartition: true },
  } as BrokerConfigInput);
  t.after(() => tb.cleanup());
  const metrics = createBrokerMetrics(tb.broker);
  t.after(() => metrics.close());

  const kafka = kafkaOf(tb, 'metrics-test');
  const admin = kafka.admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2 }], waitForLeaders: true }), true);
  await assert.rejects(admin.fetchTopicMetadata({ topics: ['no-such-topic'] }));

  const before = await ParsedScrape.of(metrics);
  const seen = new ClientRequests();
  const producer = kafka.producer();
  seen.watch(producer);
  await producer.connect();
  let producedBytes = 0;
  const SENDS = 8;
  const PER_SEND = 40;
  for (let s = 0; s < SENDS; s++) {
    const messages = Array.from({ length: PER_SEND }, (_, i) => ({ key: `k${i % 5}`, value: `order ${s}-${i} ${'x'.repeat(200 + ((s * 7 + i) % 50))}` }));
    producedBytes += messages.reduce((n, m) => n + Buffer.byteLength(m.key) + Buffer.byteLength(m.value), 0);
    await producer.send({ topic: TOPIC, messages });
  }
  const whileConnected = await ParsedScrape.of(metrics);
  await producer.disconnect();

  const produces = seen.count.get('Produce') ?? 0;
  assert.ok(produces >= SENDS, `KafkaJS saw ${produces} Produce responses for ${SENDS} sends`);
  const after = await ParsedScrape.of(metrics);
  const delta = (name: string, labels: Record<string, string> = {}) => after.value(name, labels) - before.value(name, labels);
  assert.equal(delta('meridian_kafka_requests_total', { api: 'Produce', outcome: 'ok' }), produces, 'every Produce KafkaJS sent, counted once, as ok');
  assert.equal(delta('meridian_kafka_requests_total', { api: 'Produce' }), produces, 'no Produce with another outcome');
  assert.equal(
    after.histogramCount('meridian_kafka_request_duration_seconds', { api: 'Produce' }) - before.histogramCount('meridian_kafka_request_duration_seconds', { api: 'Produce' }),
    produces,
    'one latency observation per Produce',
  );
  assert.equal(delta('meridian_kafka_sent_bytes_total', { api: 'Produce' }), (seen.responseBytes.get('Produce') ?? 0) + 4 * produces, 'response bytes: what KafkaJS received, with the size prefixes');
  assert.ok(delta('meridian_kafka_received_bytes_total', { api: 'Produce' }) >= producedBytes, `bytes in (${delta('meridian_kafka_received_bytes_total', { api: 'Produce' })}) at least the ${producedBytes} bytes of keys and values produced`);
  assert.ok(after.value('meridian_kafka_requests_total', { api: 'Metadata', outcome: 'UNKNOWN_TOPIC_OR_PARTITION' }) >= 1, 'the metadata request for a missing topic is counted with its error');
  assert.ok(whileConnected.value('meridian_kafka_connections') >= 1, 'the producer\'s connection is open while it is connected');
  assert.ok(delta('meridian_kafka_connections_accepted_total') >= 1);
  for (const s of after.series('meridian_kafka_requests_total')) assert.equal(s.labels?.region, 'us-east', 'every series names its region');

  // Offload everything sealed; the local copies go (localRetention 0).
  await tb.broker.tiered!.offloadNow(TOPIC);
  assert.ok(whileConnected.value('meridian_offload_queue_segments', { topic: TOPIC }) > 0 || whileConnected.value('meridian_offload_segments_total', { topic: TOPIC }) > 0, 'sealed segments were queued or offloaded while producing');
  const logsDir = (p: number) => path.join(tb.dataDir, 'logs', PartitionFiles.dirName(TOPIC, p));
  const onDisk = () => [0, 1].reduce((n, p) => n + fileBytes(logsDir(p), (f) => f.endsWith('.log')).bytes, 0);
  const inBucket = () => fileBytes(store.dir, (f) => f.includes(`${path.sep}topics${path.sep}${TOPIC}${path.sep}`) && f.endsWith('.log'));
  const settled = await waitFor(
    'topic bytes per tier to equal the segment files on disk and in the bucket',
    async () => {
      const s = await ParsedScrape.of(metrics);
      const local = s.value('meridian_topic_bytes', { topic: TOPIC, tier: 'local' });
      const tiered = s.value('meridian_topic_bytes', { topic: TOPIC, tier: 'tiered' });
      const bucket = inBucket();
      // Settled: everything sealed is in the bucket and gone from the disk (localRetention 0).
      if (local !== onDisk() || tiered !== bucket.bytes || bucket.bytes === 0 || local !== 0 || s.value('meridian_offload_queue_segments', { topic: TOPIC }) !== 0) return undefined;
      return { s, local, tiered, bucket };
    },
    60_000,
    100,
    async () => `(disk ${onDisk()}, bucket ${inBucket().bytes}; scrape: ${(await metrics.render()).split('\n').filter((l) => l.startsWith('meridian_topic_bytes') || l.startsWith('meridian_offload')).join('; ')})`,
  );
  assert.ok(settled.tiered > 0 && settled.tiered >= producedBytes, `the bucket holds at least what was produced (${settled.tiered} bytes)`);
  assert.equal(settled.s.value('meridian_offload_segments_total', { topic: TOPIC }), settled.bucket.files, 'segments offloaded: one per segment object in the bucket');
  assert.equal(settled.s.value('meridian_offload_bytes_total', { topic: TOPIC }), settled.bucket.bytes, 'bytes offloaded: the segment objects\' bytes');
  assert.equal(settled.s.value('meridian_offload_failures_total', { topic: TOPIC }), 0);
  assert.equal(settled.s.value('meridian_topic_partitions', { topic: TOPIC }), 2);
  for (const tier of ['local', 'tiered']) {
    assert.equal(settled.s.value('meridian_partition_bytes', { topic: TOPIC, tier }), settled.s.value('meridian_topic_bytes', { topic: TOPIC, tier }), `per-partition ${tier} bytes add up to the topic's`);
  }
  assert.equal(settled.s.value('meridian_storage_offline_partitions'), 0);
  // Open segment files, as the kernel counts them: this process's descriptors on .log files
  // under the broker's logs directory (the broker runs in this process).
  const segmentFds = () =>
    fs.readdirSync('/proc/self/fd').flatMap((fd) => {
      try {
        const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
        return target.startsWith(path.join(path.resolve(tb.dataDir), 'logs')) && target.endsWith('.log') ? [target] : [];
      } catch {
        return []; // closed between the listing and the readlink
      }
    });
  const files = await ParsedScrape.of(metrics);
  assert.equal(files.value('meridian_storage_open_files'), segmentFds().length, `open segment files: what /proc lists (${segmentFds().join(', ')})`);
  assert.ok(files.value('meridian_storage_open_files') > 0 && files.value('meridian_storage_open_files') <= files.value('meridian_storage_open_files_limit'));
  assert.equal(files.value('meridian_storage_open_files_limit'), derivedMaxOpenFiles(), 'log.maxOpenFiles by default: derived from this process\'s open-file limit');
  assert.equal(settled.s.value('meridian_storage_corrupt_reads_total'), 0);

  // A group reads everything (from the bucket: nothing is local any more) and commits.
  const total = SENDS * PER_SEND;
  const consumerSeen = new ClientRequests();
  const consumer = kafka.consumer({ groupId: GROUP, maxWaitTimeInMs: 200 });
  consumerSeen.watch(consumer);
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  let consumed = 0;
  await consumer.run({ eachMessage: async () => void consumed++ });
  await waitFor(`the group to read all ${total} records`, () => consumed >= total, 60_000);
  await consumer.disconnect();
  assert.equal(consumed, total, 'every record read once');
  const read = await ParsedScrape.of(metrics);
  const fetches = consumerSeen.count.get('Fetch') ?? 0;
  assert.ok(fetches > 0);
  // A Fetch in its long-poll when the consumer left was answered by the broker, not seen by KafkaJS.
  assert.ok(read.value('meridian_kafka_requests_total', { api: 'Fetch' }) >= fetches, `every Fetch KafkaJS saw answered is counted (${fetches})`);
  assert.ok(read.value('meridian_kafka_sent_bytes_total', { api: 'Fetch' }) >= (consumerSeen.responseBytes.get('Fetch') ?? 0) + 4 * fetches, 'Fetch bytes out: at least what KafkaJS received');
  assert.ok(read.value('meridian_kafka_sent_bytes_total', { api: 'Fetch' }) >= producedBytes, 'Fetch bytes out: at least the keys and values read');
  assert.ok(read.value('meridian_tiered_cache_misses_total') > 0, 'reading offloaded segments missed the empty cache');
  assert.ok(read.value('meridian_tiered_read_bytes_total') >= producedBytes, 'the records were served from the bucket');
  assert.ok(read.value('meridian_tiered_cache_bytes') > 0);

  // More records after the group's commit: its lag is exactly those.
  const producer2 = kafka.producer();
  await producer2.connect();
  const MORE = 30;
  await producer2.send({ topic: TOPIC, messages: Array.from({ length: MORE }, (_, i) => ({ key: `k${i % 3}`, value: `later ${i}` })) });
  await producer2.disconnect();
  const high = await admin.fetchTopicOffsets(TOPIC);
  const committed = (await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] }))[0].partitions;
  const expectedLag = high.reduce((n, h) => n + Number(h.high) - Number(committed.find((c) => c.partition === h.partition)!.offset), 0);
  assert.equal(expectedLag, MORE, 'the group committed everything it read');
  const lagged = await ParsedScrape.of(metrics);
  assert.equal(lagged.value('meridian_consumer_group_lag_records', { group: GROUP, topic: TOPIC }), expectedLag, 'group lag: high watermark minus committed, summed over partitions');
  assert.equal(lagged.value('meridian_consumer_groups'), 1);
});

/** Produces small batches to `topic` until stopped; counts what was acknowledged. */
function steadyProducer(producer: Producer, topic: string): { acked: () => number; stop: () => Promise<void> } {
  let stopped = false;
  let acked = 0;
  const done = (async () => {
    for (let i = 0; !stopped; i++) {
      await producer.send({ topic, messages: Array.from({ length: 10 }, (_, j) => ({ value: `r-${i}-${j}-${'y'.repeat(100)}` })) });
      acked += 10;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  done.catch(() => {}); // observed by stop()
  return {
    acked: () => acked,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

test('two regions: the replication lag of a live link is in /metrics, rises while the link is cut and producing continues, and falls after', { timeout: 180_000 }, async (t) => {
  const TOPIC = 'metrics-replicated';
  // eu-west holds the same policy: it takes the topic only from the regions its policies name.
  const eu = await startBroker({
    region: 'eu-west',
    topics: { autoCreate: false },
    admin: { port: 0 },
    replication: {
      regions: [
        { name: 'us-east', address: '127.0.0.1:1' },
        { name: 'eu-west', address: '127.0.0.1:1' },
      ],
      policies: [{ topics: TOPIC, topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
    },
  } as BrokerConfigInput);
  t.after(() => eu.cleanup());
  const proxy = new TcpProxy({ targetPort: eu.port });
  await proxy.start();
  t.after(() => proxy.close());
  const us = await startBroker({
    region: 'us-east',
    topics: { autoCreate: false },
    admin: { port: 0 },
    replication: {
      regions: [
        { name: 'us-east', address: '127.0.0.1:1' },
        { name: 'eu-west', address: `127.0.0.1:${proxy.port}` },
      ],
      policies: [{ topics: TOPIC, topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
      retry: { initialMs: 50, maxMs: 500 },
      requestTimeoutMs: 5000,
    },
  } as BrokerConfigInput);
  t.after(() => us.cleanup());
  // Scraped over HTTP from each region's admin API, as Prometheus does.
  const usMetrics = () => ParsedScrape.scrape(us.broker.adminAddress!);
  const euMetrics = () => ParsedScrape.scrape(eu.broker.adminAddress!);
  const link = { remote_region: 'eu-west', topic: TOPIC };

  const kafka = kafkaOf(us, 'metrics-replication');
  const admin = kafka.admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2 }], waitForLeaders: true }), true);
  const producer = kafka.producer();
  await producer.connect();
  t.after(() => producer.disconnect());

  // Live: what is produced reaches eu-west and the link shows no lag.
  await producer.send({ topic: TOPIC, messages: Array.from({ length: 50 }, (_, i) => ({ value: `first-${i}` })) });
  const live = await waitFor('the link to carry the first records and show no lag', async () => {
    const s = await usMetrics();
    return s.value('meridian_replication_sent_records_total', link) === 50 && s.value('meridian_replication_lag_records', link) === 0 ? s : undefined;
  });
  assert.equal(live.value('meridian_replication_lag_seconds', link), 0);
  assert.equal(live.value('meridian_replication_backlog_bytes', link), 0);
  assert.equal(live.value('meridian_replication_remote_connected', { remote_region: 'eu-west' }), 1);
  assert.equal(live.series('meridian_replication_lag_seconds', link).length, 1, 'one lag series per link (remote region, topic), not per partition');
  assert.equal(live.value('meridian_replication_partitions', { ...link, state: 'error' }), 0);
  assert.ok(live.value('meridian_replication_sent_bytes_total', link) > 0);
  const euLive = await euMetrics();
  assert.ok(euLive.value('meridian_replication_received_batches_total') > 0, 'eu-west counts what it received');
  assert.equal(euLive.value('meridian_kafka_requests_total', { api: 'Produce' }), 0, 'each broker counts only its own requests (one registry each)');
  assert.ok(euLive.value('meridian_kafka_requests_total', { api: 'ReplicatedAppend', outcome: 'ok' }) > 0, 'replication arrives at eu-west\'s Kafka listener');
  assert.equal(euLive.series('meridian_replication_lag_seconds').length, 0, 'eu-west sends nothing');
  // A batch of 16 KiB or more is read into one of the replicator's pooled buffers, given back once eu-west answers.
  assert.equal(live.value('meridian_replication_read_buffers_total', { outcome: 'allocated' }) + live.value('meridian_replication_read_buffers_total', { outcome: 'reused' }), 0, 'the first records were small reads');
  await producer.send({ topic: TOPIC, messages: [{ value: Buffer.alloc(40 * 1024, 0x61) }] });
  const large = await waitFor('a 40 KiB record to be replicated', async () => {
    const s = await usMetrics();
    return s.value('meridian_replication_sent_records_total', link) === 51 ? s : undefined;
  });
  assert.equal(large.value('meridian_replication_read_buffers_total', { outcome: 'allocated' }) + large.value('meridian_replication_read_buffers_total', { outcome: 'reused' }), 1, 'one pooled read');
  assert.equal(large.value('meridian_replication_read_buffer_pool_bytes'), 64 * 1024, 'its buffer is back in the pool');

  // Cut: the link refuses connections while us-east keeps producing.
  const steady = steadyProducer(producer, TOPIC);
  t.after(() => steady.stop());
  proxy.setRefusing(true);
  const cut = await waitFor('the link\'s lag to rise while it is cut', async () => {
    const s = await usMetrics();
    return s.value('meridian_replication_lag_seconds', link) >= 1 && s.value('meridian_replication_lag_records', link) > 0 ? s : undefined;
  });
  const rising = await waitFor('the lag to keep rising while the link stays cut', async () => {
    const s = await usMetrics();
    return s.value('meridian_replication_lag_seconds', link) > cut.value('meridian_replication_lag_seconds', link) + 0.5 ? s : undefined;
  });
  assert.ok(rising.value('meridian_replication_lag_records', link) >= cut.value('meridian_replication_lag_records', link), 'the backlog grows as producing continues');
  assert.ok(rising.value('meridian_replication_backlog_bytes', link) > 0);
  assert.equal(rising.value('meridian_replication_remote_connected', { remote_region: 'eu-west' }), 0);
  assert.ok(rising.value('meridian_replication_retries_total', link) > live.value('meridian_replication_retries_total', link), 'failed attempts are retried and counted');
  assert.ok(rising.value('meridian_replication_partitions', { ...link, state: 'backing-off' }) > 0, 'partitions back off while the remote is unreachable');
  const peak = rising.value('meridian_replication_lag_seconds', link);

  // Restored: the lag falls while producing continues, then to nothing once it stops.
  proxy.setRefusing(false);
  await waitFor('the lag to fall once the link is restored', async () => {
    const s = await usMetrics();
    return s.value('meridian_replication_lag_seconds', link) < peak && s.value('meridian_replication_sent_records_total', link) > live.value('meridian_replication_sent_records_total', link) ? s : undefined;
  });
  await steady.stop();
  const produced = 51 + steady.acked();
  const caughtUp = await waitFor('the link to catch up', async () => {
    const s = await usMetrics();
    return s.value('meridian_replication_lag_records', link) === 0 ? s : undefined;
  });
  assert.equal(caughtUp.value('meridian_replication_lag_seconds', link), 0);
  assert.equal(caughtUp.value('meridian_replication_backlog_bytes', link), 0);
  assert.equal(caughtUp.value('meridian_replication_sent_records_total', link), produced, 'every record sent once');
  assert.equal(caughtUp.value('meridian_replication_remote_connected', { remote_region: 'eu-west' }), 1);
  const euHeld = [0, 1].reduce((n, p) => n + Number(eu.broker.topics.partition(TOPIC, p)!.highWatermark), 0);
  assert.ok(euHeld >= produced, `eu-west holds the ${produced} records (its offsets also count markers: ${euHeld})`);
});
