/**
 * The batch a failback on a region cluster produces to the side topic (dr/failback-cluster.ts
 * `anonymous`): the same records, byte for byte, without the original producer's identity.
 * The copy through real brokers is in test/cluster/cluster-dr.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { anonymous, failbackAccess, grantCommands, linkPrincipal } from '../../src/dr/failback-cluster.js';
import { Attributes, decodeRecords, encodeBatch, readBatchHeader, validateBatch } from '../../src/storage/record-batch.js';

test('anonymous: records, timestamps and the rest of the header kept, producer id, epoch, sequence and the transactional bit cleared, CRC valid; the original untouched', () => {
  const batch = encodeBatch({
    baseOffset: 42n,
    baseTimestamp: 1_700_000_000_000n,
    attributes: Attributes.transactional,
    producerId: 9001n,
    producerEpoch: 3,
    baseSequence: 17,
    partitionLeaderEpoch: 5,
    records: [
      { key: Buffer.from('k1'), value: Buffer.from('v1'), headers: [{ key: 'h', value: Buffer.from('x') }], timestampDelta: 0 },
      { key: null, value: Buffer.from('v2'), timestampDelta: 7 },
    ],
  });
  const original = Buffer.from(batch);
  const copy = anonymous(batch);
  assert.deepEqual(batch, original, 'the source batch is not modified');
  const h = validateBatch(copy);
  const was = readBatchHeader(original);
  assert.equal(h.baseOffset, 0n);
  assert.equal(h.producerId, -1n);
  assert.equal(h.producerEpoch, -1);
  assert.equal(h.baseSequence, -1);
  assert.equal(h.attributes & Attributes.transactional, 0);
  assert.deepEqual([h.baseTimestamp, h.maxTimestamp, h.lastOffsetDelta, h.recordCount, h.partitionLeaderEpoch], [was.baseTimestamp, was.maxTimestamp, was.lastOffsetDelta, was.recordCount, was.partitionLeaderEpoch]);
  // The records section (after the 61-byte header) is the same bytes.
  assert.deepEqual(copy.subarray(61), original.subarray(61));
  // Offsets are the side partition's own (its leader assigns them); everything else is equal.
  const withoutOffset = (b: Buffer) => decodeRecords(b).map(({ offset: _offset, ...r }) => r);
  assert.deepEqual(withoutOffset(copy), withoutOffset(original));
});

test('the principal failback acts as on a cluster: the SASL user, ANONYMOUS without one, unknown with a client certificate alone', () => {
  const tls = (certFile: string | null, enabled = true) => ({ enabled, caFile: null, certFile, keyFile: certFile, serverName: null });
  const noSasl = { mechanism: null, username: null, password: null };
  assert.equal(linkPrincipal({ tls: tls(null, false), sasl: { mechanism: 'SCRAM-SHA-512', username: 'west-link', password: 'x' } }), 'User:west-link');
  assert.equal(linkPrincipal({ tls: tls('/etc/cert.pem'), sasl: { mechanism: 'PLAIN', username: 'west-link', password: 'x' } }), 'User:west-link');
  assert.equal(linkPrincipal({ tls: tls(null, false), sasl: noSasl }), 'User:ANONYMOUS');
  assert.equal(linkPrincipal({ tls: tls(null), sasl: noSasl }), 'User:ANONYMOUS');
  assert.equal(linkPrincipal({ tls: tls('/etc/cert.pem'), sasl: noSasl }), null);
  assert.deepEqual(failbackAccess('orders', 'orders.diverged-eu-west-e2'), [
    { operation: 'Read', topic: 'orders' },
    { operation: 'Write', topic: 'orders.diverged-eu-west-e2' },
  ]);
  assert.equal(
    grantCommands('User:west-link', failbackAccess('orders', 'orders.diverged-eu-west-e2')),
    'meridian acl add --allow-principal User:west-link --operation Read --topic orders; meridian acl add --allow-principal User:west-link --operation Write --topic orders.diverged-eu-west-e2',
  );
});
