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
 * Riding through an etcd outage (`enableRideThrough`, etcd-contact.ts). A third of a lease
 * before its window closes without a renewal, a broker asks the replicas of the partitions
 * it leads whether they are in contact with etcd (and whether they agree on what it leads).
 * If every one answers that it is not, nobody can elect another leader for those
 * partitions now, and the broker goes on leading
 * (`riding`) for `rideMs` from when it sent that round, asking again every third of it.
 * The first round with a peer in contact or without an answer ends it: fenced, as without
 * ride-through. Riding only continues a leadership without a gap (a fenced broker does not
 * start riding). A keepalive answered again ends the ride with a `fenced` then `leased`
 * pair, so the partition states are read afresh before produce goes on. A broker that
 * answers "no contact" starts no new leadership for `graceMs` after it (`coolingUntil`),
 * recorded in a file so a restart keeps the promise.
 *
 * Lifecycle: `start()` (resolves once registered), `close()` (revokes the lease, so the
 * broker leaves at once; idempotent), `abandon()` (stops keepalives without revoking: what
 * SIGKILL does, for tests).
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Lease } from 'etcd3';
import { ErrorCode, MeridianError } from '../errors.js';
import { parseBrokerInfo, type BrokerInfo } from './partition-state.js';
import { describe, etcd3, isTransient, rev, sleep, type EtcdRegion, type OpOptions } from './etcd-region.js';
import { PrefixWatch } from './etcd-watch.js';
import type { RoundOutcome } from './etcd-contact.js';
import { writeFileAtomicSync } from '../storage/fs-util.js';

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
  /** The window closed but every in-sync peer is out of contact too: leadership goes on (riding). */
  riding: [];
}

export interface RideThrough {
  /** One round of the contact question to the peers (ContactPeers.round); absent: this broker does not ride (its answers still bind it). */
  round?(timeoutMs: number): Promise<RoundOutcome>;
  /** Where the last "no contact" answer is recorded (wall clock), so a restart keeps `coolingUntil`. */
  readonly noContactFile?: string;
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
  #ride: RideThrough | undefined;
  /** The leaderships the last round that allowed a ride asked about (undefined: every one). */
  #rideCovers: ReadonlySet<string> | undefined;
  /** While riding: the end of the leadership the last round of "no contact" answers allows. */
  #rideUntil = 0;
  #riding = false;
  #roundTimer: NodeJS.Timeout | undefined;
  #roundRunning = false;
  /** Bumped at each renewal: a round answered after it is stale. */
  #roundGen = 0;
  #roundRefusalLogged = false;
  /** When this broker last answered "no contact" (performance.now()); -Infinity: never. */
  #noContactAt = Number.NEGATIVE_INFINITY;
  /** From the file at start: no new leadership before this (performance.now()). */
  #bootCoolUntil = 0;
  #noContactPersistedAt = Number.NEGATIVE_INFINITY;

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

  /** Whether this broker is in contact with etcd: a keepalive answered within its window. */
  isLeased(now = performance.now()): boolean {
    return now < this.#validUntil;
  }

