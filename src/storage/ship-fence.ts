/**
 * The ship fence: how a partition in the interval flush mode may let a replicator send
 * acknowledged records before they are fdatasync'd, without ever reusing an offset that a
 * remote region may hold.
 *
 * The hazard. A remote keeps each origin record by its origin offset and drops a record
 * whose offset it already holds as a duplicate. If this machine loses power, records written
 * since the last fdatasync are gone, and the log would hand their offsets to new records: a
 * remote that received the lost ones would drop the new ones. Sending only durable records
 * avoids it at the cost of an fdatasync before every send (in the interval mode, where
 * nothing else waits for one, that fdatasync was most of the replication lag).
 *
 * The fence. Before a replicator sends records that are not durable, the partition
 * persists (`ship-fence.json`, written atomically and fsynced) a fence above their offsets,
 * in strides, so one fence write covers many sends. On open, if the machine restarted since
 * the fence was written (Linux's boot id differs) and the recovered log ends below it, the
 * lost tail may be held by a remote: the log fills the offsets up to the fence with one
 * control batch (the offset filler) and new records start at the fence. A process crash
 * leaves the page cache, and so every record it wrote, in place: the same boot id, no gap;
 * unless a write or fdatasync failed (the kernel may then drop pages it could not write):
 * the log rewrites its fence under a boot id no machine has, and the next open fills.
 *
 * The filler is a Kafka control batch (attribute bit 5) whose one control record sits at
 * the last offset of its range, key `version INT16 = 0, type INT16 = 0x4d47` ('MG', a type
 * Kafka does not define). Consumers skip control batches and move past them: librdkafka
 * and the Java client by the batch's last offset, KafkaJS by the offset of its last
 * (control) record, which is why the record sits at the end. Replicators never send it
 * (it is not data), and nothing reads it as a producer's.
 *
 * Where the boot id cannot be read (not Linux), nothing may be sent unsynced.
 */
import fs from 'node:fs';
import { ErrorCode, MeridianError } from '../errors.js';
import { Attributes, decodeRecords, encodeBatch, isControlBatch, type BatchHeader } from './record-batch.js';

/** 'MG': a control type Kafka does not define (Meridian's replication markers use 'MR'). */
export const OFFSET_FILLER_CONTROL_TYPE = 0x4d47;
const FILLER_KEY = Buffer.from([0, 0, OFFSET_FILLER_CONTROL_TYPE >> 8, OFFSET_FILLER_CONTROL_TYPE & 0xff]);

/**
 * Offsets one fence write covers: a power loss skips at most about this many offsets (a
 * consumer sees a jump, as after compaction), and a partition written at 100,000 records a
 * second writes its fence about twice a second, off the send path (see PartitionLog.coverUnsynced).
 */
export const SHIP_FENCE_STRIDE = 100_000n;

/** The largest gap one filler batch spans (its lastOffsetDelta is an int32). */
const MAX_FILLER_SPAN = 2n ** 31n - 1n;

const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';
/** The boot id a fence is rewritten with when the log failed an I/O (PartitionLog: no machine has it). */
export const UNTRUSTED_BOOT = 'untrusted-after-io-error';
let bootId: string | null | undefined;

/** This boot of the machine (Linux's random boot id), or null where it cannot be read. */
export function currentBootId(): string | null {
  if (bootId === undefined) {
    try {
      bootId = fs.readFileSync(BOOT_ID_FILE, 'utf8').trim() || null;
    } catch {
      bootId = null;
    }
  }
  return bootId;
}

export interface ShipFence {
  /** Offsets below it may be held by a remote without being durable here. */
  fence: bigint;
  /** The boot of the machine that wrote it. */
  bootId: string;
}

export function encodeShipFence(f: ShipFence): string {
  return JSON.stringify({ fence: String(f.fence), bootId: f.bootId }) + '\n';
}

/** The fence in `file`, undefined when there is none; a file that does not parse is refused (it is only ever replaced atomically). */
export function readShipFence(file: string): ShipFence | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const j = JSON.parse(text) as { fence?: unknown; bootId?: unknown };
    if (typeof j.fence !== 'string' || !/^\d+$/.test(j.fence) || typeof j.bootId !== 'string') throw new Error('fields missing');
    return { fence: BigInt(j.fence), bootId: j.bootId };
  } catch (err) {
    throw new MeridianError(ErrorCode.CorruptLog, `the ship fence ${file} does not parse (${(err as Error).message}): it says how far records may have been replicated before they were durable; restore it, or remove it only if this machine has not lost power since the partition last ran`);
  }
}

/** Control batches covering the offsets [from, to), in order (one, unless the gap passes 2^31 offsets). */
export function encodeOffsetFillers(from: bigint, to: bigint, timestamp = BigInt(Date.now())): Buffer[] {
  const out: Buffer[] = [];
  for (let base = from; base < to; ) {
    const span = to - base < MAX_FILLER_SPAN ? to - base : MAX_FILLER_SPAN;
    out.push(
      encodeBatch({
        baseOffset: base,
        records: [{ key: FILLER_KEY, value: null }],
        lastOffsetDelta: Number(span - 1n),
        attributes: Attributes.control,
        baseTimestamp: timestamp,
        producerId: -1n,
        producerEpoch: -1,
        baseSequence: -1,
      }),
    );
    base += span;
  }
  return out;
}

/** Whether a batch is an offset filler (its header, then its control key). */
export function isOffsetFiller(batch: Buffer, h: BatchHeader): boolean {
  if (!isControlBatch(h) || h.recordCount !== 1 || (h.attributes & Attributes.codecMask) !== 0) return false;
  const key = decodeRecords(batch)[0]?.key;
  return key !== null && key !== undefined && key.equals(FILLER_KEY);
}
