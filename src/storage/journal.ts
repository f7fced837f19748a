/**
 * The shared journal of fsync mode (src/storage/README.md, "Many small partition writes in
 * fsync mode"): small write rounds of many partition logs made durable together, with one
 * pwritev and one fdatasync of one file, instead of one fdatasync of each log's segment.
 *
 *   <dataDir>/journal/<generation, 20 digits>.journal
 *
 * A record is
 *
 *   length u32 (of what follows) | crc32c u32 (of what follows it) | kind u8 |
 *   log u16 + UTF-8 bytes (the partition's directory under logs/) |
 *   segment base offset i64 | file position i64 | data (kind DATA only)
 *
 * DATA: `data` was written at `position` of segment `base` of `log`. BARRIER: every earlier
 * record of `log` is void (the log synced its segments, then truncated or was deleted), so a
 * replay never writes back a tail that was cut.
 *
 * The CRC is seeded with the generation (the CRC-32C of its number, 8 bytes big-endian): a
 * record checks only in the generation it was written for. Files written before the seed
 * (no generation in the CRC) still replay: a file whose first record checks unseeded and not
 * seeded is read unseeded.
 *
 * Appends are grouped: one group is written and fdatasync'd at a time, and each append
 * resolves when the group holding it is durable. The journal rotates once a generation holds
 * `generationBytes`: new records go to the next generation, one syncfs of the file system
 * (or, failing that, every member that appended to the old one syncing its segments,
 * `JournalMember.syncForJournal`) makes the old one's records redundant, and then its file is
 * kept as a spare (`<generation>.spare`, up to MAX_SPARES) or deleted.
 *
 * A new generation reuses a spare when there is one: renamed, and written over from its
 * start. Its blocks are allocated and written, so a group written over them changes no
 * metadata of the file, and its fdatasync flushes the data without committing ext4's journal;
 * a file that grows commits ext4's journal at every fdatasync, with the inode of every other
 * file written since (10,000 partitions' segments). What the file held before is records of
 * older generations, which fail the seeded CRC: a replay stops there as at a torn record.
 * Within a file the generations only grow: in a run a spare is always older than the
 * generation that takes it, a spare is named by the last generation it held, and a journal
 * opened at start-up numbers its first generation past every generation and spare in the
 * directory (the replay has deleted the generations, and their records with them). So no
 * record a file holds can check in the generation it is given next. Spares hold disk space:
 * giving back space on a full disk deletes them first, and a start with the journal turned
 * off deletes them. A binary from before the seed cannot replay these files: after an
 * unclean stop, do not downgrade across 2026-12-06 (a clean stop leaves nothing to replay).
 *
 * The journal holds a second copy of what its logs wrote since the last retirement, so a
 * full disk would fill with half the data. A write that runs out of space therefore gives
 * that space back first (a checkpoint: the older generations retire, one syncfs makes the
 * current one's records redundant too, and its file is cut to nothing), then tries the group
 * once more. Should that fail too, the group is refused (the logs then fdatasync their own
 * segments) and what reached the file is cut, so every generation ends on a whole record.
 * Any other failed write or fdatasync takes the journal offline (the state of the page cache
 * is unknown after a failed fdatasync): that group and every later append are refused.
 *
 * A barrier for a log with no record in any generation still on disk is not written: there
 * is nothing for it to void. Closing ten thousand idle logs writes nothing, and a log can be
 * truncated on a full disk once a checkpoint has retired its records.
 *
 * `replayJournal` runs at start-up, before any log opens.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { ErrorCode, MeridianError } from '../errors.js';
import { closeAsync, fdatasyncAsync, fsyncDir, ftruncateAsync, openAsync, realIo, storageError, writevFully, type LogIo } from './fs-util.js';
import { writeInt64BE } from './int64.js';
import { paddedOffset, segmentFileName, LOG_SUFFIX } from './partition-files.js';

export const JOURNAL_DIR = 'journal';

/**
 * A log's round is journaled only while at least this many logs wrote rounds within the
 * last SHARING_WINDOW_MS (`LogJournal.sharing`): the journal saves fdatasyncs only when a
 * group holds several logs' rounds. One busy partition (with maybe an offsets partition
 * beside it) keeps its own fdatasync, and the tail latency it has without a journal.
 */
