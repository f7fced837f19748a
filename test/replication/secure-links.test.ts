/**
 * Issue 14, authenticated replication links: two regions, us-east and eu-west, each an
 * in-process broker whose only listener is SASL_SSL (certificates from helpers/tls-certs.ts),
 * with authorization on and SASL sessions of 3 s (KIP-368: the links renew their
 * connections all along). Each region's link user holds ClusterAction in the other region
 * and the registry binds it to its region (`principal`).
 *
 * - Records produced in us-east with KafkaJS over SASL_SSL reach eu-west exactly once, in
 *   order, byte for byte.
 * - A forged ReplicatedAppend (and handshake) from an ordinary authenticated user is refused
 *   with CLUSTER_AUTHORIZATION_FAILED; one from a principal holding ClusterAction but
 *   claiming a region that is not a source of the topic, or a region it is not bound to, is
 *   refused too. Nothing is written (the high watermark does not move) and eu-west logs a
 *   warn line naming the principal and the region claimed.
 * - A link whose password eu-west refuses, and a link that does not trust eu-west's
 *   certificate, replicate nothing and show a clear error in the sender's replication
 *   status; fixing the credential (or the CA file) resumes the link without a restart.
 * - Over mutual TLS (a broker of its own) a link is its certificate's subject: refused until
 *   that principal holds ClusterAction, and bound to its region by the registry.
 * - No password appears in either region's log.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { LinkClient } from '../../src/replication/link-client.js';
import { metadataRequest } from '../../src/replication/remote-leaders.js';
import { readAppendResponse, readHandshakeResponse, ReplicationApiKey, writeAppendRequest, writeHandshakeRequest } from '../../src/replication/replication-api.js';
import { AclOperation, AclPermissionType, aclBinding, CLUSTER_RESOURCE_NAME, ResourceType } from '../../src/security/acl.js';
import { captureLog, startBroker, type LogCapture, type TestBroker } from '../helpers/broker.js';
import { collectMessages } from '../helpers/kafkajs-collect.js';
import { freePort } from '../helpers/regions.js';
import { originBatches } from '../helpers/replication-link.js';
import { makePki, type Pki } from '../helpers/tls-certs.js';
import { registerSecret } from '../helpers/secrets.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const TOPIC = 'orders';
const PARTITIONS = 2;
const CLUSTER_AUTHORIZATION_FAILED = 31;
const ADMIN_PASSWORD = 'admin-secret-8c1f';
const LINK_PASSWORDS: Record<string, string> = { 'us-east': 'us-east-link-secret-93ad', 'eu-west': 'eu-west-link-secret-47be' };
const BOB_PASSWORD = 'bob-secret-d2e0';
const STRAY_PASSWORD = 'stray-secret-5a71';
const PASSWORDS = [ADMIN_PASSWORD, ...Object.values(LINK_PASSWORDS), BOB_PASSWORD, STRAY_PASSWORD];
// The end-of-run check (zz-no-secrets.test.ts) looks for them in every process's log too.
registerSecret('secure-links passwords', ...PASSWORDS);

let pki: Pki;
let certs: { dir: string; cleanup: () => void };
let east: TestBroker;
let west: TestBroker;
const logs: Record<string, LogCapture> = {};
const ports: Record<string, number> = {};
/** us-east's CA file for its links: the untrusted-CA case swaps its content. */
let eastLinkCa: string;
/** What us-east produced, per partition, in order. */
const produced: Buffer[][] = Array.from({ length: PARTITIONS }, () => []);

