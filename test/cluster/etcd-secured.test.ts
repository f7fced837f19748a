/**
 * A region cluster on a secured etcd (issue 16: "etcd is reached through a well-kept client
 * and configured by endpoints, TLS and credentials"), with real etcds started here:
 *
 * - TLS with client certificates: etcd serves https and refuses any client without a
 *   certificate its CA signed. A broker given cluster.etcd.tls (its CA, certificate and key)
 *   registers, is the controller, takes a topic created through KafkaJS, and kcat writes and
 *   reads it; etcdctl (with a certificate) sees the broker's registration.
 * - Users: etcd with authentication on and a user whose role may write only the region's
 *   key prefix. A broker with that user's password registers and creates a topic; one with
 *   a wrong password is refused at start-up with an error naming cluster.etcd.username, and
 *   the wrong password appears neither in the error nor in the log.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { captureLog, startBroker } from '../helpers/broker.js';
import { ETCDCTL_BINARY, TestEtcd } from '../helpers/etcd.js';
import { kcat } from '../helpers/kcat.js';
import { makePki, type Pki } from '../helpers/tls-certs.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const dir = tmpDir('meridian-etcd-secured-');
let pki: Pki;
const etcds: TestEtcd[] = [];

before(() => {
  pki = makePki(path.join(dir.dir));
});

after(async () => {
  await Promise.allSettled(etcds.map((e) => e.close()));
  dir.cleanup();
});

/** Creates a one-partition topic through KafkaJS, writes three records with kcat and reads them back. */
async function writeAndRead(bootstrap: string, topic: string): Promise<void> {
  const admin = new Kafka({ clientId: 'secured', brokers: [bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  const produced = await kcat(['-P', '-b', bootstrap, '-t', topic, '-p', '0', '-X', 'acks=all'], Buffer.from('one\ntwo\nthree\n'));
  assert.equal(produced.code, 0, produced.stderr);
  const read = await kcat(['-C', '-b', bootstrap, '-t', topic, '-p', '0', '-o', 'beginning', '-e', '-q', '-f', '%s\n']);
  assert.equal(read.code, 0, read.stderr);
  assert.deepEqual(read.stdout.toString().split('\n').filter((l) => l !== ''), ['one', 'two', 'three']);
}

test('etcd over TLS with client certificates: the broker given cluster.etcd.tls registers, leads, and serves kcat', { timeout: 60_000 }, async () => {
  const etcd = await TestEtcd.start({ tls: { cert: pki.broker.cert, key: pki.broker.key, ca: pki.ca.cert, clientCert: pki.client.cert, clientKey: pki.client.key } });
  etcds.push(etcd);
  // Without a certificate, etcd refuses the connection: the TLS is real.
  const bare = spawnSync(ETCDCTL_BINARY, ['--endpoints', `https://${etcd.endpoint}`, '--dial-timeout', '1s', '--command-timeout', '2s', '--cacert', pki.ca.cert, 'get', 'x'], { encoding: 'utf8' });
  assert.notEqual(bare.status, 0, `etcdctl without a client certificate must be refused: ${bare.stdout}${bare.stderr}`);
  assert.match(bare.stderr, /certificate|tls|handshake|deadline/i, `refused for the missing certificate: ${bare.stderr}`);
  const b = await startBroker({
    region: 'tls-east',
    nodeId: 1,
    cluster: { etcd: { endpoints: [`https://${etcd.endpoint}`], tls: { caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key }, prefix: '/meridian-tls' }, leaseTtlMs: '2s' },
  });
  try {
    await waitFor('the broker to be the controller', () => b.broker.cluster?.status().isController === true, 20_000, 50);
    const registered = etcd.ctl(['get', '--prefix', '/meridian-tls/tls-east/brokers/']);
    assert.equal(registered.code, 0, registered.out);
    assert.match(registered.out, /"nodeId":1/, 'etcdctl reads the broker\'s registration');
    await writeAndRead(b.bootstrap, 'over-tls');
  } finally {
    await b.cleanup();
  }
});

test('etcd with users: the right password registers and creates topics; a wrong one is refused at start-up, naming the setting and never the password', { timeout: 90_000 }, async () => {
  const etcd = await TestEtcd.start();
  etcds.push(etcd);
  const password = 'm3ridian-etcd-pass';
  const wrong = 'not-the-etcd-password-9417';
  for (const args of [
    ['user', 'add', 'root', '--new-user-password', 'root-pass-5521'],
    ['user', 'grant-role', 'root', 'root'],
    ['user', 'add', 'meridian', '--new-user-password', password],
    ['role', 'add', 'meridian-region'],
    ['role', 'grant-permission', 'meridian-region', '--prefix=true', 'readwrite', '/meridian-auth/'],
    ['user', 'grant-role', 'meridian', 'meridian-region'],
    ['auth', 'enable'],
  ]) {
    const r = etcd.ctl(args);
    assert.equal(r.code, 0, `etcdctl ${args.join(' ')}: ${r.out}`);
  }
  assert.notEqual(etcd.ctl(['get', 'x']).code, 0, 'without a user etcd refuses: authentication is on');
  const cluster = (pass: string) => ({ etcd: { endpoints: [etcd.endpoint], username: 'meridian', password: pass, prefix: '/meridian-auth' }, leaseTtlMs: '2s' });

  const log = captureLog();
  await assert.rejects(startBroker({ region: 'auth-east', nodeId: 2, cluster: cluster(wrong) }, undefined, { log }), (err: Error) => {
    assert.match(err.message, /cluster\.etcd\.username/, `the error names the setting: ${err.message}`);
    assert.doesNotMatch(err.message, new RegExp(wrong), 'the error does not carry the password');
    return true;
  });
  assert.ok(log.lines.every((l) => !JSON.stringify(l).includes(wrong)), 'the log does not carry the password');

  const b = await startBroker({ region: 'auth-east', nodeId: 1, cluster: cluster(password) });
  try {
    await waitFor('the broker to be the controller', () => b.broker.cluster?.status().isController === true, 20_000, 50);
    const registered = etcd.ctl(['get', '--prefix', '/meridian-auth/auth-east/brokers/'], `meridian:${password}`);
    assert.match(registered.out, /"nodeId":1/, 'the registration is under the prefix the user may write');
    await writeAndRead(b.bootstrap, 'with-users');
  } finally {
    await b.cleanup();
  }
});
