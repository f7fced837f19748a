/**
 * What a user checks after geo-replication: a region's copy of a topic holds exactly the
 * union of what every origin produced, each record once, each origin's records in the order
 * they were produced, byte for byte. Offsets differ between regions (markers take offsets),
 * so records are matched by content: every produced value is unique and names its origin.
 *
 * Two independent clients read each region: KafkaJS (from npm, always there) and kcat
 * (librdkafka, whose handling of control batches is the other widely used one). Each read
 * must be the exact union on its own, and the two must agree record for record, offsets
 * included: a marker one client shows or a record one client skips fails the check.
 */
import assert from 'node:assert/strict';
import { readTopicToEnd, type ConsumedMessage } from './kafkajs-collect.js';
import { KcatClient } from './kcat-client.js';
import type { KcatMessage } from './kcat-json.js';

/** What one origin produced: per partition, the messages in produce order. */
export type Produced = Map<number, Array<{ key: Buffer | null; value: Buffer; headers?: Array<[string, Buffer | null]> }>>;

/** One record as a client read it. */
export interface ReadRecord {
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  /** Name and value of each header in record order; a null value is a header without one. */
  headers: Array<[string, Buffer | null]>;
}

export type ClientName = 'KafkaJS' | 'kcat';

export function emptyProduced(partitions: number): Produced {
  return new Map(Array.from({ length: partitions }, (_, p) => [p, []]));
}

export function fromKcat(m: KcatMessage): ReadRecord {
  return { partition: m.partition, offset: m.offset, key: m.key, value: m.payload, headers: m.headers };
}

export function fromKafkaJS(m: ConsumedMessage): ReadRecord {
  const headers: Array<[string, Buffer | null]> = [];
  for (const [name, v] of Object.entries(m.headers)) {
    // KafkaJS folds repeated header names into an array, in record order.
    for (const one of Array.isArray(v) ? v : [v]) headers.push([name, one === undefined || one === null ? null : Buffer.from(one)]);
  }
  return { partition: m.partition, offset: m.offset, key: m.key, value: m.value, headers };
}

/** The whole topic as kcat reads it (`-o beginning -e`). */
export async function readWithKcat(bootstrap: string, topic: string): Promise<ReadRecord[]> {
  return (await new KcatClient(bootstrap).consumeAll(topic)).map(fromKcat);
}

/** The whole topic as a fresh KafkaJS consumer reads it, to the high watermarks. */
export async function readWithKafkaJS(bootstrap: string, topic: string): Promise<ReadRecord[]> {
  return (await readTopicToEnd(bootstrap, topic)).map(fromKafkaJS);
}

/**
 * Reads the whole topic with kcat, then with KafkaJS. Call it once replication has caught up.
 * One after the other, not at once: test/helpers/kcat.ts resolves on the child's 'exit',
 * which can come before the last of its stdout is read, and a busier event loop makes that
 * (a truncated last line) likelier.
 */
export async function readBoth(bootstrap: string, topic: string): Promise<Record<ClientName, ReadRecord[]>> {
  const kcat = await readWithKcat(bootstrap, topic);
  const kafkajs = await readWithKafkaJS(bootstrap, topic);
  return { KafkaJS: kafkajs, kcat };
}

/** Asserts that KafkaJS and kcat read the same records (keys and values) at the same offsets. */
export function assertClientsAgree(where: string, reads: Record<ClientName, readonly ReadRecord[]>): void {
  const view = (list: readonly ReadRecord[]) =>
    list
      .map((r) => ({ partition: r.partition, offset: r.offset, key: r.key?.toString('latin1') ?? null, value: r.value?.toString('latin1') ?? null }))
      .sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  const [a, b] = [view(reads.KafkaJS), view(reads.kcat)];
  type View = (typeof a)[number];
  const same = (x: View | undefined, y: View | undefined) => x !== undefined && y !== undefined && x.partition === y.partition && x.offset === y.offset && x.key === y.key && x.value === y.value;
  const show = (x: View | undefined) => (x ? `${x.partition}@${x.offset} ${JSON.stringify(x.value?.slice(0, 40))}` : 'nothing');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (!same(a[i], b[i])) assert.fail(`${where}: KafkaJS read ${a.length} records, kcat ${b.length}; first difference at #${i}: KafkaJS ${show(a[i])}, kcat ${show(b[i])}`);
  }
}

