/**
 * Admission of new connections: at most `maxConnections` open, at most `maxConnectionsPerIp`
 * from one client address, and at most `maxConnectionCreationRate` accepted per second (a
 * token bucket holding one second's worth, so a burst of that many is fine). Kafka's
 * max.connections, max.connections.per.ip and max.connection.creation.rate; unlike Kafka,
 * which delays an acceptor over the rate, a connection over any limit is refused (closed at
 * once), which costs the broker nothing while the flood lasts.
 *
 * The open-connection limits are checked before the rate, and only admitted connections
 * spend a token: a client hammering the broker from an address already at its limit must not
 * use up the tokens other clients need to connect.
 *
 * Pure bookkeeping (the caller passes the clock); owned by one KafkaServer. Every `admit()`
 * that returns null must be matched by one `release()` of the same address.
 */

export const RefusalReason = {
  MaxConnections: 'max-connections',
  MaxConnectionsPerIp: 'max-connections-per-ip',
  CreationRate: 'connection-creation-rate',
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];

export interface ConnectionLimitsOptions {
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  /** Connections accepted per second; the bucket holds this many tokens. */
  readonly maxConnectionCreationRate: number;
}

/**
 * The address connections are counted under: an IPv4 client on a dual-stack listener shows
 * up as ::ffff:a.b.c.d and must count as the same client as a.b.c.d.
 */
export function clientAddress(remoteAddress: string): string {
  return remoteAddress.startsWith('::ffff:') && remoteAddress.includes('.') ? remoteAddress.slice(7) : remoteAddress;
}

export class ConnectionLimits {
  readonly #opts: ConnectionLimitsOptions;
  #open = 0;
  #perIp = new Map<string, number>();
  #tokens: number;
  #refilledAt: number;

  constructor(opts: ConnectionLimitsOptions, nowMs: number) {
    this.#opts = opts;
    this.#tokens = opts.maxConnectionCreationRate;
    this.#refilledAt = nowMs;
  }

  get open(): number {
    return this.#open;
  }

  /** Counts the connection in and returns null, or returns why it must be refused. */
  admit(address: string, nowMs: number): RefusalReason | null {
    if (this.#open >= this.#opts.maxConnections) return RefusalReason.MaxConnections;
    const fromIp = this.#perIp.get(address) ?? 0;
    if (fromIp >= this.#opts.maxConnectionsPerIp) return RefusalReason.MaxConnectionsPerIp;
    const rate = this.#opts.maxConnectionCreationRate;
    this.#tokens = Math.min(rate, this.#tokens + (Math.max(0, nowMs - this.#refilledAt) * rate) / 1000);
    this.#refilledAt = nowMs;
    if (this.#tokens < 1) return RefusalReason.CreationRate;
    this.#tokens -= 1;
    this.#open++;
    this.#perIp.set(address, fromIp + 1);
    return null;
  }

  /** An admitted connection from `address` closed. */
  release(address: string): void {
    const fromIp = this.#perIp.get(address);
    if (fromIp === undefined) return;
    this.#open--;
    if (fromIp <= 1) this.#perIp.delete(address);
    else this.#perIp.set(address, fromIp - 1);
  }
}
