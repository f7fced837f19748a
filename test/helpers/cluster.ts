/**
 * A region cluster for end-to-end tests (issue 16): a real etcd (test/helpers/etcd.ts) and N
 * brokers, each its own `node bin/meridian.js broker --config FILE` process, exactly as an
 * operator runs them. The config file each broker gets is written here (region, nodeId, data
 * directory, Kafka and admin ports on 127.0.0.1, `cluster.etcd.endpoints`, a short lease so
 * failovers take seconds). Optionally each broker reaches etcd through its own TCP proxy, so a
 * test can cut one broker off from etcd while it still talks to the other brokers.
 *
 * Ports and data directories are fixed per broker, so `kill9()` then `start()` brings a broker
 * back in place, as a restarted machine would. `close()` stops every process this harness
 * started (brokers, etcd, proxies) and removes the directories, whether the test passed or not.
 *
 * What the tests observe goes through what a user sees: Metadata answers (leader, epoch,
 * replicas, ISR) asked of one broker over a bare socket, and the segment files of a broker's
 * copy of a partition (`readLogBatches`), compared byte for byte between replicas.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { ZERO_UUID } from '../../src/protocol/kafka/messages/index.js';
import { encodeBatch } from '../../src/storage/record-batch.js';
import { TestEtcd } from './etcd.js';
import { RawClient } from './raw-kafka.js';
import { freePort } from './regions.js';
import { TcpProxy } from './tcp-proxy.js';
import { tmpDir } from './tmp-dir.js';
import { waitFor } from './wait.js';
import { BROKER_NODE_FLAGS } from '../../src/node-flags.js';

const CLI = fileURLToPath(new URL('../../bin/meridian.js', import.meta.url));

export interface ClusterOptions {
  /** Brokers, node ids 1..n (default 3). */
  readonly brokers?: number;
  readonly region?: string;
  /** cluster.leaseTtlMs (default 2000, the smallest the config takes): a dead broker leaves after ~2 s; null: the config's own default. */
  readonly leaseTtlMs?: number | null;
  /** cluster.replicaLagTimeMaxMs (default 1500). */
  readonly replicaLagTimeMaxMs?: number;
  /** cluster.defaultMinInsyncReplicas (default 1). */
  readonly minInsyncReplicas?: number;
  /** Each broker reaches etcd through its own TcpProxy (`node(id).etcdProxy`), to cut it off. */
  readonly etcdProxies?: boolean;
  /** Extra config fields, merged over what the harness writes (shallow per top-level section). */
  readonly config?: Record<string, unknown>;
  /**
   * The brokers' Kafka ports (node i gets ports[i - 1]), chosen before the start with
   * `freePort`: two regions replicating to each other each name the other's brokers in
   * their registry (`replication.regions`), so both must know the ports first.
   */
  readonly ports?: readonly number[];
  /**
   * Listeners besides the PLAINTEXT one at `port` (which stays first: follower fetches and the
   * harness use it), each bound to a free port (port 0); their ports are in the broker's
   * GET /v1/security `listeners`.
   */
  readonly extraListeners?: ReadonlyArray<{ readonly name: string; readonly securityProtocol: string }>;
}

/** A partition as one broker's Metadata answer describes it. */
export interface PartitionView {
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
}

/** One batch as stored in a segment file: its offsets and its exact bytes. */
export interface StoredBatchBytes {
  readonly baseOffset: bigint;
  readonly lastOffset: bigint;
  readonly leaderEpoch: number;
  readonly bytes: Buffer;
}

/** One broker process of the cluster. */
export class BrokerProcess {
  readonly nodeId: number;
  readonly port: number;
  readonly adminPort: number;
  readonly dataDir: string;
  readonly configFile: string;
  /** The proxy between this broker and etcd, with ClusterOptions.etcdProxies. */
  readonly etcdProxy: TcpProxy | undefined;
  #proc: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #output = '';

  constructor(o: { nodeId: number; port: number; adminPort: number; dataDir: string; configFile: string; etcdProxy: TcpProxy | undefined }) {
    this.nodeId = o.nodeId;
    this.port = o.port;
    this.adminPort = o.adminPort;
    this.dataDir = o.dataDir;
    this.configFile = o.configFile;
    this.etcdProxy = o.etcdProxy;
  }