  /**
   * Whether this broker may act as a leader at `now`: leased, or riding through an etcd
   * outage, then only for a leadership its last round asked about (`key`, etcd-contact.ts
   * ledKey; one begun since was not asked about, and its replicas said nothing).
   */
  mayLead(key?: string, now = performance.now()): boolean {
    if (now < this.#validUntil) return true;
    if (now >= this.#rideUntil) return false;
    return key === undefined || this.#rideCovers === undefined || this.#rideCovers.has(key);
  }

  /** Whether it is riding through an etcd outage now. */
  get riding(): boolean {
    return this.#riding;
  }

  /** How long a ride lasts past the round that allowed it (the lease window's length). */
  get rideMs(): number {
    return this.ttlMs - this.#marginMs;
  }

  /** How long after a "no contact" answer this broker starts no new leadership (> rideMs + a round). */
  get graceMs(): number {
    return this.rideMs + this.#marginMs + this.#roundTimeoutMs;
  }

  get #roundTimeoutMs(): number {
    return Math.min(500, Math.round(this.ttlMs / 6));
  }

  /** How long before the window closes the first round is asked (a third of the lease: keepalives come every third). */
  get #roundLeadMs(): number {
    return Math.max(this.#roundTimeoutMs + 100, Math.round(this.ttlMs / 3));
  }

  /**
   * Turns riding through etcd outages on (with `round`, the peers' contact question) and
   * records this broker's "no contact" answers in `noContactFile`. Reads the one recorded:
   * a broker restarted soon after giving one keeps its promise.
   */
  enableRideThrough(ride: RideThrough): void {
    this.#ride = ride;
    // Registered before this: the first round is planned from the registration's window.
    if (this.#validUntil > 0) this.#scheduleRound(this.#validUntil - this.#roundLeadMs);
    if (ride.noContactFile === undefined) return;
    try {
      const at = Number(JSON.parse(fs.readFileSync(ride.noContactFile, 'utf8')).at);
      // Persisted at most every graceMs/4 ahead of the answers it covers.
      const left = at + this.graceMs + this.graceMs / 4 - Date.now();
      if (Number.isFinite(left) && left > 0) this.#bootCoolUntil = performance.now() + left;
    } catch {
      // none recorded (or unreadable: a broker writes it before it answers, so none given)
    }
  }

  /**
   * A peer asks whether this broker is in contact with etcd. "No" is a promise: no new
   * leadership for graceMs (recorded first, when a file is configured).
   */
  answerContact(): boolean | undefined {
    // Not attached yet (enableRideThrough): a "no" could not be kept across a restart.
    if (this.#ride === undefined) return undefined;
    const now = performance.now();
    // In contact: its lease window is open and its last etcd call succeeded. A window still
    // open on a keepalive answered before etcd went away is not contact: every broker's
    // window closes at its own time, and the first to close would find the others "in".
    if (now < this.#validUntil && this.#region.status().reachable) return true;
    const file = this.#ride.noContactFile;
    if (file !== undefined && now - this.#noContactPersistedAt >= this.graceMs / 4) {
      // Atomically (a crash leaves the old record or the new, never an empty one).
      writeFileAtomicSync(file, JSON.stringify({ at: Date.now() }));
      this.#noContactPersistedAt = now;
    }
    this.#noContactAt = now;
    return false;
  }

  /** No leadership this broker did not act on before may start acting before this (performance.now()). */
  coolingUntil(): number {
    return Math.max(this.#noContactAt + this.graceMs, this.#bootCoolUntil);
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
    clearTimeout(this.#roundTimer);
    this.#endRide();
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
    const now = performance.now();
    // Led past the closed window on a ride: the states it rode on may be stale (a leader
    // elected meanwhile), so leadership stops until they are read afresh (`leased` below).
    const rodeOn = this.#rideUntil > 0 && now >= this.#validUntil;
    const until = sentAt + this.ttlMs - this.#marginMs;
    if (until > this.#validUntil) this.#validUntil = until;
    if (rodeOn) {
      this.#endRide('etcd answers again; the partition states are read afresh before produce goes on');
      if (!this.#fenced) {
        this.#fenced = true;
        this.emit('fenced');
      }
    } else {
      this.#rideUntil = 0;
    }
    this.#roundGen++;
    this.#roundRefusalLogged = false;
    clearTimeout(this.#fenceTimer);
    this.#fenceTimer = setTimeout(() => this.#checkFence(), Math.max(0, this.#validUntil - performance.now()) + 1);
    this.#fenceTimer.unref();
    this.#scheduleRound(this.#validUntil - this.#roundLeadMs);
    if (this.#fenced && performance.now() < this.#validUntil) {
      this.#fenced = false;
      this.emit('leased');
    }
  }

  #checkFence(): void {
    if (this.#stopped || this.#fenced) return;
    const now = performance.now();
    const until = Math.max(this.#validUntil, this.#rideUntil);
    if (now >= until) {
      this.#fenced = true;
      this.#endRide();
      this.#region.logger?.warn({ nodeId: this.info.nodeId }, 'etcd lease not renewed in time: this broker fences itself (no leadership) until a keepalive is answered');
      this.emit('fenced');
      return;
    }
    if (now >= this.#validUntil && !this.#riding) {
      this.#riding = true;
      this.#region.logger?.warn({ nodeId: this.info.nodeId, rideMs: this.rideMs }, 'etcd does not answer this broker nor any in-sync peer of the partitions it leads: it goes on leading them (riding through the etcd outage) while every peer keeps saying so');
      this.emit('riding');
    }
    clearTimeout(this.#fenceTimer);
    this.#fenceTimer = setTimeout(() => this.#checkFence(), (now < this.#validUntil ? this.#validUntil : until) - now + 1);
    this.#fenceTimer.unref();
  }

  #endRide(why?: string): void {
    if (why !== undefined && this.#riding) this.#region.logger?.warn({ nodeId: this.info.nodeId, why }, 'riding through the etcd outage ends');
    this.#rideUntil = 0;
    this.#rideCovers = undefined;
    this.#riding = false;
  }

  /** A contact round at `at` (performance.now()), when ride-through is on. */
  #scheduleRound(at: number): void {
    if (this.#ride?.round === undefined || this.#stopped) return;
    clearTimeout(this.#roundTimer);
    this.#roundTimer = setTimeout(() => void this.#round(), Math.max(0, at - performance.now()));
    this.#roundTimer.unref();
  }

  /**
   * Asks the peers when the window is a third of a lease from closing without a renewal
   * (retried every 100 ms while it stays open), and every third of a ride while riding.
   * Every peer out of contact and agreeing on what this broker leads, asked while it may
   * still lead: it may lead on until rideMs after the round was sent (a peer's "no" holds it
   * off new leaderships for graceMs > rideMs + a round). Otherwise a ride ends, and the fence
   * clock decides; a fenced broker does not start riding. A renewal meanwhile discards the
   * round's outcome (`#roundGen`).
   */
  async #round(): Promise<void> {
    const ride = this.#ride;
    if (ride?.round === undefined || this.#stopped || this.#fenced) return;
    const sentAt = performance.now();
    const timeout = this.#roundTimeoutMs;
    if (this.#roundRunning) {
      this.#scheduleRound(sentAt + 50);
      return;
    }
    const gen = this.#roundGen;
    // Renewed since this round was planned: the renewal planned the next one.
    if (this.#rideUntil === 0 && sentAt < this.#validUntil - this.#roundLeadMs - 50) return;
    if (sentAt >= Math.max(this.#validUntil, this.#rideUntil)) return; // too late: the fence decides
    // A slow keepalive is no outage: peers are asked only once an etcd call of this broker
    // failed (until then it fences at the window's end, as without ride-through).
    if (this.#rideUntil === 0 && this.#region.status().reachable) {
      if (sentAt + timeout + 50 < this.#validUntil) this.#scheduleRound(sentAt + 100);
      return;
    }
    this.#roundRunning = true;
    let outcome: RoundOutcome;
    try {
      outcome = await ride.round(timeout);
    } catch (err) {
      outcome = { allOut: false, why: describe(err) };
    } finally {
      this.#roundRunning = false;
    }
    if (this.#stopped || this.#fenced || gen !== this.#roundGen) return;
    if (outcome.allOut) {
      this.#rideUntil = Math.max(this.#rideUntil, sentAt + this.rideMs);
      this.#rideCovers = outcome.covers;
      this.#scheduleRound(sentAt + this.rideMs / 3);
    } else if (this.#riding) {
      this.#endRide(outcome.why);
    } else {
      this.#rideUntil = 0;
      if (!this.#roundRefusalLogged) {
        this.#roundRefusalLogged = true;
        this.#region.logger?.warn({ nodeId: this.info.nodeId, why: outcome.why }, 'etcd lease not renewed yet, and leadership cannot ride through without it (asked again while the window is open)');
      }
      const now = performance.now();
      if (now + timeout + 50 < this.#validUntil) this.#scheduleRound(now + 100);
    }
    this.#checkFence();
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
    this.#endRide(`etcd says the lease is gone (${describe(err)})`);
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
