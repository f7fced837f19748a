/**
 * The README's Kafka compatibility table is the code's (issue 11): it must equal what
 * scripts/compat-table.ts generates from KAFKA_APIS, and every row must be what a running
 * broker announces in ApiVersions. A developer who changes a served version is told the
 * command that regenerates it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { BEGIN_MARKER, compatTable, END_MARKER, README_PATH, tableIn, withTable } from '../../scripts/compat-table.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-kafka.js';

const readme = readFileSync(README_PATH, 'utf8');

let tb: TestBroker;
before(async () => {
  tb = await startBroker();
});
after(() => tb.cleanup());

test('README.md holds the API table the code serves (regenerate with `npm run docs:compat`)', () => {
  const inReadme = tableIn(readme);
  assert.ok(inReadme !== undefined, `README.md has no compatibility table between ${BEGIN_MARKER} and ${END_MARKER}; add the markers and run \`npm run docs:compat\``);
  assert.equal(inReadme, compatTable(), 'README.md\'s Kafka API table differs from what src/broker/kafka/apis.ts serves: run `npm run docs:compat` and commit README.md');
});

/** Each README row as [key, name, announced min, announced max]. */
function announcedRows(table: string): Array<[number, string, number, number]> {
  const range = (s: string): [number, number] => {
    const m = /^v(\d+)(?:–v(\d+))?$/.exec(s);
    assert.ok(m, `a version range in the table: ${s}`);
    return [Number(m[1]), Number(m[2] ?? m[1])];
  };
  return table
    .split('\n')
    .slice(2)
    .map((line) => {
      const [key, name, served, , announced] = line.split('|').slice(1, -1).map((c) => c.trim());
      const [min, max] = range(announced === 'as served' ? served : announced);
      return [Number(key), name, min, max];
    });
}

test('every row of the README table is what a running broker announces in ApiVersions, and nothing else is announced', async () => {
  const rows = announcedRows(tableIn(readme) ?? '');
  assert.ok(rows.length > 0, 'the table has rows');
  assert.ok(rows.some(([key]) => key === ApiKey.Produce) && rows.some(([key]) => key === ApiKey.Fetch), 'the table lists Produce and Fetch');
  const c = await RawClient.connect(tb.port);
  try {
    const { body } = await c.request(ApiKey.ApiVersions, 3, { clientSoftwareName: 'compat-table-test', clientSoftwareVersion: '1' });
    assert.equal(body.errorCode, 0);
    const announced = (body.apiKeys as Array<{ apiKey: number; minVersion: number; maxVersion: number }>).map((k) => [k.apiKey, k.minVersion, k.maxVersion]).sort((a, b) => a[0] - b[0]);
    assert.deepEqual(
      rows.map(([key, , min, max]) => [key, min, max]),
      announced,
      'README rows (key, announced min, max) against ApiVersions v3 from the broker',
    );
  } finally {
    c.close();
  }
});

test('docs:compat rewrites only the text between the markers, and says which markers are missing', () => {
  const doc = `# Title\n\nintro\n\n${BEGIN_MARKER}\n| stale |\n${END_MARKER}\n\nafter\n`;
  const table = compatTable();
  const out = withTable(doc, table);
  assert.equal(out, `# Title\n\nintro\n\n${BEGIN_MARKER}\n${table}\n${END_MARKER}\n\nafter\n`);
  assert.equal(withTable(out, table), out, 'rewriting an up-to-date README changes nothing');
  assert.equal(tableIn(out), table);
  assert.throws(() => withTable('# no markers\n', table), /compat-table:begin/);
});
