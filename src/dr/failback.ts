/**
 * Failback: the old primary of a DR topic returns after another region was promoted, and
 * rejoins the new primary's history without losing what only it held.
 *
 * Run in the old primary. It asks the topic's other regions (DrProbe) which one is the
 * primary at a newer epoch and how much of this region's records it holds, per partition.
 * Everything after that in this region's log is the *divergent tail*: records this region
 * acknowledged that never reached the new primary.
 *
 *   dry run   lists the tail per partition: count, offset range, time range. Changes nothing.
 *   confirm   1. persists the plan (phase `failing-back`, the new primary and epoch, where
 *                each partition is cut, the side topic): from here producers are refused and
 *                no region's data is admitted;
 *             2. copies each partition's tail, batch by batch and byte for byte, to the side
 *                topic `<topic>.diverged-<region>-e<epoch>` (same partition), resuming after
 *                what an earlier attempt copied;
 *             3. truncates each partition at its cut (storage: PartitionLog.truncateTo),
 *                each partition's tail (count, offsets, times) saved with the plan before the
 *                first cut, so that a failback resumed after a cut reports it;
 *             4. adopts the new primary and epoch (phase `following`), only over its own
 *                `failing-back` entry: the new primary's handshake is admitted and its
 *                records replicate here; the report is saved.
 *
 * A crash anywhere leaves either no plan (nothing changed) or the plan, which the same
 * command completes without asking the peer again: the copy resumes from the side topic's
 * end, and a truncation already done is a no-op. Switching back later is one more
 * `promote` here.
 *
 * On a region cluster (failback-cluster.ts) the same plan is carried out region-wide: the
 * dry run measures from the asked broker's replicas; confirm reads each tail from the
 * partition's leader, produces it (acks=all) to the side topic's partition leader, resuming
 * after the side partition's replicated end, and cuts the partition on its leader and every
 * replica (ClusterNode.truncatePartition). The `following` write is made only over this
 * failback's own `failing-back` entry and carries the cuts, the epoch each cut left its
 * partition at and when the cuts were done: every coordinator of the region answers and
 * rewrites its groups' stale commits past the cuts by that (failback-clamp.ts,
 * disaster-recovery.ts), whenever it holds the entry or loads an offsets partition.
 */
import fs from 'node:fs';
import { ErrorCode, MeridianError } from '../errors.js';
import { PartitionFiles } from '../storage/partition-files.js';
import { fromRemoteKafkaError } from '../protocol/kafka/error-mapping.js';
import type { RegionEntry } from '../replication/policy.js';
import { isControlBatch, lastOffsetOf, storedBatches, validateBatch, type BatchHeader } from '../storage/record-batch.js';
import type { PartitionLog } from '../storage/partition-log.js';
import { isMarkerBatch } from '../replication/marker.js';
import { RemoteBrokers } from './remote-brokers.js';
import { DrApiKey, readProbeResponse, writeProbeRequest, type ProbeResponse } from './dr-api.js';
import type { DisasterRecovery } from './disaster-recovery.js';
import { sameRole, type TopicDrEntry } from './dr-state.js';
import { failbackAccess, failbackOnCluster, grantCommands } from './failback-cluster.js';
import type { FailbackCuts } from './failback-clamp.js';
import { reportId, type DivergentPartition, type FailbackReport } from './recovery-report.js';

const SCAN_BYTES = 1024 * 1024;

interface Plan {
  newPrimary: string;
  newEpoch: number;
  sideTopic: string;
  cuts: Record<string, string>;
  /**
   * Each partition's tail as found before the first cut, saved with the plan: after a crash
   * past a cut that tail is only in the side topic, and the resumed failback reports this.
   * A single broker saves every partition's at once; a region cluster saves each partition's
   * right before cutting it (only those with records), so it may hold some.
   */
  tails?: DivergentPartition[];
}

