import { Attributes, encodeBatch } from '../../src/storage/record-batch.js';

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

/**
 * A control batch shaped like a replication marker (control key type 0x4D52) whose value is
 * garbage: what a damaged disk, or a client forging markers, would put in a log.
 */
export function garbledMarker(): Buffer {
  return encodeBatch({ records: [{ key: Buffer.from([0, 0, 0x4d, 0x52]), value: Buffer.from([0, 0, 0xff]) }], attributes: Attributes.control, baseTimestamp: 0n, producerId: -1n, producerEpoch: -1, baseSequence: -1 });
}
