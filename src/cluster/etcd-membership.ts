/**
 * Region membership in etcd: this broker's lease and registration (`Membership`), and the
 * live set of every broker (`MembersView`).
 *
 * Membership. The broker grants a lease of `cluster.leaseTtlMs` (whole seconds: etcd
 * leases are in seconds, so the TTL is rounded up), puts `brokers/<nodeId>` on it, and
 * sends a keepalive every third of the TTL. When etcd says the lease is gone (it expired
 * while the broker could not reach etcd, or it was revoked) the broker registers again with
 * a new lease (`lost`, then `registered`): everything else hung on the lease (the
 * controller candidacy) follows that event.
 *
 * Self-fencing clock. `leaseValidUntil()` is the send time of the last keepalive etcd
 * answered (or of the grant) + TTL − margin, on the monotonic clock (`performance.now()`).
 * etcd starts the TTL when it receives the keepalive, after the send, so etcd cannot
 * expire the lease (and delete the key, and let a controller act on the delete) before
 * this broker's clock passes `leaseValidUntil()`. Past it the broker is `fenced`: it must
 * stop acting as leader (the replica manager listens). A later answered keepalive
 * (`leased`) lifts it. The margin covers clock-rate differences and timer lateness.
 *
 * Registration conflicts. A node id held by another live lease is refused
 * (NODE_ID_IN_USE) after waiting one TTL for it to expire: a broker restarted after a
 * SIGKILL finds its previous registration still there for up to a TTL, which is not a
 * conflict; two brokers configured with the same node id keep it alive, which is.
 *
 * Lifecycle: `start()` (resolves once registered), `close()` (revokes the lease, so the
 * broker leaves at once; idempotent), `abandon()` (stops keepalives without revoking: what
 * SIGKILL does, for tests).
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Lease } from 'etcd3';
import { ErrorCode, MeridianError } from '../errors.js';
import { parseBrokerInfo, type BrokerInfo } from './partition-state.js';
import { describe, etcd3, isTransient, rev, sleep, type EtcdRegion, type OpOptions } from './etcd-region.js';
import { PrefixWatch } from './etcd-watch.js';

export interface MembershipOptions {
  /** cluster.leaseTtlMs; rounded up to whole seconds for etcd. */
  readonly leaseTtlMs: number;
  /** Subtracted from the lease's end for the self-fencing clock; default max(200 ms, TTL/10). */
  readonly fenceMarginMs?: number;
  /** How long a registration waits for another lease holding the node id to expire; default TTL + 1 s. */
  readonly registerWaitMs?: number;
}

export interface MembershipEvents {
  /** Registered (again) under a new lease; `brokerEpoch` is the create revision of brokers/<nodeId>. */
  registered: [{ leaseId: string; brokerEpoch: bigint }];
  /** The self-fencing clock ran out: stop acting as leader. */
  fenced: [];
  /** A keepalive was answered after `fenced`. */
  leased: [];
  /** etcd said the lease is gone; a new registration follows (`registered`). */
  lost: [Error];
}

export class Membership extends EventEmitter<MembershipEvents> {
  readonly info: BrokerInfo;
  readonly ttlMs: number;
  readonly #region: EtcdRegion;
  readonly #marginMs: number;
  readonly #registerWaitMs: number;
  #lease: Lease | undefined;
  #leaseId: string | undefined;
  #brokerEpoch = -1n;
  #validUntil = 0;
  #fenced = true;
  #stopped = false;
  /** Aborted by close()/abandon(): ends a registration retried without a budget (#relet). */
  readonly #stopping = new AbortController();
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #fenceTimer: NodeJS.Timeout | undefined;

  constructor(region: EtcdRegion, info: BrokerInfo, options: MembershipOptions) {
    super();
    this.#region = region;
    this.info = info;
    this.ttlMs = Math.max(1, Math.ceil(options.leaseTtlMs / 1000)) * 1000;
    this.#marginMs = options.fenceMarginMs ?? Math.max(200, this.ttlMs / 10);
    this.#registerWaitMs = options.registerWaitMs ?? this.ttlMs + 1000;
  }

  get nodeId(): number {
    return this.info.nodeId;
  }

  /** The current lease (decimal string, as etcd3 gives it), or undefined before registration. */
  get leaseId(): string | undefined {
    return this.#leaseId;
  }

  /** Create revision of this registration's brokers/<nodeId> key: changes at each re-registration. */
  get brokerEpoch(): bigint {
    return this.#brokerEpoch;
  }

  /** End of this broker's self-assured membership, on performance.now()'s clock (0: none). */
  leaseValidUntil(): number {
    return this.#validUntil;
  }