/** The side topic a failback preserves `topic`'s divergent tail in. */
export function sideTopicName(topic: string, region: string, epoch: number): string {
  return `${topic}.diverged-${region}-e${epoch}`;
}

export async function failback(dr: DisasterRecovery, topic: string, opts: { confirm: boolean; requestTimeoutMs: number; regions: readonly RegionEntry[] }): Promise<FailbackReport> {
  const info = dr.topics.getTopic(topic);
  if (info === undefined) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${topic} does not exist in region ${dr.region}`);
  const role = dr.roleOf(topic);
  if (role === undefined) throw new MeridianError(ErrorCode.InvalidDrRequest, `topic ${topic} is not under a one-way or fan-out policy in region ${dr.region}: there is nothing to fail back`);
  const entry = role.entry;
  if (entry?.phase === 'failing-back' && dr.state.regionWide && dr.clusterOps === undefined) throw clusterConfirmRefused(topic, entry.epoch);
  if (entry?.phase === 'failing-back') {
    // A failback that a crash interrupted: finish it with its own plan.
    return execute(dr, topic, entry.failback as Plan, entry.at, opts.requestTimeoutMs);
  }
  if (entry?.phase === 'following' && entry.reportId !== undefined && dr.reports.has(entry.reportId) && !opts.confirm) {
    const done = dr.reports.get(entry.reportId) as FailbackReport;
    return done;
  }
  const peers = role.policy.regions.filter((r) => r !== dr.region);
  const probes: Array<{ region: string; res: ProbeResponse }> = [];
  const unreachable: string[] = [];
  for (const region of peers) {
    const entry = opts.regions.find((r) => r.name === region);
    if (entry === undefined) continue;
    try {
      probes.push({ region, res: await probe(dr, entry, { targetRegion: region, senderRegion: dr.region, topic, senderTopicId: info.id }, opts.requestTimeoutMs) });
    } catch (err) {
      unreachable.push(`${region} (${(err as Error).message})`);
    }
  }
  const ahead = probes.filter((p) => p.res.primary === p.region && p.res.epoch > role.epoch).sort((a, b) => b.res.epoch - a.res.epoch)[0];
  if (ahead === undefined) {
    if (unreachable.length > 0) throw new MeridianError(ErrorCode.InvalidDrRequest, `failback of ${topic} needs the new primary: cannot reach ${unreachable.join(', ')}; nothing was changed`);
    if (entry?.phase === 'following' && entry.reportId !== undefined && dr.reports.has(entry.reportId)) return dr.reports.get(entry.reportId) as FailbackReport;
    throw new MeridianError(ErrorCode.InvalidDrRequest, `no region was promoted past epoch ${role.epoch} for ${topic} (primary ${role.primary}): there is nothing to fail back`);
  }
  const plan: Plan = { newPrimary: ahead.region, newEpoch: ahead.res.epoch, sideTopic: sideTopicName(topic, dr.region, ahead.res.epoch), cuts: {} };
  const logs = dr.topics.partitions(topic);
  for (const [partition, log] of logs.entries()) {
    const entry = ahead.res.partitions.find((p) => p.partition === partition);
    const held = entry?.heldOriginOffset ?? -1n;
    if (held + 1n > log.highWatermark) {
      throw new MeridianError(
        ErrorCode.InvalidDrRequest,
        `${topic}/${partition}: ${ahead.region} holds this region's records up to offset ${held}, past this region's end ${log.highWatermark}: this region lost data; restore it before failing back`,
      );
    }
    // The cut: the first record of this log the new primary does not hold, whatever its
    // origin (the old primary's own records, or, in another copy, records of the old primary
    // the new one never received).
    const index = await dr.indexOf(topic, partition);
    const translated = index.translate(new Map(entry?.origins ?? []));
    if (translated < index.stats().exactFrom) {
      // Below the index's exact part the answer is conservative (earlier): cutting there
      // would drop records the new primary holds and never sends back to their origin.
      throw new MeridianError(
        ErrorCode.InvalidDrRequest,
        `${topic}/${partition}: the divergence point lies below what the origin index keeps exactly (offset ${index.stats().exactFrom}); failback refuses to cut at an approximate point. Nothing was changed`,
      );
    }
    const cut = await runStart(log, translated);
    plan.cuts[String(partition)] = String(cut > log.logStartOffset ? cut : log.logStartOffset);
  }
  const at = Date.now();
  if (!opts.confirm) return report(dr, topic, plan, at, true, await tails(dr, topic, plan));
  if (dr.state.regionWide && dr.clusterOps === undefined) throw clusterConfirmRefused(topic, plan.newEpoch);
  // On a cluster the tail is produced to the side topic (a single broker appends it to its
  // log directly): a DR policy whose pattern makes it a read-only copy here would refuse it.
  const sideRefused = dr.state.regionWide ? dr.checkWritable(plan.sideTopic) : null;
  if (sideRefused !== null) {
    throw new MeridianError(ErrorCode.InvalidDrRequest, `failback of ${topic} on a region cluster writes its divergent tail to ${plan.sideTopic} with Produce, which this region refuses: ${sideRefused.message}. Exclude ${plan.sideTopic} from that policy's topics and run the failback again; nothing was changed`);
  }
  // On a cluster the copy runs over the Kafka port as the in-region principal: with
  // authorization on, it needs Read here and Write on the side topic (failback-cluster.ts).
  const access = dr.state.regionWide ? dr.clusterOps?.missingAccess(failbackAccess(topic, plan.sideTopic)) : null;
  if (access && access.missing.length > 0) {
    throw new MeridianError(
      ErrorCode.InvalidDrRequest,
      `failback of ${topic} on a region cluster reads ${topic} and writes its divergent tail to ${plan.sideTopic} over the Kafka port as ${access.principal} (the principal of replication.sasl / replication.tls, as the followers use), which may not: it lacks ${access.missing.map((m) => `${m.operation} on topic ${m.topic}`).join(' and ')} (ClusterAction does not cover them). Grant them (${grantCommands(access.principal, access.missing)}) and run the failback again; nothing was changed`,
    );
  }
  await dr.state.update(topic, (cur) => {
    // A peer's newer epoch noted during the probes is what this failback adopts anyway (that
    // marking may also have created the entry of a topic that had none: same primary and
    // epoch); another operation meanwhile (a promote here, another failback) is not, and
    // neither is a primary newer than the one this failback follows.
    const was = { primary: entry?.primary ?? role.primary, epoch: entry?.epoch ?? role.epoch };
    const now = { primary: cur?.primary ?? role.primary, epoch: cur?.epoch ?? role.epoch };
    const busy = (e: typeof cur) => e?.phase === 'promoting' || e?.phase === 'failing-back';
    const changed = was.primary !== now.primary || was.epoch !== now.epoch || (busy(cur) && !sameRole(cur, entry)) || (cur?.supersededBy?.epoch ?? -1) > plan.newEpoch;
    if (changed) throw new MeridianError(ErrorCode.InvalidDrRequest, `the DR role of ${topic} changed while this failback was planned: nothing was changed; run it again`, { retriable: true });
    return { primary: plan.newPrimary, epoch: plan.newEpoch, phase: 'failing-back', at, failback: plan };
  });
  dr.log.info({ topic, newPrimary: plan.newPrimary, epoch: plan.newEpoch, sideTopic: plan.sideTopic }, 'failing back: producers refused, divergent tail being preserved');
  return execute(dr, topic, plan, at, opts.requestTimeoutMs);
}

