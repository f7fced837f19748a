/**
 * Scenario 4: the link between two regions fails while both take writes. Each region
 * reaches the other through its own TCP proxy, which the drill uses to cut every connection
 * at a random moment, refuse connections for a while, or delay every chunk by 200 ms. At the
 * end every region must hold every origin's records exactly once, in origin order.
 */
import { Regions, waitCaughtUp } from '../../test/helpers/regions.js';
import { TcpProxy } from '../../test/helpers/tcp-proxy.js';
import { createTopic } from './shared/clients.js';
import { sleep, type DrillContext, type Scenario } from './shared/context.js';
import { checkRegions, meshWriters } from './shared/setups.js';

const TOPIC = 'drill-link';
const NAMES = ['us-east', 'eu-west'];

export const linkFaults: Scenario = {
  name: 'link-faults',
  title: '4. Link cuts and delays',
  what: 'two regions in a mesh, each reaching the other through a TCP proxy; paced idempotent KafkaJS producers write in both regions; each fault starts a burst of 2,000 records in a random region and, 0-60 ms later, cuts all connections of one or both links, refuses connections for 0.5-2 s, or delays every chunk by 200 ms for 1-3 s; then kcat reads the topic in each region.',
  async run(ctx: DrillContext): Promise<void> {
    const proxies = new Map(NAMES.map((n) => [n, new TcpProxy({ targetPort: 0 })]));
    for (const p of proxies.values()) {
      await p.start();
      ctx.defer(() => p.close());
    }
    const regions = await Regions.create({
      names: NAMES,
      policies: [{ name: 'drill-link', topics: TOPIC, topology: 'mesh', regions: NAMES }],
      overrides: { logging: { level: 'warn' }, replication: { maxRequestBytes: 16 * 1024 } },
      addressOf: (from, to, port) => {
        if (from === to) return `127.0.0.1:${port}`;
        const proxy = proxies.get(to)!;
        proxy.options.targetPort = port;
        return `127.0.0.1:${proxy.port}`;
      },
    });
    ctx.defer(() => regions.close());
    const brokers = regions.list.map((r) => ctx.watch(r));
    await Promise.all(brokers.map((b) => b.start()));
    await createTopic(brokers[0].bootstrap, TOPIC, 2);

    const { ledger, writers, burst, stop } = meshWriters(ctx, brokers, TOPIC, 2);
    const links = [...proxies.values()];
    const kinds = { cut: 0, refuse: 0, delay: 0 };
    const faults = ctx.faults(20);
    for (let i = 0; i < faults; i++) {
      await sleep(ctx.between(200, 900));
      // A burst puts requests on the wire for the fault to land on.
      const bursting = burst(brokers[ctx.between(0, 1)], 2000);
      await sleep(ctx.between(0, 60));
      const which = ctx.random() < 0.3 ? links : [links[ctx.between(0, 1)]];
      const roll = ctx.random();
      if (roll < 0.5) {
        kinds.cut++;
        for (const p of which) p.cutAll();
      } else if (roll < 0.75) {
        kinds.refuse++;
        for (const p of which) p.setRefusing(true);
        await sleep(ctx.between(500, 2000));
        for (const p of which) p.setRefusing(false);
      } else {
        kinds.delay++;
        for (const p of which) p.options.delayMs = 200;
        await sleep(ctx.between(1000, 3000));
        // Bytes still waiting out their delay would be overtaken by new undelayed ones, so
        // the delay ends with a cut (the proxy's own rule; a cut is a fault the link survives).
        for (const p of which) {
          p.options.delayMs = 0;
          p.cutAll();
        }
      }
      ctx.tally.faults++;
      await bursting;
    }
    ctx.log(`${faults} link faults (${kinds.cut} cuts, ${kinds.refuse} refusals, ${kinds.delay} delays): ${ledger.acknowledged} records acknowledged`);
    await sleep(500);
    await stop();
    ctx.tally.acknowledged = ledger.acknowledged;
    try {
      await waitCaughtUp(regions.list, 120_000);
    } catch (err) {
      ctx.unmet(`replication did not catch up: ${(err as Error).message}; workers: ${JSON.stringify((await brokers[0].region.status()).workers.map((w) => [w.partition, w.remote, w.state, w.error]))}`);
    }
    await checkRegions(ctx, brokers, ledger, TOPIC);
    const status = await Promise.all(brokers.map((b) => b.region.status()));
    ctx.tally.notes.push(`${kinds.cut} cuts, ${kinds.refuse} refusals, ${kinds.delay} delays; ${status.reduce((n, s) => n + s.target.duplicateBatches, 0)} resent batches dropped as duplicates by the receivers; ${writers.reduce((n, w) => n + w.failures, 0)} produce calls failed`);
  },
};
