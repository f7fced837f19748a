/**
 * Producer ids unique across a region cluster: every broker takes blocks of ids from one
 * counter in etcd (`<prefix>/<region>/producer-ids`, the next free id as a decimal string),
 * each block reserved by a compare-and-swap on the key's mod revision, so two brokers never
 * hand out the same id (a single broker's file allocator, broker/producer-ids.ts, would give
 * every broker the same sequence). The sequence starts at the region's base
 * (`regionBase`, the same per-region space as a single broker's), so ids stay distinct from
 * other regions' for geo-replication.
 *
 * A block is `blockSize` ids (1,000); a broker that dies skips the rest of its block, which
 * is never reused. While etcd cannot be reached a new block waits in the region's retry loop
 * (InitProducerId then answers a retriable error once the budget runs out).
 */
import { regionBase } from '../broker/producer-ids.js';
import type { ProducerIdSource } from '../broker/producer-ids.js';
import type { EtcdRegion } from './etcd-region.js';

export class EtcdProducerIds implements ProducerIdSource {
  readonly #region: EtcdRegion;
  readonly #blockSize: bigint;
  #next = 0n;
  #end = 0n;
  /** One block reservation at a time; callers queue behind it. */
  #reserving: Promise<void> | undefined;

  constructor(region: EtcdRegion, blockSize = 1000) {
    this.#region = region;
    this.#blockSize = BigInt(blockSize);
  }

  async next(): Promise<bigint> {
    while (this.#next >= this.#end) {
      this.#reserving ??= this.#reserve().finally(() => {
        this.#reserving = undefined;
      });
      await this.#reserving;
    }
    return this.#next++;
  }

  /** Reserves [current, current + blockSize) by CAS; retried on a conflict with another broker. */
  async #reserve(): Promise<void> {
    const { client, keys } = this.#region;
    const key = keys.producerIds;
    const base = regionBase(this.#region.region);
    for (;;) {
      const res = await this.#region.run('reserve a block of producer ids', async () => {
        const kv = (await client.get(key).exec()).kvs[0];
        const from = kv === undefined ? base : BigInt(kv.value.toString());
        const to = from + this.#blockSize;
        const txn = kv === undefined ? client.if(key, 'Create', '==', 0) : client.if(key, 'Mod', '==', kv.mod_revision);
        const r = await txn.then(client.put(key).value(to.toString())).commit();
        return r.succeeded ? { from, to } : undefined;
      });
      if (res !== undefined) {
        this.#next = res.from;
        this.#end = res.to;
        return;
      }
    }
  }
}
