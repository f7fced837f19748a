import { encodeBatch } from '../../src/storage/record-batch.js';

/** A deterministic batch whose record values encode `tag`, so tests can regenerate bytes. */
export function makeBatch(tag: string, records = 1, valueBytes = 16, baseTimestamp = 1_700_000_000_000n): Buffer {
  const recs = [];
  for (let i = 0; i < records; i++) {
    const seed = `${tag}/${i}/`;
    const value = Buffer.alloc(valueBytes, seed);
    recs.push({ key: Buffer.from(`${tag}-${i}`), value, timestampDelta: i });
  }
  return encodeBatch({ records: recs, baseTimestamp });
}
