/**
 * Real clients as the drill drives them: KafkaJS and kcat readers that consume a topic to
 * its end (or say why they did not), and idempotent acks=all writers that keep the ledger.
 */
import { Kafka, logLevel, type IHeaders, type Producer } from 'kafkajs';
import { kcat } from '../../../test/helpers/kcat.js';
import { parseKcatJson } from '../../../test/helpers/kcat-json.js';
import { sleep } from './context.js';
import type { ReadRecord, Stream } from './ledger.js';

export function kafkaAt(bootstrap: string, clientId: string, retry = { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 }): Kafka {
  return new Kafka({ clientId, brokers: [bootstrap], logLevel: logLevel.NOTHING, retry, connectionTimeout: 3000, requestTimeout: 15_000 });
}

export async function createTopic(bootstrap: string, topic: string, partitions: number): Promise<void> {
  const admin = kafkaAt(bootstrap, 'drill-admin').admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

/** Rejects after `ms` (a client that never returns is itself a finding, not a hang). */
export function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

export interface ReadResult {
  records: ReadRecord[];
  /**
   * Why the reader did not read cleanly to the end (null when it did): stuck, timed out,
   * exited with an error, or (kcat) reported an error while reading.
   */
  failure: string | null;
}

/** `kcat -C -J -o beginning -e`: the whole topic byte for byte; a failure after `timeoutMs`. */
export async function readWithKcat(bootstrap: string, topic: string, timeoutMs = 120_000): Promise<ReadResult> {
  try {
    const r = await kcat(['-b', bootstrap, '-C', '-J', '-t', topic, '-o', 'beginning', '-e', '-q'], undefined, timeoutMs);
    const records = parseKcatJson(r.stdout).map((m) => ({ partition: m.partition, offset: m.offset, key: m.key, value: m.payload, headers: m.headers }));
    const errors = r.stderr.split('\n').filter((l) => /ERROR|error/i.test(l));
    if (r.code !== 0) return { records, failure: `kcat exited ${r.code}: ${errors.slice(0, 2).join(' ')}` };
    return { records, failure: errors.length > 0 ? `kcat reported: ${errors.slice(0, 2).join(' ')}` : null };
  } catch (err) {
    return { records: [], failure: (err as Error).message.slice(0, 300) };
  }
}

/**
 * A KafkaJS consumer (fresh group, from the beginning, no offset commits) until it has seen
 * the last offset below each partition's high watermark, or until it made no progress for
 * `stallMs`: then it is stuck.
 */
export async function readWithKafkaJs(bootstrap: string, topic: string, stallMs = 15_000): Promise<ReadResult> {
  const kafka = kafkaAt(bootstrap, 'drill-reader');
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map((await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect())).map((p) => [p.partition, Number(p.high)]));
  const consumer = kafka.consumer({ groupId: `drill-${process.pid}-${Date.now()}-${Math.floor(Math.random() * 1e9)}`, maxWaitTimeInMs: 200, sessionTimeout: 10_000 });
  const records: ReadRecord[] = [];
  const reached = new Map<number, number>();
  let progressAt = Date.now();
  let crashed: string | null = null;
  consumer.on(consumer.events.CRASH, (e) => (crashed = String((e.payload as { error?: Error }).error?.message ?? 'crash')));
  const done = () => [...ends].every(([p, end]) => end === 0 || (reached.get(p) ?? -1) >= end - 1);
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) {
          records.push({ partition: batch.partition, offset: Number(m.offset), key: m.key, value: m.value, headers: kafkaJsHeaders(m.headers) });
          reached.set(batch.partition, Math.max(reached.get(batch.partition) ?? -1, Number(m.offset)));
        }
        if (batch.messages.length > 0) progressAt = Date.now();
      },
    });
    while (!done()) {
      if (Date.now() - progressAt > stallMs) {
        const where = [...ends].map(([p, end]) => `p${p} at ${reached.get(p) ?? -1} of ${end - 1}`).join(', ');
        return { records, failure: `KafkaJS made no progress for ${stallMs} ms (${where})${crashed ? `; consumer crashed: ${crashed}` : ''}` };
      }
      await sleep(50);
    }
    return { records, failure: null };
  } finally {
    await within(15_000, 'KafkaJS consumer disconnect', consumer.disconnect()).catch(() => {});
  }
}

