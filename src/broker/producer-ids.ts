/**
 * Hands out producer ids for InitProducerId: unique for the life of the data directory,
 * never reused after a restart. Ids are reserved in blocks; the end of the current block is
 * recorded durably before any id from it is given out, so a crash skips at most one block.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync } from '../storage/fs-util.js';

const FILE = 'producer-ids.json';
const BLOCK = 1000n;

export class ProducerIdAllocator {
  readonly #file: string;
  #next: bigint;
  #blockEnd: bigint;

  constructor(dataDir: string) {
    this.#file = path.join(dataDir, FILE);
    let reserved = 0n;
    if (fs.existsSync(this.#file)) reserved = BigInt((JSON.parse(fs.readFileSync(this.#file, 'utf8')) as { reservedUpTo: string }).reservedUpTo);
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
