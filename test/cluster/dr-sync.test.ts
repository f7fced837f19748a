/**
 * The region's DR roles and reports in etcd (src/cluster/dr-sync.ts), on a real etcd with
 * brokers' DrStates in this process (no broker processes, no leases): a broker's own roles
 * seed a region that has none, one key per topic; a joining broker applies the region's (its
 * differing copy kept aside); a change through one broker reaches the others and their
 * listeners, with its report; changes of different topics through two brokers at once never
 * conflict, and the same marking from two brokers is written once; a hand-deleted topic key
 * is the topic forgotten; a topic key that does not parse is kept over by running brokers and
 * stops a broker's start; the previous version's single document is migrated; more reports
 * and topics than etcd takes in one transaction seed; a listener that throws holds up
 * nothing. Last, on one in-process broker (the same promote code as on a cluster): the final
 * `promoted` write keeps a newer epoch noted meanwhile and never brings back a topic's
 * forgotten role.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { EtcdRegion } from '../../src/cluster/etcd-region.js';
import { ClusterDrState, SEED_BATCH } from '../../src/cluster/dr-sync.js';
import { DrState, KEEP, type TopicDrEntry } from '../../src/dr/dr-state.js';
import type { PromoteReport } from '../../src/dr/recovery-report.js';
import { parsePolicies } from '../../src/replication/policy.js';
import { captureLog, startBroker } from '../helpers/broker.js';
import { TestEtcd } from '../helpers/etcd.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
let nodeIds = 1;
const cleanups: Array<() => void | Promise<void>> = [];

before(async () => {
  etcd = await TestEtcd.start();
});

after(async () => {
  // In order, awaited: a broker's cleanup closes it before its data directory goes.
  for (const c of cleanups.reverse()) await c();
  await etcd?.close();
});

interface Node {
  readonly state: DrState;
  readonly sync: ClusterDrState;
  readonly region: EtcdRegion;
  readonly dataDir: string;
  readonly log: ReturnType<typeof captureLog>;
}

function newDataDir(): string {
  const d = tmpDir('meridian-drsync-');
  cleanups.push(d.cleanup);
  return d.dir;
}

async function join(prefix: string, dataDir = newDataDir()): Promise<Node> {
  const log = captureLog();
  const logger = pino({ level: 'info' }, log.destination);
  const region = new EtcdRegion({ region: 'eu-west', etcd: { endpoints: [etcd.endpoint], prefix } });
  const state = new DrState(dataDir, 'eu-west', { logger });
  let sync: ClusterDrState;
  try {
    sync = await ClusterDrState.open(region, state, nodeIds++, logger);
  } catch (err) {
    region.close();
    throw err;
  }
  cleanups.push(() => {
    sync.close();
    region.close();
  });
  return { state, sync, region, dataDir, log };
}

const promoted = (epoch: number, reportId?: string): TopicDrEntry => ({ primary: 'eu-west', epoch, phase: 'promoted', at: 1_700_000_000_000 + epoch, ...(reportId === undefined ? {} : { reportId }) });

function promoteReport(topic: string, epoch: number): PromoteReport {
  return { kind: 'promote', id: `promote-${topic}-e${epoch}`, topic, region: 'eu-west', formerPrimary: 'us-east', epoch, policy: 'p', at: new Date(0).toISOString(), partitions: [], totals: { missingRecords: '0', maxMissingSeconds: null } };
}

/** What etcd holds under the region's `dr/`, keys relative to it. */
async function drKeys(n: Node): Promise<Map<string, string>> {
  const all = await n.region.client.getAll().prefix(n.region.keys.drPrefix).strings();
  return new Map(Object.entries(all).map(([k, v]) => [k.slice(n.region.keys.drPrefix.length), v]));
}

const fileTopics = (n: Node) => (JSON.parse(fs.readFileSync(path.join(n.dataDir, 'dr', 'state.json'), 'utf8')) as { topics: Record<string, TopicDrEntry> }).topics;