  get bootstrap(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The process id while running (benchmarks read its CPU time from /proc). */
  get pid(): number | undefined {
    return this.running ? this.#proc!.pid : undefined;
  }

  get running(): boolean {
    return this.#proc !== undefined && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** The last few KB the process printed (stdout and stderr), across restarts, for failure messages. */
  get output(): string {
    return this.#output;
  }

  /**
   * Spawns the broker; resolves once its Kafka port and then its admin port accept
   * connections (the broker opens the admin API after the Kafka listener; see
   * TestCluster.waitMembers for membership).
   */
  async start(): Promise<void> {
    if (this.running) throw new Error(`broker ${this.nodeId} is already running`);
    // With the node flags `meridian` passes, as a deployed broker runs.
    const proc = spawn(process.execPath, [...BROKER_NODE_FLAGS, CLI, 'broker', '--config', this.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => {
      this.#output = (this.#output + d.toString()).slice(-8000);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    this.#proc = proc;
    this.#exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await waitFor(
      `broker ${this.nodeId} to listen on ${this.bootstrap}`,
      async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`broker ${this.nodeId} exited (code ${proc.exitCode}, signal ${proc.signalCode})`);
        const c = await RawClient.connect(this.port);
        c.close();
        return true;
      },
      30_000,
      50,
      () => `output:\n${this.#output}`,
    );
    await waitFor(
      `broker ${this.nodeId}'s admin API to listen on 127.0.0.1:${this.adminPort}`,
      async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`broker ${this.nodeId} exited (code ${proc.exitCode}, signal ${proc.signalCode})`);
        return await new Promise<boolean | undefined>((resolve) => {
          const s = net.connect(this.adminPort, '127.0.0.1');
          s.once('connect', () => {
            s.destroy();
            resolve(true);
          });
          s.once('error', () => resolve(undefined));
        });
      },
      30_000,
      50,
      () => `output:\n${this.#output}`,
    );
  }

  /** SIGKILL, as a crash: nothing is flushed or deregistered. Resolves when the process is gone. */
  async kill9(): Promise<void> {
    if (this.#proc === undefined) return;
    this.#proc.kill('SIGKILL');
    await this.#exited;
  }

  /** SIGTERM (a clean stop), SIGKILL if it takes more than 10 s. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.#proc!.kill('SIGTERM');
    const timer = setTimeout(() => this.#proc?.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }

  /** This broker's Metadata answer: the brokers it lists and the partitions of `topics`. */
  async metadata(topics: readonly string[]): Promise<{ brokers: number[]; controllerId: number; topics: Map<string, { errorCode: number; partitions: Map<number, PartitionView> }> }> {
    const c = await RawClient.connect(this.port);
    try {
      const r = await c.request(ApiKey.Metadata, 9, {
        topics: topics.map((name) => ({ topicId: ZERO_UUID, name })),
        allowAutoTopicCreation: false,
        includeClusterAuthorizedOperations: false,
        includeTopicAuthorizedOperations: false,
      });
      const out = new Map<string, { errorCode: number; partitions: Map<number, PartitionView> }>();
      for (const t of r.body.topics as Array<{ name: string; errorCode: number; partitions: Array<{ partitionIndex: number; leaderId: number; leaderEpoch: number; replicaNodes: number[]; isrNodes: number[] }> }>) {
        out.set(t.name, {
          errorCode: t.errorCode,
          partitions: new Map(t.partitions.map((p) => [p.partitionIndex, { leader: p.leaderId, leaderEpoch: p.leaderEpoch, replicas: p.replicaNodes, isr: p.isrNodes }])),
        });
      }
      return { brokers: (r.body.brokers as Array<{ nodeId: number }>).map((b) => b.nodeId).sort((a, b) => a - b), controllerId: r.body.controllerId as number, topics: out };
    } finally {
      c.close();
    }
  }

  /** Every batch of this broker's copy of a partition, from its segment files. */
  readLog(topic: string, partition: number): Promise<StoredBatchBytes[]> {
    return readLogBatches(this.dataDir, topic, partition);
  }

  /** Waits for the process to exit (after kill9/stop). */
  exited(): Promise<void> {
    return this.#exited;
  }
}

export class TestCluster {
  readonly etcd: TestEtcd;
  readonly nodes: readonly BrokerProcess[];
  readonly region: string;
  readonly #cleanups: Array<() => void>;