/**
 * The whole topic as KafkaJS and kcat both read it (asserted to agree), in partition and
 * offset order: for checks that compare contents with an expected list.
 */
export async function readAgreed(where: string, bootstrap: string, topic: string): Promise<ReadRecord[]> {
  const reads = await readBoth(bootstrap, topic);
  assertClientsAgree(where, reads);
  return [...reads.KafkaJS].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

/**
 * Asserts that region `where` (at `bootstrap`) holds exactly the union of `origins` in
 * `topic`, as KafkaJS and as kcat read it (see assertExactUnion); returns KafkaJS's read.
 */
export async function assertRegionHolds(where: string, bootstrap: string, topic: string, origins: ReadonlyMap<string, Produced>): Promise<ReadRecord[]> {
  const reads = await readBoth(bootstrap, topic);
  for (const client of ['KafkaJS', 'kcat'] as const) assertExactUnion(`${where} (${client})`, reads[client], origins);
  assertClientsAgree(where, reads);
  return reads.KafkaJS;
}

/**
 * Asserts that `records` (one region's whole topic, as one client read it) is exactly the
 * union of `origins`: same partition, each record once, per-origin order kept, keys, values
 * and headers identical. `where` names the region and client in failure messages.
 */
export function assertExactUnion(where: string, records: readonly ReadRecord[], origins: ReadonlyMap<string, Produced>): void {
  const owner = new Map<string, { origin: string; partition: number; index: number }>();
  for (const [origin, produced] of origins) {
    for (const [partition, list] of produced) {
      list.forEach((m, index) => {
        const k = m.value.toString('latin1');
        assert.ok(!owner.has(k), `test bug: value ${k} produced twice`);
        owner.set(k, { origin, partition, index });
      });
    }
  }
  const seen = new Map<string, Map<number, number>>(); // origin -> partition -> next index
  for (const m of records) {
    assert.ok(m.value !== null, `${where}: a record without a value at ${m.partition}@${m.offset}`);
    const k = m.value.toString('latin1');
    const o = owner.get(k);
    assert.ok(o !== undefined, `${where}: unexpected record ${JSON.stringify(k.slice(0, 60))} at ${m.partition}@${m.offset} (a marker leaked, or data from a region that should not send here)`);
    assert.equal(m.partition, o.partition, `${where}: ${k} is in partition ${m.partition}, produced to ${o.partition}`);
    const byPartition = seen.get(o.origin) ?? new Map<number, number>();
    seen.set(o.origin, byPartition);
    const expectedIndex = byPartition.get(o.partition) ?? 0;
    assert.equal(o.index, expectedIndex, `${where}: ${k} at ${m.partition}@${m.offset} is ${o.origin}'s record #${o.index} of partition ${o.partition}, expected #${expectedIndex} (${o.index < expectedIndex ? 'duplicate' : 'gap or reordering'})`);
    byPartition.set(o.partition, expectedIndex + 1);
    const want = origins.get(o.origin)!.get(o.partition)![o.index];
    assert.deepEqual(m.key, want.key, `${where}: key of ${k}`);
    if (want.headers !== undefined) assert.deepEqual(m.headers, want.headers, `${where}: headers of ${k}`);
  }
  for (const [origin, produced] of origins) {
    for (const [partition, list] of produced) {
      const got = seen.get(origin)?.get(partition) ?? 0;
      assert.equal(got, list.length, `${where}: holds ${got} of ${list.length} records ${origin} produced to partition ${partition}`);
    }
  }
}

/** kcat -P input for `values` with optional keys (`-K\t`), one per line. */
export function kcatLines(list: ReadonlyArray<{ key: Buffer | null; value: Buffer }>): string {
  return list.map((m) => (m.key === null ? m.value.toString() : `${m.key.toString()}\t${m.value.toString()}`)).join('\n') + '\n';
}