test("a broker's own roles seed the region; a joining broker applies the region's, its differing copy kept aside", async () => {
  const prefix = '/drsync-seed';
  // Broker A ran alone before: its state.json holds a promoted topic and its report.
  const dirA = newDataDir();
  const alone = new DrState(dirA, 'eu-west');
  await alone.update('orders', () => promoted(1, 'promote-orders-e1'), promoteReport('orders', 1));
  // Broker C too, with a different role for another topic.
  const dirC = newDataDir();
  await new DrState(dirC, 'eu-west').update('other', () => promoted(3));

  const a = await join(prefix, dirA);
  const b = await join(prefix);
  assert.deepEqual(b.state.entry('orders'), promoted(1, 'promote-orders-e1'));
  assert.deepEqual(fileTopics(b), { orders: promoted(1, 'promote-orders-e1') }, "B's state.json is its copy of the region's");
  assert.deepEqual(b.state.reports.get('promote-orders-e1'), promoteReport('orders', 1), 'the report came with the roles');
  const held = await drKeys(a);
  assert.deepEqual([...held.keys()].sort(), ['initialized', 'reports/promote-orders-e1', 'topics/orders'], 'one key per topic, the report and the seeding marker');
  assert.deepEqual(JSON.parse(held.get('topics/orders')!), promoted(1, 'promote-orders-e1'));

  const c = await join(prefix, dirC);
  assert.deepEqual(c.state.snapshot().topics, { orders: promoted(1, 'promote-orders-e1') }, "C follows the region's roles, not its own");
  const kept = fs.readdirSync(path.join(dirC, 'dr')).filter((n) => n.startsWith('state.json.local-'));
  assert.equal(kept.length, 1, 'C kept its own roles aside');
  assert.ok(c.log.lines.some((l) => /differ from the region's/.test(String(l.msg))));
  assert.deepEqual(a.state.snapshot(), b.state.snapshot());
});

test('a change through one broker reaches the others and their listeners, with its report; two brokers changing at once both count; the same marking from two brokers is written once', async () => {
  const prefix = '/drsync-change';
  const a = await join(prefix);
  const b = await join(prefix);
  const heard: string[] = [];
  b.state.onChange((topic) => heard.push(topic));

  await a.state.update('orders', () => promoted(1, 'promote-orders-e1'), promoteReport('orders', 1));
  // Answered once applied on the asking broker, with the report.
  assert.deepEqual(a.state.entry('orders'), promoted(1, 'promote-orders-e1'));
  assert.ok(a.state.reports.has('promote-orders-e1'));
  await waitFor('B to apply the promote', () => b.state.entry('orders')?.epoch === 1 && b.state.reports.has('promote-orders-e1'), 5_000, 10);
  assert.deepEqual(heard, ['orders']);

  // Twenty topics promoted at once, half through each broker: every one lands, and none
  // conflicts with another (each change ran once: different topics are different keys).
  const topics = Array.from({ length: 20 }, (_, i) => `t${i}`);
  let runs = 0;
  await Promise.all(topics.map((t, i) => (i % 2 === 0 ? a : b).state.update(t, () => (runs++, promoted(2)))));
  assert.equal(runs, 20, 'no change of one topic was re-run because of another topic');
  for (const n of [a, b]) await waitFor('both brokers to hold all twenty', () => topics.every((t) => n.state.entry(t)?.epoch === 2), 5_000, 10);

  // Two leaders note the same newer epoch at once: one write, the second keeps it.
  const key = a.region.keys.drTopic('orders');
  const before = (await a.region.client.get(key).exec()).kvs[0]!.version;
  const mark = (e: TopicDrEntry | undefined) => (e?.supersededBy !== undefined && e.supersededBy.epoch >= 5 ? KEEP : { ...e!, supersededBy: { primary: 'us-east', epoch: 5, at: Date.now() } });
  await Promise.all([a.state.update('orders', mark), b.state.update('orders', mark)]);
  const afterKv = (await a.region.client.get(key).exec()).kvs[0]!;
  assert.equal(Number(afterKv.version) - Number(before), 1, 'the marking was written once');
  await waitFor('B to apply the marking', () => b.state.entry('orders')?.supersededBy?.epoch === 5, 5_000, 10);
  assert.deepEqual(a.state.entry('orders'), b.state.entry('orders'));
  const policies = parsePolicies([{ name: 'p', topics: ['orders'], topology: 'one-way', source: 'us-east', targets: ['eu-west'] }], ['us-east', 'eu-west']);
  const role = b.state.roleOf(policies, 'orders');
  assert.equal(role?.readOnly, true, 'a region superseded at a newer epoch takes no writes, on every broker');
});

test("a hand-deleted topic key is the topic forgotten on every broker; a topic key that does not parse is kept over while running, replaced by the next change, and stops a start", async () => {
  const prefix = '/drsync-broken';
  const a = await join(prefix);
  const b = await join(prefix);
  const heard: string[] = [];
  b.state.onChange((topic) => heard.push(topic));
  await a.state.update('orders', () => promoted(1));
  await a.state.update('payments', () => promoted(1));
  await waitFor('B to apply', () => b.state.entry('orders') !== undefined && b.state.entry('payments') !== undefined, 5_000, 10);

  await a.region.client.delete().key(a.region.keys.drTopic('orders')).exec();
  await waitFor('both to forget orders', () => [a, b].every((n) => n.state.entry('orders') === undefined), 5_000, 10);
  assert.deepEqual(b.state.entry('payments'), promoted(1), "another topic's role is untouched");
  assert.equal(fileTopics(b).orders, undefined, "B's copy forgot it too");
  assert.deepEqual(heard.slice(-1), ['orders']);
  // A forgotten topic is a plain create again.
  await b.state.update('orders', () => promoted(3));
  await waitFor('A to apply it', () => a.state.entry('orders')?.epoch === 3, 5_000, 10);

  const key = a.region.keys.drTopic('payments');
  await a.region.client.put(key).value('{ "primary": "eu-west", "epoch": ').exec();
  await waitFor('both to log the broken key', () => [a, b].every((n) => n.log.lines.some((l) => /does not parse/.test(String(l.msg)) && l.key === key)), 5_000, 10);
  assert.deepEqual(b.state.entry('payments'), promoted(1), 'a running broker keeps the role it has');
  await assert.rejects(join(prefix), (err: Error & { code?: string }) => err.code === 'BAD_CONFIG' && err.message.includes(key) && !err.message.includes('"epoch"'));
  // The next change of the topic, through B, writes a valid entry over the broken one.
  await b.state.update('payments', (e) => ({ ...e!, supersededBy: { primary: 'us-east', epoch: 2, at: 1 } }));
  assert.deepEqual(JSON.parse((await a.region.client.get(key).string())!), { ...promoted(1), supersededBy: { primary: 'us-east', epoch: 2, at: 1 } });
  await waitFor('A to apply the repaired key', () => a.state.entry('payments')?.supersededBy?.epoch === 2, 5_000, 10);
  await join(prefix);
});

test("a cluster broker's own copy that does not parse is moved aside and the region's roles replace it; a single broker's still stops the start", async () => {
  const prefix = '/drsync-copy';
  const a = await join(prefix);
  await a.state.update('orders', () => promoted(1));
  const dir = newDataDir();
  fs.mkdirSync(path.join(dir, 'dr'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'dr', 'state.json'), '{ "version": 1, "topics": ');
  assert.throws(() => new DrState(dir, 'eu-west'), (err: Error & { code?: string }) => err.code === 'BAD_CONFIG');
  const state = new DrState(dir, 'eu-west', { localCopy: true });
  assert.ok(state.brokenCopy !== undefined && fs.existsSync(state.brokenCopy), 'moved aside');
  const region = new EtcdRegion({ region: 'eu-west', etcd: { endpoints: [etcd.endpoint], prefix } });
  const sync = await ClusterDrState.open(region, state, nodeIds++);
  cleanups.push(() => {
    sync.close();
    region.close();
  });
  assert.deepEqual(state.entry('orders'), promoted(1));
  assert.deepEqual(fileTopics({ dataDir: dir } as Node), { orders: promoted(1) });
});

test("the previous version's single document is migrated to one key per topic at start (an existing topic key wins); one that does not parse stops the start", async () => {
  const prefix = '/drsync-legacy';
  const tool = new EtcdRegion({ region: 'eu-west', etcd: { endpoints: [etcd.endpoint], prefix } });
  cleanups.push(() => tool.close());
  const { client, keys } = tool;
  await client.put(keys.drState).value(JSON.stringify({ version: 1, topics: { orders: promoted(1), payments: promoted(2) } }, null, 2) + '\n').exec();
  // A topic key already there (a broker of this version wrote it): it stays.
  await client.put(keys.drTopic('payments')).value(JSON.stringify(promoted(4))).exec();
  const a = await join(prefix);
  assert.deepEqual(a.state.snapshot().topics, { orders: promoted(1), payments: promoted(4) });
  const held = await drKeys(a);
  assert.deepEqual([...held.keys()].sort(), ['initialized', 'topics/orders', 'topics/payments'], 'the document is gone, the marker written');
  assert.ok(a.log.lines.some((l) => /migrated the region's DR roles/.test(String(l.msg))));
  assert.equal(keys.drTopicOf(`${keys.drPrefix}topics/x`), 'x');

  const broken = '/drsync-legacy-broken';
  await client.put(`${broken}/eu-west/dr/state`).value('{ "version": 1, "topics": ').exec();
  await assert.rejects(join(broken), (err: Error & { code?: string }) => err.code === 'BAD_CONFIG' && err.message.includes(`${broken}/eu-west/dr/state`) && !err.message.includes('"topics"'));
});

test(`a broker with more reports and topics than etcd takes in one transaction (--max-txn-ops 128) seeds them in batches of ${SEED_BATCH}, never overwriting a report already there`, async () => {
  const prefix = '/drsync-many';
  const n = 150;
  const dir = newDataDir();
  const alone = new DrState(dir, 'eu-west');
  for (let i = 0; i < n; i++) alone.reports.save(promoteReport(`t${i}`, 1));
  const topics = Object.fromEntries(Array.from({ length: n }, (_, i) => [`t${i}`, promoted(1, `promote-t${i}-e1`)]));
  fs.writeFileSync(alone.file, JSON.stringify({ version: 1, topics }, null, 2) + '\n');
  // One report is in etcd already, as another broker wrote it: it is kept as it is.
  const other = await join(prefix);
  const theirs = { ...promoteReport('t0', 1), at: new Date(1).toISOString() };
  await other.region.client.put(other.region.keys.drReport('promote-t0-e1')).value(JSON.stringify(theirs)).exec();

  const a = await join(prefix, dir);
  const held = await drKeys(a);
  assert.equal([...held.keys()].filter((k) => k.startsWith('reports/')).length, n, 'every report is in etcd');
  assert.equal([...held.keys()].filter((k) => k.startsWith('topics/')).length, n, 'every topic is in etcd');
  assert.deepEqual(JSON.parse(held.get('reports/promote-t0-e1')!), theirs, 'the report already there was not overwritten');
  assert.deepEqual(JSON.parse(held.get('reports/promote-t149-e1')!), promoteReport('t149', 1));
  assert.deepEqual(a.state.snapshot().topics, topics);
  const b = await join(prefix);
  assert.deepEqual(b.state.snapshot().topics, topics);
  assert.equal(b.state.reports.list().length, n);
  await waitFor('the running broker to apply them', () => other.state.entries().length === n, 5_000, 10);
});

test('two brokers seeding at once: per topic the first writer wins, and both follow what etcd holds', async () => {
  const prefix = '/drsync-seed-race';
  const n = 2 * SEED_BATCH + 10;
  const own = (epoch: number) => {
    const dir = newDataDir();
    const topics = Object.fromEntries(Array.from({ length: n }, (_, i) => [`t${i}`, promoted(epoch)]));
    fs.mkdirSync(path.join(dir, 'dr'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'dr', 'state.json'), JSON.stringify({ version: 1, topics }, null, 2) + '\n');
    return dir;
  };
  const [a, b] = await Promise.all([join(prefix, own(1)), join(prefix, own(2))]);
  assert.deepEqual(a.state.snapshot(), b.state.snapshot(), 'both follow the same roles');
  const held = await drKeys(a);
  const topics = [...held].filter(([k]) => k.startsWith('topics/'));
  assert.equal(topics.length, n, 'every topic has one key');
  for (const [k, v] of topics) assert.deepEqual(JSON.parse(v), a.state.entry(k.slice('topics/'.length)));
  assert.ok(held.has('initialized'));
});

test('a DrState listener that throws is logged with its topic, the other listeners still hear the change, and the change answers at once', async () => {
  const prefix = '/drsync-listener';
  const a = await join(prefix);
  // The region's first change also writes its marker, whose event (same revision) would count
  // that revision applied: make it first, so the next change's last event is its topic key.
  await a.state.update('first', () => promoted(1));
  const heard: string[] = [];
  a.state.onChange(() => {
    throw new Error('listener fault');
  });
  a.state.onChange((topic) => heard.push(topic));
  // Without the fix the watch's apply threw before it counted the revision applied: the
  // change waited its whole 30 s for its own write and failed.
  await a.state.update('orders', () => promoted(1));
  assert.deepEqual(a.state.entry('orders'), promoted(1));
  assert.deepEqual(heard, ['orders']);
  assert.ok(a.log.lines.some((l) => l.topic === 'orders' && /listener of the DR roles failed/.test(String(l.msg)) && /listener fault/.test(JSON.stringify(l.err))));
  await a.state.update('orders', (e) => ({ ...e!, supersededBy: { primary: 'us-east', epoch: 2, at: 1 } }));
  assert.deepEqual(heard, ['orders', 'orders']);
});

test("promote's final `promoted` write keeps a newer epoch noted while it measured and never brings back a role forgotten meanwhile (one in-process broker)", async () => {
  const b = await startBroker({
    region: 'eu-west',
    replication: {
      // us-east is never up: eu-west holds a read-only copy, which a promote takes over.
      regions: [{ name: 'us-east', address: '127.0.0.1:9' }, { name: 'eu-west', address: '127.0.0.1:1' }],
      policies: [{ name: 'p', topics: ['orders', 'gone'], topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
      retry: { initialMs: 1000, maxMs: 1000 },
    },
  });
  cleanups.push(() => b.cleanup());
  const dr = b.broker.dr;
  await b.broker.topics.createTopic('orders', 1);
  await b.broker.topics.createTopic('gone', 1);
  // While the promote measures (right after its `promoting` write): a peer's handshake notes
  // us-east at epoch 2 on `orders`, and the role of `gone` is forgotten (the topic deleted).
  dr.state.onChange((topic) => {
    const e = dr.state.entry(topic);
    if (e?.phase !== 'promoting') return;
    if (topic === 'orders' && e.supersededBy === undefined) void dr.state.update(topic, (cur) => ({ ...cur!, supersededBy: { primary: 'us-east', epoch: e.epoch + 1, at: Date.now() } }));
    if (topic === 'gone') void dr.state.update(topic, () => undefined);
  });
  const [report] = await dr.promote({ topic: 'orders' });
  assert.equal(report!.epoch, 1);
  const e = dr.state.entry('orders');
  assert.deepEqual([e?.phase, e?.epoch, e?.supersededBy?.primary, e?.supersededBy?.epoch], ['promoted', 1, 'us-east', 2], 'the newer epoch noted meanwhile is kept');
  assert.equal(dr.roleOf('orders')?.readOnly, true, 'so this region still takes no writes');

  await assert.rejects(dr.promote({ topic: 'gone' }), (err: Error & { code?: string; retriable?: boolean }) => err.code === 'INVALID_DR_REQUEST' && err.retriable === true && /changed during this promote/.test(err.message));
  assert.equal(dr.state.entry('gone'), undefined, 'the forgotten role did not come back');
  assert.equal(dr.reports.has('promote-gone-e1'), false, 'its report was not written');
});
