/**
 * The upload budget of `tiered.offload.maxBytesPerSec` (Kafka's
 * remote.log.manager.copy.max.bytes.per.second, KIP-956): one token bucket shared by every
 * upload of the broker, so offload cannot take the disk or the uplink from produce and
 * replication. The bucket holds at most one second of budget; a chunk larger than that
 * waits until the bucket is full and then goes (the budget goes negative and the next
 * chunks wait it off), so no chunk waits forever.
 *
 * Concurrency: callers are served in arrival order (each `take` waits behind the previous
 * one), on the event loop; timers are unref'd.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import type { UploadRate } from './partition-tier.js';

export class TokenBucketRate implements UploadRate {
  readonly #bytesPerSec: number;
  #tokens: number;
  #at = performance.now();
  #tail: Promise<void> = Promise.resolve();

  constructor(bytesPerSec: number) {
    if (!(bytesPerSec > 0)) throw new MeridianError(ErrorCode.BadConfig, `tiered.offload.maxBytesPerSec must be positive (or -1 for no limit), got ${bytesPerSec}`);
    this.#bytesPerSec = bytesPerSec;
    this.#tokens = bytesPerSec;
  }

  take(bytes: number, signal: AbortSignal): Promise<void> {
    const turn = this.#tail.then(() => this.#wait(bytes, signal));
    this.#tail = turn.catch(() => undefined);
    return turn;
  }

  async #wait(bytes: number, signal: AbortSignal): Promise<void> {
    for (;;) {
      if (signal.aborted) throw new MeridianError(ErrorCode.Aborted, 'upload aborted while waiting for its rate budget', { cause: signal.reason });
      const now = performance.now();
      this.#tokens = Math.min(this.#bytesPerSec, this.#tokens + ((now - this.#at) / 1000) * this.#bytesPerSec);
      this.#at = now;
      const need = Math.min(bytes, this.#bytesPerSec);
      if (this.#tokens >= need) {
        this.#tokens -= bytes;
        return;
      }
      const waitMs = Math.max(1, Math.ceil(((need - this.#tokens) / this.#bytesPerSec) * 1000));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        timer.unref();
        function done(): void {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }
}
