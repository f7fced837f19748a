/**
 * The broker through kafka-python 2.0.2 (Debian's python3-kafka), a third client family
 * independent of librdkafka and KafkaJS, and one that sends old request versions (issue 11:
 * "the old versions that old clients still send ... whatever else an old client in Debian's
 * archive sends"). test/fixtures/kafka_python_client.py drives it, one fresh process per
 * step, JSON in and out; each answer lists the (API, version) pairs the client actually sent,
 * so the tests show which old versions were exercised instead of assuming it.
 *
 * Covered: KafkaAdminClient creates a topic; a keyed, gzip'd, acks=all producer; a consumer
 * group that commits, leaves, and resumes exactly after its commit; offsets_for_times; bytes,
 * counts and per-partition order checked against what was produced and against KafkaJS and
 * kcat reading the same topic, and the other way round. Once as a user runs it (api_version
 * probed) and once pinned to Kafka 0.11's versions. OffsetCommit/OffsetFetch v0 and v1 through
 * the client's 0.8.1/0.8.2 modes, and the versions Meridian does not serve (Produce v2, Fetch
 * v3, as Kafka 4 no longer does: KIP-896) refused in a way the client reports.
 * offsets_for_times on gzip'd batches answers the record, not the batch (the broker opens
 * compressed batches on that path, as Kafka does).
 *
 * The expected request versions are kafka-python 2.0.2's (Debian bookworm's python3-kafka).
 * kafka-python must be installed: the tests fail (never skip) where it is not, naming the
 * install command.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { CompressionTypes, Kafka, logLevel, type IHeaders } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { rng, randomBytes } from '../helpers/seeded-random.js';
import { apiKeyName } from '../../src/protocol/kafka/api-keys.js';

const DRIVER = fileURLToPath(new URL('../fixtures/kafka_python_client.py', import.meta.url));

/**
 * Debian's python3-kafka installs into the system interpreter's dist-packages, so
 * /usr/bin/python3 comes first; a `python3` earlier on PATH (pyenv, a virtualenv) usually
 * lacks the module.
 */
function findPython(): { python: string; version: string } | { missing: string } {
  const tried: string[] = [];
  for (const python of [...(existsSync('/usr/bin/python3') ? ['/usr/bin/python3'] : []), 'python3']) {
    const r = spawnSync(python, ['-c', 'import kafka, sys; sys.stdout.write(kafka.__version__)'], { encoding: 'utf8' });
    if (!r.error && r.status === 0) return { python, version: r.stdout.trim() };
    tried.push(`${python}: ${r.error ? r.error.message : r.stderr.trim().split('\n').pop()}`);
  }
  return { missing: `python3 with kafka-python (Debian package python3-kafka) is not installed (run: bash scripts/install-tools.sh); tried ${tried.join('; ')}` };
}
const PY = findPython();

type ApiVersion = [number, number] | [number, number, number] | null;

/** A record as the driver exchanges it: bytes as base64, null kept. */
interface PyRecord {
  partition: number;
  offset: number;
  timestamp: number;
  key: string | null;
  value: string | null;
  headers: Array<[string, string]>;
}

interface PyAnswer {
  api_version: number[];
  /** [API key, version] of every request the client sent. */
  requests: Array<[number, number]>;
  error?: string;
  errno?: number;
  message?: string;
  [k: string]: unknown;
}