function regionConfig(name: string, linkCa: string): BrokerConfigInput {
  return {
    region: name,
    kafka: { listeners: [{ name: 'SASL_SSL', host: '127.0.0.1', port: ports[name], securityProtocol: 'SASL_SSL', tls: { certFile: pki.broker.cert, keyFile: pki.broker.key } }] },
    groups: { initialRebalanceDelayMs: 0 },
    security: {
      bootstrap: { user: 'admin', password: ADMIN_PASSWORD },
      authorization: { enabled: true, superUsers: ['User:admin'] },
      sasl: { reauthMs: 3000, failureDelayMs: 0 },
    },
    replication: {
      regions: [
        { name: 'us-east', address: `127.0.0.1:${ports['us-east']}`, principal: 'User:us-east-link' },
        { name: 'eu-west', address: `127.0.0.1:${ports['eu-west']}`, principal: 'User:eu-west-link' },
        // In the registry, but a source of nothing eu-west takes.
        { name: 'ap-south', address: '127.0.0.1:9' },
      ],
      policies: [{ name: 'orders-mesh', topics: TOPIC, topology: 'mesh', regions: ['us-east', 'eu-west'] }],
      tls: { enabled: true, caFile: linkCa },
      sasl: { mechanism: 'SCRAM-SHA-512', username: `${name}-link`, password: LINK_PASSWORDS[name] },
      retry: { initialMs: 50, maxMs: 500 },
      requestTimeoutMs: 5000,
    },
  };
}

/** The link user `peer` logs in as here, with ClusterAction on the cluster. */
function grantLink(tb: TestBroker, peer: string): void {
  tb.broker.security.credentials.upsert(`${peer}-link`, 'SCRAM-SHA-512', LINK_PASSWORDS[peer]);
  grantClusterAction(tb, `User:${peer}-link`);
}

function grantClusterAction(tb: TestBroker, principal: string): void {
  const [result] = tb.broker.security.acls.create([
    aclBinding({ resourceType: ResourceType.Cluster, name: CLUSTER_RESOURCE_NAME, principal, operation: AclOperation.ClusterAction, permissionType: AclPermissionType.Allow }),
  ]);
  assert.equal(result.error, null);
}

function kafkaOf(tb: TestBroker, clientId: string): Kafka {
  return new Kafka({
    clientId,
    brokers: [`127.0.0.1:${tb.broker.kafkaPort}`],
    ssl: { ca: [fs.readFileSync(pki.ca.cert)] },
    sasl: { mechanism: 'scram-sha-512', username: 'admin', password: ADMIN_PASSWORD },
    reauthenticationThreshold: 1000,
    logLevel: logLevel.NOTHING,
    retry: { retries: 10, initialRetryTime: 100 },
  });
}

before(async () => {
  certs = tmpDir('meridian-secure-links-');
  pki = makePki(certs.dir);
  eastLinkCa = path.join(certs.dir, 'east-link-ca.pem');
  fs.copyFileSync(pki.ca.cert, eastLinkCa);
  [ports['us-east'], ports['eu-west']] = await Promise.all([freePort(), freePort()]);
  for (const name of ['us-east', 'eu-west']) logs[name] = captureLog();
  [east, west] = await Promise.all([
    startBroker(regionConfig('us-east', eastLinkCa), undefined, { log: logs['us-east'] }),
    startBroker(regionConfig('eu-west', pki.ca.cert), undefined, { log: logs['eu-west'] }),
  ]);
  grantLink(east, 'eu-west');
  grantLink(west, 'us-east');
  const admin = kafkaOf(east, 'secure-links-admin').admin();
  await admin.connect();
  try {
    assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true }), true);
  } finally {
    await admin.disconnect();
  }
});

after(async () => {
  await east?.cleanup();
  await west?.cleanup();
  certs?.cleanup();
});

/** Produces `count` records in us-east with KafkaJS over SASL_SSL, alternating partitions; binary values. */
async function produce(tag: string, count: number): Promise<void> {
  const producer = kafkaOf(east, `secure-links-${tag}`).producer({ idempotent: true });
  await producer.connect();
  try {
    const messages = Array.from({ length: count }, (_, i) => {
      const bytes = Buffer.alloc((i * 37) % 300);
      for (let j = 0; j < bytes.length; j++) bytes[j] = (i * 31 + j * 7) & 0xff;
      return { partition: i % PARTITIONS, value: Buffer.concat([Buffer.from(`${tag}-${i}|`), bytes]) };
    });
    for (let i = 0; i < messages.length; i += 25) await producer.send({ topic: TOPIC, acks: -1, messages: messages.slice(i, i + 25) });
    for (const m of messages) produced[m.partition].push(m.value);
  } finally {
    await producer.disconnect();
  }
}

