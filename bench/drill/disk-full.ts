/**
 * Scenario 6: the broker's data directory fills up. It lives on a small tmpfs holding a
 * ballast file; an idempotent KafkaJS producer writes until the broker refuses with
 * KAFKA_STORAGE_ERROR, kcat reads everything back while the disk is full, the ballast is
 * deleted and writing must succeed again without a restart. The cycle repeats (a new
 * ballast takes the space back), then the broker is killed -9 and restarted: every
 * acknowledged record exactly once.
 *
 * Needs root for `mount -t tmpfs`; without it the scenario fails, saying so.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, Region } from '../../test/helpers/regions.js';
import { createTopic, KafkaJsWriter, readWithKcat } from './shared/clients.js';
import type { DrillContext, Scenario } from './shared/context.js';
import { Ledger, type Verdict } from './shared/ledger.js';
import { checkWithBothClients } from './shared/setups.js';

const TOPIC = 'drill-full';
const MIB = 1024 * 1024;

function mountTmpfs(ctx: DrillContext, bytes: number): string {
  const dir = path.join(ctx.dir, 'small-disk');
  fs.mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`the disk-full scenario mounts a ${bytes / MIB} MiB tmpfs (mount -t tmpfs) and needs root for it: ${(err as Error).message.split('\n')[0]}`);
  }
  ctx.defer(() => execFileSync('umount', ['-l', dir], { stdio: 'pipe' }));
  return dir;
}

export const diskFull: Scenario = {
  name: 'disk-full',
  title: '6. Disk full',
  what: 'one broker whose data directory is a 24 MiB tmpfs with a ballast file; an idempotent acks=all KafkaJS producer writes 100 KB batches until KAFKA_STORAGE_ERROR, kcat reads while full, the ballast is deleted and 20 more batches must be acknowledged without a restart; repeated with a new ballast; then kill -9, restart, kcat and KafkaJS read the topic.',
  async run(ctx: DrillContext): Promise<void> {
    const mount = mountTmpfs(ctx, 24 * MIB);
    const ballast = path.join(mount, 'ballast');
    fs.writeFileSync(ballast, Buffer.alloc(6 * MIB, 1));
    const region = new Region('drill-full', await freePort(), path.join(mount, 'data'), { logging: { level: 'warn' }, topics: { autoCreate: false }, log: { segmentBytes: MIB, retention: { ms: -1 } } });
    const broker = ctx.watch(region);
    ctx.defer(() => broker.stop());
    await broker.start();
    await createTopic(broker.bootstrap, TOPIC, 1);

    const ledger = new Ledger();
    const stream = ledger.stream('full', 0, { keyed: true, bytes: 1000 });
    const writer = new KafkaJsWriter(broker.bootstrap, TOPIC, stream, { batch: 100, retry: { retries: 2, initialRetryTime: 50, maxRetryTime: 200 } });
    ctx.defer(() => writer.close());

    const cycles = ctx.faults(2);
    const errors = new Set<string>();
    let refusedAfterFreeing = 0;
    const verdicts: Verdict[] = [];
    for (let c = 0; c < cycles; c++) {
      if (c > 0) {
        // Take the space back, leaving a little room, and fill it again.
        const { bavail, bsize } = fs.statfsSync(mount);
        fs.writeFileSync(ballast, Buffer.alloc(Math.max(0, bavail * bsize - 2 * MIB), 1));
      }
      let refusedInARow = 0;
      for (let i = 0; i < 400 && refusedInARow < 3; i++) {
        const ok = await writer.sendNext();
        refusedInARow = ok ? 0 : refusedInARow + 1;
        if (!ok && writer.lastError) errors.add(writer.lastError.slice(0, 80));
      }
      if (refusedInARow < 3) throw new Error(`cycle ${c + 1}: the disk never filled (${ledger.acknowledged} records acknowledged)`);
      ctx.tally.faults++;
      const whileFull = await readWithKcat(broker.bootstrap, TOPIC);
      if (whileFull.failure) {
        ctx.tally.corrupt++;
        ctx.problem(`cycle ${c + 1}: kcat could not read while the disk was full: ${whileFull.failure}`);
      }
      verdicts.push(ledger.check(`cycle ${c + 1}, disk full, kcat`, whileFull.records));

      fs.rmSync(ballast);
      for (let i = 0; i < 20; i++) if (!(await writer.sendNext())) refusedAfterFreeing++;
      ctx.log(`cycle ${c + 1}/${cycles}: disk filled and freed; ${ledger.acknowledged} records acknowledged so far`);
    }
    if (refusedAfterFreeing > 0) ctx.unmet(`${refusedAfterFreeing} sends refused after space was freed (the broker should accept writes again without a restart): ${writer.lastError}`);
    await writer.close();

    await broker.kill9();
    ctx.tally.faults++;
    await broker.start();
    ctx.tally.acknowledged = ledger.acknowledged;
    await checkWithBothClients(ctx, broker.bootstrap, TOPIC, ledger, verdicts);
    ctx.tally.notes.push(`refused with: ${[...errors].join(' / ') || 'no error seen'}; ${refusedAfterFreeing} sends refused after freeing space`);
  },
};
