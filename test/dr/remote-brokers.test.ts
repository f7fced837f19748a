/**
 * Disaster recovery reaches a remote region through any of its bootstrap addresses
 * (dr/remote-brokers.ts, replication/remote-region.ts BootstrapAddresses): with the first
 * address dead (a port nobody listens on) and a real broker second, Metadata, a DrProbe and
 * the offset sync's destination all go to the second. A single-broker remote is not a
 * cluster: the sync goes to the bootstrap address in use, one destination.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLogger } from '../../src/logging.js';
import { MeridianError } from '../../src/errors.js';
import { RemoteBrokers } from '../../src/dr/remote-brokers.js';
import { DrApiKey, readProbeResponse, writeProbeRequest } from '../../src/dr/dr-api.js';
import { metadataRequest } from '../../src/replication/remote-leaders.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { freePort } from '../helpers/regions.js';

let tb: TestBroker;
let dead: string;

before(async () => {
  tb = await startBroker({ region: 'eu-west' });
  dead = `127.0.0.1:${await freePort()}`;
});

after(async () => {
  await tb?.stop();
  await tb?.cleanup();
});

function remote(bootstrap: string[]): RemoteBrokers {
  return new RemoteBrokers({ entry: { name: 'eu-west', address: bootstrap[0], bootstrap }, security: undefined, clientId: 'remote-brokers-test', requestTimeoutMs: 5000, logger: createLogger({ level: 'silent' }) });
}

test('a dead first bootstrap address: Metadata and a probe are answered by the next one, and the offset sync goes there', async () => {
  const rb = remote([dead, tb.bootstrap]);
  try {
    assert.deepEqual(rb.destinations(), [dead], 'before any failure: the first address');
    const req = metadataRequest([]);
    const layout = req.read(await rb.request(req.apiKey, req.version, req.body));
    assert.equal(layout.brokers.size, 1, 'a single broker answered');
    assert.deepEqual(rb.destinations(), [tb.bootstrap], 'the failed address was left for the next');
    // The probe reaches the broker, which answers (no DR topic of that name there): an
    // answer from the region, not a connection failure.
    const res = readProbeResponse(await rb.request(DrApiKey.Probe, 0, (w) => writeProbeRequest(w, { targetRegion: 'eu-west', senderRegion: 'us-east', topic: 'no-such-topic', senderTopicId: 'x' })));
    assert.notEqual(res.errorCode, 0);
    assert.match(res.errorMessage ?? '', /no-such-topic/);
    await rb.refreshIfDue();
    assert.equal(rb.clustered, false);
    assert.deepEqual(rb.destinations(), [tb.bootstrap]);
  } finally {
    rb.close();
  }
});

test('no bootstrap address answers: the connection failure is thrown, naming the last address tried', async () => {
  const dead2 = `127.0.0.1:${await freePort()}`;
  const rb = remote([dead, dead2]);
  try {
    const req = metadataRequest([]);
    await assert.rejects(rb.request(req.apiKey, req.version, req.body), (err: unknown) => err instanceof MeridianError && err.code === 'LINK_UNREACHABLE' && err.message.includes(dead2));
  } finally {
    rb.close();
  }
});