export const MIN_SHARING_LOGS = 4;
export const SHARING_WINDOW_MS = 10;
const SUFFIX = '.journal';
const GENERATION = /^(\d{20})\.journal$/;
const SPARE_SUFFIX = '.spare';
const SPARE = /^(\d{20})\.spare$/;
/** Retired generation files kept for reuse (two: a rotation may come before the last retirement is done). */
export const MAX_SPARES = 2;

const KIND_DATA = 1;
const KIND_BARRIER = 2;
/** length + crc. */
const FRAME_BYTES = 8;
/** kind, log length, base offset, position (plus the log's bytes). */
const FIXED_BYTES = 1 + 2 + 8 + 8;
const MAX_LOG_BYTES = 0xffff;

/** A log that appends to the journal: it must make what it wrote durable in its own files when asked. */
export interface JournalMember {
  /** Fdatasyncs every segment the log has written to (what the journal held for it). */
  syncForJournal(): Promise<void>;
}

export interface JournalOptions {
  /** Where the journal's writes and fdatasyncs go (the logs' LogIo: tests inject disk failures). */
  io?: LogIo;
  /** Rotate once a generation holds this many bytes. Default 256 MiB. */
  generationBytes?: number;
  /**
   * Retire a generation with one syncfs of the file system (default true); false asks each
   * member to sync its own segments instead (also the fallback when syncfs cannot run).
   */
  syncFileSystem?: boolean;
  /** Journal a log's round only while this many logs write at once (default MIN_SHARING_LOGS). */
  minSharingLogs?: number;
  /** Failures and rotations are logged here. */
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

export interface JournalStats {
  generation: number;
  /** Bytes in the current generation. */
  generationBytes: number;
  records: number;
  groups: number;
  bytes: number;
  rotations: number;
  /** Rotations into a reused file (a spare) rather than a new one. */
  reused: number;
  /** Times a write ran out of space and the journal gave its space back (a checkpoint). */
  checkpoints: number;
}

interface Entry {
  kind: number;
  log: string;
  bufs: Buffer[];
  bytes: number;
  /** The seed its CRC was set with (`seal`): the generation current at append, redone if a rotation came first. */
  seed: number;
}

interface Pending {
  entries: Entry[];
  bytes: number;
  waiters: Array<{ resolve: () => void; reject: (err: Error) => void }>;
  members: Set<JournalMember>;
  /** The logs with DATA entries in this group. */
  logs: Set<string>;
}

const emptyGroup = (): Pending => ({ entries: [], bytes: 0, waiters: [], members: new Set(), logs: new Set() });

const outOfSpace = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC';

function header(kind: number, log: string, segmentBase: bigint, position: number, dataBytes: number): Buffer {
  const name = Buffer.from(log, 'utf8');
  if (name.length > MAX_LOG_BYTES) throw new RangeError(`journal: log name of ${name.length} bytes`);
  const h = Buffer.allocUnsafe(FRAME_BYTES + FIXED_BYTES + name.length);
  h.writeUInt32BE(FIXED_BYTES + name.length + dataBytes, 0);
  h.writeUInt8(kind, 8);
  h.writeUInt16BE(name.length, 9);
  name.copy(h, 11);
  writeInt64BE(h, segmentBase, 11 + name.length);
  writeInt64BE(h, BigInt(position), 19 + name.length);
  return h;
}

/**
 * Frames one record: its header and its data. The CRC is left for `seal`, with the seed of
 * the generation it is written to.
 */
function frame(kind: number, log: string, segmentBase: bigint, position: number, data: readonly Buffer[]): Buffer[] {
  let dataBytes = 0;
  for (const d of data) dataBytes += d.length;
  return [header(kind, log, segmentBase, position, dataBytes), ...data];
}

/** The CRC seed of a generation's records: the CRC-32C of its number (8 bytes, big-endian). */
export function generationSeed(generation: number): number {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(generation));
  return crc32c(b);
}

/** Sets a framed record's CRC: over everything after the CRC field, from `seed`. */
function seal(bufs: readonly Buffer[], seed: number): void {
  const h = bufs[0]!;
  let crc = crc32c(h.subarray(FRAME_BYTES), seed);
  for (let i = 1; i < bufs.length; i++) crc = crc32c(bufs[i]!, crc);
  h.writeUInt32BE(crc >>> 0, 4);
}

