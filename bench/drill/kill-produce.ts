/**
 * Scenario 1: kill -9 of a broker while idempotent acks=all producers write to it, then a
 * restart, over and over. KafkaJS writes partition 0 and kcat (librdkafka's idempotent
 * producer) partition 1, so both clients' retry paths meet a broker that vanished mid-request
 * and comes back with only what it had fdatasync'd. Afterwards kcat and KafkaJS each read the
 * topic: every acknowledged record exactly once, byte-identical, in produce order.
 *
 * Scenario 1b runs the same with the shared journal of fsync mode taking every small round
 * (log.flush.journal, journalMinPartitions 1): each restart replays what the journal held
 * into the segments before they open (src/storage/journal.ts), so a replay that wrote
 * anything at a wrong place, or wrote back a cut tail, shows up as a corrupt or duplicated
 * record. (A SIGKILL keeps the page cache, so it tests the replay's writing, not a lost one.)
 */
import { freePort, Region } from '../../test/helpers/regions.js';
import { createTopic, KafkaJsWriter, kcatSend, loop } from './shared/clients.js';
import { sleep, type DrillContext, type Scenario } from './shared/context.js';
import { Ledger } from './shared/ledger.js';
import { checkWithBothClients } from './shared/setups.js';

const TOPIC = 'drill-produce';

export const killProduce: Scenario = killProduceScenario({
  name: 'kill-produce',
  title: '1. SIGKILL during produce',
  what: 'one broker (the shared journal off); an idempotent acks=all KafkaJS producer (partition 0) and kcat with enable.idempotence=true (partition 1) write continuously while the broker is killed -9 at random moments and restarted; then kcat and KafkaJS each read the whole topic.',
  journal: false,
});

export const killProduceJournal: Scenario = killProduceScenario({
  name: 'kill-produce-journal',
  title: '1b. SIGKILL during produce, shared journal on',
  what: 'scenario 1 with log.flush.journal on and journalMinPartitions 1, so every small write round is made durable through the journal and every restart replays it into the segments first.',
  journal: true,
});

function killProduceScenario(s: { name: string; title: string; what: string; journal: boolean }): Scenario {
  return { name: s.name, title: s.title, what: s.what, run: (ctx) => run(ctx, s.journal) };
}

async function run(ctx: DrillContext, journal: boolean): Promise<void> {
  const log = { log: { flush: journal ? { journal: true, journalMinPartitions: 1 } : { journal: false } } };
  // At info the broker logs each start-up replay of the journal (counted below).
  const region = new Region('drill-produce', await freePort(), `${ctx.dir}/data`, { logging: { level: journal ? 'info' : 'warn' }, topics: { autoCreate: false }, ...log });
  const broker = ctx.watch(region);
  ctx.defer(() => broker.stop());
  await broker.start();
  await createTopic(broker.bootstrap, TOPIC, 2);

  const ledger = new Ledger();
  const kjs = new KafkaJsWriter(broker.bootstrap, TOPIC, ledger.stream('kafkajs', 0, { keyed: true }), { batch: 25 });
  ctx.defer(() => kjs.close());
  const kc = ledger.stream('kcat', 1, { keyed: false });
  let kcatCalls = 0;
  let kcatAcked = 0;
  const writers = [
    loop(() => kjs.sendNext(), 5),
    loop(async () => {
      kcatCalls++;
      if (await kcatSend(broker.bootstrap, TOPIC, kc, 200)) kcatAcked++;
      else await sleep(200); // kcat gives up at once while the broker is down
    }, 20),
  ];
  ctx.defer(() => Promise.all(writers.map((w) => w.stop())));

  const kills = ctx.faults(8);
  for (let i = 0; i < kills; i++) {
    await sleep(ctx.between(400, 1500));
    await broker.kill9();
    ctx.tally.faults++;
    await sleep(ctx.between(100, 700));
    await broker.start();
    ctx.log(`kill ${i + 1}/${kills}: ${ledger.acknowledged} records acknowledged so far`);
  }
  await sleep(1000);
  await Promise.all(writers.map((w) => w.stop()));
  await kjs.close();
  await broker.ensureRunning();
  ctx.tally.acknowledged = ledger.acknowledged;

  await checkWithBothClients(ctx, broker.bootstrap, TOPIC, ledger);
  ctx.tally.notes.push(`KafkaJS ${kjs.sends} sends acked, ${kjs.failures} failed; kcat ${kcatAcked}/${kcatCalls} calls fully acked`);
  if (journal) {
    const replays = region.logLines.filter((l) => l.includes('journal replayed into the segment files')).map((l) => JSON.parse(l) as { applied: number; voided: number });
    if (replays.length === 0) throw new Error('the journal was never replayed: no restart found a journal to write back');
    ctx.tally.notes.push(`${replays.length} restarts replayed the journal: ${replays.reduce((n, r) => n + r.applied, 0)} records written back, ${replays.reduce((n, r) => n + r.voided, 0)} voided by barriers`);
  }
}
