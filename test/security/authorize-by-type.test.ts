/**
 * `mayOnAny` (broker/kafka/authorize.ts), Kafka's Authorizer.authorizeByResourceType, which
 * decides whether an idempotent producer may have a producer id (InitProducerId: WRITE on
 * some topic, else IDEMPOTENT_WRITE on the cluster). Each case as Kafka's default
 * implementation answers it: superusers, allowEveryoneIfNoAclFound with no ACL of the type,
 * a wildcard DENY, a literal DENY of the allowed name, a DENY prefix covering an allowed
 * prefix or name, principal, host and operation matching (ALL counts; implied operations do
 * not). The stores are real (acls.json in a temporary directory).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pino from 'pino';
import { mayOnAny } from '../../src/broker/kafka/authorize.js';
import { loadConfig } from '../../src/config/load-config.js';
import { aclBinding, AclOperation, AclPermissionType, PatternType, ResourceType, type AclBinding } from '../../src/security/acl.js';
import { BrokerSecurity } from '../../src/security/broker-security.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const dirs: Array<{ cleanup: () => void }> = [];
after(() => dirs.forEach((d) => d.cleanup()));

function security(bindings: AclBinding[], authorization: { superUsers?: string[]; allowEveryoneIfNoAclFound?: boolean } = {}): BrokerSecurity {
  const d = tmpDir('meridian-authorize-');
  dirs.push(d);
  const config = loadConfig({ env: {}, overrides: { dataDir: d.dir, security: { authorization: { enabled: true, ...authorization } } } });
  const s = BrokerSecurity.open(d.dir, config.security, pino({ level: 'silent' }));
  assert.deepEqual(s.acls.create(bindings).map((r) => r.error), bindings.map(() => null));
  return s;
}

const alice = { principal: 'User:alice', clientHost: '10.0.0.1' };
const topicAcl = (name: string, o: { patternType?: PatternType; permissionType?: AclPermissionType; operation?: AclOperation; principal?: string; host?: string } = {}) =>
  aclBinding({ resourceType: ResourceType.Topic, name, principal: 'User:alice', operation: AclOperation.Write, permissionType: AclPermissionType.Allow, ...o });
const writeAny = (s: BrokerSecurity, who = alice) => mayOnAny(s, who, AclOperation.Write, ResourceType.Topic);

test('superusers may; with no ACLs nobody else may, unless allowEveryoneIfNoAclFound', () => {
  assert.equal(writeAny(security([], { superUsers: ['User:alice'] })), true);
  assert.equal(writeAny(security([])), false);
  assert.equal(writeAny(security([], { allowEveryoneIfNoAclFound: true })), true);
  // An ACL of another type leaves topics with none.
  const groupAcl = aclBinding({ resourceType: ResourceType.Group, name: 'g', principal: 'User:bob', operation: AclOperation.Read, permissionType: AclPermissionType.Allow });
  assert.equal(writeAny(security([groupAcl], { allowEveryoneIfNoAclFound: true })), true);
  assert.equal(writeAny(security([topicAcl('t', { principal: 'User:bob' })], { allowEveryoneIfNoAclFound: true })), false, 'a topic ACL exists: the ACLs decide');
});

test('an ALLOW of WRITE or ALL on a literal name, a prefix or the wildcard, for the principal or User:*, from the host or *', () => {
  assert.equal(writeAny(security([topicAcl('orders')])), true);
  assert.equal(writeAny(security([topicAcl('teamA.', { patternType: PatternType.Prefixed })])), true);
  assert.equal(writeAny(security([topicAcl('*')])), true);
  assert.equal(writeAny(security([topicAcl('orders', { operation: AclOperation.All })])), true);
  assert.equal(writeAny(security([topicAcl('orders', { principal: 'User:*' })])), true);
  assert.equal(writeAny(security([topicAcl('orders', { host: '10.0.0.1' })])), true);
  assert.equal(writeAny(security([topicAcl('orders', { host: '10.0.0.2' })])), false, 'another host');
  assert.equal(writeAny(security([topicAcl('orders', { principal: 'User:bob' })])), false, 'another principal');
  assert.equal(writeAny(security([topicAcl('orders', { operation: AclOperation.Read })])), false, 'another operation');
  assert.equal(mayOnAny(security([topicAcl('orders')]), alice, AclOperation.Describe, ResourceType.Topic), false, 'no implied operations here, as in Kafka');
});

test('DENY: the wildcard denies all; a literal DENY cancels the same literal ALLOW; a DENY prefix cancels the ALLOWs it covers', () => {
  const deny = (name: string, patternType: PatternType = PatternType.Literal) => topicAcl(name, { patternType, permissionType: AclPermissionType.Deny });
  assert.equal(writeAny(security([topicAcl('orders'), deny('*')])), false);
  assert.equal(writeAny(security([topicAcl('orders'), deny('orders')])), false);
  assert.equal(writeAny(security([topicAcl('orders'), deny('other')])), true);
  assert.equal(writeAny(security([topicAcl('teamA.orders'), deny('teamA.', PatternType.Prefixed)])), false);
  assert.equal(writeAny(security([topicAcl('teamA.x.', { patternType: PatternType.Prefixed }), deny('teamA.', PatternType.Prefixed)])), false);
  assert.equal(writeAny(security([topicAcl('teamA.', { patternType: PatternType.Prefixed }), deny('teamA.x', PatternType.Prefixed)])), true, 'a longer DENY prefix leaves other names under the ALLOW');
  assert.equal(writeAny(security([topicAcl('orders'), deny('orders', PatternType.Literal), topicAcl('payments')])), true, 'another ALLOW stands');
});