function generationName(n: number): string {
  return paddedOffset(BigInt(n)) + SUFFIX;
}

function spareName(n: number): string {
  return paddedOffset(BigInt(n)) + SPARE_SUFFIX;
}

/** The numbers of the files in `dir` named by `pattern`, smallest first. */
function numbered(dir: string, pattern: RegExp): number[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((n) => pattern.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** The generations present in `dir`, oldest first. */
function generations(dir: string): number[] {
  return numbered(dir, GENERATION);
}

/**
 * Starts generation `generation`'s file: the oldest of `spares` (taken off the list), renamed
 * and written over from its start, or a new file. Returns its descriptor and current size.
 */
async function startGeneration(dir: string, generation: number, spares: number[]): Promise<{ fd: number; size: number; reused: boolean }> {
  const file = path.join(dir, generationName(generation));
  const spare = spares[0];
  if (spare === undefined) {
    const fd = await openAsync(file, 'wx');
    try {
      await fsyncDir(dir);
    } catch (err) {
      await closeAsync(fd).catch(() => {});
      await fs.promises.rm(file, { force: true }).catch(() => {});
      throw err;
    }
    return { fd, size: 0, reused: false };
  }
  try {
    await fs.promises.rename(path.join(dir, spareName(spare)), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // The spare is gone (deleted by hand): forget it, and start this generation in another.
    spares.shift();
    return startGeneration(dir, generation, spares);
  }
  let fd = -1;
  try {
    fd = await openAsync(file, 'r+');
    await fsyncDir(dir);
    const size = (await fs.promises.stat(file)).size;
    spares.shift();
    return { fd, size, reused: true };
  } catch (err) {
    // Back to a spare, so that a later rotation can still start this generation; failing
    // that, the file goes and the spare is forgotten, so a later start of it finds neither.
    if (fd >= 0) await closeAsync(fd).catch(() => {});
    try {
      await fs.promises.rename(file, path.join(dir, spareName(spare)));
    } catch {
      spares.shift();
      await fs.promises.rm(file, { force: true }).catch(() => {});
    }
    throw err;
  }
}

export class LogJournal {
  readonly dir: string;
  readonly #generationBytes: number;
  readonly #log: JournalOptions['log'];
  readonly #syncFs: boolean;
  readonly #io: LogIo;
  readonly #minSharing: number;
  #generation: number;
  /** The current generation's CRC seed (`generationSeed`). */
  #seed: number;
  #fd: number;
  #position = 0;
  /** The current file's size: past `#position` in a reused file (older records, never read back). */
  #fileSize: number;
  /** Spare files (retired generations kept for reuse), oldest first, by the generation they last held. */
  #spares: number[];
  #pending: Pending = emptyGroup();
  /** The group being written. */
  #inflight: Pending | undefined;
  /** Members that appended to the current generation. */
  #members = new Set<JournalMember>();
  /** Logs with DATA records in the current generation (also those of the group being written). */
  #logs = new Set<string>();
  /** The same for each generation being retired (dropped once its file is deleted). */
  #retiringLogs = new Set<Set<string>>();
  #writing = false;
  #checkpointWanted = false;
  #failure: Error | undefined;
  #closed = false;
  /** Settles when the generations retired so far are deleted. */
  #retiring: Promise<void> = Promise.resolve();
  #stats = { records: 0, groups: 0, bytes: 0, rotations: 0, reused: 0, checkpoints: 0 };
  #idle: Array<() => void> = [];
  /** Logs that wrote a round in the current window, and how many did in the one before. */
  #window = { start: -Infinity, logs: new Set<string>() };
  #previousWindowLogs = 0;

  private constructor(dir: string, generation: number, file: { fd: number; size: number }, spares: number[], options: JournalOptions) {
    this.dir = dir;
    this.#generation = generation;
    this.#seed = generationSeed(generation);
    this.#fd = file.fd;
    this.#fileSize = file.size;
    this.#spares = spares;
    this.#generationBytes = options.generationBytes ?? 256 * 1024 * 1024;
    this.#log = options.log;
    this.#syncFs = options.syncFileSystem ?? true;
    this.#io = options.io ?? realIo;
    this.#minSharing = options.minSharingLogs ?? MIN_SHARING_LOGS;
  }

  /**
   * Opens a new generation after any generation or spare left in `dir` (start-up replays and
   * removes the generations first: `replayJournal`), reusing a spare if there is one.
   */
  static async open(dir: string, options: JournalOptions = {}): Promise<LogJournal> {
    fs.mkdirSync(dir, { recursive: true });
    const spares = numbered(dir, SPARE);
    await deleteSpares(dir, spares.splice(0, Math.max(0, spares.length - MAX_SPARES)));
    const generation = Math.max(0, ...generations(dir), ...spares) + 1;
    const file = await startGeneration(dir, generation, spares);
    return new LogJournal(dir, generation, file, spares, options);
  }

  /** Journals `data`, written at `position` of segment `segmentBase` of `log`; resolves once durable. */
  append(member: JournalMember, log: string, segmentBase: bigint, position: number, data: readonly Buffer[]): Promise<void> {
    return this.#add(member, KIND_DATA, log, frame(KIND_DATA, log, segmentBase, position, data));
  }

  /**
   * Voids every earlier record of `log`. The caller has made everything the log wrote durable
   * in its own files first; it may truncate or delete them once this resolves.
   */
  barrier(log: string): Promise<void> {
    if (!this.#holds(log)) return this.#failure ? Promise.reject(this.#failure) : Promise.resolve();
    return this.#add(undefined, KIND_BARRIER, log, frame(KIND_BARRIER, log, 0n, 0, []));
  }

  /** Whether a generation still on disk, or a group not yet written, may hold DATA records of `log`. */
  #holds(log: string): boolean {
    if (this.#logs.has(log) || this.#pending.logs.has(log) || this.#inflight?.logs.has(log)) return true;
    for (const s of this.#retiringLogs) if (s.has(log)) return true;
    return false;
  }

  /**
   * A log's own write ran out of space: the journal gives back the space it holds (a
   * checkpoint, between two groups), so that the write's retry finds it.
   */
  giveBackSpace(): void {
    // A reused file holds its older records until written over, and spares hold whole files:
    // both are given back, even before this generation's first write.
    if (this.#failure || this.#closed || (this.#position === 0 && this.#fileSize === 0 && this.#spares.length === 0 && this.#retiringLogs.size === 0)) return;
    this.#checkpointWanted = true;
    if (!this.#writing) {
      this.#writing = true;
      void this.#writer();
    }
  }

  /**
   * `log` wrote a round: whether enough logs are writing at once (`minSharingLogs` in this
   * window or the one before) for the journal to save fdatasyncs.
   */
  sharing(log: string, now = performance.now()): boolean {
    if (this.#minSharing <= 1) return true;
    const w = this.#window;
    if (now - w.start >= SHARING_WINDOW_MS) {
      this.#previousWindowLogs = now - w.start < 2 * SHARING_WINDOW_MS ? w.logs.size : 0;
      this.#window = { start: now, logs: new Set([log]) };
    } else {
      w.logs.add(log);
    }
    return Math.max(this.#window.logs.size, this.#previousWindowLogs) >= this.#minSharing;
  }

  stats(): JournalStats {
    return { generation: this.#generation, generationBytes: this.#position, ...this.#stats };
  }

  /** Waits for the pending groups, then closes the file (the generation stays for the next start's replay). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#checkpointWanted = false;
    if (this.#writing || this.#pending.waiters.length > 0) await new Promise<void>((r) => this.#idle.push(r));
    this.#closed = true;
    await this.#retiring;
    // A reused file's older records are cut off, so that the next start's replay reads a
    // clean end (after a crash it stops at them as at a torn record).
    if (this.#fileSize > this.#position && !this.#failure) await ftruncateAsync(this.#fd, this.#position);
    await closeAsync(this.#fd);
  }

  #add(member: JournalMember | undefined, kind: number, log: string, bufs: Buffer[]): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new MeridianError(ErrorCode.LogClosed, 'the journal is closed', { retriable: true }));
    return new Promise<void>((resolve, reject) => {
      const p = this.#pending;
      let bytes = 0;
      for (const b of bufs) bytes += b.length;
      // Sealed now, while the group before is syncing; a rotation before its write seals it again.
      seal(bufs, this.#seed);
      p.entries.push({ kind, log, bufs, bytes, seed: this.#seed });
      p.bytes += bytes;
      p.waiters.push({ resolve, reject });
      if (member !== undefined) p.members.add(member);
      if (kind === KIND_DATA) p.logs.add(log);
      this.#stats.records++;
      if (!this.#writing) {
        this.#writing = true;
        // Let the appends of the current tick join the first group.
        setImmediate(() => void this.#writer());
      }
    });
  }

  async #writer(): Promise<void> {
    while ((this.#pending.waiters.length > 0 || this.#checkpointWanted) && !this.#failure) {
      if (this.#checkpointWanted) {
        this.#checkpointWanted = false;
        await this.#checkpoint();
        continue;
      }
      const group = this.#pending;
      this.#pending = emptyGroup();
      this.#inflight = group;
      let err = await this.#write(group);
      if (err !== undefined && outOfSpace(err.cause) && (await this.#checkpoint())) {
        // The space this journal held is back: barriers of logs that no longer have records
        // anywhere are dropped (they void nothing), and the group is tried once more.
        this.#dropNeedlessBarriers(group);
        err = await this.#write(group);
      }
      if (err !== undefined && outOfSpace(err.cause) && !err.written) {
        // Out of space clears once space is freed: this group is refused (retriable); what
        // part of it reached the file was cut.
        const refused = storageError(`the journal ${this.dir} is out of space`, err.cause);
        for (const w of group.waiters) w.reject(refused);
        this.#inflight = undefined;
        continue;
      }
      if (err !== undefined) {
        this.#failure = storageError(`the journal ${this.dir} is offline after an I/O error`, err.cause);
        this.#log?.error({ err: err.cause, dir: this.dir }, 'journal write failed; journaled appends refused until restart');
        for (const w of [...group.waiters, ...this.#pending.waiters]) w.reject(this.#failure);
        this.#pending = emptyGroup();
        break;
      }
      for (const m of group.members) this.#members.add(m);
      this.#stats.groups++;
      this.#stats.bytes += group.bytes;
      this.#inflight = undefined;
      for (const w of group.waiters) w.resolve();
    }
    if (this.#failure) {
      // Offline (a failed checkpoint ends the loop here too): nothing pending is left waiting.
      for (const w of this.#pending.waiters) w.reject(this.#failure);
      this.#pending = emptyGroup();
    }
    this.#inflight = undefined;
    this.#writing = false;
    for (const r of this.#idle.splice(0)) r();
  }

  /**
   * Writes and fdatasyncs one group at the end of the current generation (rotating first when
   * it is full). On a failed write that ran out of space, cuts what reached the file back to
   * the last whole record. Returns the failure, if any.
   */
  async #write(group: Pending): Promise<{ cause: unknown; written: boolean } | undefined> {
    let written = false;
    const added: string[] = [];
    try {
      if (this.#position >= this.#generationBytes) await this.#rotate();
      for (const log of group.logs) {
        if (this.#logs.has(log)) continue;
        this.#logs.add(log);
        added.push(log);
      }
      const bufs: Buffer[] = [];
      for (const e of group.entries) {
        if (e.seed !== this.#seed) {
          seal(e.bufs, this.#seed);
          e.seed = this.#seed;
        }
        bufs.push(...e.bufs);
      }
      await this.#io.writev(this.#fd, bufs, this.#position);
      written = true;
      this.#position += group.bytes;
      if (this.#position > this.#fileSize) this.#fileSize = this.#position;
      await this.#io.fdatasync(this.#fd);
      return undefined;
    } catch (err) {
      if (!written && outOfSpace(err)) {
        try {
          await ftruncateAsync(this.#fd, this.#position);
          this.#fileSize = this.#position;
        } catch (cutErr) {
          return { cause: cutErr, written };
        }
        try {
          // Durable before anything is acknowledged after it: the refused group's whole records
          // must not come back after a power loss (a log may truncate without a barrier for them).
          await this.#io.fdatasync(this.#fd);
        } catch (syncErr) {
          // Whatever it failed with, the cut is not known to be durable: offline, never a retriable refusal.
          return { cause: new Error(`the cut after a refused group could not be made durable: ${(syncErr as Error).message}`, { cause: syncErr }), written };
        }
        // Not one of these records is left in the file.
        for (const log of added) this.#logs.delete(log);
      }
      return { cause: err, written };
    }
  }

  /**
   * Gives back the space the journal holds: every older generation retires, then one syncfs
   * (or every member's own sync) makes the current generation's records redundant and its
   * file is cut to nothing. False when there was nothing to give back, or it failed.
   */
  async #checkpoint(): Promise<boolean> {
    const older = this.#retiringLogs.size;
    await this.#retiring;
    const spares = await this.#dropSpares();
    if (this.#position === 0 && this.#fileSize === 0) return spares > 0 || older > this.#retiringLogs.size;
    const held = this.#fileSize;
    let cut = false;
    try {
      // Records of this generation are made redundant first; a reused file with none yet holds only older ones.
      if (this.#position > 0 && !(this.#syncFs && (await syncFileSystem(this.dir)))) await Promise.all([...this.#members].map((m) => m.syncForJournal()));
      await ftruncateAsync(this.#fd, 0);
      this.#fileSize = 0;
      cut = true;
      // The cut must be durable before anything is written over it.
      await this.#io.fdatasync(this.#fd);
    } catch (err) {
      if (cut) {
        // The file no longer matches #position: nothing more may be written to it.
        this.#failure = storageError(`the journal ${this.dir} is offline after an I/O error`, err);
        this.#log?.error({ err, dir: this.dir }, 'journal: the fdatasync after cutting it failed; journaled appends refused until restart');
      } else {
        this.#log?.warn({ err, dir: this.dir }, 'journal: out of space, and giving its space back failed');
      }
      return false;
    }
    this.#position = 0;
    this.#members = new Set();
    this.#logs = new Set();
    this.#stats.checkpoints++;
    this.#log?.warn({ dir: this.dir, bytes: held }, 'journal: out of space; gave back the space it held (its records were made redundant with one sync)');
    return true;
  }

  /** Deletes every spare file (disk space for a write that ran out of it); returns how many. */
  async #dropSpares(): Promise<number> {
    const dropped = this.#spares.splice(0);
    await deleteSpares(this.dir, dropped);
    return dropped.length;
  }

  #dropNeedlessBarriers(group: Pending): void {
    const kept: Entry[] = [];
    for (const e of group.entries) {
      if (e.kind === KIND_BARRIER && !group.logs.has(e.log) && !this.#holds(e.log)) group.bytes -= e.bytes;
      else kept.push(e);
    }
    group.entries = kept;
  }

  /**
   * Starts the next generation (in a spare file if there is one); the old one becomes a spare,
   * or is deleted, once its members have synced.
   */
  async #rotate(): Promise<void> {
    const old = { generation: this.#generation, fd: this.#fd, members: this.#members, logs: this.#logs };
    const next = old.generation + 1;
    const file = await startGeneration(this.dir, next, this.#spares);
    this.#generation = next;
    this.#seed = generationSeed(next);
    this.#fd = file.fd;
    this.#fileSize = file.size;
    this.#position = 0;
    this.#members = new Set();
    this.#logs = new Set();
    this.#retiringLogs.add(old.logs);
    this.#stats.rotations++;
    if (file.reused) this.#stats.reused++;
    const retire = async () => {
      // One syncfs for the whole file system (coreutils' `sync -f`) makes every segment
      // written before it durable at once; without it, each member syncs its own.
      if (!(this.#syncFs && (await syncFileSystem(this.dir)))) await Promise.all([...old.members].map((m) => m.syncForJournal()));
      await closeAsync(old.fd);
      const from = path.join(this.dir, generationName(old.generation));
      // Its records are redundant now: out of the replay's sight either way.
      if (this.#spares.length < MAX_SPARES && !this.#closed) {
        await fs.promises.rename(from, path.join(this.dir, spareName(old.generation)));
        this.#spares.push(old.generation);
      } else {
        await fs.promises.unlink(from);
      }
      await fsyncDir(this.dir);
      this.#retiringLogs.delete(old.logs);
    };
    // Generations retire in order: a replay must never find a newer one missing an older one's records.
    this.#retiring = this.#retiring.then(retire).catch((err: unknown) => {
      // The old file stays: the next start replays it (its records are still valid).
      this.#log?.warn({ err, dir: this.dir, generation: old.generation }, 'journal: retiring a generation failed; it stays for the next start');
    });
  }
}

/** Deletes spares `numbers` of `dir`, durably. */
async function deleteSpares(dir: string, numbers: readonly number[]): Promise<void> {
  for (const n of numbers) await fs.promises.rm(path.join(dir, spareName(n)), { force: true });
  if (numbers.length > 0) await fsyncDir(dir);
}

/** Deletes every spare file in `dir` (the journal is turned off: nothing will reuse them). */
export function removeJournalSpares(dir: string): Promise<void> {
  return deleteSpares(dir, numbered(dir, SPARE));
}

/**
 * syncfs(2) of the file system holding `dir`, through coreutils' `sync -f` (node has no
 * binding for it). False when it cannot run or fails: the caller then syncs file by file.
 */
function syncFileSystem(dir: string): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('sync', ['-f', dir], { stdio: 'ignore' });
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
  });
}

export interface ReplayResult {
  generations: number;
  records: number;
  /** Records written back into a segment file. */
  applied: number;
  /** Records voided by a later barrier of their log. */
  voided: number;
  /** Records whose segment file no longer exists (deleted by retention after it synced). */
  missing: number;
  /**
   * Bytes after each generation's last whole record: a tail torn by a crash, or in a reused
   * file what an older generation left there (a clean close cuts that off).
   */
  tornBytes: number;
}

interface ParsedRecord {
  kind: number;
  log: string;
  segmentBase: bigint;
  position: number;
  data: Buffer;
}

/** Segment files a replay keeps open at once. */
const REPLAY_MAX_OPEN = 128;

/** How much of a generation file a replay reads at a time (a record larger than this gets a buffer of its own size). */
const SCAN_CHUNK = 4 * 1024 * 1024;

/** One record parsed at `p`, or why not: 'short' (more bytes needed), 'bad' (fails its CRC or is malformed). */
function parseOne(buf: Buffer, p: number, limit: number, seed: number): { record: ParsedRecord; size: number } | 'short' | 'bad' {
  if (p + FRAME_BYTES + FIXED_BYTES > limit) return 'short';
  const length = buf.readUInt32BE(p);
  if (length < FIXED_BYTES) return 'bad';
  if (p + FRAME_BYTES + length > limit) return 'short';
  const body = buf.subarray(p + FRAME_BYTES, p + FRAME_BYTES + length);
  if (crc32c(body, seed) >>> 0 !== buf.readUInt32BE(p + 4)) return 'bad';
  const kind = body.readUInt8(0);
  const nameBytes = body.readUInt16BE(1);
  if (3 + nameBytes + 16 > body.length || (kind !== KIND_DATA && kind !== KIND_BARRIER)) return 'bad';
  return {
    size: FRAME_BYTES + length,
    record: {
      kind,
      log: body.toString('utf8', 3, 3 + nameBytes),
      segmentBase: body.readBigInt64BE(3 + nameBytes),
      position: Number(body.readBigInt64BE(11 + nameBytes)),
      data: body.subarray(19 + nameBytes),
    },
  };
}

/**
 * Reads generation `generation`'s records in order, a chunk at a time (a replay never holds a
 * whole generation in memory), handing each to `each` before its bytes are reused. Stops at
 * the first record that is cut short or fails its CRC (a torn write, or in a reused file what
 * an older generation left); `end` is where it starts. A file whose first record checks only
 * without the generation's seed was written before the seed existed, and is read that way.
 */
async function scan(file: string, generation: number, each: (r: ParsedRecord) => void | Promise<void>): Promise<{ size: number; end: number }> {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    let buf = Buffer.allocUnsafe(Math.min(SCAN_CHUNK, Math.max(size, 1)));
    /** File offset of buf[0]; bytes of the file in buf; parse position in buf. */
    let base = 0;
    let filled = 0;
    let p = 0;
    let seed = generationSeed(generation);
    for (;;) {
      let step = parseOne(buf, p, filled, seed);
      if (step === 'bad' && base + p === 0) {
        step = parseOne(buf, p, filled, 0);
        if (step !== 'bad') seed = 0;
      }
      if (step === 'bad') return { size, end: base + p };
      if (step !== 'short') {
        await each(step.record);
        p += step.size;
        continue;
      }
      // More bytes needed: keep the unparsed rest at the front and read after it.
      const left = size - (base + p);
      const need = p + FRAME_BYTES <= filled ? FRAME_BYTES + buf.readUInt32BE(p) : FRAME_BYTES + FIXED_BYTES;
      if (base + filled >= size || need > left) return { size, end: base + p }; // a torn tail
      const next = need > buf.length ? Buffer.allocUnsafe(need) : buf;
      if (next === buf) buf.copyWithin(0, p, filled);
      else buf.copy(next, 0, p, filled);
      base += p;
      filled -= p;
      p = 0;
      buf = next;
      const n = fs.readSync(fd, buf, filled, buf.length - filled, base + filled);
      if (n === 0) return { size, end: base };
      filled += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Writes every journaled record back into its segment file under `logsDir`, then syncs those
 * files (one syncfs) and deletes the journal's generations. Runs before any log opens. A record is skipped
 * when a later barrier of its log voids it, or when its segment file is gone. Reading a
 * generation stops at the first record that is cut short or fails its CRC: a crash during a
 * group leaves its tail torn, and nothing after it was acknowledged; in a reused file, what
 * follows the generation's last record is an older generation's. Every generation is read:
 * one that ends torn can only be followed by generations started after a restart whose replay
 * did not remove it, and their records were acknowledged.
 *
 * Two passes over the files, each reading a chunk at a time: the first finds each log's last
 * barrier, the second writes back the records after it.
 */
export async function replayJournal(dir: string, logsDir: string, options: { syncFileSystem?: boolean } = {}): Promise<ReplayResult> {
  const gens = generations(dir);
  const result: ReplayResult = { generations: gens.length, records: 0, applied: 0, voided: 0, missing: 0, tornBytes: 0 };
  if (gens.length === 0) return result;
  const lastBarrier = new Map<string, number>();
  let index = 0;
  for (const g of gens) {
    const { size, end } = await scan(path.join(dir, generationName(g)), g, (r) => {
      if (r.kind === KIND_BARRIER) lastBarrier.set(r.log, index);
      index++;
    });
    result.tornBytes += size - end;
  }
  result.records = index;
  /** Segment files written back: those open, and every one (for the final sync). */
  const touched = new Map<string, number>();
  const written = new Set<string>();
  index = 0;
  try {
    for (const g of gens) {
      await scan(path.join(dir, generationName(g)), g, async (r) => {
        const i = index++;
        if (r.kind !== KIND_DATA) return;
        if ((lastBarrier.get(r.log) ?? -1) > i) {
          result.voided++;
          return;
        }
        const target = path.join(logsDir, r.log, segmentFileName(r.segmentBase, LOG_SUFFIX));
        let fd = touched.get(target);
        if (fd === undefined) {
          try {
            fd = fs.openSync(target, 'r+');
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
            result.missing++;
            return;
          }
          if (touched.size >= REPLAY_MAX_OPEN) {
            // Ten thousand partitions must not take ten thousand descriptors: the file
            // written back longest ago is closed (its pages stay for the sync below).
            const [oldest, oldFd] = touched.entries().next().value as [string, number];
            touched.delete(oldest);
            fs.closeSync(oldFd);
          }
          touched.set(target, fd);
          written.add(target);
        }
        await writevFully(fd, [r.data], r.position);
        result.applied++;
      });
    }
  } finally {
    for (const fd of touched.values()) fs.closeSync(fd);
  }
  // One syncfs makes every file written back durable at once (an fdatasync each cost ~2 s
  // at restart with 10,000 partitions); without it, each file is synced on its own.
  if (written.size > 0 && !((options.syncFileSystem ?? true) && (await syncFileSystem(logsDir)))) {
    for (const file of written) {
      const fd = fs.openSync(file, 'r+');
      try {
        await fdatasyncAsync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
  }
  for (const g of gens) fs.rmSync(path.join(dir, generationName(g)), { force: true });
  await fsyncDir(dir);
  return result;
}
