/**
 * The receiving side of replication: answers ReplicationHandshake and ReplicatedAppend.
 *
 * An append keeps the batches whose origin offsets are above what this log already holds
 * from their origin region (dedup, whichever path they came by), drops anything that already
 * passed through this region (loop prevention), and writes each run of kept batches behind a
 * marker, all in one append: one write, one fsync, consecutive offsets. The dedup table is
 * updated when the offsets are assigned, before the write completes, so a concurrent append
 * from another sender sees it.
 *
 * Who may send (always checked, authorization on or off): a topic is taken only from the
 * regions this region's policies name as its senders here (policy.ts `sendersTo`, the
 * sending side's links seen from this end); anything else is REPLICATION_UNAUTHORIZED and
 * nothing is written. A region of the registry bound to a principal (`principal`) is taken
 * only over a connection authenticated as it (`admitSender`). The ClusterAction permission
 * is checked before, by the protocol layer (broker/kafka/replication.ts).
 *
 * In a region cluster (`leadership`, cluster/georep-leadership.ts) only a partition's leader
 * takes its replicated appends, through the leader path with acks=all semantics: refused
 * with NOT_LEADER_OR_FOLLOWER elsewhere (the sender looks the leader up in Metadata and
 * sends there), stamped with the leader epoch, and answered once every in-sync replica
 * holds the batches (and this broker still leads at that epoch), so a leader that dies
 * loses nothing it acknowledged. An answer that only confirms duplicates waits the same
 * way for what the log holds, since the table counts appends not yet replicated. The
 * handshake answers only for the partitions led here, each once what the resume point
 * covers is replicated. Topics are created through the cluster (`createTopic`).
 */
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import { ThrottledLog } from '../throttled-log.js';
import type { TopicInfo, TopicManager } from '../storage/topic-manager.js';
import { isControlBatch, validateBatch, type BatchHeader } from '../storage/record-batch.js';
import { validateRecords } from '../storage/record-validator.js';
import { encodeMarker, type MarkedBatch } from './marker.js';
import { sendersTo, type Policy, type RegionEntry } from './policy.js';
import { NO_CONTINUITY_CHECK, type AppendRequest, type AppendResponse, type HandshakeRequest, type HandshakeResponse } from './replication-api.js';
import { originKey, raise, type ReplicaStates } from './replica-state.js';

export interface TargetStats {
  appendedBatches: number;
  appendedBytes: number;
  duplicateBatches: number;
  loopDroppedBatches: number;
  /** Handshakes and appends refused because the sender is not the DR topic's primary here. */
  fencedRequests: number;
  /** Requests refused for their principal or claimed region (ClusterAction, sources, bindings). */
  unauthorizedRequests: number;
}

/**
 * A handshake's answer before it is encoded: `error` (null on success) becomes the
 * response's error code and message in the protocol layer (broker/kafka/replication.ts).
 */
export type HandshakeResult = Omit<HandshakeResponse, 'errorCode' | 'errorMessage' | 'maxAppendVersion'> & { error: Error | null };
/** An append's answer before it is encoded, as HandshakeResult. */
export type AppendResult = Omit<AppendResponse, 'errorCode' | 'errorMessage'> & { error: Error | null };

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Who may write a topic here by replication (dr/disaster-recovery.ts): under a one-way or
 * fan-out policy only the topic's primary, at this region's promotion epoch.
 */
export interface ReplicationAdmission {
  admitHandshake(topic: string, sender: string, view: { primary: string; epoch: number } | null): Error | null;
  admitAppend(topic: string, sender: string): Error | null;
}

/** A region cluster's leader path for replicated appends (cluster/georep-leadership.ts). */
export interface TargetLeadership {
  /** Whether this broker leads the partition and may act as its leader now. */
  leads(topic: string, partition: number): boolean;
  /** Null when an append may go ahead (leader, leased, enough in-sync replicas); else the refusal. */
  checkAppend(topic: string, partition: number): MeridianError | null;
  leaderEpochFor(topic: string, partition: number): number | undefined;
  /** Resolves once every in-sync replica holds up to `lastOffset` and this broker still leads at `leaderEpoch`. */
  awaitReplicated(topic: string, partition: number, lastOffset: bigint, leaderEpoch: number | undefined): Promise<void>;
}