  private constructor(etcd: TestEtcd, nodes: BrokerProcess[], region: string, cleanups: Array<() => void>) {
    this.etcd = etcd;
    this.nodes = nodes;
    this.region = region;
    this.#cleanups = cleanups;
  }

  /**
   * Starts etcd, writes every broker's config, starts the brokers and waits until each of
   * them lists all of them in Metadata. On any failure everything started is stopped.
   */
  static async start(o: ClusterOptions = {}): Promise<TestCluster> {
    const n = o.brokers ?? 3;
    const region = o.region ?? 'us-east';
    const etcd = await TestEtcd.start();
    const nodes: BrokerProcess[] = [];
    const cleanups: Array<() => void> = [];
    const cluster = new TestCluster(etcd, nodes, region, cleanups);
    try {
      for (let nodeId = 1; nodeId <= n; nodeId++) {
        const dir = tmpDir(`meridian-cluster-${nodeId}-`);
        cleanups.push(dir.cleanup);
        let etcdProxy: TcpProxy | undefined;
        if (o.etcdProxies) {
          etcdProxy = new TcpProxy({ targetPort: etcd.clientPort });
          await etcdProxy.start();
        }
        const port = o.ports?.[nodeId - 1] ?? (await freePort());
        let adminPort = await freePort();
        while (adminPort === port || o.ports?.includes(adminPort)) adminPort = await freePort();
        const dataDir = path.join(dir.dir, 'data');
        const configFile = path.join(dir.dir, 'broker.yaml');
        const config: Record<string, any> = {
          region,
          nodeId,
          dataDir,
          logging: { level: process.env.MERIDIAN_TEST_LOG_LEVEL ?? 'warn', format: 'json' },
          kafka:
            o.extraListeners === undefined
              ? { host: '127.0.0.1', port }
              : { listeners: [{ name: 'PLAINTEXT', host: '127.0.0.1', port, securityProtocol: 'PLAINTEXT' }, ...o.extraListeners.map((l) => ({ ...l, host: '127.0.0.1', port: 0 }))] },
          admin: { host: '127.0.0.1', port: adminPort },
          topics: { autoCreate: false },
          cluster: {
            etcd: { endpoints: [etcdProxy !== undefined ? `127.0.0.1:${etcdProxy.port}` : etcd.endpoint], prefix: '/meridian-e2e' },
            ...(o.leaseTtlMs === null ? {} : { leaseTtlMs: o.leaseTtlMs ?? 2000 }),
            replicaLagTimeMaxMs: o.replicaLagTimeMaxMs ?? 1500,
            defaultMinInsyncReplicas: o.minInsyncReplicas ?? 1,
          },
        };
        for (const [k, v] of Object.entries(o.config ?? {})) config[k] = typeof v === 'object' && v !== null && !Array.isArray(v) ? { ...(config[k] ?? {}), ...v } : v;
        // JSON is YAML: the broker reads it as any other config file.
        fs.writeFileSync(configFile, JSON.stringify(config, null, 2) + '\n');
        nodes.push(new BrokerProcess({ nodeId, port, adminPort, dataDir, configFile, etcdProxy }));
      }
      await Promise.all(nodes.map((b) => b.start()));
      await cluster.waitMembers(nodes.map((b) => b.nodeId));
      return cluster;
    } catch (err) {
      await cluster.close();
      throw err;
    }
  }

  node(id: number): BrokerProcess {
    const b = this.nodes.find((x) => x.nodeId === id);
    if (b === undefined) throw new Error(`no broker ${id} in this cluster`);
    return b;
  }

  /** The running brokers' addresses, for a client's bootstrap list. */
  get bootstrap(): string[] {
    return this.nodes.filter((b) => b.running).map((b) => b.bootstrap);
  }

  get running(): BrokerProcess[] {
    return this.nodes.filter((b) => b.running);
  }

