/**
 * Set-ups more than one scenario uses: writers and checks for a two-region mesh (scenarios 2
 * and 4), small-segment tiered storage and its completion (scenarios 3 and 5).
 */
import { waitFor } from '../../../test/helpers/regions.js';
import { KafkaJsWriter, loop, readWithKafkaJs, readWithKcat } from './clients.js';
import type { DrillContext, WatchedBroker } from './context.js';
import { addVerdicts, Ledger, type Verdict } from './ledger.js';

export interface TierStatus {
  topic: string;
  partition: number;
  remoteEndOffset: string;
  copying: string | null;
  lastError: string | null;
  uploadedSegments: number;
}

export async function tierOf(broker: WatchedBroker, topic: string, partition = 0): Promise<{ tier: TierStatus | undefined; logStartOffset: bigint; highWatermark: bigint; segments: number }> {
  const s = await broker.region.status();
  const tier = (s.tiered as unknown as TierStatus[]).find((t) => t.topic === topic && t.partition === partition);
  const p = s.topics.find((t) => t.name === topic)?.partitions[partition];
  return { tier, logStartOffset: BigInt(p?.logStartOffset ?? 0), highWatermark: BigInt(p?.highWatermark ?? 0), segments: p?.segments ?? 0 };
}

/**
 * Writers for a two-region mesh: in each region, a paced idempotent KafkaJS writer per
 * partition (its own stream), all running until `stop()`; and `burst(region, records)`, which
 * sends that many records at once (batches of 500) through a burst writer of that region, so
 * a fault can be aimed at a moment when the link has a backlog to carry.
 */
export function meshWriters(ctx: DrillContext, brokers: readonly WatchedBroker[], topic: string, partitions: number): { ledger: Ledger; writers: KafkaJsWriter[]; burst: (b: WatchedBroker, records: number) => Promise<void>; stop: () => Promise<void> } {
  const ledger = new Ledger();
  const writers = brokers.flatMap((b) =>
    Array.from({ length: partitions }, (_, p) => new KafkaJsWriter(b.bootstrap, topic, ledger.stream(`${b.region.name}-p${p}`, p, { keyed: true, bytes: 100 }), { batch: 20 })),
  );
  const bursters = new Map(brokers.map((b) => [b, new KafkaJsWriter(b.bootstrap, topic, ledger.stream(`${b.region.name}-burst`, 0, { keyed: true, bytes: 100 }), { batch: 500 })]));
  // One burst at a time per region: a stream's records must be sent in the order they were taken.
  const bursting = new Map<WatchedBroker, Promise<void>>();
  const burst = (b: WatchedBroker, records: number) => {
    const w = bursters.get(b)!;
    const next = (bursting.get(b) ?? Promise.resolve()).then(async () => {
      for (let i = 0; i < records; i += 500) await w.sendNext();
    });
    bursting.set(b, next);
    return next;
  };
  const loops = writers.map((w) => loop(() => w.sendNext(), 50));
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await Promise.all(loops.map((l) => l.stop()));
      await Promise.all(bursting.values());
      await Promise.all([...writers, ...bursters.values()].map((w) => w.close()));
    })());
  ctx.defer(stop);
  return { ledger, writers: [...writers, ...bursters.values()], burst, stop };
}

/**
 * Reads the topic in every region with kcat and checks each against every origin's stream.
 * A record whose produce failed may be absent, but replication must not leave it in one
 * region only: that counts as lost.
 */
export async function checkRegions(ctx: DrillContext, brokers: readonly WatchedBroker[], ledger: Ledger, topic: string): Promise<void> {
  const verdicts: Verdict[] = [];
  for (const b of brokers) {
    const r = await readWithKcat(b.bootstrap, topic);
    if (r.failure) {
      ctx.tally.corrupt++;
      ctx.problem(`${b.region.name}: kcat did not read cleanly to the end: ${r.failure}`);
    }
    verdicts.push(ledger.check(b.region.name, r.records));
  }
  addVerdicts(ctx.tally, verdicts);
  const all = new Set(verdicts.flatMap((v) => [...v.uncertainPresent]));
  verdicts.forEach((v, i) => {
    const missing = [...all].filter((id) => !v.uncertainPresent.has(id));
    if (missing.length === 0) return;
    ctx.tally.lost += missing.length;
    ctx.problem(`${brokers[i].region.name}: ${missing.length} records that another region holds (their produce had failed) never arrived, e.g. ${missing.slice(0, 3).join(', ')}`);
  });
}

/** Small segments, upload on seal, no local copy kept once offloaded, no deletion lag. */
export const TIERED_SMALL = {
  log: { segmentBytes: 64 * 1024, retention: { ms: -1 } },
  tiered: { enabled: true, offload: { onSeal: true }, localRetention: { bytes: 0 }, deletionLagMs: 0, checkIntervalMs: 50, cache: { bytes: 4 * 1024 * 1024, blockBytes: 64 * 1024 } },
} as const;

/**
 * Waits until every sealed segment is in the store and its local copy gone (one local
 * segment left, starting where the store's run ends). Offsets below `storeOnly` are then
 * readable from the store alone.
 */
export async function offloadComplete(broker: WatchedBroker, topic: string, timeoutMs = 60_000): Promise<{ storeOnly: bigint; highWatermark: bigint }> {
  let last = '';
  try {
    return await waitFor(
      'the offload to complete',
      async () => {
        const s = await tierOf(broker, topic);
        last = JSON.stringify({ ...s, logStartOffset: String(s.logStartOffset), highWatermark: String(s.highWatermark) });
        const done = s.tier && s.tier.lastError === null && s.tier.copying === null && s.segments === 1 && BigInt(s.tier.remoteEndOffset) === s.logStartOffset;
        return done ? { storeOnly: s.logStartOffset, highWatermark: s.highWatermark } : undefined;
      },
      timeoutMs,
      100,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status ${last}`);
  }
}

/**
 * kcat and KafkaJS each read the whole topic; a reader that does not reach the end is a
 * corrupt read, and the ledger checks what each returned (with `earlier` verdicts of the same
 * records, so one lost record seen twice counts once).
 */
export async function checkWithBothClients(ctx: DrillContext, bootstrap: string, topic: string, ledger: Ledger, earlier: readonly Verdict[] = []): Promise<void> {
  const reads = [['kcat', await readWithKcat(bootstrap, topic)], ['KafkaJS', await readWithKafkaJs(bootstrap, topic)]] as const;
  for (const [who, r] of reads) {
    if (r.failure) {
      ctx.tally.corrupt++;
      ctx.problem(`${who} did not read cleanly to the end: ${r.failure}`);
    }
  }
  addVerdicts(ctx.tally, [...earlier, ...reads.map(([who, r]) => ledger.check(who, r.records))]);
}