export class ReplicationTarget {
  readonly region: string;
  readonly stats: TargetStats = { appendedBatches: 0, appendedBytes: 0, duplicateBatches: 0, loopDroppedBatches: 0, fencedRequests: 0, unauthorizedRequests: 0 };
  #topics: TopicManager;
  #states: ReplicaStates;
  #admission: ReplicationAdmission | undefined;
  #policies: () => readonly Policy[];
  #regions: () => readonly RegionEntry[];
  #log: Logger;
  #refusals: ThrottledLog;
  #leadership: TargetLeadership | undefined;
  #createTopic: ((name: string, partitions: number) => Promise<TopicInfo>) | undefined;
  #growTopic: ((name: string, partitions: number) => Promise<TopicInfo>) | undefined;

  constructor(opts: {
    region: string;
    topics: TopicManager;
    states: ReplicaStates;
    logger: Logger;
    admission?: ReplicationAdmission;
    /** This region's policies now (they change at run time): who may send which topic here. */
    policies: () => readonly Policy[];
    /** The registry's other regions now: the principals they are bound to. */
    regions: () => readonly RegionEntry[];
    /** A region cluster: appends through each partition's leader (see the header). */
    leadership?: TargetLeadership;
    /** A region cluster: a missing topic is created through the controller, not locally. */
    createTopic?: (name: string, partitions: number) => Promise<TopicInfo>;
  }) {
    this.#leadership = opts.leadership;
    this.#createTopic = opts.createTopic;
    this.region = opts.region;
    this.#topics = opts.topics;
    this.#states = opts.states;
    this.#admission = opts.admission;
    this.#policies = opts.policies;
    this.#regions = opts.regions;
    this.#log = opts.logger.child({ component: 'replication-target' });
    this.#refusals = new ThrottledLog(this.#log);
  }

  /**
   * Makes this a region cluster's target (the broker binds it once its replica manager
   * exists, before the listener opens): appends through each partition's leader, topics
   * created through the controller. See the header.
   */
  attachCluster(o: { leadership: TargetLeadership; createTopic?: (name: string, partitions: number) => Promise<TopicInfo>; growTopic?: (name: string, partitions: number) => Promise<TopicInfo> }): void {
    this.#leadership = o.leadership;
    this.#createTopic = o.createTopic;
    this.#growTopic = o.growTopic;
  }

  /**
   * Whether a connection authenticated as `principal` may speak for region `sender`: when
   * the registry binds `sender` to a principal, only that one; and a principal bound to a
   * region speaks for that region only.
   */
  admitSender(sender: string, principal: string): MeridianError | null {
    const bound = this.#regions().find((r) => r.name === sender)?.principal;
    const own = this.#regions().find((r) => r.principal === principal && r.name !== sender);
    if (bound === undefined && own === undefined) return null;
    if (bound !== undefined && bound !== principal) {
      return new MeridianError(ErrorCode.ReplicationUnauthorized, `region ${this.region} takes requests from region ${sender} only over a connection authenticated as ${bound} (replication.regions), not as ${principal}`);
    }
    return own === undefined ? null : new MeridianError(ErrorCode.ReplicationUnauthorized, `${principal} is the principal of region ${own.name} in region ${this.region}'s registry: it cannot send as region ${sender}`);
  }

  /** Logs a refused request (rate-limited per principal, region and reason) and counts it. */
  noteRefused(error: Error, who: { principal: string; clientHost: string; claimedRegion: string; topic?: string; api: string }): void {
    this.stats.unauthorizedRequests++;
    const code = error instanceof MeridianError ? error.code : 'ERROR';
    this.#refusals.warn(`${code} ${who.principal} as ${who.claimedRegion}${who.topic === undefined ? '' : ` for ${who.topic}`}`, { ...who, code, err: error.message }, 'replication request refused');
  }

  /** REPLICATION_UNAUTHORIZED unless this region's policies have `sender` send `topic` here. */
  #checkSource(topic: string, sender: string): MeridianError | null {
    const { policy, senders } = sendersTo(this.#policies(), this.region, topic);
    if (senders.includes(sender)) return null;
    const why =
      policy === undefined
        ? `no replication policy of region ${this.region} covers topic ${topic}`
        : `policy '${policy.name}' (${policy.topology}) has ${senders.length === 0 ? 'no region' : senders.join(', ')} send it to ${this.region}`;
    return new MeridianError(ErrorCode.ReplicationUnauthorized, `region ${this.region} takes topic ${topic} from region ${sender} by no policy: ${why}; nothing was written`);
  }

