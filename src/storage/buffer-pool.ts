/**
 * Reusable read buffers for the fetch path. A consumer reading at disk speed would otherwise
 * allocate a fresh megabyte-sized buffer per partition per fetch, and V8 answers that much
 * external memory with frequent full garbage collections (a quarter of the broker's time in
 * bench:kafka's consume phase). Buffers come in power-of-two classes from 64 KiB; a buffer
 * goes back to the pool once the socket has taken its bytes. At most `maxPooledBytes` are
 * kept; anything beyond, or any buffer never given back, is left to the garbage collector.
 */
const MIN_CLASS = 64 * 1024;
/** Below this a buffer is allocated to size, not pooled (must stay below MIN_CLASS). */
const SMALL_BYTES = 16 * 1024;

export class BufferPool {
  readonly #free = new Map<number, Buffer[]>();
  readonly #maxPooledBytes: number;
  readonly #maxClass: number;
  #pooledBytes = 0;
  /** Pooled-size requests served from the free buffers, and those that allocated one. */
  reused = 0;
  allocated = 0;

  constructor(opts: { maxPooledBytes?: number; maxBufferBytes?: number } = {}) {
    this.#maxPooledBytes = opts.maxPooledBytes ?? 64 * 1024 * 1024;
    this.#maxClass = opts.maxBufferBytes ?? 16 * 1024 * 1024;
  }

  get pooledBytes(): number {
    return this.#pooledBytes;
  }

  /** A buffer of at least `size` bytes (its length is the size class, or `size` itself for a small one; slice what you use). */
  acquire(size: number): Buffer {
    // A small read (a tail-following consumer's: one batch of one partition, of the many a
    // fetch reads) takes a buffer of its own size: a 64 KiB class per read made the broker
    // allocate 150 MiB/s with a kcat group following 10,000 partitions (bench:scale).
    // Its length is no class, so `release` leaves it to the garbage collector.
    if (size < SMALL_BYTES) return Buffer.allocUnsafe(size);
    const cls = classOf(size);
    if (cls > this.#maxClass) return Buffer.allocUnsafe(size);
    const list = this.#free.get(cls);
    const buf = list?.pop();
    if (buf) {
      this.#pooledBytes -= cls;
      this.reused++;
      return buf;
    }
    this.allocated++;
    return Buffer.allocUnsafeSlow(cls);
  }

  /** Gives a buffer from `acquire` back. Nothing may read or write it afterwards. */
  release(buf: Buffer): void {
    const cls = buf.length;
    if (cls !== classOf(cls) || cls > this.#maxClass || this.#pooledBytes + cls > this.#maxPooledBytes) return;
    let list = this.#free.get(cls);
    if (!list) this.#free.set(cls, (list = []));
    list.push(buf);
    this.#pooledBytes += cls;
  }
}

function classOf(size: number): number {
  let cls = MIN_CLASS;
  while (cls < size) cls *= 2;
  return cls;
}
