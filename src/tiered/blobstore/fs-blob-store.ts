/**
 * The embedded default: a local directory as an object store. Layout:
 *
 *   <dir>/objects/<key>     one file per object, key segments as directories
 *   <dir>/tmp/<uuid>        writes in progress (never listed)
 *
 * Writes are atomic and durable: the body goes to a temp file that is fsynced, then
 * renamed over the key (or hard-linked for create-only, see `put`), then the directory is
 * fsynced, so a reader or a crash sees the old object or the new one, never a torn one.
 * Unlike a bucket, a directory cannot hold both 'a' and 'a/b'; such a put fails with
 * BLOB_BAD_REQUEST. Concurrent calls are safe.
 *
 * Open handles: a cold reader asks for the same segment object in 1 MiB ranges, hundreds of
 * times in a row, and an open + fstat + close per range cost more than the read. So ranged
 * GETs keep the object's file handle (and the size fstat gave) open for reuse: at most
 * `maxOpenHandles` of them, least recently used closed first (and closed, not only
 * forgotten, before the next one opens, so the process holds no more descriptors than
 * that while GETs of different objects take turns), each closed once idle for
 * `handleIdleMs` and never reused more than `handleMaxAgeMs` after it was opened. A put or
 * delete of the key through this store drops its handle at once, and an open of it under way
 * then serves only the GETs already waiting for it (it may be the old object's descriptor;
 * before, it was kept and served later GETs the old bytes until handleMaxAgeMs). A handle keeps reading the
 * file it opened: objects ranged GETs read (segment data, keys with an attempt id) are never
 * rewritten in place, and a deletion or replacement by another process (another broker of
 * a region cluster sharing the directory) is seen within `handleMaxAgeMs`. Whole-object GETs
 * (manifests, which are replaced) open the file every time.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  BlobErrorCode,
  BlobStoreError,
  abortedError,
  badRequest,
  throwIfAborted,
  validateBody,
  validateKey,
  validatePageSize,
  validateRange,
  type BlobErrorContext,
  type BlobOp,
  type BlobStore,
  type GetOptions,
  type ListOptions,
  type ListPage,
  type PutOptions,
} from './blob-store.js';
import { safeCause } from './classify.js';
import { abortBodyOnSignal } from './stream-util.js';

export interface FsBlobStoreOptions {
  dir: string;
  /** File handles kept open for ranged GETs; default 16 (0: none kept). */
  maxOpenHandles?: number;
  /** A kept handle unused this long is closed; default 1000 ms. */
  handleIdleMs?: number;
  /** A kept handle is not reused once this old; default 2000 ms. */
  handleMaxAgeMs?: number;
}

export interface FsBlobStoreStats {
  /** Handles open now for ranged GETs (kept or in use). */
  openHandles: number;
  /** Opens made for ranged GETs. */
  handleOpens: number;
  /** Ranged GETs served through a handle already open. */
  handleReuses: number;
}

/** An open of a file under way (see #opening). */
interface Opening {
  promise: Promise<KeptHandle>;
  /** A put or delete of the file came after the open began. */
  stale: boolean;
}

/** A file handle kept for ranged GETs of one object. */
interface KeptHandle {
  readonly fh: fsp.FileHandle;
  readonly size: number;
  readonly openedAt: number;
  lastUsed: number;
  /** GETs reading through it now: it is closed only when none is. */
  users: number;
  /** No longer handed out (idle, too old, evicted, its key written): closed when unused. */
  retired: boolean;
  closed: boolean;
}

/** Temp files older than this at start-up are leftovers of a crash; younger ones may be a live writer's. */
const STALE_TMP_MS = 60 * 60_000;
const READ_CHUNK = 8 * 1024 * 1024;
const DEFAULT_PAGE = 1000;
const DEFAULT_MAX_OPEN_HANDLES = 16;
const DEFAULT_HANDLE_IDLE_MS = 1000;
const DEFAULT_HANDLE_MAX_AGE_MS = 2000;

const NOT_THERE = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);
const TRANSIENT = new Set(['ENOSPC', 'EAGAIN', 'EMFILE', 'ENFILE', 'EBUSY', 'EINTR']);

