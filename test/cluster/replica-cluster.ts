/**
 * TEST DOUBLE STANDING IN FOR ETCD. `MemoryStateSource` is an in-memory
 * PartitionStateSource shared by the brokers of one test, used only to test in-region
 * replication (src/cluster/replica-*.ts) in isolation: the etcd-backed source and its
 * end-to-end tests come with the etcd layer. It keeps what etcd would (partition states with
 * compare-and-swap ISR changes, broker addresses) and delivers changes asynchronously, as a
 * watch does; the test plays the controller (`set`, `elect`).
 *
 * `startReplicaCluster` starts real brokers in this process on 127.0.0.1 (fresh data
 * directories, free ports), each with its own node id and a ReplicaManager on the shared
 * source, and stops them afterwards.
 */
import { Broker } from '../../src/broker/broker.js';
import { OFFSETS_TOPIC } from '../../src/cluster/group-offsets-topic.js';
import type { AlterIsrResult, HostPort, IsrExpectation, NamedPartitionState, PartitionState, PartitionStateSource } from '../../src/cluster/partition-state-source.js';
import { loadConfig } from '../../src/config/load-config.js';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { createLogger } from '../../src/logging.js';
import type { PartitionLog } from '../../src/storage/partition-log.js';
import type { LogIo } from '../../src/storage/fs-util.js';
import { withRunLog } from '../helpers/run-log.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const key = (topic: string, partition: number) => `${topic}/${partition}`;

export class MemoryStateSource implements PartitionStateSource {
  readonly #states = new Map<string, NamedPartitionState>();
  readonly #listeners = new Set<(s: NamedPartitionState) => void>();
  readonly #addresses = new Map<number, HostPort>();
  /** Every ISR change the leaders made, in order. */
  readonly isrChanges: Array<{ topic: string; partition: number; isr: readonly number[] }> = [];

