/**
 * Scenario 5: the object store (s3rver, in its own process) goes away while the broker
 * offloads, and comes back on the same port with the same objects. Producing goes on
 * throughout. Once the store is back for good the offload must complete, and a full read
 * (mostly from the store) must return every acknowledged record exactly once.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { startRestartableS3rver } from '../../test/helpers/object-stores.js';
import { freePort, Region, waitFor } from '../../test/helpers/regions.js';
import { createTopic, KafkaJsWriter, loop } from './shared/clients.js';
import { sleep, type DrillContext, type Scenario } from './shared/context.js';
import { Ledger } from './shared/ledger.js';
import { checkWithBothClients, offloadComplete, TIERED_SMALL, tierOf } from './shared/setups.js';

const TOPIC = 'drill-outage';
const BUCKET = 'drill';

export const storeOutage: Scenario = {
  name: 'store-outage',
  title: '5. Object store outages',
  what: 'one broker tiering 64 KiB segments to s3rver (localRetention 0); an idempotent KafkaJS producer writes while s3rver is killed with an upload in flight and restarted 1-3 s later, repeatedly; after the offload completes, kcat and KafkaJS read the topic (mostly from the store).',
  async run(ctx: DrillContext): Promise<void> {
    const s3 = await startRestartableS3rver();
    ctx.defer(() => s3.stop());
    const endpoint = `http://127.0.0.1:${s3.port}`;
    const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    client.destroy();

    const region = new Region('drill-outage', await freePort(), `${ctx.dir}/data`, {
      ...TIERED_SMALL,
      logging: { level: 'warn' },
      topics: { autoCreate: false },
      tiered: { ...TIERED_SMALL.tiered, store: { type: 's3', endpoint, bucket: BUCKET, forcePathStyle: true, accessKeyId: 'S3RVER', secretAccessKey: 'drill-secret' } },
    });
    const broker = ctx.watch(region);
    ctx.defer(() => broker.stop());
    await broker.start();
    await createTopic(broker.bootstrap, TOPIC, 1);

    const ledger = new Ledger();
    const writer = new KafkaJsWriter(broker.bootstrap, TOPIC, ledger.stream('outage', 0, { keyed: true, bytes: 400 }), { batch: 50 });
    ctx.defer(() => writer.close());
    // Paced (about 1,000 records/s) so the backlog the store must take after the last outage
    // stays a few MB: s3rver writes each object to its own disk from one Node process.
    const writing = loop(() => writer.sendNext(), 40);
    ctx.defer(() => writing.stop());

    const outages = ctx.faults(4);
    let sawError = 0;
    for (let i = 0; i < outages; i++) {
      await sleep(ctx.between(500, 1500));
      await waitFor('an upload in flight', async () => ((await tierOf(broker, TOPIC)).tier?.copying ?? undefined), 30_000, 5);
      await s3.stopServer();
      ctx.tally.faults++;
      await sleep(ctx.between(1000, 3000));
      if ((await tierOf(broker, TOPIC)).tier?.lastError) sawError++;
      await s3.startServer();
      ctx.log(`outage ${i + 1}/${outages}: ${ledger.acknowledged} records acknowledged so far`);
    }
    await sleep(500);
    await writing.stop();
    await writer.close();
    await broker.ensureRunning();
    ctx.tally.acknowledged = ledger.acknowledged;

    const t0 = Date.now();
    await offloadComplete(broker, TOPIC)
      .then((s) => ctx.tally.notes.push(`offload complete ${Date.now() - t0} ms after the last outage; ${s.storeOnly} of ${s.highWatermark} offsets read from the store only; ${sawError}/${outages} outages reported by the offloader`))
      .catch((err: Error) => ctx.unmet(`the offload did not complete after the store came back: ${err.message}`));

    await checkWithBothClients(ctx, broker.bootstrap, TOPIC, ledger);
  },
};