async function execute(dr: DisasterRecovery, topic: string, plan: Plan, at: number, requestTimeoutMs: number): Promise<FailbackReport> {
  const ops = dr.clusterOps;
  if (dr.state.regionWide && ops !== undefined) {
    const done = await failbackOnCluster(topic, plan, {
      ops,
      clientId: `meridian-failback-${dr.region}`,
      requestTimeoutMs,
      partitionTimeoutMs: Math.max(30_000, requestTimeoutMs),
      partitions: dr.topics.partitions(topic).length,
      saveTail: (tail) => saveTail(dr, topic, plan, tail),
    });
    // Every cut is done: from here the `following` entry tells every coordinator which
    // commits past a cut are stale (failback-clamp.ts).
    const cuts: FailbackCuts = { sideTopic: plan.sideTopic, cuts: plan.cuts, leaderEpochs: done.leaderEpochs, completedAt: Date.now() };
    return follow(dr, topic, plan, at, done.partitions, cuts);
  }
  const logs = dr.topics.partitions(topic);
  for (const log of logs) await log.flush();
  // Producers and replication are refused since the plan was saved, so the tails cannot
  // change before the cuts: measured once, saved before anything is cut.
  const found = plan.tails?.length === logs.length ? plan.tails.map((t) => ({ ...t })) : await tails(dr, topic, plan);
  if (plan.tails?.length !== logs.length) {
    const saved: Plan = { ...plan, tails: found.map((t) => ({ ...t })) };
    await dr.state.update(topic, (cur) => {
      if (!ownFailback(cur, plan)) throw new MeridianError(ErrorCode.InvalidDrRequest, `the DR role of ${topic} changed during its failback: nothing was cut; run it again`, { retriable: true });
      return { ...cur!, failback: saved };
    });
  }
  if (found.some((t) => BigInt(t.records) > 0n) && dr.topics.getTopic(plan.sideTopic) === undefined) {
    try {
      // Kept until an operator deletes it: the tail may be older than any retention.
      await dr.topics.createTopic(plan.sideTopic, logs.length, { retentionMs: -1, retentionBytes: -1 });
    } catch (err) {
      if (!(err instanceof MeridianError && err.code === ErrorCode.TopicExists)) throw err;
    }
  }
  for (const [partition, log] of logs.entries()) {
    const cut = BigInt(plan.cuts[String(partition)]);
    const tail = found[partition];
    if (BigInt(tail.records) > 0n) tail.preservedAt = await preserve(dr, plan.sideTopic, partition, log, cut);
    // Closed first (close waits for a snapshot under way), so no snapshot of the old history
    // is written after the cut.
    await dr.dropIndex(log);
    await dr.topics.truncatePartition(topic, partition, cut);
    // The index snapshot describes the history before the cut: rebuilt from the log.
    fs.rmSync(PartitionFiles.originIndex(log.dir), { force: true });
    // Commits here past the cut point into records that are gone (or, later, into others).
    await dr.groups.clampOffsets(topic, partition, cut);
  }
  return follow(dr, topic, plan, at, found);
}