function westHighWatermarks(): bigint[] {
  return Array.from({ length: PARTITIONS }, (_, p) => west.broker.topics.partition(TOPIC, p)?.highWatermark ?? 0n);
}

/** eu-west holds every record us-east produced, once, in order, byte for byte (read with KafkaJS over SASL_SSL). */
async function assertWestHoldsEverything(groupId: string): Promise<void> {
  const total = produced.reduce((n, p) => n + p.length, 0);
  const got = await collectMessages(kafkaOf(west, groupId), { groupId, topics: [TOPIC], count: total, timeoutMs: 30_000, consumer: { maxWaitTimeInMs: 100 } });
  assert.equal(got.length, total, 'no record twice, none missing');
  for (let p = 0; p < PARTITIONS; p++) {
    const values = got.filter((m) => m.partition === p).map((m) => m.value!);
    assert.equal(values.length, produced[p].length, `partition ${p} count`);
    values.forEach((v, i) => assert.ok(v.equals(produced[p][i]), `partition ${p} record ${i} is byte-identical and in order`));
  }
}

/** Waits until eu-west's log ends hold as many data records as us-east produced (markers included in the offsets). */
async function waitReplicated(): Promise<void> {
  await waitFor(
    'us-east to replicate everything to eu-west',
    () => east.broker.replicator.status().every((w) => w.remote !== 'eu-west' || (w.backlogRecords === 0 && w.state === 'idle')) && westHighWatermarks().every((hw) => hw > 0n),
    30_000,
    50,
    () => JSON.stringify(east.broker.replicator.status().filter((w) => w.remote === 'eu-west').map((w) => ({ p: w.partition, state: w.state, error: w.error, backlog: w.backlogRecords }))),
  );
}

function eastToWest(): Array<{ state: string; error: string | null; retries: number }> {
  return east.broker.replicator.status().filter((w) => w.topic === TOPIC && w.remote === 'eu-west');
}

/** A client of eu-west's replication API, as `user` over SASL_SSL. */
function forger(user: string, password: string, mechanism: 'PLAIN' | 'SCRAM-SHA-512'): LinkClient {
  return new LinkClient({
    address: `127.0.0.1:${ports['eu-west']}`,
    remote: 'eu-west',
    clientId: `forger-${user}`,
    requestTimeoutMs: 10_000,
    security: { tls: { enabled: true, caFile: pki.ca.cert, certFile: null, keyFile: null, serverName: null }, sasl: { mechanism, username: user, password } },
  });
}

async function forge(client: LinkClient, senderRegion: string): Promise<Array<{ errorCode: number; errorMessage: string | null }>> {
  const hs = readHandshakeResponse(
    await client.request(ReplicationApiKey.Handshake, 0, (w) => writeHandshakeRequest(w, { targetRegion: 'eu-west', senderRegion, senderTopicId: 'forged-id', topic: TOPIC, partitionCount: PARTITIONS, createIfMissing: true, dr: null })),
  );
  const { batches, end } = originBatches('forged', 3, 0n);
  const ap = readAppendResponse(
    await client.request(ReplicationApiKey.Append, 0, (w) =>
      writeAppendRequest(w, {
        targetRegion: 'eu-west',
        senderRegion,
        senderTopicId: 'forged-id',
        topic: TOPIC,
        partition: 0,
        continuesFrom: -2n,
        senderEndOffset: end,
        entries: [{ originRegion: senderRegion, originTopicId: 'forged-id', originPartition: 0, hops: [], batches }],
      }),
    ),
  );
  return [hs, ap];
}

function refusalLines(principal: string, region: string): Array<Record<string, any>> {
  return logs['eu-west'].lines.filter((l) => l.msg === 'replication request refused' && l.level === 'warn' && l.principal === principal && l.claimedRegion === region);
}

