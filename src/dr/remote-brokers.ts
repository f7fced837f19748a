/**
 * The brokers of one remote region that disaster recovery talks to: its offset sync goes to
 * each of them, its probes to any one (src/cluster/README.md, "Disaster recovery and group
 * views on a cluster").
 *
 * A remote region is known by its bootstrap addresses (the registry's `address`, one or
 * several: `RegionEntry.bootstrap`), walked as the data links walk them
 * (`BootstrapAddresses` in replication/remote-region.ts): the address in use, then the next
 * after a failed connection. Which brokers the region has comes from its Metadata (asked
 * through the bootstrap addresses, then the brokers last seen; at start, after a failure,
 * and every `refreshEveryMs`):
 * - one broker (a single-broker region, or a cluster of one): the offset sync goes to the
 *   bootstrap address in use, as before region clusters;
 * - several (a region cluster): to every one of them, at the addresses Metadata advertises.
 *   Every broker of the remote region then holds the peer commits, durably, whichever
 *   coordinates the group now or later; see offset-publisher.ts for why.
 *
 * One LinkClient per address in use (TLS and SASL of the link); the clients of brokers the
 * last Metadata no longer names are closed. Lifecycle: `close()` closes them all; a call
 * after it fails at once (closed clients).
 */
import type { Logger } from 'pino';
import type { LinkSecurityConfig } from '../config/schema.js';
import { LinkClient } from '../replication/link-client.js';
import type { RegionEntry } from '../replication/policy.js';
import { metadataRequest } from '../replication/remote-leaders.js';
import { BootstrapAddresses } from '../replication/remote-region.js';
import type { Reader } from '../protocol/kafka/reader.js';
import type { Writer } from '../protocol/kafka/writer.js';

export interface RemoteBrokersOptions {
  entry: RegionEntry;
  security: LinkSecurityConfig | undefined;
  clientId: string;
  requestTimeoutMs: number;
  /** How often the remote's brokers are looked up again while all is well: 10 s. */
  refreshEveryMs?: number;
  logger: Logger;
}

/** A failure looks the brokers up again, at most this often (a dead broker fails every retry). */
const MIN_REFRESH_GAP_MS = 1000;

export class RemoteBrokers {
  readonly region: string;
  readonly #boot: BootstrapAddresses;
  readonly #opts: RemoteBrokersOptions;
  #clients = new Map<string, LinkClient>();
  /** The brokers of the last Metadata answer that named several (a region cluster); empty otherwise. */
  #brokers: string[] = [];
  #refreshedAt = 0;
  #refreshDue = true;
  #refreshing: Promise<void> | undefined;
  #closed = false;
  #log: Logger;

  constructor(opts: RemoteBrokersOptions) {
    this.#opts = opts;
    this.region = opts.entry.name;
    this.#boot = new BootstrapAddresses(opts.entry);
    this.#log = opts.logger.child({ remote: opts.entry.name });
  }

  /** The bootstrap addresses as the registry lists them (a change of the registry makes a new instance). */
  get bootstrap(): readonly string[] {
    return this.#boot.all;
  }

  /** Where the offset sync goes: every broker of a region cluster, else the bootstrap address in use. */
  destinations(): string[] {
    return this.#brokers.length > 1 ? [...this.#brokers] : [this.#boot.current];
  }

  /** Whether the last Metadata named several brokers. */
  get clustered(): boolean {
    return this.#brokers.length > 1;
  }

  get connected(): boolean {
    return [...this.#clients.values()].some((c) => c.connected);
  }

  client(address: string): LinkClient {
    let c = this.#clients.get(address);
    if (c === undefined) {
      c = new LinkClient({ address, remote: this.region, security: this.#opts.security, clientId: this.#opts.clientId, requestTimeoutMs: this.#opts.requestTimeoutMs });
      this.#clients.set(address, c);
      if (this.#closed) c.close();
    }
    return c;
  }

  /** One request to whichever broker answers: the bootstrap address in use, then the others (probes). */
  request(apiKey: number, version: number, body: (w: Writer) => void): Promise<Reader> {
    return this.#boot.first((address) => this.client(address).request(apiKey, version, body));
  }

  /** A request to `address` failed: the next bootstrap address is used if it was the one in use, and the brokers are looked up again. */
  failed(address: string): void {
    this.#boot.failed(address);
    this.#refreshDue = true;
  }

  /**
   * Looks the remote's brokers up when due (at start, after a failure at most once a second,
   * else every `refreshEveryMs`). Never throws: an unreachable region keeps the last list.
   */
  async refreshIfDue(now = Date.now()): Promise<void> {
    const due = this.#refreshDue ? now - this.#refreshedAt >= MIN_REFRESH_GAP_MS : now - this.#refreshedAt >= (this.#opts.refreshEveryMs ?? 10_000);
    if (!due || this.#closed) return;
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    this.#refreshedAt = Date.now();
    this.#refreshDue = false;
    const req = metadataRequest([]);
    const candidates = [...new Set([...this.#boot.order(), ...this.#brokers])];
    for (const address of candidates) {
      if (this.#closed) return;
      try {
        const layout = req.read(await this.client(address).request(req.apiKey, req.version, req.body));
        const brokers = [...layout.brokers.values()].sort();
        if (brokers.length > 1 && brokers.join() !== this.#brokers.join()) this.#log.info({ brokers }, 'offset sync goes to every broker of the remote region cluster');
        this.#brokers = brokers.length > 1 ? brokers : [];
        this.#prune();
        return;
      } catch (err) {
        this.#boot.failed(address);
        this.#log.debug({ address, err: (err as Error).message }, 'brokers of the remote region not available from this address');
      }
    }
    // Nobody answered: try again after the short gap.
    this.#refreshDue = true;
  }

  /** Closes the clients of addresses neither bootstrap nor named by the last Metadata. */
  #prune(): void {
    const keep = new Set([...this.#boot.all, ...this.#brokers]);
    for (const [address, c] of this.#clients) {
      if (keep.has(address)) continue;
      c.close();
      this.#clients.delete(address);
    }
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#clients.values()) c.close();
  }
}
