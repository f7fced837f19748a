/**
 * Starts a real broker in this process on 127.0.0.1 with a free port and a fresh data
 * directory, and stops it (and removes the directory) afterwards.
 */
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/load-config.js';
import type { BrokerConfig, BrokerConfigInput } from '../../src/config/schema.js';
import { Broker } from '../../src/broker/broker.js';
import { createLogger } from '../../src/logging.js';
import type { BlobStore } from '../../src/tiered/blobstore/blob-store.js';
import type { LogIo } from '../../src/storage/fs-util.js';
import { withRunLog } from './run-log.js';
import { tmpDir } from './tmp-dir.js';

export interface TestBroker {
  broker: Broker;
  port: number;
  bootstrap: string;
  dataDir: string;
  config: BrokerConfig;
  /** Stops the broker; the data directory stays until `cleanup`. */
  stop(): Promise<void>;
  /** Starts a new broker on the same data directory and port. */
  restart(): Promise<TestBroker>;
  cleanup(): Promise<void>;
}

/** The broker's log lines, parsed, for tests that check what an operator would read. */
export interface LogCapture {
  readonly destination: Writable;
  readonly lines: Array<Record<string, any>>;
}

export function captureLog(): LogCapture {
  const lines: Array<Record<string, any>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line));
      done();
    },
  });
  return { destination, lines };
}

export async function startBroker(
  overrides: BrokerConfigInput = {},
  existing?: { dataDir: string; cleanup: () => void; port?: number },
  deps: { blobStore?: BlobStore; logIo?: LogIo; log?: LogCapture } = {},
): Promise<TestBroker> {
  const dir = existing ?? { ...tmpDir('meridian-broker-'), port: undefined };
  const config = loadConfig({
    env: {},
    overrides: {
      ...overrides,
      dataDir: 'dataDir' in dir ? dir.dataDir : dir.dir,
      logging: { level: (process.env.MERIDIAN_TEST_LOG_LEVEL as 'info' | undefined) ?? 'warn', ...(overrides.logging ?? {}) },
      // With listeners, each names its own host and port (kafka.host and kafka.port must be unset).
      kafka: overrides.kafka?.listeners !== undefined ? overrides.kafka : { host: '127.0.0.1', port: existing?.port ?? 0, ...(overrides.kafka ?? {}) },
    },
  });
  const logger = createLogger({ name: 'test-broker', ...withRunLog(config.logging.level, deps.log?.destination) });
  const cleanupDir = 'cleanup' in dir ? dir.cleanup : () => {};
  let broker: Broker;
  try {
    broker = await Broker.start(config, logger, deps);
  } catch (err) {
    // A broker that refuses to start (the tests of startup errors) leaves no directory behind
    // when this call made it; a caller's own directory stays the caller's.
    if (existing === undefined) cleanupDir();
    throw err;
  }
  const dataDir = config.dataDir;
  const tb: TestBroker = {
    broker,
    port: broker.kafkaPort,
    bootstrap: `127.0.0.1:${broker.kafkaPort}`,
    dataDir,
    config,
    stop: () => broker.close(),
    restart: async () => {
      await broker.close();
      return startBroker(overrides, { dataDir, cleanup: cleanupDir, port: broker.kafkaPort }, deps);
    },
    cleanup: async () => {
      await broker.close();
      cleanupDir();
    },
  };
  return tb;
}