test('replication over SASL_SSL between two regions with authorization on: every record once, in order, byte for byte', { timeout: 60_000 }, async () => {
  await produce('first', 200);
  await waitReplicated();
  await assertWestHoldsEverything('check-first');
  assert.ok(westHighWatermarks().every((hw) => hw >= 100n));
});

test('a forged ReplicatedAppend from an ordinary authenticated client is refused with CLUSTER_AUTHORIZATION_FAILED; nothing is written', { timeout: 30_000 }, async (t) => {
  west.broker.security.credentials.upsert('bob', 'SCRAM-SHA-512', BOB_PASSWORD);
  const bob = forger('bob', BOB_PASSWORD, 'PLAIN');
  t.after(() => bob.close());
  const before = westHighWatermarks();
  for (const r of await forge(bob, 'us-east')) {
    assert.equal(r.errorCode, CLUSTER_AUTHORIZATION_FAILED, r.errorMessage ?? '');
    assert.match(r.errorMessage ?? '', /User:bob may not use the replication API .*claiming region us-east.* needs ClusterAction on the cluster/);
  }
  assert.deepEqual(westHighWatermarks(), before, 'nothing written');
  const line = await waitFor('a warn line for bob', () => refusalLines('User:bob', 'us-east')[0]);
  assert.equal(line.code, 'CLUSTER_AUTHORIZATION_FAILED');
  assert.equal(line.clientHost, '127.0.0.1');
});

test('a link principal with ClusterAction alone may describe the topics it replicates (its Metadata routes partitions to leaders); an ordinary user may not', { timeout: 30_000 }, async (t) => {
  const ask = async (user: string, password: string) => {
    const c = forger(user, password, 'SCRAM-SHA-512');
    t.after(() => c.close());
    const req = metadataRequest([TOPIC]);
    return req.read(await c.request(req.apiKey, req.version, req.body));
  };
  const link = await ask('us-east-link', LINK_PASSWORDS['us-east']!);
  assert.equal(link.leaders.get(TOPIC)?.size, PARTITIONS, 'every partition of the topic with its leader');
  west.broker.security.credentials.upsert('carol', 'SCRAM-SHA-512', BOB_PASSWORD);
  const carol = await ask('carol', BOB_PASSWORD);
  assert.equal(carol.leaders.has(TOPIC), false, 'without DESCRIBE or ClusterAction the topic is not described');
});

