/**
 * Hands out producer ids for InitProducerId: unique for the life of the data directory,
 * never reused after a restart. Ids are reserved in blocks; the end of the current block is
 * recorded durably before any id from it is given out, so a crash skips at most one block.
 *
 * Ids are also unique across regions: geo-replication copies batches verbatim, producer id
 * included, and a region rebuilding its idempotence state must never mistake another
 * region's producer for one of its own. Each region allocates in its own space of 2^40 ids,
 * chosen by a hash of the region name (12 bits, so ids stay below 2^53 for JavaScript
 * clients).
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync } from '../storage/fs-util.js';

const FILE = 'producer-ids.json';

/**
 * Where InitProducerId takes ids from: this allocator on a single broker, the region's etcd
 * counter in a cluster (cluster/cluster-producer-ids.ts), where every broker must draw from
 * one sequence or two producers of one partition could get the same id.
 */
export interface ProducerIdSource {
  next(): bigint | Promise<bigint>;
}
const BLOCK = 1000n;

export class ProducerIdAllocator implements ProducerIdSource {
  readonly #file: string;
  #next: bigint;
  #blockEnd: bigint;

  constructor(dataDir: string, region = '') {
    this.#file = path.join(dataDir, FILE);
    let reserved = 0n;
    if (fs.existsSync(this.#file)) reserved = BigInt((JSON.parse(fs.readFileSync(this.#file, 'utf8')) as { reservedUpTo: string }).reservedUpTo);
    const base = regionBase(region);
    if (reserved < base) reserved = base;
    this.#next = reserved;
    this.#blockEnd = reserved;
  }

  next(): bigint {
    if (this.#next >= this.#blockEnd) {
      this.#blockEnd = this.#next + BLOCK;
      writeFileAtomicSync(this.#file, JSON.stringify({ reservedUpTo: String(this.#blockEnd) }) + '\n');
    }
    return this.#next++;
  }
}

/** The first id of a region's space: FNV-1a of the name, 12 bits, shifted by 40. */
export function regionBase(region: string): bigint {
  if (region === '') return 0n;
  let h = 0x811c9dc5;
  for (const c of Buffer.from(region)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return BigInt((h & 0xfff) || 1) << 40n;
}
