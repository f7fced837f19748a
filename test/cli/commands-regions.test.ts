/**
 * The `meridian` multi-region commands against two running regions, each with its admin
 * API, the registry naming both admin addresses: `status` and `region list` see both
 * regions and the link between them; `replication apply` turns a one-way setup into a mesh
 * on both regions (dry run first), after which both report the same policies and records
 * flow both ways exactly once; a region whose policies differ, a set a region refuses, and
 * an unreachable region are each named, with the documented exit code.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { meridian, meridianJson } from '../helpers/cli-run.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { freePort } from '../helpers/regions.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const NAMES = ['us-east', 'eu-west'] as const;
const ONE_WAY = [{ name: 'dr', topics: '*', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }];
const files = tmpDir('meridian-cli-policies-');
const brokers = new Map<string, TestBroker>();
const adminOf = new Map<string, string>();

before(async () => {
  const kafkaPorts = await Promise.all(NAMES.map(() => freePort()));
  const adminPorts = await Promise.all(NAMES.map(() => freePort()));
  const regions = NAMES.map((name, i) => ({ name, address: `127.0.0.1:${kafkaPorts[i]}`, admin: `127.0.0.1:${adminPorts[i]}` }));
  for (const [i, name] of NAMES.entries()) {
    const overrides: BrokerConfigInput = {
      region: name,
      kafka: { host: '127.0.0.1', port: kafkaPorts[i] },
      admin: { host: '127.0.0.1', port: adminPorts[i] },
      groups: { initialRebalanceDelayMs: 0 },
      replication: { regions, policies: ONE_WAY, retry: { initialMs: 50, maxMs: 1000 }, requestTimeoutMs: 5000 } as BrokerConfigInput['replication'],
    };
    brokers.set(name, await startBroker(overrides));
    adminOf.set(name, regions[i].admin);
  }
});

after(async () => {
  for (const b of brokers.values()) await b.cleanup();
  files.cleanup();
});

const us = () => brokers.get('us-east')!;
const eu = () => brokers.get('eu-west')!;
const US = () => adminOf.get('us-east')!;
const EU = () => adminOf.get('eu-west')!;

async function produce(bootstrap: string, topic: string, partition: number, values: string[]): Promise<void> {
  const producer = new Kafka({ clientId: 'cli-regions', brokers: [bootstrap], logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  try {
    await producer.send({ topic, messages: values.map((value) => ({ partition, value })) });
  } finally {
    await producer.disconnect();
  }
}

/** Every worker of the broker idle with nothing left to send. */
async function caughtUp(b: TestBroker): Promise<void> {
  await waitFor(`${b.config.region} to finish replicating`, () => b.broker.replicator.status().every((w) => w.state === 'idle' && w.backlogRecords === 0), 60_000, 100, () =>
    JSON.stringify(b.broker.replicator.status().map((w) => [w.topic, w.partition, w.remote, w.state, w.backlogRecords, w.error])),
  );
}

