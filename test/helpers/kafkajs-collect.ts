/**
 * KafkaJS 2.2.4 consumers that gather what they are given, for tests that check what a
 * real client reads:
 *
 *   readTopicToEnd   a whole topic, from its log start to the high watermarks it had when the
 *                    read began, with a fresh group that commits nothing;
 *   collectMessages  a group consumer that runs until `count` messages have arrived and then
 *                    on to the end of every partition it reads.
 *
 * Neither ends on a timer. A consumer has read a partition to its end once its position
 * (the next offset KafkaJS will fetch, which moves past filtered control batches too) has
 * reached the partition's high watermark: every record the log held up to there has been
 * delivered, so a duplicate or a stray extra record cannot hide behind an early stop, and a
 * missing one cannot be waited out.
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Consumer, type IHeaders } from 'kafkajs';
import { waitFor } from './wait.js';

export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: number;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: IHeaders;
}

export interface CollectOptions {
  groupId: string;
  topics: string[];
  count: number;
  fromBeginning?: boolean;
  timeoutMs?: number;
  /** Passed to the KafkaJS consumer (fetch sizes, long-poll wait). */
  consumer?: { maxBytesPerPartition?: number; maxWaitTimeInMs?: number };
}

type PartitionKey = `${string}/${number}`;
const keyOf = (topic: string, partition: number): PartitionKey => `${topic}/${partition}`;

/**
 * A consumer's position in each partition, from KafkaJS's own batch events: END_BATCH_PROCESS
 * fires once a fetched batch is fully handled, also for one that held only control batches
 * (Meridian's dedup markers), with the last offset it covered.
 */
class Positions {
  readonly #next = new Map<PartitionKey, bigint>();

  constructor(consumer: Consumer) {
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => this.advance(payload.topic, payload.partition, BigInt(payload.lastOffset) + 1n));
  }

  advance(topic: string, partition: number, next: bigint): void {
    const k = keyOf(topic, partition);
    if (next > (this.#next.get(k) ?? -1n)) this.#next.set(k, next);
  }

  /** Partitions whose position is below `ends`, as "topic/p at X of Y" (empty: at the end). */
  behind(ends: ReadonlyMap<PartitionKey, bigint>): string[] {
    return [...ends].filter(([k, end]) => (this.#next.get(k) ?? -1n) < end).map(([k, end]) => `${k} at ${this.#next.get(k) ?? '?'} of ${end}`);
  }
}

interface Offsets {
  low: bigint;
  high: bigint;
}

async function topicOffsets(kafka: Kafka, topics: readonly string[], groupId?: string): Promise<{ offsets: Map<PartitionKey, Offsets>; committed: Map<PartitionKey, bigint> }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = new Map<PartitionKey, Offsets>();
    const committed = new Map<PartitionKey, bigint>();
    for (const topic of topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) offsets.set(keyOf(topic, p.partition), { low: BigInt(p.low), high: BigInt(p.high) });
    }
    if (groupId !== undefined) {
      for (const t of await admin.fetchOffsets({ groupId, topics: [...topics] })) {
        for (const p of t.partitions) if (BigInt(p.offset) >= 0n) committed.set(keyOf(t.topic, p.partition), BigInt(p.offset));
      }
    }
    return { offsets, committed };
  } finally {
    await admin.disconnect();
  }
}

function toConsumed(topic: string, partition: number, message: { offset: string; timestamp: string; key: Buffer | null; value: Buffer | null; headers?: IHeaders }): ConsumedMessage {
  return { topic, partition, offset: Number(message.offset), timestamp: message.timestamp, key: message.key, value: message.value, headers: message.headers ?? {} };
}

/**
 * Every record of `topic` as a fresh KafkaJS consumer reads it from the beginning, in
 * delivery order (per partition: log order), up to the high watermarks of when it was
 * called. Call it once the topic is quiet; it commits no offsets.
 */
export async function readTopicToEnd(bootstrap: string, topic: string, o: { timeoutMs?: number; maxBytesPerPartition?: number } = {}): Promise<ConsumedMessage[]> {
  const kafka = new Kafka({ clientId: 'read-to-end', brokers: [bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 100 } });
  const { offsets } = await topicOffsets(kafka, [topic]);
  const ends = new Map([...offsets].filter(([, x]) => x.high > x.low).map(([k, x]) => [k, x.high] as const));
  const got: ConsumedMessage[] = [];
  if (ends.size === 0) return got;
  // A short long-poll: once at the end, disconnect waits for the fetch in flight.
  const consumer = kafka.consumer({ groupId: `read-to-end-${randomUUID()}`, maxWaitTimeInMs: 100, ...(o.maxBytesPerPartition ? { maxBytesPerPartition: o.maxBytesPerPartition } : {}) });
  const positions = new Positions(consumer);
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({ autoCommit: false, eachMessage: async ({ topic: t, partition, message }) => void got.push(toConsumed(t, partition, message)) });
    await waitFor(`KafkaJS to read ${topic} on ${bootstrap} to its end`, () => positions.behind(ends).length === 0, o.timeoutMs ?? 60_000, 20, () => `(${got.length} records so far; ${positions.behind(ends).join(', ')})`);
  } finally {
    await consumer.disconnect();
  }
  return got;
}

export async function collectMessages(kafka: Kafka, o: CollectOptions): Promise<ConsumedMessage[]> {
  const fromBeginning = o.fromBeginning ?? true;
  const timeoutMs = o.timeoutMs ?? 30_000;
  const consumer = kafka.consumer({ groupId: o.groupId, ...o.consumer });
  const positions = new Positions(consumer);
  // Where the group starts in each partition, for partitions it will have nothing to read in.
  const start = await topicOffsets(kafka, o.topics, o.groupId);
  for (const [k, x] of start.offsets) {
    const [topic, p] = [k.slice(0, k.lastIndexOf('/')), Number(k.slice(k.lastIndexOf('/') + 1))];
    positions.advance(topic, p, start.committed.get(k) ?? (fromBeginning ? x.low : x.high));
  }
  const got: ConsumedMessage[] = [];
  await consumer.connect();
  try {
    for (const topic of o.topics) await consumer.subscribe({ topic, fromBeginning });
    await consumer.run({ eachMessage: async ({ topic, partition, message }) => void got.push(toConsumed(topic, partition, message)) });
    await waitFor(`KafkaJS consumer ${o.groupId} to receive ${o.count} messages`, () => got.length >= o.count, timeoutMs, 20, () => `(${got.length} arrived)`);
    // Then on to the end of every partition as it is now: anything past the count shows.
    const ends = new Map([...(await topicOffsets(kafka, o.topics)).offsets].map(([k, x]) => [k, x.high] as const));
    await waitFor(`KafkaJS consumer ${o.groupId} to read to the end of ${o.topics.join(', ')}`, () => positions.behind(ends).length === 0, timeoutMs, 20, () => `(${positions.behind(ends).join(', ')})`);
  } finally {
    await consumer.disconnect();
  }
  return got;
}
