/**
 * One partition of `__meridian_offsets` led by this broker: the committed offsets and group
 * generations it holds, in memory, and the append of new records through the leader's
 * normal produce path (Kafka's GroupMetadataManager for one partition).
 *
 * Records: each offset-store record (offset-record.ts: COMMIT, DELETE_TOPIC, DELETE_GROUP,
 * DELETE_OFFSETS, GROUP_METADATA) is the value of one Kafka record, keyed by its group id
 * (the topic name for DELETE_TOPIC), one record per batch. A COMMIT holds a whole
 * OffsetCommit request, so a request is committed all or nothing, as in Kafka.
 *
 * Lifecycle: built when this broker becomes leader of the partition (at a leader epoch);
 * `load()` replays the log from its start to its end before anything is served (requests
 * meanwhile get COORDINATOR_LOADING); `close()` when leadership ends, after which appends
 * are refused with NOT_COORDINATOR. When this broker leads again at a new epoch, the closed
 * object's last appends may have their offsets but not be written yet: the load first waits
 * for the log to write everything assigned (a flush), so it replays to the true log end.
 *
 * Appends (acks=all): the batch goes through producePartition with the replica manager's
 * checks (leader, leased, ISR at least min.insync.replicas), stamped with the leader epoch,
 * and is answered once the high watermark passes it and this broker still leads at that
 * epoch; only then is it applied in memory, in log order (appends are begun one at a time,
 * so offsets follow call order, and applied strictly in that order whatever order their
 * replication completes in), so a fetch never shows an offset a failover could take back.
 * A failed append is not applied; its record may still be in the log (a timed-out one that
 * replicates later), and a later load replays it, as Kafka's does.
 *
 * Compaction (group-offsets-checkpoint.ts; src/cluster/README.md): besides the state it
 * serves (acknowledged records), the partition keeps the state of everything written to its
 * log, updated in the step that begins each append. When the log from its start holds at
 * least `compactionBytes` and twice what a checkpoint of the state takes, an append enqueues
 * a CHECKPOINT behind itself: in its turn (no append between its batches), it takes the
 * written state and appends it; once the in-sync replicas hold all of it, the served state
 * becomes that snapshot (the later appends then apply on top, in log order) and the log start
 * moves to the checkpoint's first offset, as DeleteRecords moves it (followers follow). One
 * checkpoint at a time; nothing runs while no commit arrives.
 *
 * A checkpoint's batches begin back to back, each waiting for the in-sync replicas from its
 * own start: each is given the commit timeout plus the time its bytes and those before it
 * take at `checkpointReplicationBytesPerSec` (a large checkpoint must be able to finish). A
 * failed one left what it appended in the log, so the next attempt comes only after
 * max(compactionBytes, 2 × its size) more bytes, doubled after each further failure (up to
 * 64×): a checkpoint that cannot be replicated costs a shrinking share of the log, and holds
 * up the appends behind it ever more rarely.
 */
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import type { ProducerStates } from '../broker/producer-states.js';
import { beginProducePartition, type ProduceOutcome } from '../broker/produce-partition.js';
import { encodeRecord, RecordType, type GroupMetadataValue, type OffsetRecord } from '../broker/groups/offset-record.js';
import type { CommittedOffset } from '../broker/groups/offset-store.js';
import { kafkaCode } from '../protocol/kafka/error-mapping.js';
import type { PartitionLog } from '../storage/partition-log.js';
import { encodeBatch } from '../storage/record-batch.js';
import type { ReplicaManager } from './replica-manager.js';
import { OFFSETS_TOPIC } from './group-offsets-topic.js';
import { applyToState, checkpointBatches, checkpointBytes, copyState, DEFAULT_CHECKPOINT_CHUNK_BYTES, emptyState, replayOffsetsLog, type GroupsState } from './group-offsets-checkpoint.js';

interface Slot {
  /** Applies the acknowledged append to the served state. */
  readonly apply: () => void;
  outcome: MeridianError | null | undefined;
  readonly resolve: () => void;
  readonly reject: (err: MeridianError) => void;
}

/** One turn of the append chain: what it began, settling with the error to answer (null: acknowledged). */
type Begun = { readonly done: Promise<MeridianError | null> };

