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
import { writeFileAtomic, writeFileAtomicSync } from './fs-util.js';
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

/**
 * One partition's ship fence file: what it holds, raising it in strides (one write at a
 * time, each writing the newest target), and marking it untrusted after an I/O error.
 * PartitionLog owns one per log and decides when records may be sent unsynced.
 */
export class ShipFenceFile {
  readonly #file: string;
  readonly #bootId: string | null;
  /** Runs a file write under the descriptor budget (FdCache.transient). */
  readonly #transient: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly #warn: (fields: Record<string, unknown>, message: string) => void;
  /** As read at open (undefined: no file). */
  readonly saved: ShipFence | undefined;
  /** Persisted: offsets below it may be held by a remote without being durable here. */
  #fence: bigint;
  /** The fence being written, or the persisted one: a raise never asks for less. */
  #target: bigint;
  #write: Promise<void> | undefined;
  #untrusted = false;
  /** Fences persisted by this process. */
  writes = 0;

  constructor(file: string, bootId: string | null, transient: <T>(fn: () => Promise<T>) => Promise<T>, warn: (fields: Record<string, unknown>, message: string) => void) {
    this.#file = file;
    this.#bootId = bootId;
    this.#transient = transient;
    this.#warn = warn;
    this.saved = readShipFence(file);
    this.#fence = this.saved?.fence ?? 0n;
    this.#target = this.#fence;
  }

  get fence(): bigint {
    return this.#fence;
  }

  /**
   * Where a log that recovered up to `end` must fill to before anything appends: the saved
   * fence, when this is not the boot that wrote it and the log ends below it; else undefined.
   */
  fillTo(end: bigint): bigint | undefined {
    const s = this.saved;
    return s !== undefined && s.bootId !== this.#bootId && s.fence > end ? s.fence : undefined;
  }

  /**
   * Resolves true once the persisted fence lies past `lastOffset` (at once when it already
   * does; the next stride's write then starts in the background within half a stride of
   * it), false when the write failed. Only on a machine whose boot can be told.
   */
  async cover(lastOffset: bigint): Promise<boolean> {
    if (this.#bootId === null || this.#untrusted) return false;
    if (lastOffset + SHIP_FENCE_STRIDE / 2n >= this.#target) this.#raise(lastOffset + SHIP_FENCE_STRIDE);
    if (lastOffset < this.#fence) return true;
    try {
      await this.#write;
    } catch {
      return false;
    }
    return lastOffset < this.#fence;
  }

  #raise(target: bigint): void {
    if (target <= this.#target) return;
    this.#target = target;
    const write = (this.#write ?? Promise.resolve())
      .catch(() => {})
      .then(async () => {
        const fence = this.#target;
        if (fence <= this.#fence || this.#untrusted) return;
        try {
          await this.#transient(() => writeFileAtomic(this.#file, encodeShipFence({ fence, bootId: this.#bootId! })));
        } catch (err) {
          // Sends wait for an fdatasync instead; the next one past the fence tries again.
          if (this.#target === fence) this.#target = this.#fence;
          this.#warn({ err, file: this.#file }, 'writing the ship fence failed: replication sends only durable records of this partition until a write succeeds');
          throw err;
        }
        if (fence > this.#fence) this.#fence = fence;
        this.writes++;
        // A write that started before the log failed must not replace the failure's mark.
        if (this.#untrusted) this.#markUntrusted();
      });
    this.#write = write;
    write.catch(() => {});
  }

  /**
   * After a failed write or fdatasync the kernel may have dropped pages it could not write
   * back, so a restart on this same boot can find less than was sent unsynced: the fence is
   * rewritten under a boot id no machine has (UNTRUSTED_BOOT), which makes the next open fill
   * up to it whatever the boot. Best effort (the disk is failing); never throws.
   */
  distrust(): void {
    this.#untrusted = true;
    if (this.#fence > 0n) this.#markUntrusted();
  }

  #markUntrusted(): void {
    try {
      writeFileAtomicSync(this.#file, encodeShipFence({ fence: this.#fence, bootId: UNTRUSTED_BOOT }));
    } catch (err) {
      this.#warn({ err, file: this.#file }, 'could not mark the ship fence after the I/O error: a restart on this boot trusts the page cache');
    }
  }

  /** Waits for the write under way, if any (its failure is already reported). */
  async settled(): Promise<void> {
    await this.#write?.catch(() => {});
  }

  /** Removes the file: only once everything the log holds is durable (a clean close). */
  remove(): void {
    if (this.#fence > 0n || this.saved !== undefined) fs.rmSync(this.#file, { force: true });
  }
}
