/**
 * Producers that keep writing while a test kills brokers (region-cluster failover tests):
 * each records what was acknowledged, so the test can check every acknowledged value is
 * read exactly once, in order.
 *
 * - `kafkajsLoop`: KafkaJS, idempotent, acks -1, two values a send; a failed send's values
 *   are recorded as not acknowledged (present at most once) and the loop continues with a
 *   new producer (KafkaJS keeps a failed batch's sequence for the next one).
 * - `kcatLoop`: kcat -P with librdkafka's idempotent producer (acks=all), fed three values
 *   every 10 ms on stdin; kcat exits 0 with no delivery error only when every value was
 *   acknowledged.
 */
import { spawn } from 'node:child_process';
import { Kafka, logLevel, type Producer } from 'kafkajs';

export interface LoopOptions {
  readonly bootstrap: readonly string[];
  readonly topic: string;
  /** Values are `<prefix><n>`, n counting up from 0. */
  readonly prefix: string;
}

export function kafkajsLoop(o: LoopOptions & { clientId: string; partitionOf: (firstValueNumber: number) => number }) {
  const acked: string[] = [];
  const failed: Array<{ values: string[]; error: string }> = [];
  let n = 0;
  let stopping = false;
  const kafka = new Kafka({ clientId: o.clientId, brokers: [...o.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 60, initialRetryTime: 100, maxRetryTime: 1000 } });
  const fresh = () => kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const done = (async () => {
    let producer: Producer = fresh();
    await producer.connect();
    while (!stopping) {
      // Each record names its partition: KafkaJS would run its partitioner again on a retry
      // while keeping the idempotent sequence of the first choice.
      const partition = o.partitionOf(n);
      const values = [`${o.prefix}${n++}`, `${o.prefix}${n++}`];
      try {
        await producer.send({ topic: o.topic, acks: -1, messages: values.map((value) => ({ value, partition })) });
        acked.push(...values);
      } catch (err) {
        failed.push({ values, error: String(err) });
        await producer.disconnect().catch(() => {});
        producer = fresh();
        await producer.connect();
      }
    }
    await producer.disconnect();
  })();
  return {
    acked,
    failed,
    stop: async () => {
      stopping = true;
      await done;
    },
  };
}

export function kcatLoop(o: LoopOptions & { partition?: number }) {
  const sent: string[] = [];
  const args = ['-P', '-b', o.bootstrap.join(','), '-t', o.topic, ...(o.partition === undefined ? [] : ['-p', String(o.partition)]), '-X', 'enable.idempotence=true', '-X', 'acks=all', '-X', 'linger.ms=5'];
  const child = spawn('kcat', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.on('error', () => {});
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`kcat could not start (${err.message}): install it with bash scripts/install-tools.sh`)));
    child.once('close', (code) => resolve(code));
  });
  let n = 0;
  const timer = setInterval(() => {
    const lines: string[] = [];
    for (let i = 0; i < 3; i++) lines.push(`${o.prefix}${n++}`);
    sent.push(...lines);
    child.stdin.write(lines.join('\n') + '\n');
  }, 10);
  return {
    sent,
    stop: async () => {
      clearInterval(timer);
      child.stdin.end();
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000).unref())]);
      if (code === 'timeout') child.kill('SIGKILL');
      return { code, stderr };
    },
  };
}
