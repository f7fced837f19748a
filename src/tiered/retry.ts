/**
 * A retry budget for object-store calls: bounded attempts, exponential backoff with full
 * jitter (so many partitions retrying together do not stampede a recovering store), and an
 * AbortSignal that ends the wait at once. Only errors marked retriable are retried; the root
 * cause decides, never a wrapper (errors.ts).
 */
export interface RetryPolicy {
  attempts: number;
  baseMs: number;
  maxMs: number;
}

export const defaultRetry: RetryPolicy = { attempts: 6, baseMs: 100, maxMs: 5_000 };

export function isRetriable(err: unknown): boolean {
  return (err as { retriable?: boolean })?.retriable === true;
}

export async function withRetry<T>(fn: (attempt: number) => Promise<T>, policy: RetryPolicy, signal?: AbortSignal, onRetry?: (err: unknown, attempt: number, delayMs: number) => void): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= policy.attempts || !isRetriable(err) || signal?.aborted) throw err;
      const delay = Math.random() * Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
      onRetry?.(err, attempt, delay);
      await sleep(delay, signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    // Not unref'd: a retry in progress is work the process must stay up for (a broker
    // starting while its store is down would otherwise exit mid-start-up).
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
