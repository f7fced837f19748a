/**
 * The region's DR roles and reports in etcd (src/cluster/dr-sync.ts), on a real etcd with
 * brokers' DrStates in this process (no broker processes, no leases): a broker's own roles
 * seed a region that has none; a joining broker applies the region's (its differing copy kept
 * aside); a change through one broker reaches the others and their listeners, with its report;
 * changes through two brokers at once all count, and the same marking from two brokers is
 * written once; a hand-deleted document leaves the roles in force until the next change
 * writes them again; a document that does not parse stops a broker's start.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { EtcdRegion } from '../../src/cluster/etcd-region.js';
import { ClusterDrState } from '../../src/cluster/dr-sync.js';
import { DrState, KEEP, type TopicDrEntry } from '../../src/dr/dr-state.js';
import type { PromoteReport } from '../../src/dr/recovery-report.js';
import { parsePolicies } from '../../src/replication/policy.js';
import { captureLog } from '../helpers/broker.js';
import { TestEtcd } from '../helpers/etcd.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
let nodeIds = 1;
const cleanups: Array<() => void> = [];

before(async () => {
  etcd = await TestEtcd.start();
});

after(async () => {
  for (const c of cleanups.reverse()) c();
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
  const region = new EtcdRegion({ region: 'eu-west', etcd: { endpoints: [etcd.endpoint], prefix } });
  const state = new DrState(dataDir, 'eu-west');
  let sync: ClusterDrState;
  try {
    sync = await ClusterDrState.open(region, state, nodeIds++, pino({ level: 'info' }, log.destination));
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

  // Twenty topics promoted at once, half through each broker: every one lands.
  const topics = Array.from({ length: 20 }, (_, i) => `t${i}`);
  await Promise.all(topics.map((t, i) => (i % 2 === 0 ? a : b).state.update(t, () => promoted(2))));
  for (const n of [a, b]) await waitFor('both brokers to hold all twenty', () => topics.every((t) => n.state.entry(t)?.epoch === 2), 5_000, 10);

  // Two leaders note the same newer epoch at once: one write, the second keeps it.
  const before = (await a.region.client.get(a.region.keys.drState).exec()).kvs[0]!.version;
  const mark = (e: TopicDrEntry | undefined) => (e?.supersededBy !== undefined && e.supersededBy.epoch >= 5 ? KEEP : { ...e!, supersededBy: { primary: 'us-east', epoch: 5, at: Date.now() } });
  await Promise.all([a.state.update('orders', mark), b.state.update('orders', mark)]);
  const afterKv = (await a.region.client.get(a.region.keys.drState).exec()).kvs[0]!;
  assert.equal(Number(afterKv.version) - Number(before), 1, 'the marking was written once');
  await waitFor('B to apply the marking', () => b.state.entry('orders')?.supersededBy?.epoch === 5, 5_000, 10);
  assert.deepEqual(a.state.entry('orders'), b.state.entry('orders'));
  const policies = parsePolicies([{ name: 'p', topics: ['orders'], topology: 'one-way', source: 'us-east', targets: ['eu-west'] }], ['us-east', 'eu-west']);
  const role = b.state.roleOf(policies, 'orders');
  assert.equal(role?.readOnly, true, 'a region superseded at a newer epoch takes no writes, on every broker');
});

test('a hand-deleted document leaves the roles in force until the next change writes them again; a document that does not parse stops a start', async () => {
  const prefix = '/drsync-broken';
  const a = await join(prefix);
  const b = await join(prefix);
  await a.state.update('orders', () => promoted(1));
  await waitFor('B to apply', () => b.state.entry('orders') !== undefined, 5_000, 10);

  await a.region.client.delete().key(a.region.keys.drState).exec();
  await waitFor('both to log the deletion', () => [a, b].every((n) => n.log.lines.some((l) => /were deleted from etcd/.test(String(l.msg)))), 5_000, 10);
  assert.deepEqual(b.state.entry('orders'), promoted(1), 'the roles stay in force');
  // The next change, through B, writes every role again.
  await b.state.update('payments', () => promoted(2));
  const doc = JSON.parse((await a.region.client.get(a.region.keys.drState).string())!) as { topics: Record<string, TopicDrEntry> };
  assert.deepEqual(Object.keys(doc.topics).sort(), ['orders', 'payments']);
  await waitFor('A to apply the repaired document', () => a.state.entry('payments') !== undefined, 5_000, 10);

  await a.region.client.put(a.region.keys.drState).value('{ "version": 1, "topics": ').exec();
  await waitFor('A to log the broken document', () => a.log.lines.some((l) => /do not parse/.test(String(l.msg))), 5_000, 10);
  assert.deepEqual(a.state.entry('orders'), promoted(1), 'a running broker keeps its roles');
  await assert.rejects(join(prefix), (err: Error & { code?: string }) => err.code === 'BAD_CONFIG' && err.message.includes(a.region.keys.drState) && !err.message.includes('"topics"'));
});

test("a cluster broker's own copy that does not parse is moved aside and the region's document replaces it; a single broker's still stops the start", async () => {
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