/**
 * A region cluster's failback saves each partition's tail with its plan right before that
 * partition is cut (failback-cluster.ts), only over this failback's own entry.
 */
async function saveTail(dr: DisasterRecovery, topic: string, plan: Plan, tail: DivergentPartition): Promise<void> {
  await dr.state.update(topic, (cur) => {
    if (!ownFailback(cur, plan)) throw new MeridianError(ErrorCode.InvalidDrRequest, `the DR role of ${topic} changed during its failback: partition ${tail.partition} was not cut; check \`meridian dr status\` and run the failback again`, { retriable: true });
    const was = cur!.failback as Plan;
    const kept = (was.tails ?? []).filter((t) => t.partition !== tail.partition);
    return { ...cur!, failback: { ...was, tails: [...kept, { ...tail }].sort((a, b) => a.partition - b.partition) } };
  });
}

/**
 * The last step: adopt the new primary (phase `following`) with the report, only over this
 * failback's own `failing-back` entry (another operation meanwhile, e.g. a promote through
 * another broker of a cluster, is not overwritten: nothing is written, retriable).
 */
async function follow(dr: DisasterRecovery, topic: string, plan: Plan, at: number, found: DivergentPartition[], cuts?: FailbackCuts): Promise<FailbackReport> {
  const r = report(dr, topic, plan, at, false, found);
  await dr.state.update(topic, (cur) => {
    if (!ownFailback(cur, plan)) {
      throw new MeridianError(ErrorCode.InvalidDrRequest, `the DR role of ${topic} changed while this failback ran (now ${cur === undefined ? 'no entry' : `${cur.phase} at epoch ${cur.epoch}, primary ${cur.primary}`}): the failback was not completed; nothing was written. Check \`meridian dr status\` and run the failback again`, { retriable: true });
    }
    return { primary: plan.newPrimary, epoch: plan.newEpoch, phase: 'following', at, reportId: r.id, ...(cuts === undefined ? {} : { failback: cuts }) };
  }, r);
  dr.log.info({ topic, newPrimary: plan.newPrimary, epoch: plan.newEpoch, preservedRecords: r.totals.records, sideTopic: plan.sideTopic, report: r.id }, 'failed back: following the new primary');
  return r;
}

