/**
 * Every file under config/examples/ loads with the real loader, given the environment
 * variables its header documents, and says what config/README.md promises: the regions,
 * the store each tiers to, the replication policies. A file that does not validate fails
 * its test with the loader's message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load-config.js';
import type { BrokerConfig } from '../../src/config/schema.js';
import { isSecretKey } from '../../src/logging.js';

const configDir = fileURLToPath(new URL('../../config/', import.meta.url));
const examplesDir = join(configDir, 'examples');

interface Expected {
  store: BrokerConfig['tiered']['store']['type'] | 'none';
  /** Topology of each policy, in order. */
  topologies: string[];
}

/** scenario -> region file -> what it must configure. */
const SCENARIOS: Record<string, { regions: string[]; files: Record<string, Expected> }> = {
  's3-single-region': { regions: ['us-east'], files: { 'us-east': { store: 's3', topologies: [] } } },
  'active-active': {
    regions: ['us-east', 'eu-west'],
    files: { 'us-east': { store: 's3', topologies: ['mesh'] }, 'eu-west': { store: 's3', topologies: ['mesh'] } },
  },
  'dr-gcs': {
    regions: ['us-east', 'us-central'],
    files: { 'us-east': { store: 'none', topologies: ['one-way'] }, 'us-central': { store: 'gcs', topologies: ['one-way'] } },
  },
  'fan-out-azure': {
    regions: ['us-east', 'eu-west', 'ap-south', 'sa-east'],
    files: Object.fromEntries(['us-east', 'eu-west', 'ap-south', 'sa-east'].map((r) => [r, { store: 'azure', topologies: ['fan-out'] }])),
  },
  'relay-chain': {
    regions: ['us-east', 'eu-west', 'ap-south'],
    files: Object.fromEntries(['us-east', 'eu-west', 'ap-south'].map((r) => [r, { store: 'fs', topologies: ['relay'] }])),
  },
  'multi-cloud-mesh': {
    regions: ['us-east', 'eu-west', 'ap-south'],
    files: {
      'us-east': { store: 's3', topologies: ['mesh'] },
      'eu-west': { store: 'azure', topologies: ['mesh'] },
      'ap-south': { store: 'gcs', topologies: ['mesh'] },
    },
  },
  'region-cluster': {
    regions: ['us-east', 'eu-west'],
    files: { 'us-east': { store: 'none', topologies: ['mesh'] }, 'eu-west': { store: 'none', topologies: ['mesh'] } },
  },
  'secure-mesh': {
    regions: ['us-east', 'eu-west'],
    files: { 'us-east': { store: 'none', topologies: ['mesh'] }, 'eu-west': { store: 'none', topologies: ['mesh'] } },
  },
};

/** The MERIDIAN_* variables a file's header documents ("#   MERIDIAN_X=..."). */
function documentedEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [, name] of text.matchAll(/^#\s+(MERIDIAN_[A-Z0-9_]+)=/gm)) env[name!] = `example-value-of-${name}`;
  return env;
}

function load(file: string): { config: BrokerConfig; env: Record<string, string>; text: string } {
  const text = readFileSync(file, 'utf8');
  const env = documentedEnv(text);
  return { config: loadConfig({ file, env }), env, text };
}

const onDisk = readdirSync(examplesDir, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) => readdirSync(join(examplesDir, d.name)).map((f) => `${d.name}/${f}`))
  .sort();

test('config/examples holds exactly the documented scenarios, one YAML file per region', () => {
  const expected = Object.entries(SCENARIOS)
    .flatMap(([scenario, s]) => Object.keys(s.files).map((region) => `${scenario}/${region}.yaml`))
    .sort();
  assert.deepEqual(onDisk, expected);
});

test('config/README.md links every example file', () => {
  const readme = readFileSync(join(configDir, 'README.md'), 'utf8');
  for (const file of onDisk) assert.ok(readme.includes(`examples/${file}`), `config/README.md does not mention examples/${file}`);
});