export class FsBlobStore implements BlobStore {
  readonly name: string;
  readonly #objects: string;
  readonly #tmp: string;
  readonly #maxHandles: number;
  readonly #handleIdleMs: number;
  readonly #handleMaxAgeMs: number;
  /** By file path, least recently used first. Retired handles still in use are not here. */
  readonly #handles = new Map<string, KeptHandle>();
  /** Opens in progress by file path: concurrent GETs of one object share one open. */
  /**
   * Opens under way, by file, shared by the GETs that ask meanwhile. A put or delete of the
   * file marks its open stale and removes it: its descriptor may be the old object's, so it
   * serves only the GETs already waiting for it and is never kept for later ones.
   */
  readonly #opening = new Map<string, Opening>();
  /** Every open under way, stale ones included (close() waits for them). */
  readonly #openingAll = new Set<Promise<KeptHandle>>();
  /** Descriptors being closed (close() waits for them). */
  readonly #closingHandles = new Set<Promise<void>>();
  #openHandles = 0;
  #sweeper: NodeJS.Timeout | undefined;
  #stats = { handleOpens: 0, handleReuses: 0 };
  #closed = false;

  constructor(options: FsBlobStoreOptions) {
    this.#maxHandles = options.maxOpenHandles ?? DEFAULT_MAX_OPEN_HANDLES;
    this.#handleIdleMs = options.handleIdleMs ?? DEFAULT_HANDLE_IDLE_MS;
    this.#handleMaxAgeMs = options.handleMaxAgeMs ?? DEFAULT_HANDLE_MAX_AGE_MS;
    const root = path.resolve(options.dir);
    this.name = `file://${root}`;
    this.#objects = path.join(root, 'objects');
    this.#tmp = path.join(root, 'tmp');
    fs.mkdirSync(this.#objects, { recursive: true });
    fs.mkdirSync(this.#tmp, { recursive: true });
    this.#removeStaleTemps();
  }

  async put(key: string, body: Buffer | Readable, opts: PutOptions): Promise<{ etag?: string }> {
    const ctx = this.#ctx('put', key);
    this.#check(ctx, opts.signal);
    validateBody(ctx, body, opts.contentLength);
    abortBodyOnSignal(body, opts.signal);
    const target = this.#path(key);
    const tmp = path.join(this.#tmp, randomUUID());
    try {
      const fh = await fsp.open(tmp, 'wx');
      let written = 0;
      try {
        const chunks: AsyncIterable<Buffer> | Buffer[] = Buffer.isBuffer(body) ? [body] : body;
        for await (const chunk of chunks) {
          throwIfAborted(ctx, opts.signal);
          const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
          written += buf.length;
        }
        if (opts.contentLength !== undefined && written !== opts.contentLength) {
          throw badRequest(ctx, `the body had ${written} bytes, contentLength said ${opts.contentLength}`);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      throwIfAborted(ctx, opts.signal);
      this.#invalidate(target);
      await this.#install(ctx, tmp, target, opts.ifNoneMatch === true);
      this.#invalidate(target);
      return { etag: etagOf(await fsp.stat(target, { bigint: true })) };
    } catch (err) {
      if (!Buffer.isBuffer(body)) body.destroy();
      throw this.#fail(ctx, err, opts.signal);
    } finally {
      await fsp.rm(tmp, { force: true }).catch(() => {});
    }
  }

  async get(key: string, opts: GetOptions): Promise<Buffer> {
    const ctx = this.#ctx('get', key);
    this.#check(ctx, opts.signal);
    validateRange(ctx, opts.range);
    if (opts.range !== undefined && this.#maxHandles > 0) return this.#getRange(ctx, key, opts.range, opts);
    try {
      const fh = await fsp.open(this.#path(key), 'r');
      try {
        const { size } = await fh.stat();
        const start = opts.range?.start ?? 0;
        const end = Math.min(opts.range?.end ?? size - 1, size - 1);
        if (opts.range !== undefined && start >= size) {
          throw new BlobStoreError('fatal', ctx, `range ${start}-${opts.range.end} not satisfiable (size ${size})`, {
            status: 416,
          });
        }
        return await readRange(ctx, fh, start, end, opts);
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw this.#fail(ctx, err, opts.signal);
    }
  }

  /** A ranged GET through a kept handle (see the header). */
  async #getRange(ctx: BlobErrorContext, key: string, range: { start: number; end: number }, opts: GetOptions): Promise<Buffer> {
    const file = this.#path(key);
    let h: KeptHandle | undefined;
    try {
      h = await this.#acquire(ctx, file);
      if (range.start >= h.size) {
        throw new BlobStoreError('fatal', ctx, `range ${range.start}-${range.end} not satisfiable (size ${h.size})`, { status: 416 });
      }
      return await readRange(ctx, h.fh, range.start, Math.min(range.end, h.size - 1), opts);
    } catch (err) {
      throw this.#fail(ctx, err, opts.signal);
    } finally {
      if (h !== undefined) this.#release(h);
    }
  }

  /** Handles for ranged GETs: counts, for tests and the benchmark. */
  stats(): FsBlobStoreStats {
    return { openHandles: this.#openHandles, ...this.#stats };
  }

  async head(key: string, opts: { signal: AbortSignal }): Promise<{ size: number; etag?: string } | null> {
    const ctx = this.#ctx('head', key);
    this.#check(ctx, opts.signal);
    try {
      const st = await fsp.stat(this.#path(key), { bigint: true });
      return st.isFile() ? { size: Number(st.size), etag: etagOf(st) } : null;
    } catch (err) {
      const e = this.#fail(ctx, err, opts.signal);
      if (e.kind === 'not-found') return null;
      throw e;
    }
  }

  /**
   * Walks the directory below the prefix's last '/', sorts, and pages by the last key
   * returned. O(objects under that directory) per page: fine for an embedded store, and the
   * key layout keeps each partition's objects under their own directory.
   */
  async list(prefix: string, opts: ListOptions): Promise<ListPage> {
    const ctx = this.#ctx('list', prefix);
    this.#check(ctx, opts.signal);
    validatePageSize(ctx, opts.pageSize);
    const base = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    if (base !== '') validateKey(ctx, base.slice(0, -1));
    if (/[\0\\]/.test(prefix)) throw badRequest(ctx, 'the prefix contains NUL or a backslash');
    const after = opts.continuationToken ? Buffer.from(opts.continuationToken, 'base64url').toString('utf8') : '';
    try {
      const keys: string[] = [];
      await this.#walk(path.join(this.#objects, base), base, opts.signal, ctx, (key) => {
        if (key.startsWith(prefix) && key > after) keys.push(key);
      });
      // UTF-16 order, which equals the clouds' UTF-8 byte order for every key outside the
      // astral planes; the key layout uses ASCII.
      keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const page = keys.slice(0, opts.pageSize ?? DEFAULT_PAGE);
      const out: ListPage = { keys: [] };
      for (const key of page) {
        const st = await fsp.stat(this.#path(key)).catch(() => null); // deleted meanwhile: skip
        if (st?.isFile()) out.keys.push({ key, size: st.size });
      }
      if (keys.length > page.length) out.nextToken = Buffer.from(page[page.length - 1]).toString('base64url');
      return out;
    } catch (err) {
      throw this.#fail(ctx, err, opts.signal);
    }
  }

  async delete(key: string, opts: { signal: AbortSignal }): Promise<void> {
    const ctx = this.#ctx('delete', key);
    this.#check(ctx, opts.signal);
    const file = this.#path(key);
    this.#invalidate(file);
    try {
      await fsp.unlink(file);
      this.#invalidate(file);
    } catch (err) {
      const e = this.#fail(ctx, err, opts.signal);
      if (e.kind === 'not-found') return;
      throw e;
    }
    try {
      await this.#pruneEmptyParents(path.dirname(file));
      await fsyncDir(path.dirname(file)).catch(() => fsyncDir(this.#objects));
    } catch (err) {
      throw this.#fail(ctx, err, opts.signal);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const file of [...this.#handles.keys()]) this.#dropHandle(file);
    await Promise.allSettled([...this.#openingAll]);
    // An open that finished meanwhile, and every descriptor's close: closed when this resolves.
    for (const file of [...this.#handles.keys()]) this.#dropHandle(file);
    await Promise.all([...this.#closingHandles]);
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  // -- kept handles -----------------------------------------------------------------------

  async #acquire(ctx: BlobErrorContext, file: string): Promise<KeptHandle> {
    const now = Date.now();
    const kept = this.#handles.get(file);
    if (kept !== undefined && now - kept.openedAt < this.#handleMaxAgeMs) {
      this.#handles.delete(file);
      this.#handles.set(file, kept);
      kept.users++;
      kept.lastUsed = now;
      this.#stats.handleReuses++;
      return kept;
    }
    if (kept !== undefined) this.#dropHandle(file);
    for (;;) {
      let opening = this.#opening.get(file);
      if (opening === undefined) {
        const o: Opening = { stale: false, promise: Promise.resolve(undefined as unknown as KeptHandle) };
        o.promise = this.#open(file, o).finally(() => {
          if (this.#opening.get(file) === o) this.#opening.delete(file);
          this.#openingAll.delete(o.promise);
        });
        this.#openingAll.add(o.promise);
        this.#opening.set(file, o);
        opening = o;
      } else {
        this.#stats.handleReuses++;
      }
      const h = await opening.promise;
      // Dropped before this continuation ran (its key written meanwhile): open afresh,
      // unless the store closed meanwhile (close() waits only for the opens it saw).
      if (h.closed) {
        if (this.#closed) throw new BlobStoreError('fatal', ctx, 'the store is closed');
        continue;
      }
      h.users++;
      h.lastUsed = Date.now();
      // Opens that ran side by side: the excess is closed before this GET reads. Held by
      // this GET, `h` itself is only retired by it, never closed under it.
      await this.#evictDownTo(this.#maxHandles);
      return h;
    }
  }

  async #open(file: string, opening: Opening): Promise<KeptHandle> {
    // Room first: the least recently used idle handle is closed, not only forgotten, before
    // this descriptor opens, so the process's descriptors (as /proc counts them) stay within
    // the bound, not only this store's count (a close runs on libuv's thread pool).
    await this.#evictDownTo(this.#maxHandles - 1);
    const fh = await fsp.open(file, 'r');
    let size: number;
    try {
      ({ size } = await fh.stat());
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    this.#openHandles++;
    this.#stats.handleOpens++;
    const now = Date.now();
    // A put or delete of the key since this open began: the descriptor may be the old object's.
    const h: KeptHandle = { fh, size, openedAt: now, lastUsed: now, users: 0, retired: this.#closed || opening.stale, closed: false };
    if (!h.retired) {
      this.#dropHandle(file); // a handle of a replaced object, opened by a GET still running
      this.#handles.set(file, h);
      this.#sweeper ??= setInterval(() => this.#sweep(), Math.max(10, Math.min(this.#handleIdleMs, this.#handleMaxAgeMs) / 2)).unref();
    }
    return h;
  }

  #release(h: KeptHandle): void {
    h.users--;
    h.lastUsed = Date.now();
    if (h.retired && h.users === 0) this.#closeHandle(h);
  }

  /**
   * A put or delete of `file` through this store: its kept handle is dropped, and an open
   * under way is neither kept nor shared with GETs that start from now on.
   */
  #invalidate(file: string): void {
    const o = this.#opening.get(file);
    if (o !== undefined) {
      o.stale = true;
      this.#opening.delete(file);
    }
    this.#dropHandle(file);
  }

  /** Drops the least recently used kept handles until at most `limit` are kept; resolves once those not in use are closed. */
  async #evictDownTo(limit: number): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [victim] of this.#handles) {
      if (this.#handles.size <= Math.max(0, limit)) break;
      const c = this.#dropHandle(victim);
      if (c !== undefined) closing.push(c);
    }
    if (closing.length > 0) await Promise.all(closing);
  }

  /** Stops handing out `file`'s handle; it closes now (the promise) or when its last GET ends. */
  #dropHandle(file: string): Promise<void> | undefined {
    const h = this.#handles.get(file);
    if (h === undefined) return undefined;
    this.#handles.delete(file);
    h.retired = true;
    return h.users === 0 ? this.#closeHandle(h) : undefined;
  }

  #closeHandle(h: KeptHandle): Promise<void> {
    h.closed = true;
    this.#openHandles--;
    const closing = h.fh.close().catch(() => {}); // read-only: a close error loses nothing
    this.#closingHandles.add(closing);
    void closing.finally(() => this.#closingHandles.delete(closing));
    return closing;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [file, h] of this.#handles) {
      if (h.users === 0 && (now - h.lastUsed >= this.#handleIdleMs || now - h.openedAt >= this.#handleMaxAgeMs)) this.#dropHandle(file);
    }
    if (this.#handles.size === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /** Renames (overwrite) or hard-links (create-only) the finished temp file into place. */
  async #install(ctx: BlobErrorContext, tmp: string, target: string, createOnly: boolean): Promise<void> {
    const dir = path.dirname(target);
    // A concurrent delete may prune the parent between mkdir and rename: retry a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        await fsp.mkdir(dir, { recursive: true });
        // link(2) fails with EEXIST when the key exists, atomically, like O_EXCL; unlike
        // O_EXCL on the final path it never exposes a half-written object.
        if (createOnly) await fsp.link(tmp, target);
        else await fsp.rename(tmp, target);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST' && createOnly) {
          throw new BlobStoreError('fatal', ctx, 'the object already exists', { code: BlobErrorCode.Exists });
        }
        if (code === 'ENOTDIR' || code === 'EEXIST' || code === 'EISDIR' || code === 'ENOTEMPTY') {
          throw badRequest(ctx, 'the key collides with another key used as a directory (the directory store cannot hold both a/b and a/b/c)');
        }
        if (code !== 'ENOENT' || attempt >= 3) throw err;
      }
    }
    await fsyncDir(dir);
  }

  async #walk(dir: string, keyPrefix: string, signal: AbortSignal, ctx: BlobErrorContext, visit: (key: string) => void): Promise<void> {
    if (signal.aborted) throw abortedError(ctx, signal);
    let entries: fs.Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (NOT_THERE.has((err as NodeJS.ErrnoException).code ?? '')) return;
      throw err;
    }
    for (const entry of entries) {
      const key = keyPrefix + entry.name;
      if (entry.isDirectory()) await this.#walk(path.join(dir, entry.name), `${key}/`, signal, ctx, visit);
      else if (entry.isFile()) visit(key);
    }
  }

  async #pruneEmptyParents(dir: string): Promise<void> {
    for (let d = dir; d.startsWith(this.#objects + path.sep); d = path.dirname(d)) {
      try {
        await fsp.rmdir(d);
      } catch {
        return; // not empty (or already gone): stop climbing
      }
    }
  }

  #removeStaleTemps(): void {
    const now = Date.now();
    for (const name of fs.readdirSync(this.#tmp)) {
      const file = path.join(this.#tmp, name);
      try {
        if (now - fs.statSync(file).mtimeMs > STALE_TMP_MS) fs.rmSync(file, { force: true });
      } catch {
        // raced with its owner finishing: fine
      }
    }
  }

  #path(key: string): string {
    return path.join(this.#objects, ...key.split('/'));
  }

  #ctx(op: BlobOp, key: string): BlobErrorContext {
    return { store: this.name, op, key };
  }

  #check(ctx: BlobErrorContext, signal: AbortSignal): void {
    throwIfAborted(ctx, signal);
    if (this.#closed) throw new BlobStoreError('fatal', ctx, 'the store is closed');
    if (ctx.op !== 'list') validateKey(ctx, ctx.key);
  }

  #fail(ctx: BlobErrorContext, err: unknown, signal: AbortSignal): BlobStoreError {
    if (err instanceof BlobStoreError) return err;
    if (signal.aborted) return abortedError(ctx, signal);
    const code = (err as NodeJS.ErrnoException).code ?? '';
    // A put never reports not-found: a vanished directory under the store is a broken store.
    const missing = NOT_THERE.has(code) && ctx.op !== 'put';
    const kind = missing ? 'not-found' : TRANSIENT.has(code) ? 'retriable' : 'fatal';
    const reason = kind === 'not-found' ? 'not found' : `${code || 'error'}: ${(err as Error).message}`;
    return new BlobStoreError(kind, ctx, reason, { cause: safeCause(err, []) });
  }
}

/**
 * Bytes [start, end] of an open file, into `opts.into` when it is large enough; a short
 * result when the file ends early (truncated underneath us).
 */
async function readRange(ctx: BlobErrorContext, fh: fsp.FileHandle, start: number, end: number, opts: GetOptions): Promise<Buffer> {
  const len = Math.max(0, end - start + 1);
  const out = opts.into !== undefined && opts.into.length >= len ? opts.into.subarray(0, len) : Buffer.allocUnsafe(len);
  for (let got = 0; got < out.length; ) {
    throwIfAborted(ctx, opts.signal);
    const want = Math.min(READ_CHUNK, out.length - got);
    const { bytesRead } = await fh.read(out, got, want, start + got);
    if (bytesRead === 0) return out.subarray(0, got);
    got += bytesRead;
  }
  return out;
}

function etagOf(st: fs.BigIntStats): string {
  return `${st.ino.toString(16)}-${st.size.toString(16)}-${st.mtimeNs.toString(16)}`;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