  states(): Iterable<NamedPartitionState> {
    return [...this.#states.values()];
  }

  subscribe(listener: (state: NamedPartitionState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async alterIsr(topic: string, partition: number, newIsr: readonly number[], expected: IsrExpectation): Promise<AlterIsrResult> {
    const cur = this.#states.get(key(topic, partition));
    if (cur === undefined || cur.leaderEpoch !== expected.leaderEpoch || cur.partitionEpoch !== expected.partitionEpoch) return { kind: 'conflict' };
    const next = { ...cur, isr: [...newIsr], partitionEpoch: cur.partitionEpoch + 1 };
    this.isrChanges.push({ topic, partition, isr: next.isr });
    if (this.loseIsrAnswers) {
      // Written, but the answer and the watch event are lost (etcd went away): the writer
      // cannot tell whether it holds (`deliverWithheld` sends the event later).
      this.#states.set(key(topic, partition), next);
      this.#withheld.push(next);
      throw new Error('etcd did not answer (the test lost the answer)');
    }
    this.#put(next);
    return { kind: 'ok', state: next };
  }

  /** While set, ISR changes are written but their answers and watch events are lost. */
  loseIsrAnswers = false;
  readonly #withheld: NamedPartitionState[] = [];

  /** Delivers the watch events `loseIsrAnswers` held back. */
  deliverWithheld(): void {
    for (const s of this.#withheld.splice(0)) this.#put(s);
  }

  brokerAddress(nodeId: number): HostPort | undefined {
    return this.#addresses.get(nodeId);
  }

  register(nodeId: number, address: HostPort): void {
    this.#addresses.set(nodeId, address);
  }

  get(topic: string, partition: number): NamedPartitionState {
    const s = this.#states.get(key(topic, partition));
    if (s === undefined) throw new Error(`no state for ${topic}-${partition}`);
    return s;
  }

  /** The controller writes a state (partitionEpoch + 1 over the current one). */
  set(topic: string, partition: number, state: Omit<PartitionState, 'partitionEpoch'>): NamedPartitionState {
    const cur = this.#states.get(key(topic, partition));
    const next = { topic, partition, ...state, replicas: [...state.replicas], isr: [...state.isr], partitionEpoch: (cur?.partitionEpoch ?? -1) + 1 };
    this.#put(next);
    return next;
  }

  /** The controller elects `leader` (leader epoch + 1), keeping the ISR unless given. */
  elect(topic: string, partition: number, leader: number, isr?: readonly number[]): NamedPartitionState {
    const cur = this.get(topic, partition);
    return this.set(topic, partition, { replicas: cur.replicas, leader, leaderEpoch: cur.leaderEpoch + 1, isr: isr ?? cur.isr });
  }

  #put(s: NamedPartitionState): void {
    this.#states.set(key(s.topic, s.partition), s);
    // As an etcd watch: delivered after the write returns, in order.
    setImmediate(() => {
      for (const l of this.#listeners) l(s);
    });
  }
}

export interface ClusterBroker {
  nodeId: number;
  broker: Broker;
  bootstrap: string;
  port: number;
  dataDir: string;
  log(topic: string, partition: number): PartitionLog;
}

export interface ReplicaCluster {
  source: MemoryStateSource;
  brokers: ClusterBroker[];
  node(id: number): ClusterBroker;
  bootstrap: string[];
  /** Creates the topic on every broker and writes its states: replicas [1..n], leader `leader`, epoch 0. */
  createTopic(topic: string, partitions: number, leader?: number): Promise<void>;
  /** Closes broker `id` (a clean shutdown); its data directory stays for `start`. */
  stop(id: number): Promise<void>;
  /** Starts broker `id` again on its data directory (a new port, registered with the source). */
  start(id: number): Promise<void>;
  close(): Promise<void>;
}

export interface ReplicaClusterOptions {
  brokers?: number;
  replicaLagTimeMaxMs?: number;
  defaultMinInsyncReplicas?: number;
  fetchMaxWaitMs?: number;
  overrides?: BrokerConfigInput;
  /** The storage I/O of a broker's logs (a test's gated or failing LogIo); undefined: the real one. */
  logIo?: (nodeId: number) => LogIo | undefined;
  /** A broker's "no new leadership before" clock (Membership.coolingUntil on a real cluster). */
  coolingUntil?: (nodeId: number) => (() => number) | undefined;
}

export async function startReplicaCluster(o: ReplicaClusterOptions = {}): Promise<ReplicaCluster> {
  const source = new MemoryStateSource();
  const brokers: ClusterBroker[] = [];
  const cleanups: Array<() => void> = [];
  const startNode = async (nodeId: number, dataDir: string): Promise<ClusterBroker> => {
    const config = loadConfig({
      env: {},
      overrides: { ...(o.overrides ?? {}), nodeId, dataDir, logging: { level: (process.env.MERIDIAN_TEST_LOG_LEVEL as 'info' | undefined) ?? 'warn' }, kafka: { host: '127.0.0.1', port: 0 } },
    });
    const logger = createLogger({ name: `replica-${nodeId}`, ...withRunLog(config.logging.level) });
    const logIo = o.logIo?.(nodeId);
    const broker = await Broker.start(config, logger, {
      ...(logIo === undefined ? {} : { logIo }),
      cluster: {
        source,
        replicaLagTimeMaxMs: o.replicaLagTimeMaxMs ?? 10_000,
        defaultMinInsyncReplicas: o.defaultMinInsyncReplicas ?? 1,
        fetchMaxWaitMs: o.fetchMaxWaitMs ?? 500,
        fetchBackoffMs: 50,
        ...(o.coolingUntil?.(nodeId) === undefined ? {} : { coolingUntil: o.coolingUntil(nodeId)! }),
      },
    });
    source.register(nodeId, { host: '127.0.0.1', port: broker.kafkaPort });
    return {
      nodeId,
      broker,
      bootstrap: `127.0.0.1:${broker.kafkaPort}`,
      port: broker.kafkaPort,
      dataDir,
      log: (topic, partition) => {
        const l = broker.topics.partition(topic, partition);
        if (l === undefined) throw new Error(`broker ${nodeId} has no ${topic}-${partition}`);
        return l;
      },
    };
  };
  try {
    for (let nodeId = 1; nodeId <= (o.brokers ?? 3); nodeId++) {
      const dir = tmpDir(`meridian-replica-${nodeId}-`);
      cleanups.push(dir.cleanup);
      brokers.push(await startNode(nodeId, dir.dir));
    }
  } catch (err) {
    await Promise.allSettled(brokers.map((b) => b.broker.close()));
    for (const c of cleanups) c();
    throw err;
  }
  const node = (id: number) => brokers.find((b) => b.nodeId === id)!;
  return {
    source,
    brokers,
    node,
    bootstrap: brokers.map((b) => b.bootstrap),
    async createTopic(topic, partitions, leader = 1) {
      for (const b of brokers) await b.broker.topics.createTopic(topic, partitions);
      const ids = brokers.map((b) => b.nodeId);
      for (let p = 0; p < partitions; p++) source.set(topic, p, { replicas: ids, leader, leaderEpoch: 0, isr: ids });
    },
    async stop(id) {
      await node(id).broker.close();
    },
    async start(id) {
      const i = brokers.findIndex((b) => b.nodeId === id);
      brokers[i] = await startNode(id, brokers[i].dataDir);
    },
    async close() {
      await Promise.allSettled(brokers.map((b) => b.broker.close()));
      for (const c of cleanups) c();
    },
  };
}

/** Every batch of a log, from its start to its end, as stored (offsets, epochs, bytes). */
/**
 * Three brokers (min.insync.replicas 2) with one partition of the internal offsets topic,
 * replicated on all three and led by broker 1: the setup of the group-offsets tests.
 */
export async function startOffsetsCluster(): Promise<ReplicaCluster> {
  const cluster = await startReplicaCluster({ brokers: 3, defaultMinInsyncReplicas: 2 });
  await cluster.createTopic(OFFSETS_TOPIC, 1, 1);
  await waitFor('broker 1 to lead the offsets partition', () => cluster.node(1).broker.replicaManager!.isLeading(OFFSETS_TOPIC, 0), 10_000);
  return cluster;
}

export async function logBytes(log: PartitionLog): Promise<Buffer> {
  const parts: Buffer[] = [];
  let offset = log.logStartOffset;
  const end = log.highWatermark;
  while (offset < end) {
    const r = await log.read(offset, 1024 * 1024, { upTo: end });
    if (r.records.length === 0) break;
    parts.push(Buffer.from(r.records));
    // The next batch starts after the last one read.
    let p = 0;
    let last = offset;
    while (p + 12 <= r.records.length) {
      const base = r.records.readBigInt64BE(p);
      const size = r.records.readInt32BE(p + 8) + 12;
      last = base + BigInt(r.records.readInt32BE(p + 23)) + 1n;
      p += size;
    }
    offset = last;
  }
  return Buffer.concat(parts);
}