test('status and region list show both regions, the one-way link and policies that agree', async () => {
  const created = await meridian(['topic', 'create', 'events', '-p', '2', '--admin', US()]);
  assert.equal(created.code, 0, created.stderr);
  for (const p of [0, 1]) await produce(us().bootstrap, 'events', p, Array.from({ length: 20 }, (_, i) => `us-east/${p}/${i}`));
  await waitFor('the us-east → eu-west link for events', () => us().broker.replicator.status().filter((w) => w.topic === 'events').length === 2);
  await caughtUp(us());

  const s = await meridianJson(['status', '--admin', US()]);
  assert.equal(s.ok, true, JSON.stringify(s.problems));
  assert.deepEqual(s.problems, []);
  assert.deepEqual(s.regions.map((r: { name: string; reachable: boolean; admin: string }) => [r.name, r.reachable, r.admin]), [['us-east', true, US()], ['eu-west', true, EU()]]);
  const [usR, euR] = s.regions;
  assert.deepEqual(usR.links.map((l: { to: string; topic: string; policy: string; state: string; partitions: number; backlogRecords: number }) => [l.to, l.topic, l.policy, l.state, l.partitions, l.backlogRecords]), [['eu-west', 'events', 'dr', 'idle', 2, 0]]);
  assert.deepEqual(euR.links, []);
  assert.equal(usR.policies.fingerprint, euR.policies.fingerprint);
  // eu-west holds what us-east sent, as its topic list says.
  assert.equal(euR.topics, 1);
  assert.ok(euR.localBytes > 0);

  const human = await meridian(['status', '--admin', EU()]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^OK: 2 regions, 1 link, no problems/);
  assert.match(human.stdout, /^us-east\s+eu-west\s+events\s+dr\s+idle\s/m);
  assert.match(human.stdout, /^eu-west \*\s/m);

  const regions = await meridianJson(['region', 'list', '--admin', US()]);
  assert.deepEqual(regions.map((r: { name: string; self: boolean; policiesAgree: boolean | null }) => [r.name, r.self, r.policiesAgree]), [['us-east', true, true], ['eu-west', false, true]]);
  const rs = await meridianJson(['replication', 'status', '--admin', US()]);
  assert.deepEqual(rs.workers.map((w: { topic: string; partition: number; remote: string; replicatedOffset: string }) => [w.topic, w.partition, w.remote, w.replicatedOffset]), [['events', 0, 'eu-west', '19'], ['events', 1, 'eu-west', '19']]);
});

test('replication apply turns one-way into a mesh: dry run first, then every region holds the same policies and data flows both ways once', async () => {
  const file = path.join(files.dir, 'mesh.yaml');
  // A config file's shape: apply takes replication.policies from it.
  fs.writeFileSync(file, 'replication:\n  policies:\n    - { name: mesh, topics: "*", topology: mesh, regions: [us-east, eu-west] }\n');
  const before = await meridianJson(['replication', 'policies', '--admin', US()]);
  assert.equal(before.source, 'config');

  const dry = await meridianJson(['replication', 'apply', file, '--dry-run', '--admin', US()]);
  assert.equal(dry.ok, true);
  assert.equal(dry.dryRun, true);
  const plan = Object.fromEntries(dry.regions.map((r: { region: string; changes: unknown }) => [r.region, r.changes]));
  assert.deepEqual(plan['eu-west'], { start: [{ topic: 'events', remote: 'us-east', policy: 'mesh' }], stop: [] });
  assert.deepEqual(plan['us-east'], { start: [{ topic: 'events', remote: 'eu-west', policy: 'mesh' }], stop: [{ topic: 'events', remote: 'eu-west', policy: 'dr' }] });
  for (const admin of [US(), EU()]) assert.equal((await meridianJson(['replication', 'policies', '--admin', admin])).fingerprint, before.fingerprint, 'a dry run changes nothing');

  const human = await meridian(['replication', 'apply', file, '--admin', EU()]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^eu-west: valid; 1 link would start, 0 would stop\n  \+ events → us-east \(mesh\)$/m);
  assert.match(human.stdout, /^all 2 regions agree \(fingerprint [0-9a-f]+\)$/m);
  const fingerprint = /fingerprint ([0-9a-f]+)\)$/m.exec(human.stdout)![1];
  assert.notEqual(fingerprint, before.fingerprint);
  for (const admin of [US(), EU()]) {
    const set = await meridianJson(['replication', 'policies', '--admin', admin]);
    assert.equal(set.source, 'runtime');
    assert.equal(set.fingerprint, fingerprint);
    assert.deepEqual(set.policies, [{ name: 'mesh', topics: '*', topology: 'mesh', regions: ['us-east', 'eu-west'] }]);
  }
  // Applying the same set again is a no-op that still checks agreement.
  const again = await meridianJson(['replication', 'apply', file, '--admin', US()]);
  assert.equal(again.agree, true);
  assert.deepEqual(again.regions.map((r: { region: string; applied: boolean; fingerprint: string }) => [r.region, r.applied, r.fingerprint]), [['us-east', true, fingerprint], ['eu-west', true, fingerprint]]);

  // eu-west now sends too: its records reach us-east once, and us-east's are still there once.
  await produce(eu().bootstrap, 'events', 0, Array.from({ length: 30 }, (_, i) => `eu-west/0/${i}`));
  await waitFor('the eu-west → us-east link', () => eu().broker.replicator.status().some((w) => w.topic === 'events' && w.remote === 'us-east'));
  await caughtUp(eu());
  await caughtUp(us());
  for (const region of [us(), eu()]) {
    const values = (await readTopicToEnd(region.bootstrap, 'events')).map((m) => m.value!.toString()).sort();
    const expected = [...Array.from({ length: 30 }, (_, i) => `eu-west/0/${i}`), ...[0, 1].flatMap((p) => Array.from({ length: 20 }, (_, i) => `us-east/${p}/${i}`))].sort();
    assert.deepEqual(values, expected, `${region.config.region} holds every record exactly once`);
  }
  const s = await meridianJson(['status', '--admin', US()]);
  assert.equal(s.ok, true);
  assert.deepEqual(s.regions.map((r: { links: Array<{ to: string; policy: string }> }) => r.links.map((l) => `${l.to}/${l.policy}`)), [['eu-west/mesh'], ['us-east/mesh']]);
});

