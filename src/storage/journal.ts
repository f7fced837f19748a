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
 * Appends are grouped: one group is written and fdatasync'd at a time, and each append
 * resolves when the group holding it is durable. The journal rotates once a generation holds
 * `generationBytes`: new records go to the next generation, one syncfs of the file system
 * (or, failing that, every member that appended to the old one syncing its segments,
 * `JournalMember.syncForJournal`) makes the old one's records redundant, and then its file is
 * deleted. A write that runs out of space refuses its group and cuts what reached the file,
 * so every generation but the last ends on a whole record; any other failed write or
 * fdatasync takes the journal offline (the state of the page cache is unknown after a failed
 * fdatasync): that group and every later append are refused.
 *
 * `replayJournal` runs at start-up, before any log opens.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { ErrorCode, MeridianError } from '../errors.js';
import { closeAsync, fdatasyncAsync, fsyncDir, ftruncateAsync, openAsync, realIo, storageError, writevFully, type LogIo } from './fs-util.js';
import { paddedOffset, segmentFileName, LOG_SUFFIX } from './partition-files.js';

export const JOURNAL_DIR = 'journal';
const SUFFIX = '.journal';
const GENERATION = /^(\d{20})\.journal$/;

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
}

interface Pending {
  bufs: Buffer[];
  bytes: number;
  waiters: Array<{ resolve: () => void; reject: (err: Error) => void }>;
  members: Set<JournalMember>;
}

function header(kind: number, log: string, segmentBase: bigint, position: number, dataBytes: number): Buffer {
  const name = Buffer.from(log, 'utf8');
  if (name.length > MAX_LOG_BYTES) throw new RangeError(`journal: log name of ${name.length} bytes`);
  const h = Buffer.allocUnsafe(FRAME_BYTES + FIXED_BYTES + name.length);
  h.writeUInt32BE(FIXED_BYTES + name.length + dataBytes, 0);
  h.writeUInt8(kind, 8);
  h.writeUInt16BE(name.length, 9);
  name.copy(h, 11);
  h.writeBigInt64BE(segmentBase, 11 + name.length);
  h.writeBigInt64BE(BigInt(position), 19 + name.length);
  return h;
}

/** Frames one record: its header (with the CRC over everything after the CRC field) and its data. */
function frame(kind: number, log: string, segmentBase: bigint, position: number, data: readonly Buffer[]): Buffer[] {
  let dataBytes = 0;
  for (const d of data) dataBytes += d.length;
  const h = header(kind, log, segmentBase, position, dataBytes);
  let crc = crc32c(h.subarray(FRAME_BYTES));
  for (const d of data) crc = crc32c(d, crc);
  h.writeUInt32BE(crc >>> 0, 4);
  return [h, ...data];
}

function generationName(n: number): string {
  return paddedOffset(BigInt(n)) + SUFFIX;
}

