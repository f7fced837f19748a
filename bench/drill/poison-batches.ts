/**
 * Scenario 7: poison batches. Mutated record batches with valid CRCs (bench/drill/poison-
 * cases.ts) go to one partition in raw Produce requests, pipelined on two connections; each
 * is accepted or refused. Then KafkaJS and kcat each consume the partition to its end, with a
 * deadline: both must get there, and read exactly the records of the accepted batches as
 * they decode (decodeRecords of src/storage/record-batch.ts is the oracle), nothing else,
 * nothing twice.
 *
 * Counted as corrupt reads: an accepted batch whose records cannot be decoded at all (no
 * consumer can read it as produced), an accepted batch with a stale CRC or a wrong length,
 * every record a consumer returned that differs from the oracle or belongs to no accepted
 * batch, every accepted record a consumer skipped before the point it reached, and each
 * consumer that got stuck. The lost column stays 0 here: nothing a producer was promised
 * is involved, only what the broker let in.
 */
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { kafkaErrorByCode } from '../../src/protocol/kafka/error-codes.js';
import type { ProduceResponse } from '../../src/protocol/kafka/messages/produce.js';
import { computeBatchCrc, LOG_OVERHEAD, readBatchHeader, type DecodedRecord } from '../../src/storage/record-batch.js';
import { decodeResponse, RawClient } from '../../test/helpers/raw-kafka.js';
import { freePort, Region } from '../../test/helpers/regions.js';
import { expectedRecords, PoisonGenerator, type PoisonCase } from './poison-cases.js';
import { createTopic, type ReadResult, readWithKafkaJs, readWithKcat } from './shared/clients.js';
import type { DrillContext, Scenario } from './shared/context.js';

const TOPIC = 'drill-poison';
const WINDOW = 64;
const CONNECTIONS = 2;

type Outcome = { errorCode: number; baseOffset: bigint } | 'unknown';

export const poisonBatches: Scenario = {
  name: 'poison',
  title: '7. Poison batches',
  what: 'one broker; mutated RecordBatch v2 batches (bit flips and random bytes in the records, varints replaced, overlong or unterminated, records cut short or extended, attribute bits, count fields; 1 in 6 gzip, mutated inside or in the compressed stream; CRC recomputed except for a few stale-CRC controls) sent as raw acks=-1 Produce requests; then KafkaJS and kcat consume the partition to the end (deadline: KafkaJS no progress for 15 s, kcat 60 s in all). Faults = cases sent; acknowledged = records in accepted batches.',
  async run(ctx: DrillContext): Promise<void> {
    const total = Number(process.env.DRILL_POISON_CASES ?? 100_000);
    const region = new Region('drill-poison', await freePort(), `${ctx.dir}/data`, { logging: { level: 'warn' }, topics: { autoCreate: false } });
    const broker = ctx.watch(region);
    ctx.defer(() => broker.stop());
    await broker.start();
    await createTopic(broker.bootstrap, TOPIC, 1);

    const gen = new PoisonGenerator(ctx.random);
    const cases = Array.from({ length: total }, () => gen.next());
    const t0 = performance.now();
    const outcomes = await sendAll(region.port, cases);
    ctx.tally.faults = total;
    const sendSeconds = (performance.now() - t0) / 1000;

    const refusals = new Map<string, number>();
    const accepted: Array<{ c: PoisonCase; base: bigint }> = [];
    let unknown = 0;
    outcomes.forEach((o, i) => {
      if (o === 'unknown') unknown++;
      else if (o.errorCode === 0) accepted.push({ c: cases[i], base: o.baseOffset });
      else {
        const name = kafkaErrorByCode(o.errorCode)?.name ?? String(o.errorCode);
        refusals.set(name, (refusals.get(name) ?? 0) + 1);
      }
    });
    if (unknown > 0) ctx.problem(`${unknown} requests got no answer (the connection closed); whatever they stored is unaccounted for`);
    accepted.sort((a, b) => (a.base < b.base ? -1 : 1));

    // The oracle: offset -> record for decodable accepted batches; offset ranges of the rest.
    const expected = new Map<number, DecodedRecord>();
    const poisonRanges: Array<[number, number]> = [];
    const acceptedPoison = new Map<string, number>();
    for (let i = 0; i < accepted.length; i++) {
      const { c, base } = accepted[i];
      const end = i + 1 < accepted.length ? Number(accepted[i + 1].base) : Number(base) + readBatchHeader(c.batch).lastOffsetDelta + 1;
      const recs = expectedRecords(c.batch, base);
      ctx.tally.acknowledged += recs?.length ?? Math.max(0, readBatchHeader(c.batch).recordCount);
      const undecodable = recs === null;
      // A case meant to carry a stale CRC or a wrong batchLength is uncheckable only if it
      // really does: for gzip cases the "wrong" length is set before compression and can
      // land on the compressed batch's true length, which makes a valid batch.
      const uncheckable = (/stale CRC/.test(c.kind) && computeBatchCrc(c.batch) !== readBatchHeader(c.batch).crc) || (/wrong batchLength/.test(c.kind) && c.batch.readInt32BE(8) + LOG_OVERHEAD !== c.batch.length);
      if (undecodable || uncheckable) {
        poisonRanges.push([Number(base), end]);
        ctx.tally.corrupt++;
        const why = `${c.kind}${undecodable ? ', undecodable' : ''}`;
        acceptedPoison.set(why, (acceptedPoison.get(why) ?? 0) + 1);
        continue;
      }
      for (const r of recs) expected.set(Number(r.offset), r);
    }
    for (const [why, n] of acceptedPoison) ctx.problem(`accepted ${n} poison batch(es) no consumer can read as produced: ${why}`);

    ctx.log(`${total} cases in ${sendSeconds.toFixed(1)} s: ${accepted.length} accepted, ${total - accepted.length - unknown} refused; reading back`);
    const readers: Array<[string, ReadResult]> = [
      ['kcat', await readWithKcat(broker.bootstrap, TOPIC, 60_000)],
      ['KafkaJS', await readWithKafkaJs(broker.bootstrap, TOPIC, 15_000)],
    ];
    let worstCorrupt = 0;
    let worstDuplicates = 0;
    for (const [who, r] of readers) {
      const v = compare(who, r, expected, poisonRanges);
      worstCorrupt = Math.max(worstCorrupt, v.corrupt);
      worstDuplicates = Math.max(worstDuplicates, v.duplicates);
      for (const p of v.problems) ctx.problem(p);
      if (r.failure) {
        ctx.tally.corrupt++;
        ctx.problem(`${who} did not read cleanly to the end: ${r.failure}`);
      }
    }
    ctx.tally.corrupt += worstCorrupt;
    ctx.tally.duplicates += worstDuplicates;
    const refused = [...refusals].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
    ctx.tally.notes.push(`${total} cases (${(total / sendSeconds).toFixed(0)}/s): ${accepted.length} accepted, ${total - accepted.length - unknown} refused (${refused}); ${[...acceptedPoison.values()].reduce((a, b) => a + b, 0)} accepted batches unreadable`);
  },
};

