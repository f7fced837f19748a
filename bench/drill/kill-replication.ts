/**
 * Scenario 2: kill -9 of either region of a two-region mesh, over and over, while both
 * regions take writes. Each kill hits a region that is at once a replication source (its
 * backlog half sent) and a target (the other side's requests in flight). At the end every
 * region must hold every origin's records exactly once, in origin order; a record whose
 * produce failed may be absent, but then absent everywhere.
 */
import { Regions, waitCaughtUp } from '../../test/helpers/regions.js';
import { createTopic } from './shared/clients.js';
import { sleep, type DrillContext, type Scenario } from './shared/context.js';
import { checkRegions, meshWriters } from './shared/setups.js';

const TOPIC = 'drill-mesh';
const NAMES = ['us-east', 'eu-west'];

export const killReplication: Scenario = {
  name: 'kill-replication',
  title: '2. SIGKILL during replication',
  what: 'two regions in a mesh (16 KiB replication requests, 512 KiB/s per link); paced idempotent KafkaJS producers write both partitions in both regions; each fault is a burst of 8,000 records into a random region, then, 0-1 s later (mid-backlog), kill -9 of that region and a restart; at the end kcat reads the topic in each region.',
  async run(ctx: DrillContext): Promise<void> {
    const regions = await Regions.create({
      names: NAMES,
      policies: [{ name: 'drill-mesh', topics: TOPIC, topology: 'mesh', regions: NAMES, rateLimit: '512KiB' }],
      overrides: { logging: { level: 'warn' }, replication: { maxRequestBytes: 16 * 1024 } },
    });
    ctx.defer(() => regions.close());
    const brokers = regions.list.map((r) => ctx.watch(r));
    await Promise.all(brokers.map((b) => b.start()));
    await createTopic(brokers[0].bootstrap, TOPIC, 2);

    const { ledger, writers, burst, stop } = meshWriters(ctx, brokers, TOPIC, 2);
    const kills = ctx.faults(8);
    const backlogs: number[] = [];
    for (let i = 0; i < kills; i++) {
      await sleep(ctx.between(800, 2000));
      const victim = brokers[ctx.between(0, brokers.length - 1)];
      // Aim at a moment when the victim is a source in the middle of a backlog: 8,000
      // records (1.5 MB) take the rate-limited link a few seconds.
      await burst(victim, 8000);
      await sleep(ctx.between(0, 1000));
      backlogs.push((await victim.region.status()).workers.reduce((n, w) => n + w.backlogRecords, 0));
      await victim.kill9();
      ctx.tally.faults++;
      await sleep(ctx.between(300, 1500));
      await victim.start();
      ctx.log(`kill ${i + 1}/${kills} (${victim.region.name}): ${ledger.acknowledged} records acknowledged so far`);
    }
    await sleep(1000);
    await stop();
    for (const b of brokers) await b.ensureRunning();
    ctx.tally.acknowledged = ledger.acknowledged;
    try {
      await waitCaughtUp(regions.list, 120_000);
    } catch (err) {
      ctx.unmet(`replication did not catch up: ${(err as Error).message}; workers: ${JSON.stringify((await brokers[0].region.status()).workers.map((w) => [w.partition, w.remote, w.state, w.error]))}`);
    }
    await checkRegions(ctx, brokers, ledger, TOPIC);
    ctx.tally.notes.push(`killed with ${Math.min(...backlogs)}-${Math.max(...backlogs)} records of replication backlog; ${writers.reduce((n, w) => n + w.failures, 0)} produce calls failed (uncertain)`);
  },
};