/** The generations present in `dir`, oldest first. */
function generations(dir: string): number[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((n) => GENERATION.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

export class LogJournal {
  readonly dir: string;
  readonly #generationBytes: number;
  readonly #log: JournalOptions['log'];
  readonly #syncFs: boolean;
  readonly #io: LogIo;
  #generation: number;
  #fd: number;
  #position = 0;
  #pending: Pending = { bufs: [], bytes: 0, waiters: [], members: new Set() };
  /** Members that appended to the current generation. */
  #members = new Set<JournalMember>();
  #writing = false;
  #failure: Error | undefined;
  #closed = false;
  /** Settles when the generations retired so far are deleted. */
  #retiring: Promise<void> = Promise.resolve();
  #stats = { records: 0, groups: 0, bytes: 0, rotations: 0 };
  #idle: Array<() => void> = [];

  private constructor(dir: string, generation: number, fd: number, options: JournalOptions) {
    this.dir = dir;
    this.#generation = generation;
    this.#fd = fd;
    this.#generationBytes = options.generationBytes ?? 256 * 1024 * 1024;
    this.#log = options.log;
    this.#syncFs = options.syncFileSystem ?? true;
    this.#io = options.io ?? realIo;
  }

  /**
   * Opens a new generation after any left in `dir` (start-up replays and removes those first:
   * `replayJournal`).
   */
  static async open(dir: string, options: JournalOptions = {}): Promise<LogJournal> {
    fs.mkdirSync(dir, { recursive: true });
    const generation = (generations(dir).at(-1) ?? 0) + 1;
    const fd = await openAsync(path.join(dir, generationName(generation)), 'wx');
    await fsyncDir(dir);
    return new LogJournal(dir, generation, fd, options);
  }

  /** Journals `data`, written at `position` of segment `segmentBase` of `log`; resolves once durable. */
  append(member: JournalMember, log: string, segmentBase: bigint, position: number, data: readonly Buffer[]): Promise<void> {
    return this.#add(member, frame(KIND_DATA, log, segmentBase, position, data));
  }

  /**
   * Voids every earlier record of `log`. The caller has made everything the log wrote durable
   * in its own files first; it may truncate or delete them once this resolves.
   */
  barrier(log: string): Promise<void> {
    return this.#add(undefined, frame(KIND_BARRIER, log, 0n, 0, []));
  }

  stats(): JournalStats {
    return { generation: this.#generation, generationBytes: this.#position, ...this.#stats };
  }

  /** Waits for the pending groups, then closes the file (the generation stays for the next start's replay). */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#writing || this.#pending.waiters.length > 0) await new Promise<void>((r) => this.#idle.push(r));
    this.#closed = true;
    await this.#retiring;
    await closeAsync(this.#fd);
  }

  #add(member: JournalMember | undefined, bufs: Buffer[]): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new MeridianError(ErrorCode.LogClosed, 'the journal is closed', { retriable: true }));
    return new Promise<void>((resolve, reject) => {
      const p = this.#pending;
      for (const b of bufs) p.bytes += b.length;
      p.bufs.push(...bufs);
      p.waiters.push({ resolve, reject });
      if (member !== undefined) p.members.add(member);
      this.#stats.records++;
      if (!this.#writing) {
        this.#writing = true;
        // Let the appends of the current tick join the first group.
        setImmediate(() => void this.#writer());
      }
    });
  }

  async #writer(): Promise<void> {
    while (this.#pending.waiters.length > 0 && !this.#failure) {
      const group = this.#pending;
      this.#pending = { bufs: [], bytes: 0, waiters: [], members: new Set() };
      let written = false;
      try {
        if (this.#position >= this.#generationBytes) await this.#rotate();
        await this.#io.writev(this.#fd, group.bufs, this.#position);
        written = true;
        this.#position += group.bytes;
        await this.#io.fdatasync(this.#fd);
      } catch (err) {
        if (!written && (err as NodeJS.ErrnoException).code === 'ENOSPC') {
          // Out of space clears once space is freed: this group is refused (retriable), and
          // whatever part of it reached the file is cut, so that no generation is left with a
          // torn record before a rotation (a replay stops at the first one).
          const refused = storageError(`the journal ${this.dir} is out of space`, err);
          for (const w of group.waiters) w.reject(refused);
          try {
            await ftruncateAsync(this.#fd, this.#position);
            continue;
          } catch (cutErr) {
            err = cutErr;
          }
        }
        this.#failure = storageError(`the journal ${this.dir} is offline after an I/O error`, err);
        this.#log?.error({ err, dir: this.dir }, 'journal write failed; journaled appends refused until restart');
        for (const w of [...group.waiters, ...this.#pending.waiters]) w.reject(this.#failure);
        this.#pending = { bufs: [], bytes: 0, waiters: [], members: new Set() };
        break;
      }
      for (const m of group.members) this.#members.add(m);
      this.#stats.groups++;
      this.#stats.bytes += group.bytes;
      for (const w of group.waiters) w.resolve();
    }
    this.#writing = false;
    for (const r of this.#idle.splice(0)) r();
  }

  /** Starts the next generation; the old one is deleted once its members have synced. */
  async #rotate(): Promise<void> {
    const old = { generation: this.#generation, fd: this.#fd, members: this.#members };
    const next = old.generation + 1;
    const fd = await openAsync(path.join(this.dir, generationName(next)), 'wx');
    await fsyncDir(this.dir);
    this.#generation = next;
    this.#fd = fd;
    this.#position = 0;
    this.#members = new Set();
    this.#stats.rotations++;
    const retire = async () => {
      // One syncfs for the whole file system (coreutils' `sync -f`) makes every segment
      // written before it durable at once; without it, each member syncs its own.
      if (!(this.#syncFs && (await syncFileSystem(this.dir)))) await Promise.all([...old.members].map((m) => m.syncForJournal()));
      await closeAsync(old.fd);
      await fs.promises.unlink(path.join(this.dir, generationName(old.generation)));
      await fsyncDir(this.dir);
    };
    // Generations retire in order: a replay must never find a newer one missing an older one's records.
    this.#retiring = this.#retiring.then(retire).catch((err: unknown) => {
      // The old file stays: the next start replays it (its records are still valid).
      this.#log?.warn({ err, dir: this.dir, generation: old.generation }, 'journal: retiring a generation failed; it stays for the next start');
    });
  }
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
  /** Bytes of records after the first that failed its CRC or was cut short (a torn tail). */
  tornBytes: number;
}

interface ParsedRecord {
  kind: number;
  log: string;
  segmentBase: bigint;
  position: number;
  data: Buffer;
}

/** Parses `buf`'s records, stopping at the first that is cut short or fails its CRC. */
function parse(buf: Buffer): { records: ParsedRecord[]; end: number } {
  const records: ParsedRecord[] = [];
  let p = 0;
  while (p + FRAME_BYTES + FIXED_BYTES <= buf.length) {
    const length = buf.readUInt32BE(p);
    if (length < FIXED_BYTES || p + FRAME_BYTES + length > buf.length) break;
    const body = buf.subarray(p + FRAME_BYTES, p + FRAME_BYTES + length);
    if (crc32c(body) >>> 0 !== buf.readUInt32BE(p + 4)) break;
    const kind = body.readUInt8(0);
    const nameBytes = body.readUInt16BE(1);
    if (3 + nameBytes + 16 > body.length || (kind !== KIND_DATA && kind !== KIND_BARRIER)) break;
    records.push({
      kind,
      log: body.toString('utf8', 3, 3 + nameBytes),
      segmentBase: body.readBigInt64BE(3 + nameBytes),
      position: Number(body.readBigInt64BE(11 + nameBytes)),
      data: body.subarray(19 + nameBytes),
    });
    p += FRAME_BYTES + length;
  }
  return { records, end: p };
}

/**
 * Writes every journaled record back into its segment file under `logsDir`, then syncs those
 * files and deletes the journal's generations. Runs before any log opens. A record is skipped
 * when a later barrier of its log voids it, or when its segment file is gone. Reading stops
 * at the first record that is cut short or fails its CRC: a crash during a group leaves its
 * tail torn, and nothing after it was acknowledged.
 */
export async function replayJournal(dir: string, logsDir: string): Promise<ReplayResult> {
  const gens = generations(dir);
  const result: ReplayResult = { generations: gens.length, records: 0, applied: 0, voided: 0, missing: 0, tornBytes: 0 };
  if (gens.length === 0) return result;
  const all: ParsedRecord[] = [];
  for (const g of gens) {
    const buf = fs.readFileSync(path.join(dir, generationName(g)));
    const { records, end } = parse(buf);
    all.push(...records);
    if (end < buf.length) {
      result.tornBytes += buf.length - end;
      break; // nothing after a torn record was acknowledged
    }
  }
  result.records = all.length;
  const lastBarrier = new Map<string, number>();
  all.forEach((r, i) => {
    if (r.kind === KIND_BARRIER) lastBarrier.set(r.log, i);
  });
  const touched = new Map<string, number>();
  try {
    for (let i = 0; i < all.length; i++) {
      const r = all[i]!;
      if (r.kind !== KIND_DATA) continue;
      if ((lastBarrier.get(r.log) ?? -1) > i) {
        result.voided++;
        continue;
      }
      const file = path.join(logsDir, r.log, segmentFileName(r.segmentBase, LOG_SUFFIX));
      let fd = touched.get(file);
      if (fd === undefined) {
        try {
          fd = fs.openSync(file, 'r+');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          result.missing++;
          continue;
        }
        touched.set(file, fd);
      }
      await writevFully(fd, [r.data], r.position);
      result.applied++;
    }
    for (const fd of touched.values()) await fdatasyncAsync(fd);
  } finally {
    for (const fd of touched.values()) fs.closeSync(fd);
  }
  for (const g of gens) fs.rmSync(path.join(dir, generationName(g)), { force: true });
  await fsyncDir(dir);
  return result;
}
