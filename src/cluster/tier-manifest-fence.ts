/**
 * Tiered storage's manifest fence in etcd (src/cluster/README.md, "Tiering on a cluster";
 * the tiered side is src/tiered/cluster-tiering.ts). One key per partition,
 *
 *   <prefix>/<region>/tier-manifests/<topic>/<p>   { topicId, leaderEpoch, version, manifestKey, writer }
 *
 * naming the manifest object that is the partition's remote history. Object stores give no
 * reliable compare-and-swap (s3rver, Azurite and a directory have none we can trust), so
 * the commit point of an offload is this key: a compare-and-swap on its modification
 * revision. The rule "never behind a newer leader" is checked on the value read in the same
 * retry turn as the transaction, and that transaction compares the revision read, so the
 * check and the write are one atomic step: a pointer carrying a higher leader epoch (same
 * topic id) is never replaced by a lower one.
 *
 * The key is spelled here rather than in etcd-keys.ts because that file was being changed
 * by another layer at the same time; it lives under the region root like every other key.
 *
 * Every commit is safe to repeat (EtcdRegion.run retries after an unknown outcome): a
 * pointer already equal to the one asked for is that same commit's earlier success.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import type { FenceAnswer, ManifestFence, ManifestPointer, PointerAt } from '../tiered/cluster-tiering.js';
import { rev, type EtcdRegion } from './etcd-region.js';
import { PrefixWatch } from './etcd-watch.js';

export class EtcdManifestFence implements ManifestFence {
  readonly #region: EtcdRegion;
  readonly #prefix: string;

  constructor(region: EtcdRegion) {
    this.#region = region;
    this.#prefix = `${region.keys.root}tier-manifests/`;
  }

  /** The fence key of a partition. */
  key(topic: string, partition: number): string {
    return `${this.#prefix}${topic}/${partition}`;
  }

  async read(topic: string, partition: number): Promise<PointerAt | null> {
    const v = await this.#region.getJson(this.key(topic, partition), parsePointer);
    return v === undefined ? null : { pointer: v.value, revision: v.modRevision };
  }

  async commit(topic: string, partition: number, expected: PointerAt | null, next: ManifestPointer): Promise<FenceAnswer> {
    const key = this.key(topic, partition);
    const { client } = this.#region;
    return this.#region.run(`move the tiered manifest fence of ${topic}/${partition} to version ${next.version} (leader epoch ${next.leaderEpoch})`, async (): Promise<FenceAnswer> => {
      const kv = (await client.get(key).exec()).kvs[0];
      const current: PointerAt | null = kv === undefined ? null : { pointer: parsePointer(key, kv.value), revision: rev(kv.mod_revision) };
      // Our own earlier attempt, applied by etcd but whose answer was lost.
      if (current !== null && samePointer(current.pointer, next) && expected !== null && current.revision > expected.revision) return { ok: true, at: current };
      if ((current?.revision ?? 0n) !== (expected?.revision ?? 0n)) return { ok: false, current };
      if (current !== null && current.pointer.topicId === next.topicId && current.pointer.leaderEpoch > next.leaderEpoch) return { ok: false, current };
      const txn = kv === undefined ? client.if(key, 'Create', '==', 0) : client.if(key, 'Mod', '==', kv.mod_revision);
      const r = await txn.then(client.put(key).value(JSON.stringify(next))).commit();
      if (!r.succeeded) return { ok: false, current: await this.read(topic, partition) };
      return { ok: true, at: { pointer: next, revision: rev(r.header.revision) } };
    });
  }

  async watch(listener: (topic: string, partition: number, at: PointerAt | null) => void): Promise<() => void> {
    const { revision } = await this.#region.getPrefix(this.#prefix, parsePointer);
    const partitionOf = (key: string): { topic: string; partition: number } | undefined => {
      const m = /^([^/]+)\/(\d+)$/.exec(key.slice(this.#prefix.length));
      return m === null ? undefined : { topic: m[1]!, partition: Number(m[2]) };
    };
    const w = new PrefixWatch(this.#region, this.#prefix, revision + 1n, parsePointer, {
      put: (key, v) => {
        const p = partitionOf(key);
        if (p !== undefined) listener(p.topic, p.partition, { pointer: v.value, revision: v.modRevision });
      },
      delete: (key) => {
        const p = partitionOf(key);
        if (p !== undefined) listener(p.topic, p.partition, null);
      },
      reset: (entries) => {
        for (const [key, v] of entries) {
          const p = partitionOf(key);
          if (p !== undefined) listener(p.topic, p.partition, { pointer: v.value, revision: v.modRevision });
        }
      },
    });
    w.start();
    return () => w.close();
  }
}

function samePointer(a: ManifestPointer, b: ManifestPointer): boolean {
  return a.topicId === b.topicId && a.leaderEpoch === b.leaderEpoch && a.version === b.version && a.manifestKey === b.manifestKey && a.writer === b.writer;
}

/** Checks a fence value (CORRUPT_METADATA names the key). */
export function parsePointer(key: string, raw: Buffer): ManifestPointer {
  let v: Partial<ManifestPointer>;
  try {
    v = JSON.parse(raw.toString('utf8')) as Partial<ManifestPointer>;
  } catch (err) {
    throw new MeridianError(ErrorCode.CorruptMetadata, `etcd key ${key} is not JSON: ${(err as Error).message}`);
  }
  if (
    typeof v !== 'object' || v === null || typeof v.topicId !== 'string' || !Number.isInteger(v.leaderEpoch) || !Number.isInteger(v.version) ||
    !(v.manifestKey === null || typeof v.manifestKey === 'string') || !Number.isInteger(v.writer)
  ) {
    throw new MeridianError(ErrorCode.CorruptMetadata, `etcd key ${key} is not a tiered manifest pointer ({ topicId, leaderEpoch, version, manifestKey, writer })`);
  }
  return v as ManifestPointer;
}
