import { addAbortSignal, type Readable } from 'node:stream';
import type { BlobErrorContext } from './blob-store.js';
import { abortedError } from './blob-store.js';

/**
 * Reads a response body to the end. On abort the stream is destroyed (which cancels the
 * underlying request for every SDK used here) and the call rejects with BLOB_ABORTED.
 */
export async function collectStream(
  stream: NodeJS.ReadableStream,
  signal: AbortSignal,
  ctx: BlobErrorContext,
  /** Stop (and destroy the stream) once this many bytes have arrived. */
  limit = Infinity,
  onChunk?: () => void,
  /**
   * Collect into this buffer when `limit` fits it (returning a view of it), instead of a
   * list of chunks concatenated into a fresh one: the block cache's recycled block buffers.
   */
  into?: Buffer,
): Promise<Buffer> {
  const destroy = () => (stream as NodeJS.ReadableStream & { destroy?: (e?: Error) => void }).destroy?.();
  if (signal.aborted) {
    destroy();
    throw abortedError(ctx, signal);
  }
  signal.addEventListener('abort', destroy, { once: true });
  try {
    const chunks: Buffer[] = [];
    let length = 0;
    const target = into !== undefined && limit <= into.length ? into : undefined;
    for await (const chunk of stream) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      if (target !== undefined) {
        length += buf.copy(target, length, 0, Math.min(buf.length, limit - length));
        onChunk?.();
        if (length >= limit) {
          destroy();
          break;
        }
        continue;
      }
      chunks.push(buf);
      length += buf.length;
      onChunk?.();
      if (length >= limit) {
        destroy();
        break;
      }
    }
    if (signal.aborted) throw abortedError(ctx, signal);
    if (target !== undefined) return target.subarray(0, length);
    const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    return all.length > limit ? all.subarray(0, limit) : all;
  } finally {
    signal.removeEventListener('abort', destroy);
  }
}

/**
 * Settles with `work` or rejects with BLOB_ABORTED as soon as `signal` aborts, for SDK
 * calls that take no signal. The request itself runs on until the SDK's own timeout; the
 * caller is released at once.
 */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal, ctx: BlobErrorContext): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(abortedError(ctx, signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => {});
      reject(abortedError(ctx, signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * Destroys a stream body when the call is aborted, so an SDK (or our own loop) waiting on
 * the body's next chunk wakes up with an error instead of waiting forever.
 */
export function abortBodyOnSignal(body: Buffer | Readable, signal: AbortSignal): void {
  if (!Buffer.isBuffer(body)) addAbortSignal(signal, body);
}

/**
 * Aborts a call that has made no progress for `idleMs`: for SDKs whose own timeout is not
 * enforced by the client (Azure's `tryTimeoutInMs` is only a server-side hint). `signal`
 * combines the caller's signal with the idle timer; feed `progress` from the SDK's
 * progress callbacks; `timedOut` tells an idle abort from the caller's. Call `dispose()`.
 */
export class IdleDeadline {
  readonly signal: AbortSignal;
  readonly #own = new AbortController();
  readonly #timer: NodeJS.Timeout;

  constructor(caller: AbortSignal, idleMs: number) {
    this.signal = AbortSignal.any([caller, this.#own.signal]);
    this.#timer = setTimeout(() => this.#own.abort(new Error(`no progress for ${idleMs} ms`)), idleMs);
    this.#timer.unref();
  }

  readonly progress = (): void => {
    if (!this.#own.signal.aborted) this.#timer.refresh();
  };

  get timedOut(): boolean {
    return this.#own.signal.aborted;
  }

  dispose(): void {
    clearTimeout(this.#timer);
  }
}
