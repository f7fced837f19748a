/**
 * Scenario 3: kill -9 of a broker while it uploads sealed segments to the object store (a
 * directory here), with 64 KiB segments and no local copy kept once a segment is offloaded,
 * so most of the topic ends up readable only from the store. After the last restart the
 * offload must complete, and a full read (mostly served from the store) must return every
 * acknowledged record exactly once.
 */
import { freePort, Region, waitFor } from '../../test/helpers/regions.js';
import { createTopic, KafkaJsWriter, loop } from './shared/clients.js';
import { sleep, type DrillContext, type Scenario } from './shared/context.js';
import { Ledger } from './shared/ledger.js';
import { checkWithBothClients, offloadComplete, TIERED_SMALL, tierOf } from './shared/setups.js';

const TOPIC = 'drill-offload';

export const killOffload: Scenario = {
  name: 'kill-offload',
  title: '3. SIGKILL during offload',
  what: 'one broker with tiered storage to a directory, 64 KiB segments, localRetention 0; an idempotent KafkaJS producer writes while the broker is killed -9 each time an upload is in flight; after the offload completes, kcat and KafkaJS read the topic (mostly from the store).',
  async run(ctx: DrillContext): Promise<void> {
    const region = new Region('drill-offload', await freePort(), `${ctx.dir}/data`, {
      ...TIERED_SMALL,
      logging: { level: 'warn' },
      topics: { autoCreate: false },
      tiered: { ...TIERED_SMALL.tiered, store: { type: 'fs', dir: `${ctx.dir}/bucket` } },
    });
    const broker = ctx.watch(region);
    ctx.defer(() => broker.stop());
    await broker.start();
    await createTopic(broker.bootstrap, TOPIC, 1);

    const ledger = new Ledger();
    const writer = new KafkaJsWriter(broker.bootstrap, TOPIC, ledger.stream('offload', 0, { keyed: true, bytes: 400 }), { batch: 50 });
    ctx.defer(() => writer.close());
    const writing = loop(() => writer.sendNext(), 0);
    ctx.defer(() => writing.stop());

    const kills = ctx.faults(6);
    for (let i = 0; i < kills; i++) {
      await sleep(ctx.between(500, 1500));
      const copying = await waitFor('an upload in flight', async () => ((await tierOf(broker, TOPIC)).tier?.copying ?? undefined), 30_000, 5);
      await sleep(ctx.between(0, 20));
      await broker.kill9();
      ctx.tally.faults++;
      await sleep(ctx.between(100, 500));
      await broker.start();
      ctx.log(`kill ${i + 1}/${kills} while uploading ${copying}: ${ledger.acknowledged} records acknowledged so far`);
    }
    await sleep(500);
    await writing.stop();
    await writer.close();
    await broker.ensureRunning();
    ctx.tally.acknowledged = ledger.acknowledged;

    const t0 = Date.now();
    await offloadComplete(broker, TOPIC)
      .then((s) => ctx.tally.notes.push(`offload complete ${Date.now() - t0} ms after the last restart; ${s.storeOnly} of ${s.highWatermark} offsets read from the store only`))
      .catch((err: Error) => ctx.unmet(`the offload did not complete after the last restart: ${err.message}`));

    await checkWithBothClients(ctx, broker.bootstrap, TOPIC, ledger);
  },
};