/** Sends every case as its own Produce v7 request, WINDOW in flight per connection. */
async function sendAll(port: number, cases: readonly PoisonCase[]): Promise<Outcome[]> {
  const outcomes: Outcome[] = new Array(cases.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      let c = await RawClient.connect(port);
      const inFlight: number[] = [];
      try {
        while (next < cases.length || inFlight.length > 0) {
          while (inFlight.length < WINDOW && next < cases.length) {
            const i = next++;
            c.send(c.frame(ApiKey.Produce, 7, { transactionalId: null, acks: -1, timeoutMs: 30_000, topicData: [{ name: TOPIC, partitionData: [{ index: 0, records: cases[i].batch }] }] }, i + 1));
            inFlight.push(i);
          }
          const frame = await c.next(60_000);
          if (frame === null) {
            for (const i of inFlight.splice(0)) outcomes[i] = 'unknown';
            c = await RawClient.connect(port);
            continue;
          }
          const { correlationId, body } = decodeResponse<ProduceResponse>(ApiKey.Produce, 7, frame);
          const i = inFlight.shift()!;
          if (correlationId !== i + 1) throw new Error(`response ${correlationId} arrived where ${i + 1} was due`);
          const p = body.responses[0].partitionResponses[0];
          outcomes[i] = { errorCode: p.errorCode, baseOffset: p.baseOffset };
        }
      } finally {
        c.close();
      }
    }),
  );
  return outcomes;
}

/**
 * KafkaJS groups headers by name, so they are compared sorted by name (stable within one).
 * kcat prints header names as C strings, cut at the first NUL byte, so for kcat the
 * expected names are cut there too: a display limit of the client, not of the data.
 */
function sameHeaders(a: Array<[string, Buffer | null]>, b: Array<{ key: string; value: Buffer | null }>, cNames: boolean): boolean {
  const norm = (xs: Array<[string, Buffer | null]>) => JSON.stringify([...xs].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)).map(([k, v]) => [k, v?.toString('hex') ?? null]));
  return norm(a) === norm(b.map((h) => [cNames ? h.key.split('\0')[0] : h.key, h.value]));
}

function sameBytes(a: Buffer | null, b: Buffer | null): boolean {
  return a === null || b === null ? a === b : a.equals(b);
}

function compare(who: string, r: ReadResult, expected: ReadonlyMap<number, DecodedRecord>, poisonRanges: ReadonlyArray<[number, number]>): { corrupt: number; duplicates: number; problems: string[] } {
  const out = { corrupt: 0, duplicates: 0, problems: [] as string[] };
  const say = (kind: string, text: string) => {
    if (out.problems.filter((p) => p.startsWith(`${who}: ${kind}`)).length < 3) out.problems.push(`${who}: ${kind} ${text}`);
  };
  const inPoison = (o: number) => poisonRanges.some(([s, e]) => o >= s && o < e);
  const seen = new Set<number>();
  let furthest = -1;
  for (const m of r.records) {
    furthest = Math.max(furthest, m.offset);
    if (inPoison(m.offset)) continue;
    if (seen.has(m.offset)) {
      out.duplicates++;
      say('duplicate', `offset ${m.offset}`);
      continue;
    }
    seen.add(m.offset);
    const want = expected.get(m.offset);
    if (!want) {
      out.corrupt++;
      say('read a record no accepted batch holds', `at offset ${m.offset}`);
    } else if (!sameBytes(m.key, want.key) || !sameBytes(m.value, want.value) || !sameHeaders(m.headers, want.headers, who === 'kcat')) {
      out.corrupt++;
      say('read a record that differs from what was accepted', `at offset ${m.offset} (key ${sameBytes(m.key, want.key) ? 'same' : 'differs'}, value ${sameBytes(m.value, want.value) ? 'same' : 'differs'}, headers ${sameHeaders(m.headers, want.headers, who === 'kcat') ? 'same' : 'differ'})`);
    }
  }
  let skipped = 0;
  for (const o of expected.keys()) {
    if (o <= furthest && !seen.has(o)) {
      skipped++;
      say('skipped an accepted record', `at offset ${o}`);
    }
  }
  out.corrupt += skipped;
  return out;
}
