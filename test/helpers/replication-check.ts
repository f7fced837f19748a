/**
 * What a user checks after geo-replication: a region's copy of a topic holds exactly the
 * union of what every origin produced, each record once, each origin's records in the order
 * they were produced, byte for byte. Offsets differ between regions (markers take offsets),
 * so records are matched by content: every produced value is unique and names its origin.
 */
import assert from 'node:assert/strict';
import { KcatClient } from './kcat-client.js';
import type { KcatMessage } from './kcat-json.js';

/** What one origin produced: per partition, the messages in produce order. */
export type Produced = Map<number, Array<{ key: Buffer | null; value: Buffer; headers?: Array<[string, Buffer | null]> }>>;

export function emptyProduced(partitions: number): Produced {
  return new Map(Array.from({ length: partitions }, (_, p) => [p, []]));
}

/**
 * Asserts that `messages` (one region's whole topic, as kcat read it) is exactly the union
 * of `origins`: same partition, each record once, per-origin order kept, keys, values and
 * headers identical. `where` names the region in failure messages.
 */
export function assertExactUnion(where: string, messages: readonly KcatMessage[], origins: ReadonlyMap<string, Produced>): void {
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
  for (const m of messages) {
    assert.ok(m.payload !== null, `${where}: a record without a value at ${m.partition}@${m.offset}`);
    const k = m.payload.toString('latin1');
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

export async function consumeTopic(bootstrap: string, topic: string): Promise<KcatMessage[]> {
  return new KcatClient(bootstrap).consumeAll(topic);
}

/** kcat -P input for `values` with optional keys (`-K\t`), one per line. */
export function kcatLines(list: ReadonlyArray<{ key: Buffer | null; value: Buffer }>): string {
  return list.map((m) => (m.key === null ? m.value.toString() : `${m.key.toString()}\t${m.value.toString()}`)).join('\n') + '\n';
}
