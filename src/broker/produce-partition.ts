/**
 * What a Produce request does to one partition: split the records blob into batches,
 * validate them, run the idempotence check, append, and wait for the durability the acks
 * asked for. Wire-independent: the Kafka handler decodes and encodes around it.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import { toKafkaError } from '../protocol/kafka/error-mapping.js';
import type { PartitionLog } from '../storage/partition-log.js';
import { Attributes, isControlBatch, LOG_OVERHEAD, readBatchHeader, setMaxTimestamp, stampLogAppendTime } from '../storage/record-batch.js';
import { RecordValidationError, validateRecords } from '../storage/record-validator.js';
import type { ProducerStates } from './producer-states.js';

export interface ProduceOutcome {
  errorCode: number;
  errorMessage: string | null;
  baseOffset: bigint;
  logStartOffset: bigint;
  /** The broker time stamped on the batches of a LogAppendTime topic; -1 for CreateTime. */
  logAppendTimeMs: bigint;
  /** The records to blame for a refused batch (Produce v8+ record_errors): index in the batch. */
  recordErrors: Array<{ batchIndex: number; batchIndexErrorMessage: string | null }>;
}

export interface ProduceOptions {
  /** Wait for fdatasync (acks=-1 in fsync mode). */
  sync: boolean;
  /** The topic's message.timestamp.type is LogAppendTime: the broker's clock stamps each batch. */
  logAppendTime?: boolean;
  /** The broker clock, for LogAppendTime (tests pin it). */
  now?: () => number;
  /**
   * Asked right before the append, after every await: an error refuses the batch (a DR copy,
   * or a failback that began while this request waited for the producer state).
   */
  mayAppend?: () => MeridianError | null;
  /**
   * Region clusters (src/cluster): the leader epoch stamped on the batches, asked right
   * after `mayAppend` passed (undefined: none, as on a single broker).
   */
  leaderEpoch?: () => number | undefined;
  /**
   * Region clusters, acks=all: settles once the in-sync replicas hold everything up to
   * `lastOffset` (the high watermark passed it); rejects with the error to answer. Asked
   * after the append is as durable as `sync` says, and for a duplicate's original batches.
   */
  replicated?: (lastOffset: bigint) => Promise<void>;
  /**
   * Region clusters: asked right before a success is answered (after the append is as
   * durable as asked, and replicated for acks=all), with the leader epoch `leaderEpoch`
   * gave (undefined for a duplicate's answer). An error is answered instead: the broker
   * stopped leading meanwhile, and the record stays in the log unacknowledged.
   */
  mayAnswer?: (leaderEpoch: number | undefined) => MeridianError | null;
}

/** Splits a produce request's records into whole batches; throws on a malformed blob. */
export function splitBatches(records: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let p = 0;
  while (p < records.length) {
    if (records.length - p < LOG_OVERHEAD) throw new MeridianError(ErrorCode.CorruptBatch, `${records.length - p} stray bytes after the last record batch`);
    const size = records.readInt32BE(p + 8) + LOG_OVERHEAD;
    if (size <= LOG_OVERHEAD || p + size > records.length) {
      throw new MeridianError(ErrorCode.CorruptBatch, `record batch at byte ${p} declares ${size} bytes but ${records.length - p} remain`);
    }
    out.push(records.subarray(p, p + size));
    p += size;
  }
  if (out.length === 0) throw new MeridianError(ErrorCode.CorruptBatch, 'produce request carries no record batch');
  return out;
}

/**
 * Appends one partition's records. `sync` waits for fdatasync (acks=-1 in fsync mode).
 * Never throws: every failure becomes the Kafka error code for that partition.
 */
export async function producePartition(log: PartitionLog, states: ProducerStates, records: Buffer | null, opts: ProduceOptions): Promise<ProduceOutcome> {
  return (await beginProducePartition(log, states, records, opts)).done;
}

/**
 * The two phases of producePartition: resolves once the batches have their offsets (the
 * order-sensitive part, after which the connection may handle its next request), with
 * `done` settling when the append is as durable as `sync` asks.
 */
