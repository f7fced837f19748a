/**
 * `meridian acl` against a running broker (authorization on, a SASL_PLAINTEXT listener), with
 * kafka-acls' flags: `add --allow-principal User:dave --operation Read --operation Describe
 * --topic teamD. --resource-pattern-type prefixed` creates one ACL per operation, which the
 * KafkaJS user then sees applied (Metadata lists teamD.orders, not other); `list` shows them
 * as a table and as the admin API's JSON, filtered by resource, pattern type and principal;
 * `remove` takes them away; bad usage exits 2 naming the flag.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { meridian, meridianJson } from '../helpers/cli-run.js';
import { SECRETS } from '../helpers/secrets.js';

const PASSWORDS = { admin: SECRETS.saslAdmin, dave: SECRETS.saslBob };
let tb: TestBroker;
let admin: string;

function kafkaAs(user: keyof typeof PASSWORDS): Kafka {
  return new Kafka({ clientId: 'cli-acl', brokers: [`127.0.0.1:${tb.broker.kafkaPort}`], logLevel: logLevel.NOTHING, retry: { retries: 0 }, sasl: { mechanism: 'scram-sha-256', username: user, password: PASSWORDS[user] } });
}

async function topicsSeenBy(user: keyof typeof PASSWORDS): Promise<string[]> {
  const a = kafkaAs(user).admin();
  await a.connect();
  try {
    return (await a.listTopics()).sort();
  } finally {
    await a.disconnect();
  }
}

before(async () => {
  tb = await startBroker({
    kafka: { listeners: [{ name: 'SASL', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_PLAINTEXT' }] },
    admin: { host: '127.0.0.1', port: 0 },
    security: { bootstrap: { user: 'admin', password: PASSWORDS.admin }, authorization: { enabled: true, superUsers: ['User:admin'] } },
  });
  tb.broker.security.credentials.upsert('dave', 'SCRAM-SHA-256', PASSWORDS.dave);
  const a = tb.broker.adminAddress!;
  admin = `${a.host}:${a.port}`;
  const k = kafkaAs('admin').admin();
  await k.connect();
  await k.createTopics({ topics: [{ topic: 'teamD.orders' }, { topic: 'other' }] });
  await k.disconnect();
});

after(async () => {
  await tb?.cleanup();
});

test('acl add with kafka-acls flags creates one ACL per operation, which applies to the user at once; list shows them', async () => {
  assert.deepEqual(await topicsSeenBy('dave'), []);
  const added = await meridian(['acl', 'add', '--allow-principal', 'User:dave', '--operation', 'Read', '--operation', 'DescribeConfigs', '--topic', 'teamD.', '--resource-pattern-type', 'prefixed', '--admin', admin]);
  assert.equal(added.code, 0, added.stderr);
  assert.match(added.stdout, /^RESOURCE-TYPE\s+NAME\s+PATTERN\s+PRINCIPAL\s+HOST\s+OPERATION\s+PERMISSION$/m);
  assert.match(added.stdout, /^TOPIC\s+teamD\.\s+PREFIXED\s+User:dave\s+\*\s+READ\s+ALLOW$/m);
  assert.match(added.stdout, /^TOPIC\s+teamD\.\s+PREFIXED\s+User:dave\s+\*\s+DESCRIBE_CONFIGS\s+ALLOW$/m);
  assert.deepEqual(await topicsSeenBy('dave'), ['teamD.orders']);

  const all = await meridianJson(['acl', 'list', '--admin', admin]);
  assert.equal(all.length, 2);
  // kafka-acls' default for a named resource is LITERAL: the prefixed ACLs are not listed...
  assert.deepEqual(await meridianJson(['acl', 'list', '--topic', 'teamD.orders', '--admin', admin]), []);
  // ...MATCH lists what applies to the topic.
  const match = await meridianJson(['acl', 'list', '--topic', 'teamD.orders', '--resource-pattern-type', 'match', '--principal', 'User:dave', '--admin', admin]);
  assert.deepEqual(match.map((a: { operation: string }) => a.operation).sort(), ['DESCRIBE_CONFIGS', 'READ']);
  const human = await meridian(['acl', 'list', '--admin', admin]);
  assert.equal(human.code, 0, human.stderr);
  assert.equal(human.stdout.trim().split('\n').length, 3, human.stdout);
});

test('acl remove takes away the ACLs matching what is given (any operation when none is); no match says so', async () => {
  const removed = await meridianJson(['acl', 'remove', '--allow-principal', 'User:dave', '--operation', 'Read', '--topic', 'teamD.', '--resource-pattern-type', 'prefixed', '--admin', admin]);
  assert.deepEqual(removed.deleted.map((a: { operation: string }) => a.operation), ['READ']);
  assert.deepEqual(await topicsSeenBy('dave'), [], 'DESCRIBE_CONFIGS alone does not let dave see the topic');

  const rest = await meridian(['acl', 'remove', '--topic', 'teamD.', '--resource-pattern-type', 'prefixed', '--admin', admin]);
  assert.equal(rest.code, 0, rest.stderr);
  assert.match(rest.stdout, /^TOPIC\s+teamD\.\s+PREFIXED\s+User:dave\s+\*\s+DESCRIBE_CONFIGS\s+ALLOW$/m);
  const none = await meridian(['acl', 'remove', '--topic', 'teamD.', '--resource-pattern-type', 'prefixed', '--admin', admin]);
  assert.equal(none.code, 0, none.stderr);
  assert.match(none.stdout, /no ACL matched: nothing removed/);
  assert.deepEqual(await meridianJson(['acl', 'list', '--admin', admin]), []);
});

test('bad usage exits 2 naming the flag; --cluster names the cluster resource', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['acl', 'add', '--allow-principal', 'User:dave', '--topic', 't'], /name what: --operation OP/],
    [['acl', 'add', '--allow-principal', 'dave', '--operation', 'Read', '--topic', 't'], /--allow-principal: expected Type:name, e\.g\. User:alice; got "dave"/],
    [['acl', 'add', '--allow-principal', 'User:dave', '--operation', 'Reed', '--topic', 't'], /--operation: unknown operation "Reed"/],
    [['acl', 'add', '--allow-principal', 'User:dave', '--operation', 'Read', '--topic', 't', '--resource-pattern-type', 'match'], /--resource-pattern-type: expected literal, prefixed; got "match"/],
    [['acl', 'remove', '--operation', 'Read'], /name a resource/],
    [['acl', 'list', '--operation', 'Read'], /acl list filters by RESOURCE/],
  ];
  for (const [args, message] of cases) {
    const r = await meridian([...args, '--admin', admin]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const empty = await meridian(['acl', 'add', '--allow-principal', 'User:dave', '--operation', 'Read', '--topic', '', '--admin', admin]);
  assert.equal(empty.code, 2, empty.stderr);
  assert.match(empty.stderr, /--topic needs a name/);
  // --cluster names Kafka's one cluster resource.
  const cluster = await meridianJson(['acl', 'add', '--allow-principal', 'User:dave', '--operation', 'IdempotentWrite', '--cluster', '--admin', admin]);
  assert.deepEqual(cluster.created.map((a: { resourceType: string; name: string; operation: string }) => [a.resourceType, a.name, a.operation]), [['CLUSTER', 'kafka-cluster', 'IDEMPOTENT_WRITE']]);
});
