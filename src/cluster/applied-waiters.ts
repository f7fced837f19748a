/**
 * Waiting for a broker's own watch: a write to etcd is answered once this broker's watch
 * delivered it (so a read on the same broker right after sees it). `AppliedWaiters` holds the
 * callers waiting for a condition on what the watch applied; the watch calls `wake()` after
 * each change it applied, and a waiter re-checks its condition then (and every 100 ms, in case
 * a wake came between its check and its wait).
 *
 * Used by the policies (policy-sync.ts) and the security documents (security-sync.ts).
 */
import { ErrorCode, MeridianError } from '../errors.js';

/** How long a write waits for this broker's watch to deliver it. */
export const APPLY_TIMEOUT_MS = 30_000;

export class AppliedWaiters {
  readonly #waiters = new Set<() => void>();
  #closed = false;

  /** After the watch applied a change: every waiter re-checks. */
  wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Stops waiting: pending and later `until` calls fail with "stopping". */
  close(): void {
    this.#closed = true;
    this.wake();
  }

  /** Resolves once `done()`; METADATA_UNAVAILABLE with `failure` after `timeoutMs` or on close. */
  async until(done: () => boolean, failure: string, timeoutMs = APPLY_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (this.#closed) throw new MeridianError(ErrorCode.MetadataUnavailable, `${failure}: the broker is stopping`);
      if (Date.now() >= deadline) throw new MeridianError(ErrorCode.MetadataUnavailable, `${failure} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, 100);
        this.#waiters.add(wake);
      });
    }
  }
}
