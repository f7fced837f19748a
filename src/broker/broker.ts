/**
 * One region's broker: the composition root of everything a broker process runs. It takes
 * the data directory lock, opens the topics (running log recovery), and starts the
 * housekeeping timer. Later issues add the Kafka listener, the offloader and the
 * replicators here, each handed its dependencies through its constructor.
 *
 * Lifecycle: `Broker.start(config, logger)` → running → `close()` (idempotent): stops the
 * timers, drains and fsyncs every log, then releases the lock.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { BrokerConfig } from '../config/schema.js';
import { DataDirLock } from '../storage/data-dir-lock.js';
import type { LogOptions } from '../storage/partition-log.js';
import { TopicManager } from '../storage/topic-manager.js';

export function logOptionsFrom(config: BrokerConfig): LogOptions {
  const l = config.log;
  return {
    segmentBytes: l.segmentBytes,
    segmentMs: l.segmentMs,
    indexIntervalBytes: l.indexIntervalBytes,
    maxBatchBytes: l.maxBatchBytes,
    flushMode: l.flush.mode,
    flushIntervalMs: l.flush.intervalMs,
    retentionBytes: l.retention.bytes,
    retentionMs: l.retention.ms,
  };
}

export class Broker {
  readonly config: BrokerConfig;
  readonly topics: TopicManager;
  readonly log: Logger;
  #lock: DataDirLock;
  #closing: Promise<void> | undefined;

  private constructor(config: BrokerConfig, topics: TopicManager, lock: DataDirLock, log: Logger) {
    this.config = config;
    this.topics = topics;
    this.#lock = lock;
    this.log = log;
  }

  static async start(config: BrokerConfig, logger: Logger): Promise<Broker> {
    const log = logger.child({ region: config.region, node: config.nodeId });
    const dataDir = path.resolve(config.dataDir);
    const lock = DataDirLock.acquire(dataDir);
    try {
      const started = Date.now();
      const topics = await TopicManager.open(dataDir, logOptionsFrom(config), log);
      topics.startMaintenance(config.log.retention.checkIntervalMs);
      const partitions = topics.listTopics().reduce((n, t) => n + t.partitions, 0);
      log.info({ dataDir, topics: topics.listTopics().length, partitions, recoveryMs: Date.now() - started, flushMode: config.log.flush.mode }, 'broker started');
      return new Broker(config, topics, lock, log);
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.topics.close();
      } finally {
        this.#lock.release();
        this.log.info('broker stopped');
      }
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