export interface OffsetsPartitionOptions {
  readonly partition: number;
  readonly leaderEpoch: number;
  readonly log: PartitionLog;
  readonly replicaManager: ReplicaManager;
  readonly producerStates: ProducerStates;
  /** Log flush mode `fsync`: the leader fdatasyncs the batch before it counts. */
  readonly sync: boolean;
  /** How long an append waits for the in-sync replicas (Kafka offsets.commit.timeout.ms, 5 s). */
  readonly commitTimeoutMs: number;
  /**
   * Compaction (cluster.offsetsCompactionBytes): a checkpoint is written once the log from its
   * start holds this many bytes and twice what a checkpoint takes. Undefined: never.
   */
  readonly compactionBytes?: number;
  /** Largest value of one checkpoint record (tests make it small to get several batches). */
  readonly checkpointChunkBytes?: number;
  /**
   * The slowest replication a checkpoint is waited for: each of its batches may take the
   * commit timeout plus its bytes and those before it at this rate (default 1 MiB/s).
   */
  readonly checkpointReplicationBytesPerSec?: number;
  readonly logger?: Logger;
}

/** The slowest replication a checkpoint is waited for unless the options say otherwise. */
const DEFAULT_CHECKPOINT_REPLICATION_BYTES_PER_SEC = 1024 * 1024;

/** Failed checkpoints in a row double the gap before the next at most this many times (64×). */
const MAX_CHECKPOINT_BACKOFF_DOUBLINGS = 6;

export class OffsetsPartition {
  readonly partition: number;
  readonly leaderEpoch: number;
  readonly #o: OffsetsPartitionOptions;
  /** What is served: the records acknowledged, applied in log order. */
  #served: GroupsState = emptyState();
  /** Everything written to the log (acknowledged or not), in log order: what a checkpoint holds. */
  #written: GroupsState = emptyState();
  #loaded = false;
  #closed = false;
  /** Appends begin one at a time: their offsets follow call order. */
  #beginTail: Promise<unknown> = Promise.resolve();
  /** Appends in log order, applied from the front as they settle. */
  readonly #slots: Slot[] = [];
  #records = 0;
  /** Bytes of the log from its start, counting appends as they are enqueued. */
  #logBytes = 0;
  /** `#logBytes` at which the next checkpoint is written. */
  #nextCheckpointAt = Number.POSITIVE_INFINITY;
  #checkpointing = false;
  #checkpoints = 0;
  /** Checkpoints failed in a row: the next attempt waits twice as long after each. */
  #checkpointFailures = 0;

  constructor(o: OffsetsPartitionOptions) {
    this.#o = o;
    this.partition = o.partition;
    this.leaderEpoch = o.leaderEpoch;
  }