/** Whether `entry` is the `failing-back` entry `plan`'s failback wrote (same new primary, epoch and side topic). */
export function ownFailback(entry: TopicDrEntry | undefined, plan: Pick<Plan, 'newPrimary' | 'newEpoch' | 'sideTopic'>): boolean {
  return entry?.phase === 'failing-back' && entry.epoch === plan.newEpoch && entry.primary === plan.newPrimary && (entry.failback as Plan | undefined)?.sideTopic === plan.sideTopic;
}

/** A region cluster whose broker has no handle on the cluster (a test's injected replication): nothing to cut with. */
function clusterConfirmRefused(topic: string, epoch: number): MeridianError {
  return new MeridianError(
    ErrorCode.InvalidDrRequest,
    `failback --confirm of ${topic} needs this broker's region cluster (etcd), which it is not attached to; nothing was changed. The dry run lists the divergent tail; to take writes here again, promote this region past epoch ${epoch} instead (\`meridian dr promote --topic ${topic}\`)`,
  );
}

function report(dr: DisasterRecovery, topic: string, plan: Plan, at: number, dryRun: boolean, partitions: DivergentPartition[]): FailbackReport {
  return {
    kind: 'failback',
    id: reportId('failback', topic, plan.newEpoch),
    topic,
    region: dr.region,
    newPrimary: plan.newPrimary,
    epoch: plan.newEpoch,
    dryRun,
    sideTopic: plan.sideTopic,
    at: new Date(at).toISOString(),
    partitions,
    totals: { records: String(partitions.reduce((n, p) => n + BigInt(p.records), 0n)) },
    completed: !dryRun,
  };
}

/** Each partition's divergent tail: what lies at or past its cut. */
async function tails(dr: DisasterRecovery, topic: string, plan: Plan): Promise<DivergentPartition[]> {
  const out: DivergentPartition[] = [];
  for (const [partition, log] of dr.topics.partitions(topic).entries()) {
    const cut = BigInt(plan.cuts[String(partition)]);
    let records = 0n;
    let first: bigint | null = null;
    let last: bigint | null = null;
    let tsFirst: bigint | null = null;
    let tsLast: bigint | null = null;
    await walk(log, cut, (_buf, h) => {
      if (isControlBatch(h)) return; // markers hold no records
      records += BigInt(h.lastOffsetDelta) + 1n;
      first ??= h.baseOffset;
      last = lastOffsetOf(h);
      tsFirst ??= h.baseTimestamp;
      tsLast = h.maxTimestamp > (tsLast ?? -1n) ? h.maxTimestamp : tsLast;
    });
    out.push({
      partition,
      truncateAt: String(cut),
      records: String(records),
      offsets: first === null ? null : { first: String(first), last: String(last) },
      timestamps: tsFirst === null ? null : { first: new Date(Number(tsFirst)).toISOString(), last: new Date(Number(tsLast)).toISOString() },
    });
  }
  return out;
}