export function kafkaJsHeaders(h: IHeaders | undefined): Array<[string, Buffer | null]> {
  const out: Array<[string, Buffer | null]> = [];
  for (const [k, v] of Object.entries(h ?? {})) {
    for (const x of Array.isArray(v) ? v : [v]) out.push([k, x === undefined || x === null ? null : Buffer.from(x)]);
  }
  return out;
}

/**
 * An idempotent acks=all KafkaJS producer writing one stream. A send that fails is marked
 * uncertain and its producer dropped: KafkaJS gives the next batch the failed one's sequence
 * numbers, so a broker that had stored the failed batch would answer the new one as its
 * duplicate (and its records would be acknowledged without being stored). A new producer
 * gets a new id, which is what a careful application does too.
 */
export class KafkaJsWriter {
  readonly stream: Stream;
  sends = 0;
  failures = 0;
  lastError: string | null = null;
  readonly #kafka: Kafka;
  readonly #topic: string;
  readonly #batch: number;
  #producer: Producer | undefined;

  constructor(bootstrap: string, topic: string, stream: Stream, o: { batch: number; retry?: { retries: number; initialRetryTime: number; maxRetryTime: number } }) {
    this.#kafka = kafkaAt(bootstrap, `drill-${stream.name}`, o.retry);
    this.#topic = topic;
    this.stream = stream;
    this.#batch = o.batch;
  }

  /** Sends the next batch; true once it is acknowledged. */
  async sendNext(): Promise<boolean> {
    try {
      if (!this.#producer) {
        const p = this.#kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
        await within(20_000, 'KafkaJS producer connect', p.connect());
        this.#producer = p;
      }
    } catch (err) {
      this.failures++;
      this.lastError = (err as Error).message;
      return false;
    }
    const recs = this.stream.take(this.#batch);
    try {
      await within(30_000, 'KafkaJS send', this.#producer.send({ topic: this.#topic, acks: -1, messages: recs.map((r) => ({ key: r.key, value: r.value, partition: this.stream.partition })) }));
      this.stream.ack(recs.map((r) => r.seq));
      this.sends++;
      return true;
    } catch (err) {
      this.failures++;
      this.lastError = (err as Error).message;
      const p = this.#producer;
      this.#producer = undefined;
      await within(5_000, 'KafkaJS producer disconnect', p.disconnect()).catch(() => {});
      return false;
    }
  }

  async close(): Promise<void> {
    const p = this.#producer;
    this.#producer = undefined;
    if (p) await within(5_000, 'KafkaJS producer disconnect', p.disconnect()).catch(() => {});
  }
}

/**
 * kcat -P with enable.idempotence=true and acks=all: the call's records count as
 * acknowledged only if kcat exits 0 having reported every one delivered (-vvv prints a
 * line per delivery report); otherwise all of them are uncertain, as kcat does not say
 * which failed.
 */
export async function kcatSend(bootstrap: string, topic: string, stream: Stream, n: number): Promise<boolean> {
  const recs = stream.take(n);
  const input = Buffer.concat(recs.flatMap((r) => [r.value, Buffer.from('\n')]));
  const args = ['-b', bootstrap, '-P', '-t', topic, '-p', String(stream.partition), '-X', 'enable.idempotence=true', '-X', 'acks=all', '-X', 'message.timeout.ms=15000', '-X', 'linger.ms=5', '-v', '-v', '-v'];
  const r = await kcat(args, input, 40_000).catch(() => undefined);
  const delivered = r ? (r.stderr.match(/Message delivered/g) ?? []).length : 0;
  if (r?.code !== 0 || delivered !== n || /[Dd]elivery failed|Failed to produce|ERROR/.test(r.stderr)) return false;
  stream.ack(recs.map((x) => x.seq));
  return true;
}

/** Calls `step` over and over (pausing `pauseMs`) until `stop()`, which waits for the step in flight. */
export function loop(step: () => Promise<unknown>, pauseMs: number): { stop: () => Promise<void> } {
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      await step().catch(() => {});
      if (pauseMs > 0) await sleep(pauseMs);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}