  get loaded(): boolean {
    return this.#loaded && !this.#closed;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Records applied since the load began (replayed ones included). */
  get records(): number {
    return this.#records;
  }

  /** Checkpoints completed (the log start moved) since the load. */
  get checkpoints(): number {
    return this.#checkpoints;
  }

  /** Bytes of the log from its start, as this leader counts them. */
  get logBytes(): number {
    return this.#logBytes;
  }

  /**
   * Replays the partition from its log start to its end as it is now (this broker just
   * became leader: nothing else appends). Resolves with the number of records replayed;
   * throws when closed meanwhile (leadership moved on) or the log cannot be read.
   */
  async load(): Promise<number> {
    // Everything assigned an offset written first: a previous leader object of this broker
    // (an earlier epoch) may have begun appends that are not on disk yet, and a replay that
    // stopped before them would leave them out of the state its checkpoints summarise.
    await this.#o.log.flush();
    if (this.#closed) throw this.#notCoordinator('stopped leading it while loading');
    const { records, bytes } = await replayOffsetsLog(
      this.#o.log,
      this.#served,
      (record) => {
        this.#records++;
        applyToState(this.#served, record);
      },
      () => {
        if (this.#closed) throw this.#notCoordinator('stopped leading it while loading');
      },
    );
    this.#written = copyState(this.#served);
    this.#logBytes = bytes;
    if (this.#o.compactionBytes !== undefined) this.#nextCheckpointAt = this.#checkpointThreshold(checkpointBytes(this.#served, this.#chunkBytes()));
    this.#loaded = true;
    return records;
  }

  /** Stops serving: appends still waiting settle on their own (the replica manager fails them). */
  close(): void {
    this.#closed = true;
  }

  /** Appends `record` with acks=all; resolves once replicated and applied here. */
  append(record: OffsetRecord): Promise<void> {
    if (!this.loaded) return Promise.reject(this.#closed ? this.#notCoordinator('no longer leads it') : new MeridianError(ErrorCode.CoordinatorLoading, `${this.#name()} is still being loaded`));
    const key = record.type === RecordType.DeleteTopic ? record.topic : record.groupId;
    const batch = encodeBatch({ records: [{ key: Buffer.from(key, 'utf8'), value: encodeRecord(record) }] });
    const log = this.#o.log;
    const appended = this.#enqueue(
      () => {
        this.#records++;
        applyToState(this.#served, record);
      },
      async () => {
        const end = log.logEndOffset;
        const begun = await this.#begin(batch);
        // Written (it has an offset): the checkpoint state follows the log, whatever the
        // outcome; a refused append left the log as it was.
        if (log.logEndOffset > end) applyToState(this.#written, record);
        return { done: begun.done.then((o) => this.#outcome(o)) };
      },
    );
    this.#logBytes += batch.length;
    this.#maybeCheckpoint();
    return appended;
  }

  get(groupId: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.#served.offsets.get(groupId)?.get(topic)?.get(partition);
  }

  /**
   * Whether the log may hold offsets of the group that a deletion must cancel: served ones,
   * or ones only written (an unacknowledged commit that replicated later), which the next
   * checkpoint would serve.
   */
  holdsGroupOffsets(groupId: string): boolean {
    return this.#served.offsets.has(groupId) || this.#written.offsets.has(groupId);
  }

  /** Whether a DELETE_GROUP has anything to delete: offsets or a generation, served or only written. */
  holdsGroup(groupId: string): boolean {
    return this.holdsGroupOffsets(groupId) || this.#served.generations.has(groupId) || this.#written.generations.has(groupId);
  }

  /** Whether a DELETE_OFFSETS of this partition has anything to delete (served or only written). */
  holdsOffset(groupId: string, topic: string, partition: number): boolean {
    return this.get(groupId, topic, partition) !== undefined || this.#written.offsets.get(groupId)?.get(topic)?.has(partition) === true;
  }

  /** Whether a DELETE_TOPIC has anything to delete here (served or only written). */
  holdsTopic(topic: string): boolean {
    if (this.hasTopic(topic)) return true;
    for (const topics of this.#written.offsets.values()) if (topics.has(topic)) return true;
    return false;
  }

  offsetsOf(groupId: string): ReadonlyMap<string, ReadonlyMap<number, CommittedOffset>> | undefined {
    return this.#served.offsets.get(groupId);
  }

  hasGroup(groupId: string): boolean {
    return this.#served.offsets.has(groupId);
  }

  hasTopic(topic: string): boolean {
    for (const topics of this.#served.offsets.values()) if (topics.has(topic)) return true;
    return false;
  }

  groupIds(): string[] {
    return [...this.#served.offsets.keys()];
  }

  generationOf(groupId: string): GroupMetadataValue | undefined {
    return this.#served.generations.get(groupId);
  }

  /** Committed partitions held (for stats). */
  partitionCount(): number {
    let n = 0;
    for (const topics of this.#served.offsets.values()) for (const parts of topics.values()) n += parts.size;
    return n;
  }

  /**
   * Queues one turn of the append chain: `step` runs once every earlier turn has begun (its
   * offsets follow theirs) and says what it began; `apply` runs once it and every earlier
   * append settled, in log order, if it was acknowledged.
   */
  #enqueue(apply: () => void, step: () => Promise<Begun>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const slot: Slot = { apply, outcome: undefined, resolve, reject };
      const begun = this.#beginTail.then(step);
      // Pushed before the next append begins: the slots are in offset order.
      this.#beginTail = begun.then(
        () => undefined,
        () => undefined,
      );
      this.#slots.push(slot);
      begun.then(
        ({ done }) =>
          done.then(
            (outcome) => this.#settle(slot, outcome),
            (err: unknown) => this.#settle(slot, this.#appendFailure(-1, String(err))),
          ),
        (err: unknown) => this.#settle(slot, this.#appendFailure(-1, String(err))),
      );
    });
  }

  /**
   * Begins the acks=all append of one batch through the produce path (one turn of the
   * chain), waiting `timeoutMs` (the commit timeout by default) for the in-sync replicas.
   */
  #begin(batch: Buffer, timeoutMs = this.#o.commitTimeoutMs): Promise<{ done: Promise<ProduceOutcome> }> {
    const rm = this.#o.replicaManager;
    const p = this.partition;
    return beginProducePartition(this.#o.log, this.#o.producerStates, batch, {
      sync: this.#o.sync,
      mayAppend: () => (this.#closed ? this.#notCoordinator('no longer leads it') : rm.checkProduce(OFFSETS_TOPIC, p, -1)),
      leaderEpoch: () => rm.leaderEpochFor(OFFSETS_TOPIC, p),
      replicated: (last) => rm.awaitReplicated(OFFSETS_TOPIC, p, last, timeoutMs),
      mayAnswer: (epoch) =>
        this.#closed
          ? this.#notCoordinator('no longer leads it')
          : epoch !== undefined && epoch !== this.leaderEpoch
            ? this.#notCoordinator(`the leader epoch moved from ${this.leaderEpoch}`)
            : rm.checkAnswer(OFFSETS_TOPIC, p, epoch),
    });
  }

  #outcome(o: ProduceOutcome): MeridianError | null {
    return o.errorCode === 0 ? null : this.#appendFailure(o.errorCode, o.errorMessage);
  }

  /** Enqueues a checkpoint behind the append just enqueued when the log has grown enough. */
  #maybeCheckpoint(): void {
    if (this.#checkpointing || this.#closed || this.#logBytes < this.#nextCheckpointAt) return;
    this.#checkpointing = true;
    // Everything enqueued so far lies before the checkpoint: what moving the start drops.
    const bytesBefore = this.#logBytes;
    const log = this.#o.log;
    let snapshot: GroupsState | undefined;
    let first = -1n;
    // What the whole checkpoint takes (the spacing of the next one follows it) and what of it
    // was appended (what the log grew by, when a refusal cut it short).
    let size = 0;
    const started = Date.now();
    const rate = this.#o.checkpointReplicationBytesPerSec ?? DEFAULT_CHECKPOINT_REPLICATION_BYTES_PER_SEC;
    this.#enqueue(
      () => {
        // The state at the checkpoint's position, which a replay from it rebuilds; the
        // appends after it apply on top in log order.
        this.#served = snapshot!;
      },
      async () => {
        // Taken in this turn of the chain, after every earlier append has begun and before
        // any later one: no live commit is overwritten by an older value.
        const state = copyState(this.#written);
        const batches = checkpointBatches(state, this.#chunkBytes());
        size = batches.reduce((n, b) => n + b.length, 0);
        const dones: Array<Promise<ProduceOutcome>> = [];
        let appended = 0;
        for (const batch of batches) {
          const end = log.logEndOffset;
          // Begun back to back, each waits from its own start: for the commit timeout plus
          // the time its bytes and those before it take at the slowest rate waited for.
          const begun = await this.#begin(batch, this.#o.commitTimeoutMs + Math.ceil(((appended + batch.length) * 1000) / rate));
          dones.push(begun.done);
          if (log.logEndOffset === end) break; // refused: the rest would only be a partial checkpoint too
          appended += batch.length;
          this.#logBytes += batch.length;
        }
        snapshot = state;
        const complete = dones.length === batches.length;
        return {
          done: Promise.all(dones).then((outcomes) => {
            const failed = outcomes.find((o) => o.errorCode !== 0);
            if (failed !== undefined) return this.#outcome(failed);
            if (!complete) return this.#notCoordinator('could not append the whole checkpoint');
            first = outcomes[0]!.baseOffset;
            return null;
          }),
        };
      },
    ).then(
      () => this.#moveLogStart(first, bytesBefore, size, started),
      (err: unknown) => {
        // Its records may be in the log: harmless, each repeats a value the log already had.
        const retryAfter = this.#checkpointFailed(size);
        this.#o.logger?.warn({ err, topic: OFFSETS_TOPIC, partition: this.partition, checkpointBytes: size, failures: this.#checkpointFailures, retryAfterBytes: retryAfter, ms: Date.now() - started }, 'offsets checkpoint not acknowledged; tried again after more commits');
        this.#checkpointing = false;
      },
    );
  }

  /**
   * After a checkpoint the in-sync replicas hold: the log starts at its first offset, as
   * DeleteRecords moves it on a cluster's leader (followers follow the leader's log start).
   */
  async #moveLogStart(first: bigint, bytesBefore: number, size: number, started: number): Promise<void> {
    try {
      if (this.#closed) return;
      const hw = this.#o.replicaManager.deletableBefore(OFFSETS_TOPIC, this.partition);
      if (first > hw) throw new MeridianError(ErrorCode.OffsetOutOfRange, `the checkpoint at ${first} is past the replicated high watermark ${hw}`);
      const from = this.#o.log.logStartOffset;
      await this.#o.log.deleteRecordsBefore(first);
      this.#logBytes -= bytesBefore;
      this.#nextCheckpointAt = this.#checkpointThreshold(size);
      this.#checkpointFailures = 0;
      this.#checkpoints++;
      this.#o.logger?.info({ topic: OFFSETS_TOPIC, partition: this.partition, logStartOffset: String(first), from: String(from), checkpointBytes: size, groups: this.#served.offsets.size, ms: Date.now() - started }, 'offsets partition compacted: a checkpoint of its groups, the log start moved to it');
    } catch (err) {
      const retryAfter = this.#checkpointFailed(size);
      this.#o.logger?.warn({ err, topic: OFFSETS_TOPIC, partition: this.partition, failures: this.#checkpointFailures, retryAfterBytes: retryAfter }, 'the log start of the offsets partition was not moved to its checkpoint; tried again after more commits');
    } finally {
      this.#checkpointing = false;
    }
  }

  /**
   * After a failed checkpoint of `size` bytes (what it left in the log stays there): the next
   * is tried after max(compactionBytes, 2 × size) more bytes, doubled for each failure in a
   * row up to 64×. Returns that gap.
   */
  #checkpointFailed(size: number): number {
    this.#checkpointFailures++;
    const gap = Math.max(this.#o.compactionBytes ?? 0, 2 * size) * 2 ** Math.min(this.#checkpointFailures - 1, MAX_CHECKPOINT_BACKOFF_DOUBLINGS);
    this.#nextCheckpointAt = this.#logBytes + gap;
    return gap;
  }

  /** The log size from its start past which a checkpoint of `checkpointSize` bytes is written. */
  #checkpointThreshold(checkpointSize: number): number {
    return Math.max(this.#o.compactionBytes ?? Number.POSITIVE_INFINITY, 2 * checkpointSize);
  }

  #chunkBytes(): number {
    // A checkpoint batch must pass the log's batch limit with room for the batch header.
    return Math.max(1024, Math.min(this.#o.checkpointChunkBytes ?? DEFAULT_CHECKPOINT_CHUNK_BYTES, Math.floor(this.#o.log.options.maxBatchBytes / 2)));
  }

  #settle(slot: Slot, outcome: MeridianError | null): void {
    slot.outcome = outcome;
    while (this.#slots.length > 0 && this.#slots[0]!.outcome !== undefined) {
      const s = this.#slots.shift()!;
      if (s.outcome === null) {
        s.apply();
        s.resolve();
      } else {
        s.reject(s.outcome!);
      }
    }
  }

  /**
   * What a failed append means for the group request, as Kafka's GroupMetadataManager maps
   * the produce error: too few in-sync replicas or a timeout is COORDINATOR_NOT_AVAILABLE
   * (retry later), a leadership change NOT_COORDINATOR (find the coordinator again), a record
   * too large INVALID_COMMIT_OFFSET_SIZE.
   */
  #appendFailure(kafkaErrorCode: number, message: string | null): MeridianError {
    const detail = `${this.#name()}: ${message ?? `Kafka error ${kafkaErrorCode}`}`;
    switch (kafkaErrorCode) {
      case kafkaCode('NOT_ENOUGH_REPLICAS'):
      case kafkaCode('NOT_ENOUGH_REPLICAS_AFTER_APPEND'):
      case kafkaCode('REQUEST_TIMED_OUT'):
      case kafkaCode('UNKNOWN_TOPIC_OR_PARTITION'):
        return new MeridianError(ErrorCode.CoordinatorUnavailable, `the commit was not replicated to enough in-sync replicas in time (${detail}); retry`);
      case kafkaCode('MESSAGE_TOO_LARGE'):
      case kafkaCode('RECORD_LIST_TOO_LARGE'):
        return new MeridianError(ErrorCode.CommitTooLarge, detail);
      default:
        // This object's own refusal (#notCoordinator, through mayAppend or mayAnswer) already
        // names the partition and says what to do.
        if (kafkaErrorCode === kafkaCode('NOT_COORDINATOR') && message !== null) return new MeridianError(ErrorCode.NotCoordinator, message);
        return new MeridianError(ErrorCode.NotCoordinator, `${detail}; find the coordinator again`);
    }
  }

  #notCoordinator(why: string): MeridianError {
    return new MeridianError(ErrorCode.NotCoordinator, `this broker ${why}: ${this.#name()} (leader epoch ${this.leaderEpoch}); find the coordinator again`);
  }

  #name(): string {
    return `${OFFSETS_TOPIC}-${this.partition}`;
  }
}