export async function beginProducePartition(log: PartitionLog, states: ProducerStates, records: Buffer | null, opts: ProduceOptions): Promise<{ done: Promise<ProduceOutcome> }> {
  const { sync, logAppendTime = false, now = Date.now } = opts;
  // Wrapped in an object: an async function returning a bare promise would wait for it.
  const failed = (err: unknown): ProduceOutcome => {
    const e = toKafkaError(err);
    // Kafka's record_errors name the record a batch was refused for; there is one batch per
    // partition in what clients send, so the index is the record's index in that batch.
    const recordErrors = err instanceof RecordValidationError && err.recordIndex !== null ? [{ batchIndex: err.recordIndex, batchIndexErrorMessage: e.message }] : [];
    return { errorCode: e.code, errorMessage: e.message, baseOffset: -1n, logStartOffset: log.logStartOffset, logAppendTimeMs: -1n, recordErrors };
  };
  const fail = (err: MeridianError) => ({ done: Promise.resolve(failed(err)) });
  try {
    if (records === null) return fail(new MeridianError(ErrorCode.CorruptBatch, 'produce request has null records'));
    const batches = splitBatches(records);
    const headers = log.validate(batches);
    if (headers.some(isControlBatch)) {
      // Control batches are the broker's own (Kafka refuses them from clients too); one from
      // a client could pose as a replication marker.
      return fail(new MeridianError(ErrorCode.InvalidBatch, 'control batches cannot be produced by clients'));
    }
    // Every record is walked before anything is written or any producer state moves: a batch
    // whose CRC is right but whose records are not would stop every consumer of the partition.
    const limits = { maxRecordBytes: log.options.maxBatchBytes, maxUncompressedBytes: log.options.maxUncompressedBatchBytes };
    const maxTimestamps = batches.map((b, i) => validateRecords(b, headers[i], limits).maxTimestamp);
    // As Kafka's LogValidator: a LogAppendTime topic stamps the broker's time on every batch;
    // otherwise the stored maxTimestamp is the records' true maximum, which offset-for-time
    // lookups and time retention rely on.
    const appendTime = logAppendTime ? BigInt(now()) : -1n;
    batches.forEach((b, i) => {
      if (logAppendTime) {
        stampLogAppendTime(b, appendTime);
        headers[i] = readBatchHeader(b);
      } else if (maxTimestamps[i] !== headers[i].maxTimestamp && (headers[i].attributes & Attributes.timestampTypeLogAppend) === 0) {
        setMaxTimestamp(b, maxTimestamps[i]);
        headers[i] = readBatchHeader(b);
      }
    });
    const idempotent = headers.some((h) => h.producerId >= 0n);
    const state = idempotent ? await states.forLog(log) : undefined;
    if (state) {
      // One batch per partition per request is what both clients send; with several, the
      // first decides (a duplicate request repeats all of them).
      const verdict = state.check(headers[0]);
      if (verdict.kind === 'error') return fail(verdict.error);
      if (verdict.kind === 'duplicate') {
        // Kafka answers a duplicate with the original offsets and no error (never 46), once
        // the original is as durable as this request asks.
        const ok: ProduceOutcome = { errorCode: 0, errorMessage: null, baseOffset: verdict.baseOffset, logStartOffset: log.logStartOffset, logAppendTimeMs: -1n, recordErrors: [] };
        const answer = (r: ProduceOutcome): ProduceOutcome => {
          const refusedNow = r.errorCode === 0 ? (opts.mayAnswer?.(undefined) ?? null) : null;
          return refusedNow === null ? r : failed(refusedNow);
        };
        const durable = verdict.pending ? verdict.pending.then(() => ok, failed) : Promise.resolve(ok);
        const replicated = opts.replicated;
        if (replicated === undefined) return { done: durable.then(answer) };
        const last = verdict.baseOffset + headers.reduce((n, h) => n + BigInt(h.lastOffsetDelta) + 1n, 0n) - 1n;
        return { done: durable.then((r) => (r.errorCode !== 0 ? r : replicated(last).then(() => answer(r), failed))) };
      }
      for (let i = 1; i < headers.length; i++) {
        const v = state.check(headers[i]);
        if (v.kind === 'error') return fail(v.error);
      }
    }
    const refused = opts.mayAppend?.() ?? null;
    if (refused !== null) return fail(refused);
    const leaderEpoch = opts.leaderEpoch?.();
    const pending = log.appendValidated(batches, headers, leaderEpoch === undefined ? { sync } : { sync, leaderEpoch });
    if (state) {
      let base = pending.baseOffset;
      for (const h of headers) {
        const last = base + BigInt(h.lastOffsetDelta);
        state.update(h, base, last, Date.now(), pending.done);
        base = last + 1n;
      }
    }
    const replicated = opts.replicated;
    const mayAnswer = opts.mayAnswer;
    // The last check before a success goes out: leadership may have moved during the waits.
    const answer = (ok: ProduceOutcome): ProduceOutcome => {
      const refusedNow = mayAnswer?.(leaderEpoch) ?? null;
      return refusedNow === null ? ok : failed(refusedNow);
    };
    return {
      done: pending.done.then(
        (r): ProduceOutcome | Promise<ProduceOutcome> => {
          const ok: ProduceOutcome = { errorCode: 0, errorMessage: null, baseOffset: pending.baseOffset, logStartOffset: log.logStartOffset, logAppendTimeMs: appendTime, recordErrors: [] };
          return replicated === undefined ? answer(ok) : replicated(r.lastOffset).then(() => answer(ok), failed);
        },
        failed,
      ),
    };
  } catch (err) {
    return { done: Promise.resolve(failed(err)) };
  }
}
