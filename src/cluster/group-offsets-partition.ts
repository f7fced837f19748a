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
 * are refused with NOT_COORDINATOR.
 *
 * Appends (acks=all): the batch goes through producePartition with the replica manager's
 * checks (leader, leased, ISR at least min.insync.replicas), stamped with the leader epoch,
 * and is answered once the high watermark passes it and this broker still leads at that
 * epoch; only then is it applied in memory, in log order (appends are begun one at a time,
 * so offsets follow call order, and applied strictly in that order whatever order their
 * replication completes in), so a fetch never shows an offset a failover could take back.
 * A failed append is not applied; its record may still be in the log (a timed-out one that
 * replicates later), and a later load replays it, as Kafka's does.
 */
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import type { ProducerStates } from '../broker/producer-states.js';
import { beginProducePartition } from '../broker/produce-partition.js';
import { decodeFrames, encodeRecord, RecordType, type GroupMetadataValue, type OffsetRecord } from '../broker/groups/offset-record.js';
import { applyOffsetRecord, type CommittedOffset, type GroupOffsets } from '../broker/groups/offset-store.js';
import { kafkaCode } from '../protocol/kafka/error-mapping.js';
import type { PartitionLog } from '../storage/partition-log.js';
import { decodeStoredRecords, encodeBatch, isControlBatch, lastOffsetOf, storedBatches } from '../storage/record-batch.js';
import type { ReplicaManager } from './replica-manager.js';
import { OFFSETS_TOPIC } from './group-offsets-topic.js';


interface Slot {
  readonly record: OffsetRecord;
  outcome: MeridianError | null | undefined;
  readonly resolve: () => void;
  readonly reject: (err: MeridianError) => void;
}

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
  readonly logger?: Logger;
}

export class OffsetsPartition {
  readonly partition: number;
  readonly leaderEpoch: number;
  readonly #o: OffsetsPartitionOptions;
  readonly #offsets = new Map<string, GroupOffsets>();
  readonly #generations = new Map<string, GroupMetadataValue>();
  #loaded = false;
  #closed = false;
  /** Appends begin one at a time: their offsets follow call order. */
  #beginTail: Promise<unknown> = Promise.resolve();
  /** Appends in log order, applied from the front as they settle. */
  readonly #slots: Slot[] = [];
  #records = 0;

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

  /**
   * Replays the partition from its log start to its end as it is now (this broker just
   * became leader: nothing else appends). Resolves with the number of records replayed;
   * throws when closed meanwhile (leadership moved on) or the log cannot be read.
   */
  async load(): Promise<number> {
    const log = this.#o.log;
    const end = log.highWatermark; // the local log's written end
    let offset = log.logStartOffset;
    let replayed = 0;
    while (offset < end) {
      if (this.#closed) throw this.#notCoordinator('stopped leading it while loading');
      const r = await log.read(offset, 1024 * 1024, { upTo: end });
      if (r.records.length === 0) break;
      for (const { buf, h } of storedBatches(r.records)) {
        if (!isControlBatch(h)) {
          for (const rec of decodeStoredRecords(buf)) {
            if (rec.offset < offset || rec.offset >= end || rec.value === null) continue;
            const { records } = decodeFrames(rec.value);
            for (const record of records) this.#apply(record);
            replayed++;
          }
        }
        offset = lastOffsetOf(h) + 1n;
      }
    }
    if (this.#closed) throw this.#notCoordinator('stopped leading it while loading');
    this.#loaded = true;
    return replayed;
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
    const rm = this.#o.replicaManager;
    const p = this.partition;
    return new Promise<void>((resolve, reject) => {
      const slot: Slot = { record, outcome: undefined, resolve, reject };
      const begun = this.#beginTail.then(() =>
        beginProducePartition(this.#o.log, this.#o.producerStates, batch, {
          sync: this.#o.sync,
          mayAppend: () => (this.#closed ? this.#notCoordinator('no longer leads it') : rm.checkProduce(OFFSETS_TOPIC, p, -1)),
          leaderEpoch: () => rm.leaderEpochFor(OFFSETS_TOPIC, p),
          replicated: (last) => rm.awaitReplicated(OFFSETS_TOPIC, p, last, this.#o.commitTimeoutMs),
          mayAnswer: (epoch) =>
            this.#closed
              ? this.#notCoordinator('no longer leads it')
              : epoch !== undefined && epoch !== this.leaderEpoch
                ? this.#notCoordinator(`the leader epoch moved from ${this.leaderEpoch}`)
                : rm.checkAnswer(OFFSETS_TOPIC, p, epoch),
        }),
      );
      // Pushed before the next append begins: the slots are in offset order.
      this.#beginTail = begun.then(
        () => undefined,
        () => undefined,
      );
      this.#slots.push(slot);
      begun.then(
        ({ done }) =>
          done.then(
            (outcome) => this.#settle(slot, outcome.errorCode === 0 ? null : this.#appendFailure(outcome.errorCode, outcome.errorMessage)),
            (err: unknown) => this.#settle(slot, this.#appendFailure(-1, String(err))),
          ),
        (err: unknown) => this.#settle(slot, this.#appendFailure(-1, String(err))),
      );
    });
  }

  get(groupId: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.#offsets.get(groupId)?.get(topic)?.get(partition);
  }

  offsetsOf(groupId: string): ReadonlyMap<string, ReadonlyMap<number, CommittedOffset>> | undefined {
    return this.#offsets.get(groupId);
  }

  hasGroup(groupId: string): boolean {
    return this.#offsets.has(groupId);
  }

  hasTopic(topic: string): boolean {
    for (const topics of this.#offsets.values()) if (topics.has(topic)) return true;
    return false;
  }

  groupIds(): string[] {
    return [...this.#offsets.keys()];
  }

  generationOf(groupId: string): GroupMetadataValue | undefined {
    return this.#generations.get(groupId);
  }

  /** Committed partitions held (for stats). */
  partitionCount(): number {
    let n = 0;
    for (const topics of this.#offsets.values()) for (const parts of topics.values()) n += parts.size;
    return n;
  }

  #settle(slot: Slot, outcome: MeridianError | null): void {
    slot.outcome = outcome;
    while (this.#slots.length > 0 && this.#slots[0]!.outcome !== undefined) {
      const s = this.#slots.shift()!;
      if (s.outcome === null) {
        this.#apply(s.record);
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
        return new MeridianError(ErrorCode.NotCoordinator, `${detail}; find the coordinator again`);
    }
  }

  #notCoordinator(why: string): MeridianError {
    return new MeridianError(ErrorCode.NotCoordinator, `this broker ${why}: ${this.#name()} (leader epoch ${this.leaderEpoch}); find the coordinator again`);
  }

  #name(): string {
    return `${OFFSETS_TOPIC}-${this.partition}`;
  }

  #apply(record: OffsetRecord): void {
    this.#records++;
    applyOffsetRecord(this.#offsets, record);
    switch (record.type) {
      case RecordType.DeleteGroup:
        this.#generations.delete(record.groupId);
        break;
      case RecordType.GroupMetadata: {
        const known = this.#generations.get(record.groupId);
        // Never backwards: a late record of an older generation changes nothing.
        if (known === undefined || record.generationId >= known.generationId) {
          this.#generations.set(record.groupId, { generationId: record.generationId, protocolType: record.protocolType, protocolName: record.protocolName, leader: record.leader });
        }
        break;
      }
    }
  }
}