/** Runs one driver command; fails with the client's stderr unless it exits 0. */
function py<T extends PyAnswer>(command: string, req: Record<string, unknown>, timeoutMs = 180_000): Promise<T> {
  if ('missing' in PY) return Promise.reject(new Error(PY.missing));
  const { python } = PY;
  return new Promise((resolve, reject) => {
    const child = spawn(python, [DRIVER, command], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kafka-python ${command} timed out after ${timeoutMs} ms; stderr:\n${err.slice(-4000)}`));
    }, timeoutMs);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`kafka-python ${command} exited ${code}; stderr:\n${err.slice(-4000)}`));
      resolve(JSON.parse(out) as T);
    });
    child.stdin.end(JSON.stringify(req));
  });
}

let broker: TestBroker;
let kc: KcatClient;
let kafka: Kafka;

before(async () => {
  broker = await startBroker();
  kc = new KcatClient(broker.bootstrap);
  kafka = new Kafka({ clientId: 'kafka-python-test', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
});

after(async () => {
  await broker?.cleanup();
});

const sent = (a: PyAnswer): string[] => a.requests.map(([k, v]) => `${apiKeyName(k) ?? `api${k}`} v${v}`);


// kcat splits stdin on -D and each message on -K (both take \xNN escapes); generated bytes
// never contain 0x1e or 0x1f, so neither delimiter can occur inside a key or value.
const NOT_DELIM = new Set([0x1e, 0x1f]);
const MSG_DELIM = Buffer.from([0x1e, 0xff, 0x1e]);
const KEY_DELIM = Buffer.from([0x1f, 0xff, 0x1f]);
const DELIM_ARGS = ['-D', '\\x1e\\xff\\x1e', '-K', '\\x1f\\xff\\x1f'];


interface Produced {
  key: Buffer;
  value: Buffer | null;
  timestamp: number;
  headers: Array<[string, Buffer]>;
}

/**
 * Distinct keys (a readable prefix, then binary bytes: NUL, 0xff, invalid UTF-8), values of
 * 0 to ~2 KB binary (one empty, one null), headers on every third record, and strictly
 * increasing timestamps an hour in the past so offsets_for_times has one answer.
 */
function records(count: number, tag: string, seed: number, base: number): Produced[] {
  const next = rng(seed);
  return Array.from({ length: count }, (_, i) => ({
    key: Buffer.concat([Buffer.from(`${tag}-${i}-`), randomBytes(next, 1 + (i % 9), NOT_DELIM)]),
    value: i === 7 ? null : i === 11 ? Buffer.alloc(0) : randomBytes(next, Math.floor(next() * 2048), NOT_DELIM),
    timestamp: base + i * 10,
    headers: i % 3 === 0 ? [['trace', randomBytes(next, 12, NOT_DELIM)], ['empty', Buffer.alloc(0)], ['utf8', Buffer.from(`é-${i}`)]] : [],
  }));
}

const b64 = (b: Buffer | null): string | null => (b === null ? null : b.toString('base64'));
const unb64 = (s: string | null): Buffer | null => (s === null ? null : Buffer.from(s, 'base64'));
const show = (b: Buffer | null | undefined): string => (b === null ? 'null' : b === undefined ? 'undefined' : `${b.length}B:${b.subarray(0, 16).toString('hex')}${b.length > 16 ? '…' : ''}`);

/** Where each produced record landed, from the producer's own acknowledgements. */
interface Placed extends Produced {
  partition: number;
  offset: number;
}

/** A record as any of the three clients read it, reduced to what they all expose. */
interface Read {
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<[string, Buffer]>;
  timestamp?: number;
}

const fromPy = (r: PyRecord): Read => ({ partition: r.partition, offset: r.offset, key: unb64(r.key), value: unb64(r.value), headers: r.headers.map(([n, v]) => [n, unb64(v)!]), timestamp: r.timestamp });

/** KafkaJS's IHeaders back into a list; every name here is used once per record. */
function headerList(h: IHeaders): Array<[string, Buffer]> {
  return Object.entries(h).map(([n, v]) => {
    assert.ok(Buffer.isBuffer(v), `header ${n}: KafkaJS gave ${JSON.stringify(v)}`);
    return [n, v];
  });
}

/**
 * `got` must be exactly `expected` (in any partition interleaving): every record once, at its
 * partition and offset, with identical key, value and header bytes, and each partition's
 * records in offset order as delivered.
 */
function assertSameRecords(who: string, expected: Placed[], got: Read[], checkTimestamp = true): void {
  const want = new Map(expected.map((e) => [`${e.partition}/${e.offset}`, e]));
  const seen = new Set<string>();
  const lastOffset = new Map<number, number>();
  for (const r of got) {
    const at = `${r.partition}/${r.offset}`;
    const e = want.get(at);
    assert.ok(e, `${who}: record at ${at} was never produced (key ${show(r.key)})`);
    assert.ok(!seen.has(at), `${who}: ${at} delivered twice`);
    seen.add(at);
    assert.ok(r.offset > (lastOffset.get(r.partition) ?? -1), `${who}: partition ${r.partition} went back from ${lastOffset.get(r.partition)} to ${r.offset}`);
    lastOffset.set(r.partition, r.offset);
    assert.ok(r.key !== null && r.key.equals(e.key), `${who}: ${at} key ${show(r.key)}, produced ${show(e.key)}`);
    assert.ok(e.value === null ? r.value === null : r.value !== null && r.value.equals(e.value), `${who}: ${at} value ${show(r.value)}, produced ${show(e.value)}`);
    assert.deepEqual(
      r.headers.map(([n, v]) => [n, v.toString('hex')]),
      e.headers.map(([n, v]) => [n, v.toString('hex')]),
      `${who}: ${at} headers`,
    );
    if (checkTimestamp && r.timestamp !== undefined) assert.equal(r.timestamp, e.timestamp, `${who}: ${at} timestamp`);
  }
  const lost = expected.filter((e) => !seen.has(`${e.partition}/${e.offset}`));
  assert.equal(lost.length, 0, `${who}: ${lost.length} produced records never read, e.g. ${lost.slice(0, 3).map((e) => `${e.partition}/${e.offset}`).join(', ')}`);
  assert.equal(got.length, expected.length, `${who}: count`);
}

/** Asserts the producer's acknowledgements: per partition, offsets 0, 1, 2, ... in send order. */
function place(produced: Produced[], acks: Array<{ partition: number; offset: number }>): Placed[] {
  assert.equal(acks.length, produced.length);
  const next = new Map<number, number>();
  return produced.map((p, i) => {
    const { partition, offset } = acks[i];
    assert.equal(offset, next.get(partition) ?? 0, `record #${i}: acknowledged at ${partition}/${offset}, expected offset ${next.get(partition) ?? 0} (send order kept per partition)`);
    next.set(partition, offset + 1);
    return { ...p, partition, offset };
  });
}

async function groupOffsets(groupId: string, topic: string): Promise<Map<number, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map(t.partitions.filter((p) => Number(p.offset) >= 0).map((p) => [p.partition, Number(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}

interface ConsumeAnswer extends PyAnswer {
  records: PyRecord[];
  committed: Record<string, number>;
}

/**
 * The whole round trip through kafka-python at `apiVersion` (null: probed, as a user runs it):
 * returns the requests it sent, for the caller to check which versions that was.
 */
async function roundTrip(apiVersion: ApiVersion, tag: string, seed: number): Promise<Set<string>> {
  const topic = `kpy-${tag}`;
  const group = `kpy-${tag}-group`;
  const requests = new Set<string>();
  const note = (a: PyAnswer): void => sent(a).forEach((s) => requests.add(s));
  const common = { bootstrap: broker.bootstrap, api_version: apiVersion, topic };

  note(await py('create-topic', { ...common, partitions: 3 }));
  const produced = records(900, tag, seed, Date.now() - 3_600_000);
  const pa = await py<PyAnswer & { sent: Array<{ partition: number; offset: number }> }>('produce', {
    ...common,
    acks: 'all',
    compression: 'gzip',
    records: produced.map((r) => ({ key: b64(r.key), value: b64(r.value), timestamp_ms: r.timestamp, headers: r.headers.map(([n, v]) => [n, b64(v)]) })),
  });
  note(pa);
  const placed = place(produced, pa.sent);
  for (const p of [0, 1, 2]) assert.ok(placed.some((r) => r.partition === p), `the key partitioner left partition ${p} empty`);

  // First member: 400 records, commits exactly those, leaves.
  const first = await py<ConsumeAnswer>('consume', { ...common, group, max_records: 400 });
  note(first);
  assert.equal(first.records.length, 400);
  const firstRead = first.records.map(fromPy);
  const committed = await py<PyAnswer & { committed: Record<string, number | null> }>('committed', { ...common, group, partitions: [0, 1, 2] });
  note(committed);
  for (const p of [0, 1, 2]) {
    const reached = firstRead.filter((r) => r.partition === p).reduce((m, r) => Math.max(m, r.offset + 1), -1);
    assert.equal(committed.committed[String(p)], reached < 0 ? null : reached, `partition ${p}: committed offset`);
  }

  // The same group again resumes right after the commit: nothing read twice, nothing skipped.
  const second = await py<ConsumeAnswer>('consume', { ...common, group });
  note(second);
  const secondRead = second.records.map(fromPy);
  for (const p of [0, 1, 2]) {
    const firstInSecond = secondRead.find((r) => r.partition === p);
    const resumeAt = committed.committed[String(p)] ?? 0;
    const end = placed.filter((r) => r.partition === p).length;
    if (resumeAt < end) assert.equal(firstInSecond?.offset, resumeAt, `partition ${p}: the resumed member starts at ${firstInSecond?.offset}, committed ${resumeAt}`);
  }
  assertSameRecords(`kafka-python (${apiVersion ?? 'probed'}) across the commit`, placed, [...firstRead, ...secondRead]);
  assert.deepEqual(await groupOffsets(group, topic), new Map([0, 1, 2].map((p) => [p, placed.filter((r) => r.partition === p).length])), 'the group ends committed at every partition end (as KafkaJS reads it)');

  // The other two client families read kafka-python's records identically.
  const kjs = await readTopicToEnd(broker.bootstrap, topic);
  assertSameRecords('KafkaJS', placed, kjs.map((m) => ({ partition: m.partition, offset: m.offset, key: m.key, value: m.value, headers: headerList(m.headers), timestamp: Number(m.timestamp) })));
  const kcatRead = await kc.consumeAll(topic);
  assertSameRecords('kcat', placed, kcatRead.map((m) => ({ partition: m.partition, offset: m.offset, key: m.key, value: m.payload, headers: m.headers.map(([n, v]) => [n, v ?? Buffer.alloc(0)] as [string, Buffer]), timestamp: m.ts })));

  return requests;
}

test('kafka-python, versions probed as a user runs it: admin, gzip acks=all producer, group commit and exact resume; KafkaJS and kcat read the same bytes', { timeout: 600_000 }, async () => {
  const requests = await roundTrip(null, 'probed', 11);
  // kafka-python 2.0.2 takes Meridian for Kafka 2.4 and then sends these, old ones among them.
  for (const r of ['ApiVersions v0', 'Metadata v1', 'CreateTopics v3', 'Produce v7', 'Fetch v4', 'ListOffsets v1', 'FindCoordinator v0', 'JoinGroup v2', 'SyncGroup v1', 'OffsetCommit v2', 'OffsetFetch v1', 'LeaveGroup v1']) {
    assert.ok(requests.has(r), `kafka-python sent ${[...requests].sort().join(', ')}; expected ${r} among them`);
  }
});

test('kafka-python pinned to api_version (0, 11, 0): the same round trip with Produce v3 and its other 0.11 versions', { timeout: 600_000 }, async () => {
  const requests = await roundTrip([0, 11, 0], 'pinned-0-11', 12);
  for (const r of ['Produce v3', 'Fetch v4', 'ListOffsets v1', 'Metadata v1', 'JoinGroup v2', 'OffsetCommit v2', 'OffsetFetch v1']) {
    assert.ok(requests.has(r), `kafka-python sent ${[...requests].sort().join(', ')}; expected ${r} among them`);
  }
});

test('kafka-python in its 0.8.1 and 0.8.2 modes commits with OffsetCommit v0 and v1 and reads back with OffsetFetch v0 and v1; KafkaJS and a later member see the same offsets', { timeout: 300_000 }, async () => {
  const topic = 'kpy-old-commit';
  const common = { bootstrap: broker.bootstrap, topic };
  await py('create-topic', { ...common, api_version: null, partitions: 3 });
  const produced = records(60, 'old-commit', 13, Date.now() - 3_600_000).map((r) => ({ ...r, headers: [] }));
  const placed = place(
    produced,
    (await py<PyAnswer & { sent: Array<{ partition: number; offset: number }> }>('produce', { ...common, api_version: null, records: produced.map((r) => ({ key: b64(r.key), value: b64(r.value), timestamp_ms: r.timestamp, headers: [] })) })).sent,
  );
  const ends = [0, 1, 2].map((p) => placed.filter((r) => r.partition === p).length);

  for (const [apiVersion, v] of [
    [[0, 8, 1], 0],
    [[0, 8, 2], 1],
  ] as const) {
    const group = `kpy-old-commit-v${v}`;
    // Distinct, in-range offsets per partition, so a value from the wrong partition shows.
    const offsets = Object.fromEntries([0, 1, 2].map((p) => [String(p), Math.floor((ends[p] * (p + 1)) / 4)]));
    const c = await py('commit', { ...common, api_version: apiVersion, group, offsets });
    assert.ok(sent(c).includes(`OffsetCommit v${v}`), `kafka-python ${apiVersion.join('.')} sent ${sent(c).join(', ')}; expected OffsetCommit v${v}`);
    const back = await py<PyAnswer & { committed: Record<string, number | null> }>('committed', { ...common, api_version: apiVersion, group, partitions: [0, 1, 2] });
    assert.ok(sent(back).includes(`OffsetFetch v${v}`), `kafka-python ${apiVersion.join('.')} sent ${sent(back).join(', ')}; expected OffsetFetch v${v}`);
    assert.deepEqual(back.committed, offsets, `OffsetFetch v${v} returns what OffsetCommit v${v} stored`);
    assert.deepEqual(await groupOffsets(group, topic), new Map(Object.entries(offsets).map(([p, o]) => [Number(p), o])), `KafkaJS reads what OffsetCommit v${v} stored`);

    // A current member of the group starts exactly there.
    const resumed = await py<ConsumeAnswer>('consume', { ...common, api_version: null, group });
    const expected = placed.filter((r) => r.offset >= offsets[String(r.partition)]);
    assertSameRecords(`a member resuming after OffsetCommit v${v}`, expected, resumed.records.map(fromPy));
  }
});

/**
 * offsets_for_times (ListOffsets v1 by timestamp) on a topic kafka-python wrote with
 * `compression`: for each partition, a time just before its middle record (and after its
 * predecessor, >= 10 ms earlier) must find that record, as Kafka answers (the first record
 * at or after the time, with its own timestamp); a time after the last record finds none.
 */
async function offsetsForTimes(tag: string, compression: 'gzip' | null): Promise<void> {
  const topic = `kpy-times-${tag}`;
  const common = { bootstrap: broker.bootstrap, api_version: null, topic };
  await py('create-topic', { ...common, partitions: 3 });
  const produced = records(300, `times-${tag}`, 41, Date.now() - 3_600_000);
  const placed = place(
    produced,
    (await py<PyAnswer & { sent: Array<{ partition: number; offset: number }> }>('produce', { ...common, compression, records: produced.map((r) => ({ key: b64(r.key), value: b64(r.value), timestamp_ms: r.timestamp })) })).sent,
  );
  const ask: Record<string, number> = {};
  const expect: Record<string, { offset: number; timestamp: number } | null> = {};
  for (const p of [0, 1, 2]) {
    const inP = placed.filter((r) => r.partition === p);
    const mid = inP[Math.floor(inP.length / 2)];
    ask[String(p)] = mid.timestamp - 1;
    expect[String(p)] = { offset: mid.offset, timestamp: mid.timestamp };
  }
  const ft = await py<PyAnswer & { offsets: Record<string, unknown> }>('offsets-for-times', { ...common, timestamps: ask });
  assert.ok(sent(ft).includes('ListOffsets v1'), `kafka-python sent ${sent(ft).join(', ')}`);
  assert.deepEqual(ft.offsets, expect, `offsets_for_times ${JSON.stringify(ask)}`);
  const late = await py<PyAnswer & { offsets: Record<string, unknown> }>('offsets-for-times', { ...common, timestamps: { 0: Date.now() + 3_600_000 } });
  assert.deepEqual(late.offsets, { 0: null }, 'offsets_for_times after the last record');
}

test('kafka-python offsets_for_times (ListOffsets v1) finds the first record at or after a time, uncompressed', { timeout: 300_000 }, async () => {
  await offsetsForTimes('plain', null);
});

// Kafka (LogSegment.findOffsetByTimestamp) answers the first record at or after the time
// inside a compressed batch too; answering the batch's base offset made a consumer seeking
// there re-read up to a batch of older records.
test('kafka-python offsets_for_times (ListOffsets v1) finds the first record at or after a time, gzip', { timeout: 300_000 }, async () => {
  await offsetsForTimes('gzip', 'gzip');
});

test('records from kcat and KafkaJS read by kafka-python byte for byte, gzip and uncompressed, in a group to the end of the topic', { timeout: 300_000 }, async () => {
  const topic = 'kpy-from-others';
  const admin = kafka.admin();
  await admin.connect();
  try {
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true }), true);
  } finally {
    await admin.disconnect();
  }

  // kcat: binary keys and values (no headers: kcat -H would put the same on every message).
  const fromKcat = records(300, 'kcat', 21, Date.now()).map((r) => ({ ...r, value: r.value ?? Buffer.alloc(0), headers: [] }));
  const kcatInput = (rs: typeof fromKcat): Buffer => Buffer.concat(rs.flatMap((r) => [r.key, KEY_DELIM, r.value, MSG_DELIM]));
  await kc.produce(topic, kcatInput(fromKcat.slice(0, 150)), [...DELIM_ARGS, '-z', 'gzip', '-X', 'acks=all']);
  await kc.produce(topic, kcatInput(fromKcat.slice(150)), DELIM_ARGS);

  // KafkaJS: binary, headers, a null value, gzip'd then uncompressed.
  const fromKjs = records(300, 'kafkajs', 22, Date.now());
  const producer = kafka.producer();
  await producer.connect();
  try {
    const send = (rs: Produced[], compression: CompressionTypes) =>
      producer.send({ topic, acks: -1, compression, messages: rs.map((r) => ({ key: r.key, value: r.value, headers: Object.fromEntries(r.headers) })) });
    await send(fromKjs.slice(0, 150), CompressionTypes.GZIP);
    await send(fromKjs.slice(150), CompressionTypes.None);
  } finally {
    await producer.disconnect();
  }

  // Reference for partition and offset: what kcat reads; the bytes come from what was produced.
  const byKey = new Map([...fromKcat, ...fromKjs].map((r) => [r.key.toString('hex'), r]));
  const layout = await kc.consumeAll(topic);
  assert.equal(layout.length, fromKcat.length + fromKjs.length, 'kcat reads every record once');
  const placed: Placed[] = layout.map((m) => {
    const r = byKey.get(m.key!.toString('hex'));
    assert.ok(r, `kcat read a key nobody produced: ${show(m.key)}`);
    return { ...r, partition: m.partition, offset: m.offset };
  });

  const got = await py<ConsumeAnswer>('consume', { bootstrap: broker.bootstrap, api_version: null, topic, group: 'kpy-from-others-group' });
  assertSameRecords('kafka-python reading kcat and KafkaJS', placed, got.records.map(fromPy), false);
});

test('versions Meridian does not serve (Produce v2 and Fetch v3 from api_version (0, 10, 1), as Kafka 4 no longer does) reach the application as UnsupportedVersionError; the broker keeps serving', { timeout: 300_000 }, async () => {
  const topic = 'kpy-unserved';
  const common = { bootstrap: broker.bootstrap, topic };
  await py('create-topic', { ...common, api_version: null, partitions: 1 });
  const p = await py('produce', { ...common, api_version: [0, 10, 1], report_errors: true, records: [{ key: b64(Buffer.from('k')), value: b64(Buffer.from('v')) }] });
  assert.equal(p.error, 'UnsupportedVersionError', `Produce v2: ${JSON.stringify(p)}`);
  assert.equal(p.errno, 35);

  const produced = records(5, 'unserved', 31, Date.now() - 3_600_000).map((r) => ({ ...r, headers: [] }));
  place(produced, (await py<PyAnswer & { sent: Array<{ partition: number; offset: number }> }>('produce', { ...common, api_version: null, records: produced.map((r) => ({ key: b64(r.key), value: b64(r.value), timestamp_ms: r.timestamp, headers: [] })) })).sent);
  const c = await py<ConsumeAnswer>('consume', { ...common, api_version: [0, 10, 1], report_errors: true, group: 'kpy-unserved-old' });
  assert.equal(c.error, 'UnsupportedVersionError', `Fetch v3: ${JSON.stringify(c).slice(0, 400)}`);
  assert.equal(c.errno, 35);

  const ok = await py<ConsumeAnswer>('consume', { ...common, api_version: null, group: 'kpy-unserved-new' });
  assert.equal(ok.records.length, 5, 'a probing client on the same broker reads the topic');
});