for (const [scenario, { regions, files }] of Object.entries(SCENARIOS)) {
  for (const [region, expected] of Object.entries(files)) {
    const file = join(examplesDir, scenario, `${region}.yaml`);
    test(`config/examples/${scenario}/${region}.yaml validates and configures ${region}`, () => {
      const { config, env, text } = load(file);
      assert.equal(config.region, region);
      assert.equal(config.tiered.enabled, expected.store !== 'none', 'tiered.enabled');
      if (expected.store !== 'none') assert.equal(config.tiered.store.type, expected.store);
      assert.deepEqual(
        config.replication.policies.map((p) => (p as { topology: string }).topology),
        expected.topologies,
      );
      if (regions.length > 1) assert.deepEqual(config.replication.regions.map((r) => r.name), regions, 'the registry lists the scenario\'s regions');
      // Deployed brokers listen on every interface and tell clients a name they can reach
      // (with listeners: at least one of them does).
      if (config.kafka.listeners.length === 0) {
        assert.equal(config.kafka.host, '0.0.0.0');
        assert.notEqual(config.kafka.advertisedHost, null);
      } else {
        assert.ok(config.kafka.listeners.some((l) => l.host === '0.0.0.0' && l.advertisedHost !== null), 'a listener on every interface with an advertised host');
      }
      assert.ok(config.dataDir.startsWith('/var/lib/meridian/'), `dataDir ${config.dataDir}`);
      // The admin token is documented as an environment variable, and taken from it.
      assert.ok('MERIDIAN_ADMIN__TOKEN' in env, 'the header documents MERIDIAN_ADMIN__TOKEN');
      assert.equal(config.admin.token, env.MERIDIAN_ADMIN__TOKEN);
      // Each documented variable is one the loader knows (else loadConfig would have thrown)
      // and lands in the config: secrets come from the environment.
      const store = config.tiered.store;
      if ('MERIDIAN_TIERED__STORE__SECRET_ACCESS_KEY' in env) assert.equal(store.secretAccessKey, env.MERIDIAN_TIERED__STORE__SECRET_ACCESS_KEY);
      if ('MERIDIAN_TIERED__STORE__ACCOUNT_KEY' in env) assert.equal(store.accountKey, env.MERIDIAN_TIERED__STORE__ACCOUNT_KEY);
      if ('MERIDIAN_TIERED__STORE__CONNECTION_STRING' in env) assert.equal(store.connectionString, env.MERIDIAN_TIERED__STORE__CONNECTION_STRING);
      // No secret is written in the file itself.
      for (const [path, value] of secretFields(parse(text))) assert.equal(value, null, `${relative(configDir, file)}: ${path} holds a secret; set it through the environment`);
      if ('MERIDIAN_SECURITY__BOOTSTRAP__PASSWORD' in env) assert.equal(config.security.bootstrap.password, env.MERIDIAN_SECURITY__BOOTSTRAP__PASSWORD);
      if ('MERIDIAN_REPLICATION__SASL__PASSWORD' in env) assert.equal(config.replication.sasl.password, env.MERIDIAN_REPLICATION__SASL__PASSWORD);
      if (scenario === 'secure-mesh') {
        assert.equal(config.security.authorization.enabled, true);
        assert.ok(config.kafka.listeners.some((l) => l.securityProtocol === 'SASL_SSL'), 'a SASL_SSL listener');
        assert.equal(config.replication.tls.enabled, true);
        assert.equal(config.replication.sasl.username, `${region}-link`);
      }
      if (expected.store === 's3') assert.ok('MERIDIAN_TIERED__STORE__SECRET_ACCESS_KEY' in env, 'the S3 keys are documented as variables');
      if (expected.store === 'azure') {
        assert.ok('MERIDIAN_TIERED__STORE__ACCOUNT_KEY' in env || 'MERIDIAN_TIERED__STORE__CONNECTION_STRING' in env, 'the Azure key is documented as a variable');
      }
    });
  }

  test(`config/examples/${scenario}: every region agrees on the registry and the policies`, () => {
    const configs = Object.keys(files).map((region) => load(join(examplesDir, scenario, `${region}.yaml`)).config);
    const [first, ...rest] = configs;
    for (const other of rest) {
      assert.deepEqual(other.replication.regions, first!.replication.regions, `${other.region}'s registry`);
      assert.deepEqual(other.replication.policies, first!.replication.policies, `${other.region}'s policies`);
    }
  });
}

test('the Azure examples refuse to load without their documented account settings', () => {
  // The documented variable is what makes multi-cloud-mesh/eu-west.yaml valid: the loader
  // names the missing field instead of starting a broker that cannot tier.
  const file = join(examplesDir, 'multi-cloud-mesh', 'eu-west.yaml');
  assert.throws(() => loadConfig({ file, env: {} }), /tiered\.store\.(connectionString|accountName)/);
});

function secretFields(value: unknown, path: string[] = []): Array<[string, unknown]> {
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, child]): Array<[string, unknown]> =>
    // A mapping under a secret-sounding key (security.authorization) is a section, not a secret.
    isSecretKey(key) && (typeof child !== 'object' || child === null) ? [[[...path, key].join('.'), child]] : secretFields(child, [...path, key]),
  );
}
