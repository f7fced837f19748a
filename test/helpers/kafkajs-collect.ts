/**
 * A KafkaJS 2.2.4 group consumer that gathers what it is given: it runs until `count`
 * messages have arrived, keeps listening for `graceMs` more so that a duplicate or a stray
 * extra message is caught rather than missed, then disconnects (leaving the group) and
 * returns everything in delivery order.
 */
import type { IHeaders, Kafka } from 'kafkajs';

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
  graceMs?: number;
}

export async function collectMessages(kafka: Kafka, o: CollectOptions): Promise<ConsumedMessage[]> {
  const consumer = kafka.consumer({ groupId: o.groupId });
  const got: ConsumedMessage[] = [];
  let reached!: () => void;
  const done = new Promise<void>((resolve) => (reached = resolve));
  await consumer.connect();
  try {
    for (const topic of o.topics) await consumer.subscribe({ topic, fromBeginning: o.fromBeginning ?? true });
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        got.push({
          topic,
          partition,
          offset: Number(message.offset),
          timestamp: message.timestamp,
          key: message.key,
          value: message.value,
          headers: message.headers ?? {},
        });
        if (got.length >= o.count) reached();
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`KafkaJS consumer ${o.groupId}: ${got.length} of ${o.count} messages after ${o.timeoutMs ?? 30_000} ms`)), o.timeoutMs ?? 30_000);
    });
    try {
      await Promise.race([done, timeout]);
    } finally {
      clearTimeout(timer);
    }
    await new Promise((resolve) => setTimeout(resolve, o.graceMs ?? 500));
  } finally {
    await consumer.disconnect();
  }
  return got;
}