  /**
   * Waits until every running broker's Metadata lists exactly `ids` (registered in etcd, seen
   * through the watch) and names the same elected controller (KafkaJS's admin sends
   * CreateTopics to it and fails on controller -1).
   */
  async waitMembers(ids: readonly number[], timeoutMs = 30_000): Promise<void> {
    const want = [...ids].sort((a, b) => a - b).join(',');
    let seen = '';
    await waitFor(
      `brokers [${want}] and one controller among them in every running broker's Metadata`,
      async () => {
        const views = await Promise.all(this.running.map(async (b) => ({ b: b.nodeId, m: await b.metadata([]) })));
        seen = views.map(({ b, m }) => `${b}: [${m.brokers.join(',')}] controller ${m.controllerId}`).join('; ');
        const controller = views[0]?.m.controllerId ?? -1;
        return views.every(({ m }) => m.brokers.join(',') === want && m.controllerId === controller) && ids.includes(controller);
      },
      timeoutMs,
      50,
      () => `(seen ${seen}); ${this.#outputs()}`,
    );
  }

  /**
   * A partition's state once every running broker agrees on it (same leader and epoch) and
   * `until` holds for it: e.g. a leader other than a killed broker, or an ISR of three.
   */
  async partition(topic: string, partition: number, until: (v: PartitionView) => boolean = (v) => v.leader >= 0, o: { among?: readonly number[]; timeoutMs?: number } = {}): Promise<PartitionView> {
    let seen = '';
    const asked = () => (o.among === undefined ? this.running : o.among.map((id) => this.node(id)));
    return waitFor(
      `${topic}-${partition}: the Metadata of ${o.among === undefined ? 'every running broker' : `brokers [${o.among.join(', ')}]`} to agree on a state that satisfies ${until.toString()}`,
      async () => {
        const views = await Promise.all(asked().map(async (b) => ({ b: b.nodeId, v: (await b.metadata([topic])).topics.get(topic)?.partitions.get(partition) })));
        seen = views.map(({ b, v }) => `${b}: ${v === undefined ? 'none' : `leader ${v.leader} epoch ${v.leaderEpoch} isr [${v.isr.join(',')}]`}`).join('; ');
        const first = views[0]?.v;
        if (first === undefined) return false;
        const agree = views.every(({ v }) => v !== undefined && v.leader === first.leader && v.leaderEpoch === first.leaderEpoch && v.isr.join(',') === first.isr.join(','));
        const leaderUp = first.leader >= 0 && this.nodes.some((b) => b.nodeId === first.leader && b.running);
        return agree && leaderUp && until(first) ? first : false;
      },
      o.timeoutMs ?? 30_000,
      50,
      () => `(seen ${seen})`,
    );
  }

  /**
   * Waits until the logs of `nodeIds` hold the same batches (same offsets, same bytes, epoch
   * stamps included) and returns them; the failure names where they differ.
   */
  async waitLogsIdentical(topic: string, partition: number, nodeIds: readonly number[], timeoutMs = 20_000): Promise<StoredBatchBytes[]> {
    let diff = '';
    return waitFor(
      `${topic}-${partition}: the logs of brokers [${nodeIds.join(', ')}] to be byte-identical`,
      async () => {
        const logs = await Promise.all(nodeIds.map((id) => this.node(id).readLog(topic, partition)));
        diff = describeLogDifference(nodeIds, logs);
        return diff === '' ? logs[0] : false;
      },
      timeoutMs,
      100,
      () => `(${diff})`,
    );
  }

  #outputs(): string {
    return this.nodes.map((b) => `--- broker ${b.nodeId} (${b.running ? 'running' : 'stopped'}) output:\n${b.output.slice(-2000)}`).join('\n');
  }

