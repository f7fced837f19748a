/**
 * The interval-mode fdatasync runs on one shared timer (issue 15: no per-partition timers):
 * opening many partitions starts no timer, a dirty log is made durable within its interval,
 * and once nothing is dirty the timer is gone.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FlushScheduler } from '../../src/storage/flush-scheduler.js';
import { PartitionLog, defaultLogOptions } from '../../src/storage/partition-log.js';
import { TopicManager } from '../../src/storage/topic-manager.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
// The flush timer is unref()'d (it never keeps a broker alive on its own); a broker has its
// listening sockets, this test process has this.
const keepAlive = setInterval(() => {}, 60_000);
after(() => clearInterval(keepAlive));
function dir(): string {
  const t = tmpDir('meridian-flush-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Counts the timers started while `fn` runs (the global functions the storage code calls). */
async function countTimers<T>(fn: () => Promise<T>): Promise<{ result: T; intervals: number; timeouts: number }> {
  const realInterval = globalThis.setInterval;
  const realTimeout = globalThis.setTimeout;
  let intervals = 0;
  let timeouts = 0;
  globalThis.setInterval = ((...args: Parameters<typeof setInterval>) => {
    intervals++;
    return realInterval(...args);
  }) as typeof setInterval;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    timeouts++;
    return realTimeout(...args);
  }) as typeof setTimeout;
  try {
    return { result: await fn(), intervals, timeouts };
  } finally {
    globalThis.setInterval = realInterval;
    globalThis.setTimeout = realTimeout;
  }
}

/** Resolves once every log's durable offset reached its high watermark. */
function allDurable(logs: readonly PartitionLog[]): Promise<void> {
  return Promise.all(
    logs.map(
      (log) =>
        new Promise<void>((resolve) => {
          if (log.durableOffset >= log.highWatermark) return resolve();
          const off = log.onDurable((d) => {
            if (d >= log.highWatermark) {
              off();
              resolve();
            }
          });
        }),
    ),
  ).then(() => {});
}

test('1,000 partitions open with no timer; interval-mode writes become durable on one shared timer, which stops when nothing is dirty', { timeout: 120_000 }, async () => {
  const d = dir();
  const opts = { ...defaultLogOptions, flushMode: 'interval' as const, flushIntervalMs: 200 };
  const setup = await TopicManager.open(d, opts);
  for (let t = 0; t < 100; t++) await setup.createTopic(`t${t}`, 10);
  await setup.close();

  const opened = await countTimers(() => TopicManager.open(d, opts));
  const tm = opened.result;
  try {
    assert.equal(opened.intervals, 0, 'no setInterval per partition');
    assert.equal(opened.timeouts, 0, 'opening idle partitions arms no timer');
    assert.equal(tm.resourceStats().flushTimerArmed, false);

    const logs = Array.from({ length: 300 }, (_, i) => tm.partition(`t${i % 100}`, Math.floor(i / 100))!);
    const appended = await countTimers(async () => {
      await Promise.all(logs.map((log, i) => log.append(makeBatch(`x${i}`, 2, 100))));
      // Acknowledged after the write (interval mode), not yet fdatasync'd.
      assert.ok(logs.some((log) => log.durableOffset < log.highWatermark), 'interval mode acknowledges before the fdatasync');
      assert.equal(tm.resourceStats().pendingFlushes, 300, 'each dirty log registered once');
      await allDurable(logs);
    });
    assert.equal(appended.intervals, 0);
    // A few wakeups (the scheduler takes what is due within a quarter interval together),
    // plus the recovery checkpoint's timer: not one per log.
    assert.ok(appended.timeouts <= 10, `${appended.timeouts} timers started for 300 dirty logs`);
    for (const log of logs) assert.equal(log.durableOffset, log.highWatermark);
    assert.equal(tm.resourceStats().pendingFlushes, 0);
    assert.equal(tm.resourceStats().flushTimerArmed, false, 'no timer once nothing is dirty');
  } finally {
    await tm.close();
  }
});

test('a log opened on its own still flushes in interval mode (its own scheduler)', async () => {
  const log = await PartitionLog.open(dir(), { flushMode: 'interval', flushIntervalMs: 50 });
  try {
    await log.append(makeBatch('solo', 3));
    await allDurable([log]);
    assert.equal(log.durableOffset, 3n);
    await log.append(makeBatch('again', 2));
    await allDurable([log]);
    assert.equal(log.durableOffset, 5n, 'a later write registers the log again');
  } finally {
    await log.close();
  }
});

test('the scheduler calls each registration once, at its deadline, earliest first, across intervals', async () => {
  const s = new FlushScheduler();
  const order: string[] = [];
  const t0 = Date.now();
  const fired = new Promise<void>((resolve) => {
    const done = (name: string) => () => {
      order.push(`${name}@${Date.now() - t0 >= 0 ? 'ok' : 'early'}`);
      if (order.length === 3) resolve();
    };
    s.schedule(120, done('slow'));
    s.schedule(30, done('fast'));
    s.schedule(60, done('middle'));
  });
  assert.equal(s.pending, 3);
  assert.equal(s.armed, true);
  await fired;
  assert.deepEqual(order, ['fast@ok', 'middle@ok', 'slow@ok']);
  assert.equal(s.pending, 0);
  assert.equal(s.armed, false);
  s.close();
});
