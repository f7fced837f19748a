/**
 * Membership's ride through an etcd outage (src/cluster/etcd-membership.ts, etcd-contact.ts)
 * against a real etcd that the test stops and restarts. The peers' answers are given by the
 * test (the round function: what ContactPeers asks over the Kafka port, end to end in
 * cluster-etcd-outage.test.ts); everything else is the real lease, keepalives and clock.
 *
 * - every peer out of contact: the broker never fences through an outage of four lease
 *   TTLs, says it rides, and when etcd returns fences then leases again (the fresh read);
 * - a peer in contact: asked again while the window is open, fenced at its end as without
 *   ride-through, and no round after the fence;
 * - a peer's question: "in contact" while etcd answers, "no" once it does not; the "no" holds
 *   new leaderships off for graceMs, also in a broker restarted on the same file.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, test } from 'node:test';
import { ledKey } from '../../src/cluster/etcd-contact.js';
import { startNode, TestEtcd, type TestNode } from '../helpers/etcd.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const TTL = 2000;
let etcd: TestEtcd;
const dir = tmpDir('meridian-ride-');

before(async () => {
  etcd = await TestEtcd.start();
});

after(async () => {
  await etcd?.close();
  dir.cleanup();
});

function events(node: TestNode): string[] {
  const seen: string[] = [];
  for (const e of ['fenced', 'leased', 'riding', 'lost'] as const) node.membership.on(e, () => seen.push(e));
  return seen;
}

test('every peer out of contact: no fence through four lease TTLs of etcd down; back, fenced then leased (a fresh read)', async () => {
  const node = await startNode(etcd, 1, { leaseTtlMs: TTL });
  try {
    let rounds = 0;
    const asked = ledKey('orders', 0, 4);
    node.membership.enableRideThrough({
      round: async () => {
        rounds++;
        return { allOut: true, covers: new Set([asked]) };
      },
    });
    const seen = events(node);
    await etcd.stop();
    const stoppedAt = performance.now();
    await waitFor('the ride', () => node.membership.riding, 5000, 10);
    // Leading all along: sampled until four TTLs have passed.
    await waitFor('four lease TTLs of etcd down', () => {
      assert.equal(node.membership.mayLead(asked), true, `may not lead ${(performance.now() - stoppedAt).toFixed(0)} ms into the outage`);
      return performance.now() - stoppedAt > 4 * TTL;
    }, 4 * TTL + 5000, 20);
    assert.deepEqual(seen, ['riding']);
    assert.equal(node.membership.isLeased(), false, 'not in contact');
    assert.equal(node.membership.mayLead(asked), true, 'the leadership the rounds asked about');
    assert.equal(node.membership.mayLead(ledKey('orders', 0, 5)), false, 'not one at another epoch, which nobody was asked about');
    assert.equal(node.membership.mayLead(ledKey('orders', 1, 4)), false, 'nor another partition');
    assert.ok(rounds >= 8, `asked every third of a ride (${rounds} rounds)`);
    await etcd.start();
    await waitFor('leased again', () => node.membership.isLeased() && seen.includes('leased'), 15_000, 20);
    assert.deepEqual(seen, ['riding', 'fenced', 'leased'], 'the ride ends with a fence and a lease: the states are read afresh');
    assert.equal(node.membership.riding, false);
  } finally {
    await node.kill();
    await etcd.start();
  }
});

test('a peer in contact: asked again while the window is open, then fenced at its end, and a fenced broker starts no ride', async () => {
  const node = await startNode(etcd, 2, { leaseTtlMs: TTL });
  try {
    let rounds = 0;
    let afterFence = 0;
    const seen = events(node);
    node.membership.enableRideThrough({
      round: async () => {
        rounds++;
        if (seen.includes('fenced')) {
          afterFence++;
          return { allOut: true };
        }
        return { allOut: false, why: 'broker 9 is in contact with etcd' };
      },
    });
    await etcd.stop();
    await waitFor('the fence', () => seen.includes('fenced'), 5000, 10);
    assert.equal(node.membership.mayLead(), false);
    const fencedAt = performance.now();
    await waitFor('two lease TTLs after the fence', () => {
      assert.equal(node.membership.mayLead(), false, 'a fenced broker started riding');
      return performance.now() - fencedAt > 2 * TTL;
    }, 3 * TTL, 20);
    assert.deepEqual(seen, ['fenced']);
    assert.ok(rounds >= 2, `asked again while the window was open (${rounds} rounds)`);
    assert.equal(afterFence, 0, 'no round after the fence');
  } finally {
    await node.kill();
    await etcd.start();
  }
});

test('a peer\'s question: "in contact" while etcd answers, "no" once it does not; the "no" holds new leaderships off for graceMs, across a restart', async () => {
  const file = path.join(dir.dir, 'no-contact.json');
  const node = await startNode(etcd, 3, { leaseTtlMs: TTL });
  try {
    assert.equal(node.membership.answerContact(), undefined, 'no answer before the record is attached: a "no" could not be kept');
    node.membership.enableRideThrough({ noContactFile: file });
    assert.equal(node.membership.answerContact(), true);
    assert.ok(node.membership.coolingUntil() < performance.now(), 'no promise given yet');
    assert.equal(fs.existsSync(file), false);
    await etcd.stop();
    await waitFor('the answer "no contact"', () => node.membership.answerContact() === false, 5000, 20);
    const answeredAt = performance.now();
    const grace = node.membership.graceMs;
    assert.ok(grace > node.membership.rideMs, `graceMs ${grace} exceeds rideMs ${node.membership.rideMs}`);
    assert.ok(node.membership.coolingUntil() >= answeredAt + grace - 50, 'no new leadership for graceMs after the answer');
    assert.ok(fs.existsSync(file), 'the promise is recorded');
  } finally {
    await node.kill();
    await etcd.start();
  }
  // Restarted at once on the same data (the file; another node id, so that registering does
  // not wait out the dead one's lease), the broker keeps the promise.
  const again = await startNode(etcd, 4, { leaseTtlMs: TTL });
  try {
    again.membership.enableRideThrough({ noContactFile: file });
    const left = again.membership.coolingUntil() - performance.now();
    assert.ok(left > 0, 'the restarted broker still holds new leaderships off');
    assert.ok(left <= again.membership.graceMs * 1.25, `for at most graceMs and the recording's slack (${left.toFixed(0)} ms left)`);
    assert.equal(again.membership.answerContact(), true, 'in contact again');
  } finally {
    await again.kill();
  }
});