test('a link without SASL (or without TLS) on eu-west\'s SASL_SSL listener is closed unanswered, and its error names the setting to check', { timeout: 30_000 }, async (t) => {
  const handshake = (client: LinkClient) =>
    client.request(ReplicationApiKey.Handshake, 0, (w) => writeHandshakeRequest(w, { targetRegion: 'eu-west', senderRegion: 'us-east', senderTopicId: 'no-sasl', topic: TOPIC, partitionCount: PARTITIONS, createIfMissing: false, dr: null }));
  const noSasl = new LinkClient({
    address: `127.0.0.1:${ports['eu-west']}`,
    remote: 'eu-west',
    clientId: 'no-sasl',
    requestTimeoutMs: 10_000,
    security: { tls: { enabled: true, caFile: pki.ca.cert, certFile: null, keyFile: null, serverName: null }, sasl: { mechanism: null, username: null, password: null } },
  });
  t.after(() => noSasl.close());
  await assert.rejects(handshake(noSasl), (err: Error) => {
    assert.match(err.message, /connection to 127\.0\.0\.1:\d+ closed before answering: if region eu-west \(127\.0\.0\.1:\d+\)'s listener needs it, set replication\.sasl /);
    assert.doesNotMatch(err.message, /replication\.tls/, 'TLS is set: not suggested');
    return true;
  });
  const plain = new LinkClient({ address: `127.0.0.1:${ports['eu-west']}`, remote: 'eu-west', clientId: 'plain', requestTimeoutMs: 10_000 });
  t.after(() => plain.close());
  await assert.rejects(handshake(plain), /closed before answering: .*set replication\.sasl .*, or replication\.tls /);
});

test('a principal with ClusterAction claiming a region that is not a source of the topic, or one it is not bound to, is refused; nothing is written', { timeout: 30_000 }, async (t) => {
  // ap-south's would-be link user: allowed the replication API, but no policy has ap-south send orders here.
  west.broker.security.credentials.upsert('ap-south-link', 'SCRAM-SHA-512', STRAY_PASSWORD);
  grantClusterAction(west, 'User:ap-south-link');
  const stray = forger('ap-south-link', STRAY_PASSWORD, 'SCRAM-SHA-512');
  t.after(() => stray.close());
  // us-east's own link user, speaking for another region than the one the registry binds it to.
  const eastLink = forger('us-east-link', LINK_PASSWORDS['us-east'], 'SCRAM-SHA-512');
  t.after(() => eastLink.close());
  const before = westHighWatermarks();
  for (const r of await forge(stray, 'ap-south')) {
    assert.equal(r.errorCode, CLUSTER_AUTHORIZATION_FAILED, r.errorMessage ?? '');
    assert.match(r.errorMessage ?? '', /region eu-west takes topic orders from region ap-south by no policy: policy 'orders-mesh' \(mesh\) has us-east send it to eu-west/);
  }
  for (const r of await forge(eastLink, 'ap-south')) {
    assert.equal(r.errorCode, CLUSTER_AUTHORIZATION_FAILED, r.errorMessage ?? '');
    assert.match(r.errorMessage ?? '', /User:us-east-link is the principal of region us-east .* cannot send as region ap-south/);
  }
  assert.deepEqual(westHighWatermarks(), before, 'nothing written');
  for (const principal of ['User:ap-south-link', 'User:us-east-link']) {
    const line = await waitFor(`a warn line for ${principal}`, () => refusalLines(principal, 'ap-south')[0]);
    assert.equal(line.code, 'REPLICATION_UNAUTHORIZED');
  }
  // The real link was not disturbed.
  await produce('after-forgery', 20);
  await waitReplicated();
  await assertWestHoldsEverything('check-forgery');
});

/** Waits until us-east's link to eu-west has let its connection go (its SASL session ended). */
async function waitLinkIdle(): Promise<void> {
  await waitFor('the link to eu-west to retire its connection', () => east.broker.replicator.links().find((l) => l.remote === 'eu-west')?.connected === false, 15_000, 20);
}

test('a link whose password the remote refuses replicates nothing and says why; fixing the credential resumes it without a restart', { timeout: 60_000 }, async () => {
  west.broker.security.credentials.upsert('us-east-link', 'SCRAM-SHA-512', 'not-the-link-password');
  await waitLinkIdle();
  const before = westHighWatermarks();
  await produce('wrong-password', 30);
  const failing = await waitFor('the link to report the refused credentials', () => eastToWest().find((w) => w.error?.includes("refused this region's credentials")), 20_000, 20);
  assert.match(failing.error!, /region eu-west refused this region's credentials \(user us-east-link, SCRAM-SHA-512\)/);
  assert.equal(failing.state, 'error');
  const retries = eastToWest().reduce((n, w) => n + w.retries, 0);
  await waitFor('the link to retry', () => eastToWest().reduce((n, w) => n + w.retries, 0) >= retries + 2, 20_000, 20);
  assert.deepEqual(westHighWatermarks(), before, 'nothing replicated while the credentials are refused');

  west.broker.security.credentials.upsert('us-east-link', 'SCRAM-SHA-512', LINK_PASSWORDS['us-east']);
  await waitReplicated();
  assert.ok(eastToWest().every((w) => w.error === null));
  await assertWestHoldsEverything('check-password');
});

test('a link that does not trust the remote certificate replicates nothing and says why; fixing its CA file resumes it without a restart', { timeout: 60_000 }, async () => {
  fs.copyFileSync(pki.otherCa.cert, eastLinkCa);
  await waitLinkIdle();
  const before = westHighWatermarks();
  await produce('untrusted-ca', 30);
  const failing = await waitFor('the link to report the TLS failure', () => eastToWest().find((w) => w.error?.includes('TLS with region eu-west')), 20_000, 20);
  assert.match(failing.error!, /TLS with region eu-west \(127\.0\.0\.1:\d+\) failed: its certificate did not verify .*tls\.caFile/);
  const retries = eastToWest().reduce((n, w) => n + w.retries, 0);
  await waitFor('the link to retry', () => eastToWest().reduce((n, w) => n + w.retries, 0) >= retries + 2, 20_000, 20);
  assert.deepEqual(westHighWatermarks(), before, 'nothing replicated to an untrusted certificate');

  fs.copyFileSync(pki.ca.cert, eastLinkCa);
  await waitReplicated();
  await assertWestHoldsEverything('check-ca');
});

test('mutual TLS: a link with a client certificate is its subject; ClusterAction granted to it lets it in, and the registry binds its region to it', { timeout: 30_000 }, async (t) => {
  const alice = 'User:CN=alice,OU=ops,O=Meridian,C=US';
  const tb = await startBroker({
    region: 'eu-west',
    kafka: { listeners: [{ name: 'MTLS', host: '127.0.0.1', port: 0, securityProtocol: 'SSL', tls: { certFile: pki.broker.cert, keyFile: pki.broker.key, caFile: pki.ca.cert, clientAuth: 'required' } }] },
    security: { authorization: { enabled: true, superUsers: [] } },
    replication: {
      regions: [
        { name: 'us-east', address: '127.0.0.1:1', principal: alice },
        { name: 'eu-west', address: '127.0.0.1:1' },
        { name: 'ap-south', address: '127.0.0.1:1' },
      ],
      policies: [{ topics: 'mtls-*', topology: 'aggregation', sources: ['us-east', 'ap-south'], target: 'eu-west' }],
    },
  });
  t.after(() => tb.cleanup());
  const client = new LinkClient({
    address: `127.0.0.1:${tb.broker.kafkaPort}`,
    remote: 'eu-west',
    clientId: 'mtls-link',
    requestTimeoutMs: 10_000,
    security: { tls: { enabled: true, caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key, serverName: 'localhost' }, sasl: { mechanism: null, username: null, password: null } },
  });
  t.after(() => client.close());
  const handshake = async (senderRegion: string) =>
    readHandshakeResponse(await client.request(ReplicationApiKey.Handshake, 0, (w) => writeHandshakeRequest(w, { targetRegion: 'eu-west', senderRegion, senderTopicId: 'tid', topic: 'mtls-events', partitionCount: 1, createIfMissing: true, dr: null })));
  const denied = await handshake('us-east');
  assert.equal(denied.errorCode, CLUSTER_AUTHORIZATION_FAILED);
  assert.match(denied.errorMessage ?? '', /User:CN=alice,OU=ops,O=Meridian,C=US may not use the replication API/);
  assert.equal(tb.broker.topics.getTopic('mtls-events'), undefined, 'nothing created');
  grantClusterAction(tb, alice);
  const ok = await handshake('us-east');
  assert.equal(ok.errorCode, 0, ok.errorMessage ?? '');
  assert.equal(tb.broker.topics.getTopic('mtls-events')?.partitions, 1);
  const asOther = await handshake('ap-south');
  assert.equal(asOther.errorCode, CLUSTER_AUTHORIZATION_FAILED);
  assert.match(asOther.errorMessage ?? '', /is the principal of region us-east .* cannot send as region ap-south/);
});

test('no password reaches either region\'s log', () => {
  for (const [region, capture] of Object.entries(logs)) {
    assert.ok(capture.lines.length > 0, `${region} logged something`);
    const text = capture.lines.map((l) => JSON.stringify(l)).join('\n');
    for (const pw of PASSWORDS) assert.ok(!text.includes(pw), `a password appears in ${region}'s log`);
  }
});