/**
 * Copies the batches of `log` from `cut` to the end into the side topic's partition,
 * verbatim, skipping what an earlier attempt already copied (the side partition's end counts
 * the records copied: whole batches, in order).
 */
async function preserve(dr: DisasterRecovery, sideTopic: string, partition: number, log: PartitionLog, cut: bigint): Promise<{ first: string; last: string } | null> {
  const side = dr.topics.partition(sideTopic, partition);
  if (side === undefined) throw new MeridianError(ErrorCode.UnknownTopic, `side topic ${sideTopic}/${partition} is missing`);
  const start = side.highWatermark;
  let copied = 0n;
  const pending: Buffer[] = [];
  const headers: BatchHeader[] = [];
  const flush = async () => {
    if (pending.length === 0) return;
    await side.appendValidated(pending.splice(0), headers.splice(0), { sync: true }).done;
  };
  let bytes = 0;
  await walk(log, cut, async (buf, h) => {
    if (isControlBatch(h)) return;
    const span = BigInt(h.lastOffsetDelta) + 1n;
    if (copied + span <= start) {
      copied += span;
      return;
    }
    copied += span;
    const copy = Buffer.from(buf);
    pending.push(copy);
    headers.push(validateBatch(copy));
    bytes += copy.length;
    if (bytes >= 4 * 1024 * 1024) {
      bytes = 0;
      await flush();
    }
  });
  await flush();
  await side.flush();
  return side.highWatermark > 0n ? { first: '0', last: String(side.highWatermark - 1n) } : null;
}

/** `offset`, or the offset of the marker right before it when a replicated run starts there. */
async function runStart(log: PartitionLog, offset: bigint): Promise<bigint> {
  if (offset <= log.logStartOffset || offset > log.highWatermark) return offset;
  const r = await log.read(offset - 1n, 1, { upTo: offset });
  const before = storedBatches(r.records).find((b) => lastOffsetOf(b.h) === offset - 1n);
  return before !== undefined && isMarkerBatch(before.buf, before.h) ? before.h.baseOffset : offset;
}

async function walk(log: PartitionLog, from: bigint, visit: (buf: Buffer, h: BatchHeader) => void | Promise<void>): Promise<void> {
  let offset = from;
  const end = log.highWatermark;
  while (offset < end) {
    const r = await log.read(offset, SCAN_BYTES, { upTo: end });
    const batches = storedBatches(r.records);
    if (batches.length === 0) break;
    for (const { buf, h } of batches) {
      if (lastOffsetOf(h) < offset) continue;
      await visit(buf, h);
      offset = lastOffsetOf(h) + 1n;
    }
  }
}

/**
 * Asks `entry`'s region what it holds of `req.topic`: any broker of a region cluster answers
 * (the bootstrap address in use first, then the others while one cannot be reached, as the
 * data links walk them: remote-brokers.ts).
 */
async function probe(dr: DisasterRecovery, entry: RegionEntry, req: { targetRegion: string; senderRegion: string; topic: string; senderTopicId: string }, timeoutMs: number): Promise<ProbeResponse> {
  const remote = new RemoteBrokers({ entry, security: dr.linkSecurityTo(entry), clientId: `meridian-failback-${req.senderRegion}`, requestTimeoutMs: timeoutMs, logger: dr.log });
  try {
    const res = readProbeResponse(await remote.request(DrApiKey.Probe, 0, (w) => writeProbeRequest(w, req)));
    if (res.errorCode !== 0) throw fromRemoteKafkaError(res.errorCode, res.errorMessage, `region ${req.targetRegion}`);
    return res;
  } finally {
    remote.close();
  }
}
