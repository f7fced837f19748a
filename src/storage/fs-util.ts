/**
 * Small durable-file primitives over raw file descriptors. The log uses numeric fds with
 * positional I/O (pwritev/pread) rather than FileHandle so that one descriptor serves the
 * writer and concurrent readers without an internal file position.
 */
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ErrorCode, MeridianError } from '../errors.js';
import { PartitionFiles } from './partition-files.js';

const writevAsync = promisify(fs.writev);
const readAsync = promisify(fs.read);
export const fdatasyncAsync = promisify(fs.fdatasync);
export const closeAsync = promisify(fs.close);
const openAsync = promisify(fs.open);
const fsyncAsync = promisify(fs.fsync);
const ftruncateAsync = promisify(fs.ftruncate);
export { openAsync, ftruncateAsync };

/**
 * The two calls through which a partition log's data reaches the disk. A seam so tests can
 * inject the failures a real disk produces (EIO on write or on fdatasync) that no file
 * system here can be made to produce on demand; production uses `realIo`.
 */
export interface LogIo {
  writev(fd: number, buffers: Buffer[], position: number): Promise<number>;
  /**
   * The same write on the calling thread, for small rounds whose durability the shared
   * journal provides (they only reach the page cache here). Optional: without it the log
   * writes every round through `writev`.
   */
  writevSync?(fd: number, buffers: Buffer[], position: number): number;
  fdatasync(fd: number): Promise<void>;
}

export const realIo: LogIo = {
  writev: (fd, buffers, position) => writevFully(fd, buffers, position),
  writevSync: (fd, buffers, position) => writevFullySync(fd, buffers, position),
  fdatasync: (fd) => fdatasyncAsync(fd),
};

/** Linux caps one writev at IOV_MAX (1024) buffers. */
const IOV_MAX = 1024;

/**
 * The buffers of one write still to go, in chunks of at most IOV_MAX, past short writes.
 * The caller's array is never changed (the journal reads the same buffers after the write).
 */
class WriteCursor {
  #buffers: Buffer[];
  #copied = false;
  #i = 0;
  #chunk = 0;
  #want = 0;
  written = 0;

  constructor(buffers: Buffer[]) {
    this.#buffers = buffers;
  }

  /** The next buffers to write, or undefined once every byte is written. */
  next(): Buffer[] | undefined {
    if (this.#i >= this.#buffers.length) return undefined;
    const chunk = this.#i === 0 && this.#buffers.length <= IOV_MAX ? this.#buffers : this.#buffers.slice(this.#i, this.#i + IOV_MAX);
    this.#chunk = chunk.length;
    this.#want = 0;
    for (const b of chunk) this.#want += b.length;
    return chunk;
  }

  /** `n` bytes of the buffers `next` gave were written. */
  advance(n: number): void {
    if (n === 0 && this.#want > 0) throw Object.assign(new Error(`EIO: writev wrote 0 of ${this.#want} bytes`), { code: 'EIO' });
    this.written += n;
    if (n === this.#want) {
      this.#i += this.#chunk;
      return;
    }
    // Short write: skip what was written and write the rest of this chunk again.
    while (n > 0 && n >= this.#buffers[this.#i].length) n -= this.#buffers[this.#i++].length;
    if (n > 0) {
      if (!this.#copied) this.#buffers = this.#buffers.slice();
      this.#copied = true;
      this.#buffers[this.#i] = this.#buffers[this.#i].subarray(n);
    }
  }
}

/** Writes every byte of `buffers` at `position`, looping over short writes. */
export async function writevFully(fd: number, buffers: Buffer[], position: number): Promise<number> {
  const cursor = new WriteCursor(buffers);
  for (let chunk = cursor.next(); chunk !== undefined; chunk = cursor.next()) cursor.advance((await writevAsync(fd, chunk, position + cursor.written)).bytesWritten);
  return cursor.written;
}

/** writevFully on the calling thread. */
export function writevFullySync(fd: number, buffers: Buffer[], position: number): number {
  const cursor = new WriteCursor(buffers);
  for (let chunk = cursor.next(); chunk !== undefined; chunk = cursor.next()) cursor.advance(fs.writevSync(fd, chunk, position + cursor.written));
  return cursor.written;
}

/**
 * Reads exactly `length` bytes at `position`, or fewer only at end of file, into `into`
 * (a pooled buffer of at least `length` bytes) or a new buffer.
 */
export async function readFully(fd: number, length: number, position: number, into?: Buffer): Promise<Buffer> {
  const buf = into ?? Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await readAsync(fd, buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === buf.length ? buf : buf.subarray(0, got);
}

export function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * `fsyncDirSync` on the libuv threadpool: a directory fsync takes milliseconds on a busy
 * disk, too long for the event loop on the produce path (a segment roll).
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await openAsync(dir, 'r');
  try {
    await fsyncAsync(fd);
  } finally {
    await closeAsync(fd);
  }
}

/**
 * `writeFileAtomicSync` on the libuv threadpool, with the same steps and guarantees: the
 * index written when a segment seals, off the event loop.
 */
export async function writeFileAtomic(file: string, data: Buffer | string): Promise<void> {
  const tmp = PartitionFiles.temp(file);
  const fd = await openAsync(tmp, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    await writevFully(fd, [buf], 0);
    await fsyncAsync(fd);
  } catch (err) {
    await closeAsync(fd);
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  await closeAsync(fd);
  await fs.promises.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/** Replaces `file` atomically and durably: temp file, fsync, rename, fsync the directory. */
export function writeFileAtomicSync(file: string, data: Buffer | string): void {
  const tmp = PartitionFiles.temp(file);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (err) {
    // A full disk must not leave a half-written temp file taking what space there is.
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  fsyncDirSync(path.dirname(file));
}

/** Out of space (or quota): the condition clears once space is freed, unlike EIO. */
export function isOutOfSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export function storageError(what: string, err: unknown): MeridianError {
  const code = (err as NodeJS.ErrnoException)?.code;
  // ENOSPC can clear once retention runs; everything else is a disk that needs a human.
  return new MeridianError(ErrorCode.StorageIo, `${what}: ${(err as Error)?.message ?? String(err)}`, {
    retriable: code === 'ENOSPC' || code === 'EAGAIN',
    cause: err,
  });
}
