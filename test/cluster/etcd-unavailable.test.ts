/**
 * etcd down: writes wait (retried with backoff) and the status says why; the broker's
 * self-fencing clock runs out; when etcd returns, the waiting write completes and the
 * lease is renewed (etcd extends leases across its own restart).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MeridianError } from '../../src/errors.js';
import { startNode, TestEtcd, type TestNode } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

describe('etcd unavailable', () => {
  let etcd: TestEtcd;
  let node: TestNode;

  before(async () => {
    etcd = await TestEtcd.start();
    node = await startNode(etcd, 1);
    await waitFor('controller', () => node.controller.isController(), 10_000, 20);
  });
  after(async () => {
    await node?.kill();
    await etcd.close();
  });

  it('a topic creation waits while etcd is down, the status says etcd is unreachable, and it completes once etcd is back', async () => {
    let fenced = 0;
    let leased = 0;
    node.membership.on('fenced', () => fenced++);
    node.membership.on('leased', () => leased++);
    assert.equal(node.region.status().reachable, true);

    await etcd.stop();
    const stoppedAt = Date.now();
    let settled = false;
    const creation = node.controller.createTopic('during-outage', { partitions: 2 }).finally(() => (settled = true));
    const status = await waitFor('status: etcd unreachable', () => (node.region.status().reachable ? undefined : node.region.status()), 10_000, 20);
    assert.ok(status.lastError !== null && status.lastError.length > 0, `last error: ${status.lastError}`);
    assert.ok(status.since >= stoppedAt - 100 && status.since <= Date.now());
    assert.ok(status.failures > 0);
    // The self-fencing clock runs out while etcd is down.
    await waitFor('the broker fenced itself', () => fenced > 0, 10_000, 20);
    assert.equal(node.membership.isLeased(), false);
    assert.equal(settled, false, 'the creation is still waiting');

    await etcd.start();
    const created = await creation;
    assert.equal(created.record.partitions, 2);
    assert.equal(node.region.status().reachable, true);
    await waitFor('lease renewed', () => leased > 0 && node.membership.isLeased(), 10_000, 20);
    const snap = await node.topics.snapshot();
    assert.equal(snap.partitions.get('during-outage')?.size, 2);
  });

  it('past its time budget an operation fails with METADATA_UNAVAILABLE naming the last error', async () => {
    await etcd.stop();
    try {
      await assert.rejects(
        node.topics.getTopic('x', { timeoutMs: 1500 }),
        (e: unknown) => e instanceof MeridianError && e.code === 'METADATA_UNAVAILABLE' && e.retriable && /did not answer within 1500 ms/.test(e.message),
      );
    } finally {
      await etcd.start();
    }
  });
});
