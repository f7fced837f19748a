/**
 * GET /v1/replication/status at scale: a partition stopped by a replication hold is listed
 * under `holds` (found from the workers in error, not by listing every partition's
 * directory), and `?workers=false` (what the dashboard asks) leaves the per-partition list
 * out while links, remotes and holds stay the same. Two regions in their own processes,
 * one-way us-east → eu-west; the hold is the file a region writes when it finds it lost
 * data a remote holds (replication/README.md), put in place while us-east is stopped.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Regions, waitCaughtUp, type Region } from '../helpers/regions.js';
import { waitFor } from '../helpers/wait.js';
import { httpTransport } from './admin-client.js';

const TOPIC = 'held';
const PARTITIONS = 3;
const api = (r: Region) => httpTransport(`http://127.0.0.1:${r.adminPort}`);

test('replication status lists the held partition, with and without the worker list', { timeout: 120_000 }, async (t) => {
  const regions = await Regions.create({
    names: ['us-east', 'eu-west'],
    policies: [{ name: 'dr', topics: [TOPIC], topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
    admin: true,
    overrides: { topics: { autoCreate: false } },
  });
  t.after(() => regions.close());
  await regions.start();
  const [us, eu] = [regions.get('us-east'), regions.get('eu-west')];
  assert.equal((await api(us)('POST', '/v1/topics', { name: TOPIC, partitions: PARTITIONS })).status, 201);
  await waitFor('the topic in eu-west', async () => (await api(eu)('GET', `/v1/topics/${TOPIC}`)).body.partitions?.length === PARTITIONS);
  await waitCaughtUp([us]);

  const healthy: any = (await api(us)('GET', '/v1/replication/status')).body;
  assert.equal(healthy.workers.length, PARTITIONS);
  assert.deepEqual(healthy.holds, []);

  // Partition 1 of us-east is put on hold for eu-west, as the worker itself does when it
  // finds this region lost data; a restart makes the worker read it.
  await us.stop();
  const holdFile = path.join(us.dataDir, 'logs', `${TOPIC}-1`, 'replication-hold-eu-west.json');
  assert.ok(fs.existsSync(path.dirname(holdFile)), `the partition directory ${path.dirname(holdFile)} exists`);
  fs.writeFileSync(holdFile, JSON.stringify({ remote: 'eu-west', message: `held for the test: delete ${holdFile}` }) + '\n');
  await us.start();

  const held: any = await waitFor(
    'the held partition in the status',
    async () => {
      const s: any = (await api(us)('GET', '/v1/replication/status')).body;
      return s.holds.length > 0 ? s : undefined;
    },
    60_000,
  );
  assert.deepEqual(held.holds, [{ topic: TOPIC, partition: 1, remote: 'eu-west', file: holdFile }]);
  const worker = held.workers.find((w: any) => w.partition === 1);
  assert.match(worker.error ?? '', /held for the test/);
  assert.equal(held.links.find((l: any) => l.topic === TOPIC).holds, 1);

  const brief = await api(us)('GET', '/v1/replication/status?workers=false');
  assert.equal(brief.status, 200);
  const b: any = brief.body;
  assert.deepEqual(b.workers, []);
  assert.deepEqual(b.holds, held.holds);
  assert.deepEqual(b.links.map((l: any) => [l.topic, l.partitions, l.holds]), [[TOPIC, PARTITIONS, 1]]);
  assert.equal((await api(us)('GET', '/v1/replication/status?workers=true')).body.workers.length, PARTITIONS);
  assert.equal((await api(us)('GET', '/v1/replication/status?workers=maybe')).status, 400);

  // Resolved: the file deleted, the worker resumes and the hold is gone from the status.
  fs.rmSync(holdFile);
  await waitFor('the hold to clear', async () => ((await api(us)('GET', '/v1/replication/status')).body as any).holds.length === 0, 60_000);
});
