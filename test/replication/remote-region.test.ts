/**
 * RemoteRegion, the client side of one replication link: its in-flight byte budget and its
 * close. Closing a link settles every request, also those queued behind its concurrency, so
 * Broker.close returns promptly with a hung or a busy remote; waiting for budget under
 * contention leaves no abort listeners behind on the worker's signal; a stopped worker's
 * appends still in the outbox leave it unsent, with one abort listener per worker signal.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { RemoteRegion } from '../../src/replication/remote-region.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { waitFor } from '../helpers/wait.js';
import { dataBatch, link, logger } from '../helpers/worker-harness.js';

/** A peer that accepts connections and never answers (a hung remote region). */
async function silentPeer(t: TestContext): Promise<{ port: number; receivedBytes: () => number }> {
  const sockets = new Set<net.Socket>();
  let received = 0;
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('data', (d: Buffer) => (received += d.length));
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { port: (server.address() as net.AddressInfo).port, receivedBytes: () => received };
}

test('RemoteRegion.close settles every request, also those queued behind the link concurrency', async (t) => {
  const { port, receivedBytes } = await silentPeer(t);
  const remote = new RemoteRegion({ region: 'b', remote: 'c', address: `127.0.0.1:${port}`, maxInFlightBytes: 1 << 20, concurrency: 2, requestTimeoutMs: 60_000, partitionCountOf: () => 1, logger });
  const ac = new AbortController();
  const outcomes: string[] = [];
  const pending = Array.from({ length: 4 }, (_, i) =>
    remote
      .append(link('c', false), { topic: 't', senderTopicId: 'tid', partition: 0, senderEndOffset: BigInt(i), continuesFrom: BigInt(i - 1), entries: [{ originRegion: 'b', originTopicId: 'tid', originPartition: 0, hops: ['b'], batches: [{ originBaseOffset: BigInt(i), senderBaseOffset: BigInt(i), batch: dataBatch(`x${i}`) }] }] }, 100, ac.signal)
      .then(
        () => (outcomes[i] = 'answered'),
        () => (outcomes[i] = 'failed'),
      ),
  );
  await waitFor('the first requests to reach the peer', () => (receivedBytes() > 0 ? true : undefined), 5000, 10); // two sent (never answered), two queued
  ac.abort();
  remote.close();
  const settled = await Promise.race([Promise.all(pending).then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
  assert.ok(settled, `requests still pending 5 s after close: ${JSON.stringify(Array.from({ length: 4 }, (_, i) => outcomes[i] ?? 'PENDING'))}`);
  assert.deepEqual(outcomes, ['failed', 'failed', 'failed', 'failed']);
});

/**
 * Cleanup that cannot hang the file when Broker.close itself hangs (the fault under test):
 * the test has already failed by then.
 */
function boundedCleanup(tb: TestBroker): () => Promise<unknown> {
  return () => Promise.race([tb.cleanup(), new Promise((r) => setTimeout(r, 5000).unref())]);
}

async function closesWithin(tb: TestBroker, ms: number): Promise<void> {
  const closed = await Promise.race([tb.broker.close().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  assert.ok(closed, `Broker.close() had not returned after ${ms} ms`);
}

test('Broker.close returns promptly while the link to a hung remote has requests queued', async (t) => {
  const { port, receivedBytes } = await silentPeer(t);
  const tb = await startBroker({
    region: 'us-east',
    replication: {
      regions: [{ name: 'us-east', address: '127.0.0.1:1' }, { name: 'eu-west', address: `127.0.0.1:${port}` }],
      policies: [{ topics: 'hung-*', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
      concurrency: 1,
      requestTimeoutMs: 600_000,
    },
  } as BrokerConfigInput);
  t.after(boundedCleanup(tb));
  for (const topic of ['hung-1', 'hung-2', 'hung-3']) {
    await tb.broker.topics.createTopic(topic, 1);
    await tb.broker.topics.partition(topic, 0)!.append(dataBatch(topic));
  }
  // Three handshakes on a link with concurrency 1: one sent and never answered, two queued.
  await waitFor('the first handshake to reach the peer', () => (receivedBytes() > 0 && tb.broker.replicator.status().filter((w) => w.state === 'starting').length === 3 ? true : undefined), 5000, 10);
  await closesWithin(tb, 5000);
});

test('Broker.close returns promptly while a healthy link is busy (requests queued behind its concurrency)', async (t) => {
  const eu = await startBroker({ region: 'eu-west' });
  t.after(() => eu.cleanup());
  const us = await startBroker({
    region: 'us-east',
    replication: {
      regions: [{ name: 'us-east', address: '127.0.0.1:1' }, { name: 'eu-west', address: eu.bootstrap }],
      policies: [{ topics: 'busy', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
      concurrency: 2,
      maxRequestBytes: 4096,
    },
  } as BrokerConfigInput);
  t.after(boundedCleanup(us));
  await us.broker.topics.createTopic('busy', 16);
  // Appends to all 16 partitions, round after round, until more workers have data to send
  // than the link's concurrency lets through and a backlog has built up: requests are
  // queued behind the concurrency, and more keep coming.
  let rounds = 0;
  await waitFor(
    'more than 2 of 16 workers to have data to send with concurrency 2, 256 records behind',
    async () => {
      await Promise.all(Array.from({ length: 16 }, (_, p) => us.broker.topics.partition('busy', p)!.appendAll([dataBatch(`x${rounds}`, 1, 3000), dataBatch(`y${rounds}`, 1, 3000)])));
      rounds++;
      const ws = us.broker.replicator.status();
      return ws.filter((w) => w.state === 'running' || w.backlogRecords > 0).length > 2 && ws.reduce((n, w) => n + w.backlogRecords, 0) >= 256;
    },
    20_000,
    0,
  );
  await closesWithin(us, 5000);
});

test('abort listeners do not pile up on a worker signal: 10 000 contended budget acquires leave none behind', async () => {
  const remote = new RemoteRegion({ region: 'b', remote: 'c', address: '127.0.0.1:1', maxInFlightBytes: 1000, concurrency: 1, requestTimeoutMs: 1000, partitionCountOf: () => 1, logger });
  try {
    const ac = new AbortController();
    for (let i = 0; i < 10_000; i++) {
      const first = await remote.acquire(1000, ac.signal); // fills the budget
      const second = remote.acquire(1000, ac.signal); // waits for it
      assert.ok(getEventListeners(ac.signal, 'abort').length <= 1, `iteration ${i}: listeners while waiting`);
      first.release();
      (await second).release();
    }
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    assert.equal(remote.inFlightBytes, 0);
  } finally {
    remote.close();
  }
});

test("a stopped worker's appends leave the outbox unsent, others' stay queued, and a signal carries one abort listener however many appends it sends", async (t) => {
  const { port, receivedBytes } = await silentPeer(t);
  const remote = new RemoteRegion({ region: 'b', remote: 'c', address: `127.0.0.1:${port}`, maxInFlightBytes: 1 << 20, concurrency: 1, requestTimeoutMs: 60_000, partitionCountOf: () => 1, logger });
  t.after(() => remote.close());
  const append = (partition: number, i: number, signal: AbortSignal) =>
    remote.append(link('c', false), { topic: 't', senderTopicId: 'tid', partition, senderEndOffset: BigInt(i), continuesFrom: BigInt(i - 1), entries: [{ originRegion: 'b', originTopicId: 'tid', originPartition: partition, hops: ['b'], batches: [{ originBaseOffset: BigInt(i), senderBaseOffset: BigInt(i), batch: dataBatch(`p${partition}-${i}`) }] }] }, 100, signal);
  const first = new AbortController();
  const stopping = new AbortController();
  const staying = new AbortController();
  const outcome = new Map<string, string>();
  const track = (name: string, p: Promise<unknown>) =>
    p.then(
      () => outcome.set(name, 'answered'),
      (err: Error) => outcome.set(name, `failed: ${err.message}`),
    );
  // The first request goes out (and is never answered): the link, of concurrency 1, is full.
  void track('first', append(0, 0, first.signal));
  await waitFor('the first request to reach the peer', () => (receivedBytes() > 0 ? true : undefined), 5000, 10);
  const sentBefore = receivedBytes();
  const queued = [...Array.from({ length: 50 }, (_, i) => track(`stopping-${i}`, append(1, i, stopping.signal))), track('staying', append(2, 0, staying.signal))];
  assert.equal(getEventListeners(stopping.signal, 'abort').length, 1, 'one listener for 50 appends of one signal');
  stopping.abort();
  await Promise.all(queued.slice(0, 50));
  for (let i = 0; i < 50; i++) assert.equal(outcome.get(`stopping-${i}`), 'failed: stopped');
  assert.equal(outcome.get('staying'), undefined, "another worker's append is still queued");
  assert.equal(outcome.get('first'), undefined, 'the request sent is still waiting for its answer');
  assert.equal(receivedBytes(), sentBefore, 'nothing of the stopped worker was sent');
  remote.close();
  await queued[50];
  assert.match(outcome.get('staying')!, /^failed: link to region c closed/);
});

test('the in-flight budget grants at once only when it has room and nobody waits (FIFO)', async () => {
  const remote = new RemoteRegion({ region: 'b', remote: 'c', address: '127.0.0.1:1', maxInFlightBytes: 1000, concurrency: 1, requestTimeoutMs: 1000, partitionCountOf: () => 1, logger });
  try {
    const ac = new AbortController();
    const first = remote.tryAcquire(600);
    assert.ok(first !== undefined, 'room: granted at once');
    assert.equal(remote.tryAcquire(600), undefined, 'no room for 600 more');
    let waited = false;
    const queued = remote.acquire(600, ac.signal).then((g) => ((waited = true), g));
    assert.equal(remote.tryAcquire(100), undefined, 'room for 100, but a reader waits first');
    first.shrink(300);
    const second = await queued;
    assert.ok(waited, 'the waiter got the room the shrink gave back');
    assert.equal(remote.inFlightBytes, 900);
    assert.equal(remote.tryAcquire(200), undefined, 'no room for 200 more');
    const third = remote.tryAcquire(100);
    assert.ok(third !== undefined);
    for (const g of [first, second, third]) g.release();
    assert.equal(remote.inFlightBytes, 0);
    const alone = remote.tryAcquire(5000);
    assert.ok(alone !== undefined, 'a grant larger than the whole budget runs alone when nothing is held');
    alone.release();
  } finally {
    remote.close();
  }
});