  async handshake(req: HandshakeRequest): Promise<HandshakeResult> {
    const fail = (error: Error): HandshakeResult => ({ error, region: this.region, partitionCount: -1, partitions: [] });
    if (req.targetRegion !== this.region) return fail(new MeridianError(ErrorCode.ReplicationMisrouted, `this broker serves region ${this.region}, not ${req.targetRegion}: check replication.regions in ${req.senderRegion}'s config`));
    if (req.senderRegion === this.region) return fail(new MeridianError(ErrorCode.ReplicationMisrouted, `region ${req.senderRegion} cannot replicate to itself`));
    const unauthorized = this.#checkSource(req.topic, req.senderRegion);
    if (unauthorized !== null) return fail(unauthorized);
    const fenced = this.#admission?.admitHandshake(req.topic, req.senderRegion, req.dr) ?? null;
    if (fenced !== null) {
      this.stats.fencedRequests++;
      return fail(fenced);
    }
    try {
      let info = this.#topics.getTopic(req.topic);
      if (info === undefined && req.createIfMissing) {
        try {
          info = this.#createTopic !== undefined ? await this.#createTopic(req.topic, req.partitionCount) : await this.#topics.createTopic(req.topic, req.partitionCount);
          this.#log.info({ topic: req.topic, partitions: req.partitionCount, from: req.senderRegion }, 'topic created for replication');
        } catch (err) {
          if (!(err instanceof MeridianError && err.code === ErrorCode.TopicExists)) throw err;
          info = this.#topics.getTopic(req.topic);
        }
      }
      if (info === undefined) return fail(new MeridianError(ErrorCode.UnknownTopic, `topic ${req.topic} does not exist in region ${this.region}`));
      // A region cluster grows it region-wide (etcd, cluster/topic-admin.ts) when it can.
      if (info.partitions < req.partitionCount && req.createIfMissing && (this.#leadership === undefined || this.#growTopic !== undefined)) info = await this.#grow(info.name, req);
      if (info.partitions !== req.partitionCount) {
        return {
          ...fail(
            new MeridianError(
              ErrorCode.InvalidPartitions,
              `topic ${req.topic} has ${req.partitionCount} partitions in region ${req.senderRegion} but ${info.partitions} in region ${this.region}; partition counts must match, nothing is replicated until they do (raise the count in ${info.partitions < req.partitionCount ? `${this.region} (a region cluster's topic is not grown by replication)` : req.senderRegion} with CreatePartitions)`,
            ),
          ),
          partitionCount: info.partitions,
        };
      }
      // The resume points must be durable ones: the sender's retention deletes what they
      // cover. Appends still being synced (fsync mode) finish first.
      const leadership = this.#leadership;
      const answered = await Promise.all(
        this.#topics.partitions(req.topic).map(async (log, partition) => {
          // A region cluster answers for its own leaderships only: the sender asks the
          // other partitions' leaders (a partition left out sends it to Metadata).
          if (leadership !== undefined && !leadership.leads(req.topic, partition)) return null;
          const state = await this.#states.forLog(log);
          const senderCursor = state.table.lastSender(req.senderRegion, req.senderTopicId);
          if (leadership !== undefined) {
            // What the table counts may not be replicated yet: the cursor is answered once it is.
            const end = log.highWatermark;
            if (end > log.logStartOffset) {
              try {
                await leadership.awaitReplicated(req.topic, partition, end - 1n, leadership.leaderEpochFor(req.topic, partition));
              } catch {
                return null;
              }
            }
          } else if (log.options.flushMode === 'fsync' && log.durableOffset < log.highWatermark) await log.flush();
          return { partition, senderCursor };
        }),
      );
      const partitions = answered.filter((p): p is { partition: number; senderCursor: bigint } => p !== null);
      return { error: null, region: this.region, partitionCount: info.partitions, partitions };
    } catch (err) {
      return fail(asError(err));
    }
  }

  /**
   * The sender's topic has more partitions than ours (it grew there with CreatePartitions):
   * grow ours to match, as a missing topic is created, so the link keeps going and the new
   * partitions' records land in the partitions of the same number. Partitions are never
   * removed, so a sender with fewer is refused above instead.
   */
  async #grow(topic: string, req: HandshakeRequest): Promise<TopicInfo> {
    try {
      const grown = this.#growTopic !== undefined ? await this.#growTopic(topic, req.partitionCount) : await this.#topics.addPartitions(topic, req.partitionCount);
      this.#log.info({ topic, partitions: req.partitionCount, from: req.senderRegion }, 'partitions added for replication');
      return grown;
    } catch (err) {
      // Another sender's handshake grew it first (or further): compare with what is there now.
      const now = this.#topics.getTopic(topic);
      if (err instanceof MeridianError && err.code === ErrorCode.InvalidPartitions && now !== undefined) return now;
      throw err;
    }
  }