  /** Stops every broker, the proxies and etcd, and removes the directories. Safe to call twice. */
  async close(): Promise<void> {
    await Promise.allSettled(this.nodes.map((b) => b.kill9()));
    await Promise.allSettled(this.nodes.map((b) => b.etcdProxy?.close()));
    await this.etcd.close();
    for (const c of this.#cleanups.splice(0)) c();
  }
}

/** '' when every log holds the same batches; else where the first difference is. */
export function describeLogDifference(nodeIds: readonly number[], logs: readonly StoredBatchBytes[][]): string {
  const base = logs[0]!;
  for (let i = 1; i < logs.length; i++) {
    const other = logs[i]!;
    const n = Math.max(base.length, other.length);
    for (let k = 0; k < n; k++) {
      const a = base[k];
      const b = other[k];
      if (a === undefined || b === undefined || a.baseOffset !== b.baseOffset || !a.bytes.equals(b.bytes)) {
        const d = (x: StoredBatchBytes | undefined) => (x === undefined ? 'nothing' : `offsets ${x.baseOffset}..${x.lastOffset} epoch ${x.leaderEpoch} (${x.bytes.length} bytes)`);
        return `batch #${k}: broker ${nodeIds[0]} has ${d(a)}, broker ${nodeIds[i]} has ${d(b)} (${base.length} vs ${other.length} batches)`;
      }
    }
  }
  return '';
}

/**
 * Every batch of `<dataDir>/logs/<topic>-<partition>/*.log` as stored, with a parser of its
 * own (baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12, lastOffsetDelta
 * i32 @23), so a comparison does not trust the broker's codec. Stops at a zero length
 * (preallocated space) or a torn tail.
 */
export async function readLogBatches(dataDir: string, topic: string, partition: number): Promise<StoredBatchBytes[]> {
  const dir = path.join(dataDir, 'logs', `${topic}-${partition}`);
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).filter((f) => f.endsWith('.log')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: StoredBatchBytes[] = [];
  for (const name of names) {
    let buf: Buffer;
    try {
      buf = await fsp.readFile(path.join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // deleted by a truncation meanwhile
      throw err;
    }
    let pos = 0;
    while (pos + 61 <= buf.length) {
      const len = buf.readInt32BE(pos + 8);
      if (len <= 0 || pos + 12 + len > buf.length) break;
      const baseOffset = buf.readBigInt64BE(pos);
      out.push({ baseOffset, lastOffset: baseOffset + BigInt(buf.readInt32BE(pos + 23)), leaderEpoch: buf.readInt32BE(pos + 12), bytes: Buffer.from(buf.subarray(pos, pos + 12 + len)) });
      pos += 12 + len;
    }
  }
  return out;
}

export { waitFor };

export interface ProduceAnswer {
  readonly broker: number;
  readonly value: string;
  /** performance.now() when the request was written and when its answer arrived. */
  readonly sentAt: number;
  readonly answeredAt: number;
  readonly errorCode: number;
  readonly offset: bigint;
}

/**
 * Sends one record at a time (a bare Produce v7 to `partition` of `topic`, with `acks`) to
 * broker `nodeId` until the returned function is called, recording every answer: the
 * fencing tests compare who acknowledged what, and when.
 */
export function recordProduces(cluster: TestCluster, nodeId: number, topic: string, acks: 1 | -1, answers: ProduceAnswer[], partition = 0): () => Promise<void> {
  const b = cluster.node(nodeId);
  let stopping = false;
  let seq = 0;
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const done = (async () => {
    let client: RawClient | undefined;
    while (!stopping) {
      if (client === undefined || client.closed) {
        client = await RawClient.connect(b.port).catch(() => undefined);
        if (client === undefined) {
          await pause(50);
          continue;
        }
      }
      const value = partition === 0 ? `b${nodeId}-${seq++}` : `p${partition}-b${nodeId}-${seq++}`;
      const sentAt = performance.now();
      try {
        const r = await client.request(ApiKey.Produce, 7, {
          transactionalId: null,
          acks,
          timeoutMs: 1000,
          topicData: [{ name: topic, partitionData: [{ index: partition, records: encodeBatch({ records: [{ value: Buffer.from(value) }] }) }] }],
        });
        const p = r.body.responses[0].partitionResponses[0];
        answers.push({ broker: nodeId, value, sentAt, answeredAt: performance.now(), errorCode: p.errorCode, offset: p.baseOffset });
        // Refusals are answered at once: a short pause keeps the loop from spinning, short
        // enough that every window of a few milliseconds sees requests.
        if (p.errorCode !== 0) await pause(2);
      } catch {
        client.close();
        client = undefined;
      }
    }
    client?.close();
  })();
  return async () => {
    stopping = true;
    await done;
  };
}