  /** Whether this broker may still act as a member (lead partitions) at `now`. */
  isLeased(now = performance.now()): boolean {
    return now < this.#validUntil;
  }

  /** Grants the lease and registers; resolves once registered. Throws NODE_ID_IN_USE. */
  async start(options: OpOptions = {}): Promise<void> {
    await this.#register(options);
    this.#loop = this.#keepaliveLoop();
  }

  /** Leaves the region: revokes the lease (its keys go at once). Idempotent. */
  async close(): Promise<void> {
    if (this.#stopped) return;
    this.#stop();
    await this.#loop;
    const lease = this.#lease;
    if (lease !== undefined && !this.#region.closed) {
      await lease.revoke({ deadline: Date.now() + this.#region.callTimeoutMs }).catch((err: unknown) => {
        this.#region.logger?.warn({ error: describe(err) }, 'could not revoke the etcd lease; the registration ends when it expires');
      });
    }
  }

  /** Stops keepalives without revoking, as a SIGKILL would: etcd deletes the key after the TTL. */
  async abandon(): Promise<void> {
    this.#stop();
    await this.#loop;
  }

  #stop(): void {
    this.#stopped = true;
    this.#stopping.abort();
    clearTimeout(this.#fenceTimer);
    this.#wake?.();
    this.#validUntil = 0;
  }

  async #register(options: OpOptions): Promise<void> {
    const { client, keys } = this.#region;
    const key = keys.broker(this.info.nodeId);
    const waitUntil = Date.now() + this.#registerWaitMs;
    for (;;) {
      const sentAt = performance.now();
      const lease = await this.#region.run(
        'grant the broker lease',
        async () => {
          const l = client.lease(this.ttlMs / 1000, { autoKeepAlive: false });
          l.on('lost', () => undefined); // reported through keepaliveOnce's rejection
          await l.grant();
          return l;
        },
        options,
      );
      const leaseId = await lease.grant();
      const value = JSON.stringify(this.info);
      const res = await this.#region.run(
        `register ${key}`,
        () => client.if(key, 'Create', '==', 0).then(client.put(key).value(value).lease(leaseId)).else(client.get(key)).commit(),
        options,
      );
      let holder = res.succeeded ? undefined : res.responses[0]?.response_range?.kvs[0];
      if (holder !== undefined && BigInt(holder.lease) === BigInt(leaseId)) holder = undefined; // our own, an earlier attempt
      if (holder === undefined) {
        this.#lease = lease;
        this.#leaseId = leaseId;
        this.#brokerEpoch = res.succeeded ? rev(res.header.revision) : rev(res.responses[0]!.response_range.kvs[0]!.create_revision);
        this.#renewed(sentAt);
        this.#region.logger?.info({ nodeId: this.info.nodeId, leaseId, brokerEpoch: this.#brokerEpoch.toString() }, 'registered in the region (etcd)');
        this.emit('registered', { leaseId, brokerEpoch: this.#brokerEpoch });
        return;
      }
      await lease.revoke().catch(() => undefined);
      if (Date.now() >= waitUntil) {
        let who = '';
        try {
          const b = parseBrokerInfo(key, holder.value);
          who = ` by the broker at ${b.kafka.host}:${b.kafka.port} (started ${new Date(b.startedAt).toISOString()})`;
        } catch {
          // the holder's value is unreadable; the key alone says enough
        }
        throw new MeridianError(
          ErrorCode.NodeIdInUse,
          `node id ${this.info.nodeId} is in use in region ${this.#region.region}${who}: its etcd key ${key} stayed alive for ${this.#registerWaitMs} ms. Give every broker of a region its own nodeId.`,
        );
      }
      await sleep(Math.min(500, this.ttlMs / 4), options.signal, this.#region.closingSignal);
    }
  }

  #renewed(sentAt: number): void {
    const until = sentAt + this.ttlMs - this.#marginMs;
    if (until > this.#validUntil) this.#validUntil = until;
    clearTimeout(this.#fenceTimer);
    this.#fenceTimer = setTimeout(() => this.#checkFence(), Math.max(0, this.#validUntil - performance.now()) + 1);
    this.#fenceTimer.unref();
    if (this.#fenced && performance.now() < this.#validUntil) {
      this.#fenced = false;
      this.emit('leased');
    }
  }

  #checkFence(): void {
    if (this.#stopped || this.#fenced) return;
    if (performance.now() >= this.#validUntil) {
      this.#fenced = true;
      this.#region.logger?.warn({ nodeId: this.info.nodeId }, 'etcd lease not renewed in time: this broker fences itself (no leadership) until a keepalive is answered');
      this.emit('fenced');
    } else {
      this.#fenceTimer = setTimeout(() => this.#checkFence(), this.#validUntil - performance.now() + 1);
      this.#fenceTimer.unref();
    }
  }

  async #keepaliveLoop(): Promise<void> {
    const interval = this.ttlMs / 3;
    let wait = interval;
    while (!this.#stopped) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      if (this.#stopped) return;
      const sentAt = performance.now();
      try {
        await this.#lease!.keepaliveOnce({ deadline: Date.now() + Math.min(interval, this.#region.callTimeoutMs) });
        if (this.#stopped) return;
        this.#region.markReachable();
        this.#renewed(sentAt);
        wait = interval;
      } catch (err) {
        if (this.#stopped) return;
        if (err instanceof etcd3().EtcdLeaseInvalidError || !isTransient(err)) {
          await this.#relet(err as Error);
          wait = interval;
        } else {
          this.#region.markFailure(err);
          wait = Math.min(interval, 250);
        }
      }
    }
  }

  /** The lease is gone: register again with a new one (retried until it works or we stop). */
  async #relet(err: Error): Promise<void> {
    this.#validUntil = 0;
    this.#checkFence();
    this.#region.logger?.warn({ nodeId: this.info.nodeId, error: describe(err) }, 'etcd lease lost; registering again with a new lease');
    this.emit('lost', err);
    while (!this.#stopped) {
      try {
        // Without a budget, so only a stop or the client's close ends it: a broker cut off
        // from etcd waited here forever through close()/abandon() (a test's after() hung).
        await this.#register({ timeoutMs: Infinity, signal: AbortSignal.any([this.#region.closingSignal, this.#stopping.signal]) });
        return;
      } catch (e) {
        if (this.#stopped || this.#region.closed) return;
        this.#region.logger?.error({ error: describe(e) }, 'registering again failed; retrying');
        await sleep(this.ttlMs / 3, this.#region.closingSignal, this.#stopping.signal).catch(() => undefined);
      }
    }
  }
}

export interface MembersEvents {
  joined: [BrokerInfo];
  left: [number, BrokerInfo];
  error: [Error];
}

/**
 * The region's live brokers, loaded and then watched: `joined` when a brokers/<id> key
 * appears (a restart with a new lease counts as leaving and joining only if the old key
 * expired first), `left` when it is deleted (lease expired or revoked).
 */
export class MembersView extends EventEmitter<MembersEvents> {
  readonly #region: EtcdRegion;
  readonly #members = new Map<number, BrokerInfo>();
  #watch: PrefixWatch<BrokerInfo> | undefined;
  #revision = 0n;

  constructor(region: EtcdRegion) {
    super();
    this.#region = region;
  }

  /** Loads the live brokers and starts watching. */
  async start(options: OpOptions = {}): Promise<void> {
    const { keys } = this.#region;
    const { entries, revision } = await this.#region.getPrefix(keys.brokersPrefix, parseBrokerInfo, options);
    for (const v of entries.values()) this.#members.set(v.value.nodeId, v.value);
    this.#revision = revision;
    this.#watch = new PrefixWatch(this.#region, keys.brokersPrefix, revision + 1n, parseBrokerInfo, {
      put: (_key, v) => {
        const known = this.#members.has(v.value.nodeId);
        this.#members.set(v.value.nodeId, v.value);
        if (!known) this.emit('joined', v.value);
      },
      delete: (key) => {
        const id = keys.brokerIdOf(key);
        const info = id === undefined ? undefined : this.#members.get(id);
        if (id === undefined || info === undefined) return;
        this.#members.delete(id);
        this.emit('left', id, info);
      },
      reset: (entries) => {
        const now = new Map([...entries.values()].map((v) => [v.value.nodeId, v.value]));
        for (const [id, info] of [...this.#members]) {
          if (!now.has(id)) {
            this.#members.delete(id);
            this.emit('left', id, info);
          }
        }
        for (const [id, info] of now) {
          const known = this.#members.has(id);
          this.#members.set(id, info);
          if (!known) this.emit('joined', info);
        }
      },
      error: (err) => {
        if (this.listenerCount('error') > 0) this.emit('error', err);
        else this.#region.logger?.error({ error: describe(err) }, 'broker registrations watch');
      },
    });
    this.#watch.start();
  }

  /** The revision the initial load was made at. */
  get loadedAt(): bigint {
    return this.#revision;
  }

  members(): ReadonlyMap<number, BrokerInfo> {
    return this.#members;
  }

  alive(): ReadonlySet<number> {
    return new Set(this.#members.keys());
  }

  close(): void {
    this.#watch?.close();
  }
}
