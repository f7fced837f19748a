/**
 * Who wants to hear of every Kafka request the dispatcher handles: the broker's metrics
 * (admin/metrics-kafka.ts) listen here. One instance per broker, because the dev mesh runs
 * two brokers in one process and each counts only its own requests (a diagnostics_channel
 * is process-wide). Nothing is timed or measured while nobody listens, as pino's
 * diagnostics do: the dispatcher checks `active` first.
 */

/** One handled request, as the dispatcher saw it. */
export interface KafkaRequestEvent {
  readonly apiKey: number;
  /** Kafka's API name (`Produce`, `Fetch`...), the replication API's, or `unknown` for a key nobody defines. */
  readonly api: string;
  /**
   * `ok`, the name of the first Kafka error code the response carries (top level, or the
   * first failing topic, partition, group or resource), or `closed` when no response could
   * be built and the connection closes.
   */
  readonly outcome: string;
  /** From the request's dispatch to its encoded response (a Fetch's long-poll included). */
  readonly seconds: number;
  /** The request frame, size prefix included. */
  readonly requestBytes: number;
  /** The response frame, size prefix included; 0 when none was due (acks=0) or none was built. */
  readonly responseBytes: number;
}

export type KafkaRequestListener = (event: KafkaRequestEvent) => void;

export class KafkaRequestObservers {
  readonly #listeners = new Set<KafkaRequestListener>();

  /** Whether anyone listens: when not, the dispatcher skips the measuring. */
  get active(): boolean {
    return this.#listeners.size > 0;
  }

  /** Returns the function that stops listening. */
  listen(listener: KafkaRequestListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event: KafkaRequestEvent): void {
    for (const l of this.#listeners) l(event);
  }
}

/**
 * The outcome of a decoded response: `ok`, or the name of the first non-zero `errorCode`
 * found at its top level or in its nested lists (topics, partitions, groups, resources,
 * down to three levels, as deep as Kafka's responses go). Record bytes are never walked.
 */
export function responseOutcome(response: unknown, errorName: (code: number) => string): string {
  const code = firstErrorCode(response, 0);
  return code === 0 ? 'ok' : errorName(code);
}

const MAX_DEPTH = 3;

function firstErrorCode(value: unknown, depth: number): number {
  if (typeof value !== 'object' || value === null || Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return 0;
  const record = value as Record<string, unknown>;
  const own = record.errorCode;
  if (typeof own === 'number' && own !== 0) return own;
  if (depth >= MAX_DEPTH) return 0;
  // for...in, not Object.values: no array per object (a Fetch response of 10,000 partitions
  // is 10,000 of them).
  for (const key in record) {
    const child = record[key];
    if (!Array.isArray(child)) continue;
    for (const item of child) {
      const code = firstErrorCode(item, depth + 1);
      if (code !== 0) return code;
    }
  }
  return 0;
}
