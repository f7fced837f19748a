/**
 * docker-compose.cluster.yml, checked without a container engine (none runs in CI): Debian's
 * docker-compose 1.29 accepts it, etcd is healthy before any broker starts, and every broker
 * service loads its mounted region config with exactly the environment compose gives it: the
 * region and node id it claims, a distinct node id per region, a Kafka port of its own
 * published on the host under the same number and advertised under its service name (the
 * one address a cluster registers must work for the other brokers and for clients), etcd by
 * its service name, and a registry naming every broker of both regions.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load-config.js';
import { parseRegions } from '../../src/replication/policy.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FILE = 'docker-compose.cluster.yml';

interface Service {
  build?: unknown;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: unknown;
  profiles?: string[];
}

const compose = parse(fs.readFileSync(path.join(ROOT, FILE), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const brokers = Object.entries(compose.services).filter(([, s]) => s.command?.[0] === 'broker');

/** Compose's ${VAR:-default} as it resolves with none of the variables set on the host. */
const substitute = (value: string) => value.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1');

test(`${FILE}: Debian's docker-compose accepts it (config -q)`, () => {
  const r = spawnSync('docker-compose', ['-f', FILE, 'config', '-q'], { cwd: ROOT, encoding: 'utf8' });
  assert.ok(r.error === undefined, 'docker-compose is not installed (run: bash scripts/install-tools.sh)');
  assert.equal(r.status, 0, r.stderr);
});

test(`${FILE}: etcd with a healthcheck, six brokers from the repository's Dockerfile waiting for it`, () => {
  assert.ok(compose.services.etcd?.image?.includes('etcd'), 'an etcd service');
  assert.ok(compose.services.etcd?.healthcheck !== undefined, 'etcd has a healthcheck');
  assert.deepEqual(brokers.map(([name]) => name).sort(), ['eu-west-1', 'eu-west-2', 'eu-west-3', 'us-east-1', 'us-east-2', 'us-east-3']);
  for (const [name, s] of brokers) {
    assert.equal(s.build, '.', `${name} is built from ./Dockerfile`);
    assert.ok(s.healthcheck !== undefined, `${name} has a healthcheck`);
    assert.equal((s.depends_on as Record<string, { condition: string }>)?.etcd?.condition, 'service_healthy', `${name} waits for etcd`);
  }
});

test(`${FILE}: every broker loads its mounted config with the environment compose gives it`, () => {
  const seen = new Map<string, Set<number>>();
  for (const [name, s] of brokers) {
    const configArg = s.command![s.command!.indexOf('--config') + 1]!;
    const mount = (s.volumes ?? []).map((v) => v.split(':')).find(([, target]) => configArg.startsWith(`${target}/`));
    assert.ok(mount !== undefined, `${name}: nothing mounted at the directory of ${configArg}`);
    const file = path.join(ROOT, mount[0]!, path.relative(mount[1]!, configArg));
    const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, substitute(String(v))]));
    const config = loadConfig({ file, env });
    const [region, id] = [name.replace(/-\d+$/, ''), Number(name.split('-').at(-1))];
    assert.equal(config.region, region);
    assert.equal(config.nodeId, id, `${name}: node id`);
    const ids = seen.get(region) ?? new Set<number>();
    assert.ok(!ids.has(id), `${name}: node id ${id} used twice in ${region}`);
    seen.set(region, ids.add(id));
    assert.deepEqual(config.cluster.etcd.endpoints, ['etcd:2379'], `${name}: etcd by its service name`);
    assert.ok(config.admin.token !== null, `${name}: the admin API listens off loopback, so it needs a token`);
    assert.ok(config.dataDir.startsWith('/var/lib/meridian/'), `${name}: dataDir ${config.dataDir}`);
    assert.equal(config.admin.port, 9644, `${name}: the image's HEALTHCHECK asks 9644`);
    // Advertised as <service>:<port>, and that port published on the host under the same number.
    assert.equal(config.kafka.advertisedHost, name);
    assert.equal(config.kafka.advertisedPort ?? config.kafka.port, config.kafka.port);
    const published = (s.ports ?? []).map((p) => p.split(':'));
    assert.ok(published.some((p) => p.at(-1) === String(config.kafka.port) && p.at(-2) === String(config.kafka.port)), `${name}: Kafka port ${config.kafka.port} published as itself`);
    assert.ok(published.some((p) => p.at(-1) === '9644'), `${name}: admin port published`);
    // The registry: both regions, each by all three of its brokers.
    const addresses = Object.fromEntries(parseRegions(config.replication.regions).map((r) => [r.name, (r.bootstrap ?? [r.address]).slice().sort()]));
    for (const r of ['us-east', 'eu-west']) {
      const want = brokers.filter(([n]) => n.startsWith(`${r}-`)).map(([n, b]) => `${n}:${b.environment!.MERIDIAN_KAFKA__PORT}`).sort();
      assert.deepEqual(addresses[r], want, `${name}: the registry lists every broker of ${r}`);
    }
  }
});