  /**
   * Validates, dedups and appends; resolves once the offsets are assigned (the connection may
   * go on with its next request), with `done` settling when the append is durable.
   */
  async append(req: AppendRequest): Promise<{ done: Promise<AppendResult> }> {
    const fail = (error: Error) => ({ done: Promise.resolve<AppendResult>({ error, senderCursor: -1n, appendedBatches: 0, duplicateBatches: 0 }) });
    if (req.targetRegion !== this.region) return fail(new MeridianError(ErrorCode.ReplicationMisrouted, `this broker serves region ${this.region}, not ${req.targetRegion}`));
    const log = this.#topics.partition(req.topic, req.partition);
    if (log === undefined) return fail(new MeridianError(ErrorCode.UnknownTopic, `${req.topic}/${req.partition} does not exist in region ${this.region}`));
    const leadership = this.#leadership;
    const notLeading = leadership?.checkAppend(req.topic, req.partition) ?? null;
    if (notLeading !== null) return fail(notLeading);
    try {
      const state = await this.#states.forLog(log);
      // Checked after the last await (and the leadership: it may have moved meanwhile)
      const stillLeading = leadership?.checkAppend(req.topic, req.partition) ?? null;
      if (stillLeading !== null) return fail(stillLeading);
      // Checked after the last await: a promote or policy change that lands while this
      // request waited refuses it, and nothing between here and the append can let it through.
      const unauthorized = this.#checkSource(req.topic, req.senderRegion);
      if (unauthorized !== null) return fail(unauthorized);
      const fenced = this.#admission?.admitAppend(req.topic, req.senderRegion) ?? null;
      if (fenced !== null) {
        this.stats.fencedRequests++;
        return fail(fenced);
      }
      const table = state.table;
      const held = table.lastSender(req.senderRegion, req.senderTopicId);
      if (req.continuesFrom !== NO_CONTINUITY_CHECK && req.continuesFrom !== held) {
        // An earlier request of the sender's pipeline failed (or this region restarted):
        // appending this one would leave a gap. The sender asks where to resume.
        return fail(new MeridianError(ErrorCode.OutOfOrderSequence, `${req.topic}/${req.partition} in ${this.region} holds ${req.senderRegion}'s log up to ${held}, but the request continues from ${req.continuesFrom}`));
      }
      // What this request itself appends, so a batch repeated within it is a duplicate too.
      const pending = new Map<string, bigint>();
      const recordLimits = { maxRecordBytes: log.options.maxBatchBytes, maxUncompressedBytes: log.options.maxUncompressedBatchBytes };
      const runs: Array<{ originRegion: string; originTopicId: string; originPartition: number; hops: readonly string[]; batches: Buffer[]; headers: BatchHeader[]; marked: MarkedBatch[]; senderLast: bigint }> = [];
      let duplicates = 0;
      let looped = 0;
      for (const entry of req.entries) {
        if (entry.originRegion === this.region || entry.hops.includes(this.region)) {
          looped += entry.batches.length;
          duplicates += entry.batches.length;
          continue;
        }
        // senderLast is the entry's last batch, kept or not: entries end on the sender's run
        // boundaries, and that is where the sender may resume.
        const run = { originRegion: entry.originRegion, originTopicId: entry.originTopicId, originPartition: entry.originPartition, hops: entry.hops, batches: [] as Buffer[], headers: [] as BatchHeader[], marked: [] as MarkedBatch[], senderLast: -1n };
        for (const b of entry.batches) {
          const h = validateBatch(b.batch, log.options.maxBatchBytes);
          if (isControlBatch(h)) {
            // Markers are this broker's to write; a sender never forwards control batches.
            throw new MeridianError(ErrorCode.InvalidBatch, `a replicated batch from ${req.senderRegion} (origin offset ${b.originBaseOffset}) is a control batch; only data batches are replicated`);
          }
          // The same record checks as a produce: a region that took a poison batch (an older
          // Meridian, a bug) must not spread it. The maxTimestamp is left as it came, since
          // the marker records the batch's CRC. The refusal is CORRUPT_MESSAGE, INVALID_RECORD
          // or MESSAGE_TOO_LARGE, which the sender treats as permanent: its link goes to error.
          try {
            validateRecords(b.batch, h, recordLimits);
          } catch (err) {
            const e = err as MeridianError;
            throw new MeridianError(e.code, `a replicated batch from ${req.senderRegion} (origin offset ${b.originBaseOffset}) is refused: ${e.message}`, { cause: err });
          }
          run.senderLast = b.senderBaseOffset + BigInt(h.lastOffsetDelta);
          const origin = originKey(entry.originRegion, entry.originTopicId);
          if (b.originBaseOffset <= (pending.get(origin) ?? table.lastOrigin(entry.originRegion, entry.originTopicId))) {
            duplicates++;
            continue;
          }
          pending.set(origin, b.originBaseOffset + BigInt(h.lastOffsetDelta));
          run.batches.push(b.batch);
          run.headers.push(h);
          run.marked.push({ originBaseOffset: b.originBaseOffset, senderBaseOffset: b.senderBaseOffset, crc: h.crc });
        }
        if (run.batches.length > 0) runs.push(run);
      }
      this.stats.duplicateBatches += duplicates - looped;
      this.stats.loopDroppedBatches += looped;
      const kept = runs.reduce((n, r) => n + r.batches.length, 0);
      const answer = (): AppendResult => ({ error: null, senderCursor: table.lastSender(req.senderRegion, req.senderTopicId), appendedBatches: kept, duplicateBatches: duplicates });
      if (runs.length === 0) {
        // Nothing new: the sender may move on (in memory only; after a restart the
        // rebuilt cursor is lower and the sender resends, which dedups again).
        raise(table.senders, originKey(req.senderRegion, req.senderTopicId), req.senderEndOffset);
        if (leadership === undefined || log.highWatermark <= log.logStartOffset) return { done: Promise.resolve(answer()) };
        // The duplicates may be of an append not replicated yet: confirmed once it is.
        const epoch = leadership.leaderEpochFor(req.topic, req.partition);
        return {
          done: leadership.awaitReplicated(req.topic, req.partition, log.highWatermark - 1n, epoch).then(answer, (err: unknown): AppendResult => ({ error: asError(err), senderCursor: -1n, appendedBatches: 0, duplicateBatches: duplicates })),
        };
      }
      const out: Buffer[] = [];
      const headers: BatchHeader[] = [];
      /** Per run, what the table learns once it is appended: what `ReplicaTable.observe` would read back from the log. */
      const learned: Array<{ origin: string; lastOrigin: bigint; senderEndOffset: bigint }> = [];
      let bytes = 0;
      runs.forEach((run, i) => {
        // The last marker also covers what the sender skipped after its last batch.
        const senderEndOffset = i === runs.length - 1 && req.senderEndOffset > run.senderLast ? req.senderEndOffset : run.senderLast;
        const marker = encodeMarker({ originRegion: run.originRegion, originTopicId: run.originTopicId, originPartition: run.originPartition, senderRegion: req.senderRegion, senderTopicId: req.senderTopicId, hops: run.hops, batches: run.marked, senderEndOffset });
        out.push(marker, ...run.batches);
        headers.push(validateBatch(marker), ...run.headers);
        for (const b of run.batches) bytes += b.length;
        const last = run.batches.length - 1;
        learned.push({ origin: originKey(run.originRegion, run.originTopicId), lastOrigin: run.marked[last].originBaseOffset + BigInt(run.headers[last].lastOffsetDelta), senderEndOffset });
      });
      // A cluster's leader stamps its epoch on every batch (the origin's stamp is another
      // region's epoch) and answers once the in-sync replicas hold them.
      const leaderEpoch = leadership?.leaderEpochFor(req.topic, req.partition);
      if (leadership !== undefined && leaderEpoch === undefined) return fail(new MeridianError(ErrorCode.NotLeader, `${req.topic}-${req.partition}: this broker stopped leading it in region ${this.region}`));
      const appended = log.appendValidated(out, headers, leaderEpoch === undefined ? {} : { leaderEpoch });
      // The table as a walk of these batches would leave it (replica-state.ts's observe), taken
      // from the runs just built instead of decoding their markers again: origin offsets rise
      // within a run, so its last batch carries its highest, and each run ends complete.
      const sender = originKey(req.senderRegion, req.senderTopicId);
      for (const l of learned) {
        raise(table.origins, l.origin, l.lastOrigin);
        raise(table.senders, sender, l.senderEndOffset);
      }
      this.stats.appendedBatches += kept;
      this.stats.appendedBytes += bytes;
      return {
        done: (leadership === undefined ? appended.done : appended.done.then(() => leadership.awaitReplicated(req.topic, req.partition, appended.lastOffset, leaderEpoch))).then(answer, (err: unknown): AppendResult => {
          // The table already counted these batches: rebuild it from what the log holds.
          this.#states.invalidate(log);
          return { error: asError(err), senderCursor: -1n, appendedBatches: 0, duplicateBatches: duplicates };
        }),
      };
    } catch (err) {
      const error = asError(err);
      this.#log.warn({ topic: req.topic, partition: req.partition, from: req.senderRegion, err: error.message }, 'replicated append rejected');
      return fail(error);
    }
  }
}
