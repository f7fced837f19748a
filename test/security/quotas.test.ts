/**
 * The quota math and the QuotaManager, with an injected clock: the sampled rate (windows,
 * expiry, the one-window floor), Kafka's throttle time and its cap, a greedy client held to
 * its quota over 20 s, and the manager's rules: defaults, per-key overrides (null: no quota,
 * "default": back to the default), the file (written atomically, reopened, a damaged one
 * refused naming it, and a broker refusing to start on it), values refused naming the key,
 * idle principals forgotten.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { MeridianError } from '../../src/errors.js';
import { PrincipalQuota, QuotaKind, QuotaManager, SampledRate, throttleTimeMs, type Quotas } from '../../src/security/quotas.js';
import { startBroker } from '../helpers/broker.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const NONE: Quotas = { producerByteRate: null, consumerByteRate: null, requestRate: null };
const MiB = 1024 * 1024;

function clock(start = 0) {
  const c = { t: start, now: () => c.t };
  return c;
}

test('the sampled rate: the total over the time the samples cover, at least one window; samples older than the span are reset', () => {
  const r = new SampledRate(11, 1000);
  r.record(1000, 0);
  assert.equal(r.windowSizeMs(0), 1000, 'a new rate counts one window');
  assert.equal(r.rate(0), 1000);
  r.record(1000, 500);
  assert.equal(r.rate(500), 2000, 'same window: 2000 over one window');
  r.record(1000, 2000);
  assert.equal(r.windowSizeMs(2000), 2000);
  assert.equal(r.rate(2000), 1500);
  assert.equal(r.total(10_999), 3000);
  assert.equal(r.total(11_000), 1000, 'the first sample (started at 0) is reset once 11 windows old');
  assert.equal(r.total(13_000), 0, 'and the second (started at 2000) at 13000');
});

test("Kafka's throttle time: (rate - quota) / quota * window, nothing at or under the quota", () => {
  assert.equal(throttleTimeMs(16.5, 16.5, 1000), 0);
  assert.equal(throttleTimeMs(10, 20, 1000), 0);
  assert.equal(throttleTimeMs(2, 1, 1000), 1000);
  assert.equal(throttleTimeMs(150, 100, 10_000), 5000);
  assert.equal(throttleTimeMs(100.4, 100, 1000), 4);
});

test('a principal over its quota earns the throttle that brings its rate back, capped at the quota span', () => {
  const c = clock();
  const q = new PrincipalQuota('User:a', [100, null, null], 11, 1000, c.now);
  assert.equal(q.record(QuotaKind.Produce, 100), 0, 'exactly the quota');
  assert.equal(q.record(QuotaKind.Produce, 200), 2000, '300 B over one window at 100 B/s: 2 s more');
  assert.equal(q.throttledMs[QuotaKind.Produce], 2000);
  assert.equal(q.throttled[QuotaKind.Produce], 1);
  c.t = 3000;
  assert.equal(q.record(QuotaKind.Produce, 0), 0, 'after the throttle the rate is the quota again');
  assert.equal(q.record(QuotaKind.Produce, 1_000_000), 11_000, 'capped at 11 windows');
  assert.equal(q.record(QuotaKind.Fetch, 1_000_000), 0, 'no fetch quota: measured, never throttled');
  assert.equal(q.rate(QuotaKind.Fetch), 1_000_000, 'each kind has its own samples: one window so far');
  q.unrecord(QuotaKind.Fetch, 1_000_000);
  assert.equal(q.rate(QuotaKind.Fetch), 0);
  assert.equal(q.windowCapacity(QuotaKind.Produce), 1000, 'ten windows of quota');
  assert.equal(q.windowCapacity(QuotaKind.Fetch), Infinity);
});

/** A client that sends `bytes` every `gapMs` whenever its connection is not muted; what it got through in `ms`. */
function greedy(bytes: number, gapMs: number, ms: number): number {
  const c = clock();
  const q = new PrincipalQuota('User:greedy', [MiB, null, null], 11, 1000, c.now);
  let mutedUntil = 0;
  let sent = 0;
  while (c.t < ms) {
    if (c.t < mutedUntil) {
      c.t = mutedUntil;
      continue;
    }
    mutedUntil = Math.max(mutedUntil, c.t + q.record(QuotaKind.Produce, bytes));
    sent += bytes;
    c.t += gapMs;
  }
  return sent;
}

test('a greedy producer at 1 MiB/s gets within 3% of 1 MiB/s over 20 s, whatever its request size and pace', () => {
  for (const [bytes, gapMs] of [
    [16 * 1024, 1],
    [64 * 1024, 2],
    [256 * 1024, 5],
    [1024 * 1024, 0.5],
  ]) {
    for (const seconds of [15, 20, 30]) {
      const rate = greedy(bytes, gapMs, seconds * 1000) / seconds;
      assert.ok(Math.abs(rate - MiB) <= 0.03 * MiB, `${bytes} B every ${gapMs} ms over ${seconds} s: ${(rate / MiB).toFixed(3)} MiB/s`);
    }
  }
});