test('a region whose policies differ, a set a region refuses, and an unreachable region are named', async () => {
  // An operator changes eu-west alone, through its API.
  const res = await fetch(`http://${EU()}/v1/replication/policies`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ policies: [{ name: 'narrow', topics: 'audit-*', topology: 'mesh', regions: ['us-east', 'eu-west'] }] }),
  });
  assert.equal(res.status, 200);

  const s = await meridian(['status', '--json', '--admin', US()]);
  assert.equal(s.code, 1);
  const body = JSON.parse(s.stdout);
  assert.equal(body.ok, false);
  assert.deepEqual(body.problems.filter((p: { kind: string }) => p.kind === 'policy-disagreement').map((p: { region: string }) => p.region), ['eu-west']);
  const human = await meridian(['status', '--admin', US()]);
  assert.equal(human.code, 1);
  assert.match(human.stdout, /^1 problem/);
  assert.match(human.stdout, /PROBLEM {2}eu-west: replication policies differ from the other regions'/);
  const regions = await meridian(['region', 'list', '--admin', US()]);
  assert.match(regions.stdout, /^eu-west\s+\S+\s+\S+\s+DIFFER/m);

  // A set naming a region outside the registry: both refuse it, nothing changes.
  const bad = path.join(files.dir, 'bad.json');
  fs.writeFileSync(bad, JSON.stringify([{ name: 'far', topics: '*', topology: 'one-way', source: 'us-east', targets: ['ap-south'] }]));
  const fingerprints = async () => Promise.all([US(), EU()].map(async (a) => (await meridianJson(['replication', 'policies', '--admin', a])).fingerprint));
  const beforeBad = await fingerprints();
  const refused = await meridian(['replication', 'apply', bad, '--admin', US()]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /region us-east refuses the policies: policies\[0\].*ap-south/);
  assert.match(refused.stderr, /region eu-west refuses the policies/);
  assert.match(refused.stderr, /nothing was applied/);
  assert.deepEqual(await fingerprints(), beforeBad);

  // eu-west goes down: apply changes nothing and names it (exit 3); status names it (exit 1).
  await eu().stop();
  const mesh = path.join(files.dir, 'mesh.yaml');
  const down = await meridian(['replication', 'apply', mesh, '--admin', US()]);
  assert.equal(down.code, 3);
  assert.match(down.stderr, new RegExp(`region eu-west \\(${EU().replace(/\./g, '\\.')}\\): cannot reach the admin API at ${EU().replace(/\./g, '\\.')}`));
  assert.match(down.stderr, /nothing was applied/);
  assert.equal((await meridianJson(['replication', 'policies', '--admin', US()])).fingerprint, beforeBad[0]);
  const st = await meridianJson(['status', '--admin', US()], { code: 1 });
  assert.deepEqual(st.problems.filter((p: { severity: string }) => p.severity === 'problem').map((p: { kind: string; region: string }) => [p.kind, p.region]), [['unreachable', 'eu-west']]);
  const unreachable = await meridian(['status', '--admin', EU()]);
  assert.equal(unreachable.code, 3);
  assert.match(unreachable.stderr, new RegExp(`cannot reach the admin API at ${EU().replace(/\./g, '\\.')}`));
});
