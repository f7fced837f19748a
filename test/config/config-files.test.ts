import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { defaultConfig, loadConfig } from '../../src/config/load-config.js';
import { schemaLeaves } from '../../src/config/schema.js';

const configDir = fileURLToPath(new URL('../../config/', import.meta.url));
const files = readdirSync(configDir).filter((name) => /\.ya?ml$/.test(name)).sort();

// The dev mesh: two regions side by side on one machine.
const devRegions: Record<string, { region: string; port: number; dataDir: string }> = {
  'us-east.yaml': { region: 'us-east', port: 19092, dataDir: './meridian-data/us-east' },
  'eu-west.yaml': { region: 'eu-west', port: 29092, dataDir: './meridian-data/eu-west' },
};

test('config/ holds the reference file and both dev regions', () => {
  for (const name of ['meridian.yaml', ...Object.keys(devRegions)]) assert.ok(files.includes(name), `config/${name} is missing`);
});

for (const name of files) {
  test(`config/${name} validates`, () => {
    const config = loadConfig({ file: join(configDir, name), env: {} });
    const dev = devRegions[name];
    if (dev !== undefined) {
      assert.equal(config.region, dev.region);
      assert.equal(config.kafka.port, dev.port);
      assert.equal(config.dataDir, dev.dataDir);
      assert.equal(config.nodeId, 1);
    }
  });
}

test('the dev regions do not collide on region, port or data directory', () => {
  const configs = Object.keys(devRegions).map((name) => loadConfig({ file: join(configDir, name), env: {} }));
  for (const field of ['region', 'dataDir'] as const) {
    assert.equal(new Set(configs.map((c) => c[field])).size, configs.length, `${field} repeats`);
  }
  assert.equal(new Set(configs.map((c) => c.kafka.port)).size, configs.length, 'kafka.port repeats');
});

test('meridian.yaml lists every field, each at its default', () => {
  const raw: unknown = parse(readFileSync(join(configDir, 'meridian.yaml'), 'utf8'));
  const written = leafPaths(raw).sort();
  const known = schemaLeaves().map((leaf) => leaf.path.join('.')).sort();
  assert.deepEqual(written, known);
  assert.deepEqual(loadConfig({ file: join(configDir, 'meridian.yaml'), env: {} }), defaultConfig());
});

test('every field of meridian.yaml carries a comment', () => {
  const lines = readFileSync(join(configDir, 'meridian.yaml'), 'utf8').split('\n');
  for (const [i, line] of lines.entries()) {
    // A leaf is a "key: value" line; the line above it must be a comment.
    if (/^\s*[A-Za-z]+: \S/.test(line)) assert.match(lines[i - 1] ?? '', /^\s*#/, `meridian.yaml line ${i + 1} (${line.trim()}) has no comment`);
  }
});

function leafPaths(value: unknown, prefix: string[] = []): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix.join('.')];
  return Object.entries(value).flatMap(([key, child]) => leafPaths(child, [...prefix, key]));
}