test('the manager: no quota, no state; defaults for everyone; an override wins per key; null removes a default; "default" restores it', () => {
  const dir = tmpDir('meridian-quotas-');
  try {
    const none = QuotaManager.open(dir.dir, NONE);
    assert.equal(none.of('User:alice'), null);
    assert.equal(fs.existsSync(path.join(dir.dir, 'security', 'quotas.json')), false);

    const m = QuotaManager.open(dir.dir, { producerByteRate: 1000, consumerByteRate: null, requestRate: 50 });
    assert.deepEqual(m.of('User:bob')!.limits, [1000, null, 50], 'the defaults');
    assert.deepEqual(m.set('User:alice', { consumerByteRate: '1MiB', requestRate: null }), { consumerByteRate: MiB, requestRate: null });
    assert.deepEqual(m.effective('User:alice'), { producerByteRate: 1000, consumerByteRate: MiB, requestRate: null });
    const alice = m.of('User:alice')!;
    m.set('User:alice', { producerByteRate: 2048 });
    assert.deepEqual(alice.limits, [2048, MiB, null], 'a change reaches the active state at once');
    m.set('User:alice', { consumerByteRate: 'default' });
    assert.deepEqual(m.effective('User:alice'), { producerByteRate: 2048, consumerByteRate: null, requestRate: null });
    m.set('User:carol', { producerByteRate: null, requestRate: null });
    assert.equal(m.of('User:carol'), null, 'every quota removed: the lookup-only path');
    assert.deepEqual(m.overrides(), [
      { principal: 'User:alice', override: { requestRate: null, producerByteRate: 2048 } },
      { principal: 'User:carol', override: { producerByteRate: null, requestRate: null } },
    ]);

    const again = QuotaManager.open(dir.dir, { producerByteRate: 1000, consumerByteRate: null, requestRate: 50 });
    assert.deepEqual(again.overrides(), m.overrides(), 'the overrides survive a restart');
    assert.equal(again.remove('User:carol'), true);
    assert.equal(again.remove('User:carol'), false);
    assert.deepEqual(again.effective('User:carol'), { producerByteRate: 1000, consumerByteRate: null, requestRate: 50 });
  } finally {
    dir.cleanup();
  }
});

test('refused changes name the key or principal and change nothing', () => {
  const dir = tmpDir('meridian-quotas-');
  try {
    const m = QuotaManager.open(dir.dir, NONE);
    const refused = (fn: () => void, code: string, message: RegExp) => assert.throws(fn, (e: unknown) => e instanceof MeridianError && e.code === code && message.test(e.message));
    refused(() => m.set('User:a', { producerByteRate: 'fast' }), 'INVALID_CONFIG', /^producerByteRate: expected a whole number of bytes per second or a size like 1MiB .* got "fast"$/);
    refused(() => m.set('User:a', { requestRate: 0 }), 'INVALID_CONFIG', /^requestRate: expected a whole number of requests per second/);
    refused(() => m.set('User:a', { requestRate: '10KiB' }), 'INVALID_CONFIG', /^requestRate:/);
    refused(() => m.set('User:a', { burst: 5 } as never), 'INVALID_CONFIG', /unknown quota "burst"/);
    refused(() => m.set('alice', { requestRate: 5 }), 'INVALID_PRINCIPAL', /expected Type:name/);
    assert.deepEqual(m.overrides(), []);
    assert.equal(m.of('User:a'), null);
  } finally {
    dir.cleanup();
  }
});

test('a damaged quota file stops the start with BAD_CONFIG naming the file', () => {
  const dir = tmpDir('meridian-quotas-');
  try {
    const file = path.join(dir.dir, 'security', 'quotas.json');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    for (const [text, why] of [
      ['{ "version": 1, "overrides": ', /not valid JSON/],
      ['{ "version": 2, "overrides": {} }', /not a Meridian quota file/],
      ['{ "version": 1, "overrides": { "User:a": { "producerByteRate": -5 } } }', /the override of "User:a" is not valid \(producerByteRate: expected/],
      ['{ "version": 1, "overrides": { "alice": {} } }', /the override of "alice" is not valid/],
    ] as const) {
      fs.writeFileSync(file, text);
      assert.throws(
        () => QuotaManager.open(dir.dir, NONE),
        (e: unknown) => e instanceof MeridianError && e.code === 'BAD_CONFIG' && e.message.startsWith(`${file}: `) && why.test(e.message),
        text,
      );
    }
  } finally {
    dir.cleanup();
  }
});

test('a principal idle for an hour is forgotten (no timer: swept when a state is made or the states are listed)', () => {
  const dir = tmpDir('meridian-quotas-');
  try {
    const c = clock(1_000_000);
    const m = QuotaManager.open(dir.dir, { producerByteRate: 1000, consumerByteRate: null, requestRate: null }, { now: c.now });
    m.of('User:idle')!.record(QuotaKind.Produce, 10);
    m.of('User:busy')!.record(QuotaKind.Produce, 10);
    c.t += 3_000_000;
    m.of('User:busy')!.record(QuotaKind.Produce, 10);
    c.t += 700_000;
    assert.deepEqual(m.active().map((a) => a.principal), ['User:busy'], 'idle for more than an hour: gone');
    const busy = m.active()[0];
    assert.equal(busy.quotas.producerByteRate, 1000);
    assert.deepEqual(busy.throttledResponses, { produce: 0, fetch: 0, request: 0 });
  } finally {
    dir.cleanup();
  }
});

test('a broker does not start on a damaged quota file: the error names the file', async () => {
  const dir = tmpDir('meridian-quotas-broker-');
  try {
    const file = path.join(dir.dir, 'security', 'quotas.json');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '{ "version": 1, "overrides": { "User:a": { "requestRate": "many" } } }');
    await assert.rejects(
      startBroker({}, { dataDir: dir.dir, cleanup: () => {} }),
      (e: unknown) => e instanceof MeridianError && e.code === 'BAD_CONFIG' && e.message.includes(`${file}: the override of "User:a" is not valid`),
    );
  } finally {
    dir.cleanup();
  }
});
