import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeridianError } from '../../src/errors.js';
import { ConfigError, defaultConfig, envVarName, listEnvVars, loadConfig, parseConfig } from '../../src/config/load-config.js';
import { brokerConfigSchema, isObjectSchema, schemaLeaves, type FieldSchema } from '../../src/config/schema.js';
import { parseDuration, parseSize } from '../../src/units.js';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const DAY = 86_400_000;

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'meridian-config-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function writeConfig(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** Loads a file that must be refused; returns the error. */
function refused(load: () => unknown): ConfigError {
  try {
    load();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.ok(error instanceof MeridianError);
    assert.equal(error.code, 'BAD_CONFIG');
    assert.equal(error.retriable, false);
    return error;
  }
  assert.fail('the config was accepted');
}

describe('defaults', () => {
  test('an absent or empty file gives the documented defaults, resolved to bytes and ms', () => {
    const expected = {
      region: 'us-east',
      nodeId: 1,
      dataDir: './meridian-data/us-east',
      logging: { level: 'info', format: 'auto' },
      kafka: {
        host: '127.0.0.1',
        port: 19092,
        advertisedHost: null,
        advertisedPort: null,
        maxFrameBytes: 100 * MiB,
        queuedMaxRequestBytes: 128 * MiB,
        connectionsMaxIdleMs: 600_000,
        requestReceiveTimeoutMs: 30_000,
        maxConnections: 10000,
        maxConnectionsPerIp: 1000,
        maxConnectionCreationRate: 1000,
        fetchSessionCacheSlots: 1000,
        fetchSessionEvictionMs: 120_000,
        listeners: [],
      },
      log: {
        segmentBytes: 128 * MiB,
        segmentMs: 7 * DAY,
        indexIntervalBytes: 4 * KiB,
        maxBatchBytes: 8 * MiB,
        maxUncompressedBatchBytes: 64 * MiB,
        maxOpenFiles: null,
        tailCacheBytes: 32 * MiB,
        flush: { mode: 'fsync', intervalMs: 1000, journal: true, journalMinPartitions: 4 },
        retention: { bytes: -1, ms: 7 * DAY, checkIntervalMs: 5 * 60_000 },
      },
      topics: { autoCreate: true, defaultPartitions: 3 },
      groups: { initialRebalanceDelayMs: 3000, minSessionTimeoutMs: 6000, maxSessionTimeoutMs: 1_800_000 },
      metrics: { perPartition: false, eventLoopResolutionMs: 10 },
      tiered: {
        enabled: false,
        required: false,
        store: {
          type: 'fs',
          dir: './meridian-data/tiered',
          bucket: null,
          prefix: '',
          endpoint: null,
          region: 'us-east-1',
          forcePathStyle: false,
          accessKeyId: null,
          secretAccessKey: null,
          projectId: null,
          keyFilename: null,
          connectionString: null,
          accountName: null,
          accountKey: null,
        },
        offload: { onSeal: true, localBytesThreshold: -1, minAgeMs: -1, maxBytesPerSec: -1 },
        localRetention: { bytes: 1024 ** 3, ms: -1 },
        deletionLagMs: 60_000,
        uploadConcurrency: 4,
        checkIntervalMs: 10_000,
        cache: { bytes: 64 * 1024 ** 2, blockBytes: 1024 ** 2, readConcurrency: 8 },
      },
      replication: {
        regions: [],
        policies: [],
        maxInFlightBytes: 16 * MiB,
        maxRequestBytes: MiB,
        maxLinkRequestBytes: 4 * MiB,
        pipelineDepth: 4,
        concurrency: 16,
        requestTimeoutMs: 30_000,
        retry: { initialMs: 100, maxMs: 10_000 },
        tls: { enabled: false, caFile: null, certFile: null, keyFile: null, serverName: null },
        sasl: { mechanism: null, username: null, password: null },
      },
      admin: { host: '127.0.0.1', port: null, token: null, openReads: false, tls: { certFile: null, keyFile: null } },
      security: {
        sasl: { mechanisms: ['SCRAM-SHA-256', 'SCRAM-SHA-512', 'PLAIN'], reauthMs: 0, failureDelayMs: 100, maxFailureDelayMs: 5000 },
        bootstrap: { user: null, password: null },
        authorization: { enabled: false, superUsers: [], allowEveryoneIfNoAclFound: false },
        quotas: { producerByteRate: null, consumerByteRate: null, requestRate: null },
      },
      cluster: {
        etcd: { endpoints: [], tls: { caFile: null, certFile: null, keyFile: null }, username: null, password: null, prefix: '/meridian' },
        leaseTtlMs: 3000,
        replicaLagTimeMaxMs: 10_000,
        rideThroughEtcdOutage: true,
        defaultReplicationFactor: null,
        defaultMinInsyncReplicas: 1,
        uncleanLeaderElection: false,
        offsetsTopicPartitions: 16,
        offsetsCompactionBytes: 8 * 1024 * 1024,
      },
    };
    assert.deepEqual(defaultConfig(), expected);
    assert.deepEqual(loadConfig({ env: {} }), expected);
    assert.deepEqual(parseConfig('', 'empty.yaml'), expected);
    assert.deepEqual(parseConfig('# only a comment\n', 'comment.yaml'), expected);
  });

  test('a file sets only the fields it names', () => {
    const config = parseConfig('kafka:\n  port: 9092\n', 'x.yaml');
    assert.equal(config.kafka.port, 9092);
    assert.equal(config.kafka.host, '127.0.0.1');
    assert.equal(config.log.segmentBytes, 128 * MiB);
  });

  test('every schema field has a description and a default, every object refuses unknown fields', () => {
    const check = (node: FieldSchema, path: string): void => {
      assert.ok(node.description.length > 0, `${path} has no description`);
      if (isObjectSchema(node)) {
        assert.equal(node.additionalProperties, false, `${path} allows unknown fields`);
        for (const [key, child] of Object.entries(node.properties)) check(child, path === '' ? key : `${path}.${key}`);
      } else {
        assert.ok('default' in node, `${path} has no default`);
      }
    };
    check(brokerConfigSchema, '');
  });
});

describe('units', () => {
  test('sizes: bytes, decimal and binary units', () => {
    const cases: Array<[string | number, number]> = [
      [512, 512],
      ['512', 512],
      ['512B', 512],
      ['4KiB', 4 * KiB],
      ['128MiB', 128 * MiB],
      ['1GiB', GiB],
      ['1.5GiB', 1.5 * GiB],
      ['10MB', 10_000_000],
      ['2KB', 2000],
      ['1 GB', 1e9],
      ['64mib', 64 * MiB],
    ];
    for (const [input, bytes] of cases) assert.equal(parseSize(input), bytes, `size ${JSON.stringify(input)}`);
    for (const bad of ['12 parsecs', '1.5', 'MiB', '', '4 KiB B', '0.3B', '10m']) assert.equal(parseSize(bad), undefined, `size ${JSON.stringify(bad)}`);
  });

  test('durations: ms, s, min, h, d', () => {
    const cases: Array<[string | number, number]> = [
      [250, 250],
      ['250ms', 250],
      ['30s', 30_000],
      ['5min', 300_000],
      ['2h', 7_200_000],
      ['7d', 7 * DAY],
      ['1.5s', 1500],
    ];
    for (const [input, ms] of cases) assert.equal(parseDuration(input), ms, `duration ${JSON.stringify(input)}`);
    // "5m" is refused: minutes or months is the ambiguity a config file must not have.
    for (const bad of ['5m', '1w', 'soon', '0.5ms']) assert.equal(parseDuration(bad), undefined, `duration ${JSON.stringify(bad)}`);
  });

  test('a file may mix units and plain numbers', () => {
    const config = parseConfig(
      ['log:', '  segmentBytes: 1GiB', '  segmentMs: 2h', '  indexIntervalBytes: 8192', '  retention:', '    bytes: 10MB', '    ms: -1', '    checkIntervalMs: 30s'].join('\n'),
      'units.yaml',
    );
    assert.equal(config.log.segmentBytes, GiB);
    assert.equal(config.log.segmentMs, 7_200_000);
    assert.equal(config.log.indexIntervalBytes, 8192);
    assert.equal(config.log.retention.bytes, 10_000_000);
    assert.equal(config.log.retention.ms, -1);
    assert.equal(config.log.retention.checkIntervalMs, 30_000);
  });
});

describe('environment', () => {
  test('variable names: MERIDIAN_ + UPPER_SNAKE path segments joined by __', () => {
    assert.equal(envVarName(['log', 'segmentBytes']), 'MERIDIAN_LOG__SEGMENT_BYTES');
    assert.equal(envVarName(['kafka', 'port']), 'MERIDIAN_KAFKA__PORT');
    assert.equal(envVarName(['nodeId']), 'MERIDIAN_NODE_ID');
    assert.equal(envVarName(['log', 'retention', 'checkIntervalMs']), 'MERIDIAN_LOG__RETENTION__CHECK_INTERVAL_MS');
    const vars = listEnvVars();
    assert.deepEqual(
      vars.map((v) => v.path),
      schemaLeaves().map((leaf) => leaf.path.join('.')),
    );
    assert.equal(new Set(vars.map((v) => v.name)).size, vars.length);
  });

  test('every variable set to its default text reproduces the defaults', () => {
    const env = Object.fromEntries(listEnvVars().map((v) => [v.name, v.default === null ? 'null' : Array.isArray(v.default) ? JSON.stringify(v.default) : String(v.default)]));
    assert.deepEqual(loadConfig({ env }), defaultConfig());
  });

  test('values are coerced to the schema type', () => {
    const config = loadConfig({
      env: {
        MERIDIAN_KAFKA__PORT: '9093',
        MERIDIAN_NODE_ID: '7',
        MERIDIAN_TOPICS__AUTO_CREATE: 'false',
        MERIDIAN_LOG__SEGMENT_BYTES: '256MiB',
        MERIDIAN_LOG__RETENTION__MS: '-1',
        MERIDIAN_LOG__FLUSH__INTERVAL_MS: '250',
        MERIDIAN_KAFKA__ADVERTISED_HOST: 'broker.example.com',
        MERIDIAN_KAFKA__ADVERTISED_PORT: '',
        PATH: '/usr/bin', // not ours: ignored
      },
    });
    assert.equal(config.kafka.port, 9093);
    assert.equal(config.nodeId, 7);
    assert.equal(config.topics.autoCreate, false);
    assert.equal(config.log.segmentBytes, 256 * MiB);
    assert.equal(config.log.retention.ms, -1);
    assert.equal(config.log.flush.intervalMs, 250);
    assert.equal(config.kafka.advertisedHost, 'broker.example.com');
    assert.equal(config.kafka.advertisedPort, null);
  });

  test('precedence: defaults < file < environment < overrides', () => {
    const file = writeConfig('precedence.yaml', 'region: eu-west\nkafka:\n  port: 1111\n  host: 10.0.0.1\nlog:\n  segmentBytes: 1MiB\n');
    const env = { MERIDIAN_KAFKA__PORT: '2222', MERIDIAN_LOG__SEGMENT_BYTES: '2MiB' };
    const fromFile = loadConfig({ file, env: {} });
    assert.equal(fromFile.kafka.port, 1111);
    const fromEnv = loadConfig({ file, env });
    assert.equal(fromEnv.region, 'eu-west', 'file value kept where env is silent');
    assert.equal(fromEnv.kafka.host, '10.0.0.1');
    assert.equal(fromEnv.kafka.port, 2222);
    assert.equal(fromEnv.log.segmentBytes, 2 * MiB);
    assert.equal(fromEnv.nodeId, 1, 'default kept where nobody speaks');
    const fromOverrides = loadConfig({ file, env, overrides: { kafka: { port: 3333 }, log: { segmentBytes: '3MiB' } } });
    assert.equal(fromOverrides.kafka.port, 3333);
    assert.equal(fromOverrides.log.segmentBytes, 3 * MiB);
    assert.equal(fromOverrides.kafka.host, '10.0.0.1');
  });

  test('overrides are not modified', () => {
    const overrides = { log: { segmentBytes: '3MiB' } };
    loadConfig({ env: {}, overrides });
    assert.deepEqual(overrides, { log: { segmentBytes: '3MiB' } });
  });

  test('a bad value names the variable, the field, the expectation and the value', () => {
    const error = refused(() => loadConfig({ env: { MERIDIAN_KAFKA__PORT: 'ninety' } }));
    assert.equal(error.message, 'MERIDIAN_KAFKA__PORT: kafka.port: expected an integer from 0 to 65535, got "ninety"');
    const unit = refused(() => loadConfig({ env: { MERIDIAN_LOG__SEGMENT_MS: '3 fortnights' } }));
    assert.match(unit.message, /^MERIDIAN_LOG__SEGMENT_MS: log\.segmentMs: expected a duration such as 30s or a number of milliseconds, got "3 fortnights"/);
    const bool = refused(() => loadConfig({ env: { MERIDIAN_TOPICS__AUTO_CREATE: 'yes' } }));
    assert.equal(bool.message, 'MERIDIAN_TOPICS__AUTO_CREATE: topics.autoCreate: expected true or false, got "yes"');
  });

  test('an unknown MERIDIAN_ variable is refused, with the likely intended name', () => {
    const error = refused(() => loadConfig({ env: { MERIDIAN_LOG_SEGMENT_BYTES: '1MiB' } }));
    assert.match(error.message, /^MERIDIAN_LOG_SEGMENT_BYTES: unknown configuration variable; did you mean MERIDIAN_LOG__SEGMENT_BYTES\?/);
  });

  test("the CLI's variables (MERIDIAN_ADMIN, MERIDIAN_ADMIN_TOKEN) do not stop a broker from starting and do not set its token", () => {
    const config = loadConfig({ env: { MERIDIAN_ADMIN: '127.0.0.1:19644', MERIDIAN_ADMIN_TOKEN: 'cli-side' } });
    assert.notEqual(config.admin.token, 'cli-side');
    assert.equal(loadConfig({ env: { MERIDIAN_ADMIN__TOKEN: 'broker-side' } }).admin.token, 'broker-side');
  });
});

describe('bad files', () => {
  test('wrong type', () => {
    const file = writeConfig('wrong-type.yaml', 'kafka:\n  port: "abc"\n');
    const error = refused(() => loadConfig({ file, env: {} }));
    assert.equal(error.message, `${file}: kafka.port: expected an integer from 0 to 65535, got "abc" (line 2)`);
    assert.deepEqual(error.issues, [{ source: file, path: 'kafka.port', detail: 'expected an integer from 0 to 65535, got "abc"', line: 2 }]);
  });

  test('out of range', () => {
    const error = refused(() => parseConfig('kafka:\n  port: 70000\n', 'config/x.yaml'));
    assert.match(error.message, /^config\/x\.yaml: kafka\.port: expected an integer from 0 to 65535, got 70000/);
    const small = refused(() => parseConfig('log:\n  segmentBytes: 512B\n', 'config/x.yaml'));
    assert.match(small.message, /^config\/x\.yaml: log\.segmentBytes: expected a size such as 128MiB or a number of bytes, at least 1KiB, at most 2147483647B, got "512B"/);
  });

  test('a section that is not a mapping', () => {
    const error = refused(() => parseConfig('log: 5\n', 'config/x.yaml'));
    assert.match(error.message, /^config\/x\.yaml: log: expected a mapping with the fields segmentBytes, .*, got 5/);
  });

  test('unknown field, with a suggestion when one is close', () => {
    const file = writeConfig('unknown.yaml', 'log:\n  segmentByte: 1MiB\n');
    const error = refused(() => loadConfig({ file, env: {} }));
    assert.match(error.message, new RegExp(`^${escape(file)}: log\\.segmentByte: unknown field, expected one of segmentBytes, `));
    assert.match(error.message, /did you mean segmentBytes\?/);
    const snake = refused(() => parseConfig('log:\n  segment_bytes: 1MiB\n', 'config/x.yaml'));
    assert.match(snake.message, /did you mean segmentBytes\?/);
    const far = refused(() => parseConfig('colour: blue\n', 'config/x.yaml'));
    assert.match(far.message, /^config\/x\.yaml: colour: unknown field, expected one of region, nodeId, dataDir, logging, kafka, log, topics, groups, metrics, tiered, replication, admin, security, cluster \(line 1\)$/);
  });

  test('bad unit', () => {
    const file = writeConfig('bad-unit.yaml', 'log:\n  segmentBytes: 12 parsecs\n');
    const error = refused(() => loadConfig({ file, env: {} }));
    assert.ok(
      error.message.startsWith(`${file}: log.segmentBytes: expected a size such as 128MiB or a number of bytes, got "12 parsecs"`),
      error.message,
    );
  });

  test('a misspelt enum value gets a suggestion', () => {
    const error = refused(() => parseConfig('logging:\n  level: warning\n', 'config/x.yaml'));
    assert.match(error.message, /^config\/x\.yaml: logging\.level: expected one of fatal, error, warn, info, debug, trace, silent, got "warning"; did you mean warn\?/);
  });

  test('advertisedHost 0.0.0.0 or ::', () => {
    for (const host of ['0.0.0.0', '"::"']) {
      const file = writeConfig('advertised.yaml', `kafka:\n  advertisedHost: ${host}\n`);
      const error = refused(() => loadConfig({ file, env: {} }));
      assert.ok(error.message.startsWith(`${file}: kafka.advertisedHost: expected a host name or address that clients can connect to`), error.message);
      assert.match(error.message, /not a wildcard/);
    }
  });

  test('listening on every interface needs an advertisedHost', () => {
    const error = refused(() => parseConfig('kafka:\n  host: 0.0.0.0\n', 'config/x.yaml'));
    assert.match(error.message, /^config\/x\.yaml: kafka\.advertisedHost: expected a host name or address that clients can connect to, because kafka\.host is 0\.0\.0\.0/);
    const ok = parseConfig('kafka:\n  host: 0.0.0.0\n  advertisedHost: broker-1.internal\n', 'config/x.yaml');
    assert.equal(ok.kafka.advertisedHost, 'broker-1.internal');
  });

  test('a batch larger than a frame could never arrive', () => {
    const error = refused(() => parseConfig('kafka:\n  maxFrameBytes: 1MiB\n', 'config/x.yaml'));
    assert.match(error.message, /^config\/x\.yaml: log\.maxBatchBytes: expected at most kafka\.maxFrameBytes \(1MiB\)/);
  });

  test('YAML syntax error names the file and the line', () => {
    const file = writeConfig('syntax.yaml', 'region: us-east\nkafka:\n  port: 1\n  host: a: b\n');
    const error = refused(() => loadConfig({ file, env: {} }));
    assert.ok(error.message.startsWith(`${file}: invalid YAML: `), error.message);
    assert.match(error.message, /at line 4, column \d+/);
    const duplicate = refused(() => parseConfig('region: a\nregion: b\n', 'config/x.yaml'));
    assert.match(duplicate.message, /^config\/x\.yaml: invalid YAML: Map keys must be unique at line 2/);
  });

  test('a file that is not a mapping', () => {
    const error = refused(() => parseConfig('- region\n- us-east\n', 'config/x.yaml'));
    assert.match(error.message, /^config\/x\.yaml: expected a mapping with the fields region, .*, got a list/);
  });

  test('missing file', () => {
    const file = join(dir, 'does-not-exist.yaml');
    const error = refused(() => loadConfig({ file, env: {} }));
    assert.equal(error.message, `${file}: config file not found (looked for ${file})`);
  });

  test('every problem is reported at once, each line naming its source', () => {
    const file = writeConfig('many.yaml', 'nodeId: -1\nlog:\n  segmentMs: soon\n');
    const error = refused(() => loadConfig({ file, env: { MERIDIAN_KAFKA__PORT: 'x' } }));
    const lines = error.message.split('\n');
    assert.equal(lines.length, 3, error.message);
    assert.ok(lines[0]!.startsWith(`${file}: nodeId: expected an integer from 0 to 2147483647, got -1`), lines[0]);
    assert.ok(lines[1]!.startsWith(`${file}: log.segmentMs: `), lines[1]);
    assert.ok(lines[2]!.startsWith('MERIDIAN_KAFKA__PORT: kafka.port: '), lines[2]);
  });
});

describe('the region registry', () => {
  const REGISTRY = 'replication:\n  regions:\n    - { name: us-east, address: "10.0.0.1:9092" }\n    - { name: eu-west, address: "10.0.0.2:9092" }\n';

  test("a broker whose own region is missing from a non-empty registry is refused, naming region and the known regions", () => {
    const error = refused(() => parseConfig(`region: ap-south\n${REGISTRY}`, 'config/x.yaml'));
    assert.equal(error.issues.length, 1, error.message);
    assert.equal(error.issues[0]!.path, 'region');
    assert.equal(
      error.message,
      'config/x.yaml: region: expected one of the regions listed in replication.regions (us-east, eu-west), since the registry must include this broker\'s own region, got "ap-south" (line 1)',
    );
  });

  test('when region is not set, the default is named as such and the line is the registry\'s', () => {
    const error = refused(() => parseConfig(REGISTRY.replace('us-east', 'us-west'), 'config/x.yaml'));
    assert.match(error.message, /^config\/x\.yaml: region: expected one of the regions listed in replication\.regions \(us-west, eu-west\), .*got "us-east" \(the default: region is not set\) \(line 2\)$/);
  });

  test('an empty registry, or one listing this region, is accepted', () => {
    assert.equal(parseConfig('region: ap-south\n', 'config/x.yaml').region, 'ap-south');
    assert.deepEqual(parseConfig(`region: eu-west\n${REGISTRY}`, 'config/x.yaml').replication.regions.map((r) => r.name), ['us-east', 'eu-west']);
  });

  test('a policy naming an unknown region is refused; the known regions are each named once', () => {
    const text = `region: eu-west\n${REGISTRY}  policies:\n    - { topics: "*", topology: mesh, regions: [eu-west, mars] }\n`;
    const error = refused(() => parseConfig(text, 'config/x.yaml'));
    assert.equal(error.issues.length, 1, error.message);
    // The line is the policy's own (line 7), not that of `policies:`.
    assert.equal(error.message, 'config/x.yaml: replication.policies[0].regions: "mars" is not a region in replication.regions (known: eu-west, us-east) (line 7)');
  });

  test("a bad field deep in a policy is named with its own line", () => {
    const text = `region: eu-west\n${REGISTRY}  policies:\n    - topics: "*"\n      topology: mesh\n      regions: [eu-west, us-east]\n    - topics: logs\n      topology: fan-out\n      source: eu-west\n      targets: [us-east]\n      rateLimit: 10 parsecs\n`;
    const error = refused(() => parseConfig(text, 'config/x.yaml'));
    assert.equal(error.message, 'config/x.yaml: replication.policies[1].rateLimit: expected a size such as 10GiB, or -1 for unlimited, got "10 parsecs" (line 14)');
  });

  test('both problems at once: a missing own region and a policy naming an unknown one', () => {
    const text = `region: ap-south\n${REGISTRY}  policies:\n    - { topics: "*", topology: one-way, source: us-east, targets: [mars] }\n`;
    const error = refused(() => parseConfig(text, 'config/x.yaml'));
    assert.deepEqual(error.issues.map((i) => i.path), ['region', 'replication.policies[0].targets']);
    assert.match(error.message, /\(known: ap-south, us-east, eu-west\)/);
  });

  test('the same rules hold for MERIDIAN_REGION and MERIDIAN_REPLICATION__REGIONS', () => {
    const regions = JSON.stringify([{ name: 'us-east', address: '10.0.0.1:9092' }]);
    const error = refused(() => loadConfig({ env: { MERIDIAN_REGION: 'eu-west', MERIDIAN_REPLICATION__REGIONS: regions } }));
    assert.match(error.message, /^MERIDIAN_REGION: region: expected one of the regions listed in replication\.regions \(us-east\)/);
    assert.equal(loadConfig({ env: { MERIDIAN_REGION: 'us-east', MERIDIAN_REPLICATION__REGIONS: regions } }).region, 'us-east');
  });
});

describe('the tiered store', () => {
  test('an s3, gcs or azure store without a bucket is refused at load, naming tiered.store.bucket', () => {
    for (const type of ['s3', 'gcs', 'azure']) {
      const text = `tiered:\n  enabled: true\n  store:\n    type: ${type}\n    accountName: acct\n`;
      const error = refused(() => parseConfig(text, 'config/x.yaml'));
      assert.deepEqual(error.issues.map((i) => i.path), ['tiered.store.bucket'], error.message);
      assert.equal(
        error.message,
        `config/x.yaml: tiered.store.bucket: expected the name of the bucket (s3, gcs) or container (azure), since tiered.store.type is ${type} and tiered.enabled is true, got null (line 4)`,
      );
    }
  });

  test('the rule holds across layers: a type from the file, a bucket from the environment', () => {
    const file = writeConfig('store.yaml', 'tiered:\n  enabled: true\n  store:\n    type: s3\n');
    assert.equal(loadConfig({ file, env: { MERIDIAN_TIERED__STORE__BUCKET: 'meridian' } }).tiered.store.bucket, 'meridian');
    const error = refused(() => loadConfig({ file, env: {} }));
    assert.match(error.message, new RegExp(`^${escape(file)}: tiered\\.store\\.bucket: expected .* \\(line 4\\)$`));
  });

  test('an azure store needs a connection string or an account name', () => {
    const error = refused(() => loadConfig({ env: { MERIDIAN_TIERED__ENABLED: 'true', MERIDIAN_TIERED__STORE__TYPE: 'azure', MERIDIAN_TIERED__STORE__BUCKET: 'c' } }));
    assert.equal(
      error.message,
      'MERIDIAN_TIERED__STORE__TYPE: tiered.store.connectionString: expected an Azure storage connection string, or tiered.store.accountName to use the account instead, since tiered.store.type is azure and tiered.enabled is true, got null',
    );
    const env = { MERIDIAN_TIERED__ENABLED: 'true', MERIDIAN_TIERED__STORE__TYPE: 'azure', MERIDIAN_TIERED__STORE__BUCKET: 'c' };
    assert.equal(loadConfig({ env: { ...env, MERIDIAN_TIERED__STORE__ACCOUNT_NAME: 'acct' } }).tiered.store.accountName, 'acct');
    assert.equal(loadConfig({ env: { ...env, MERIDIAN_TIERED__STORE__CONNECTION_STRING: 'UseDevelopmentStorage=true' } }).tiered.store.type, 'azure');
  });

  test('with tiered storage off, store fields are not required', () => {
    assert.equal(parseConfig('tiered:\n  store:\n    type: s3\n', 'config/x.yaml').tiered.store.bucket, null);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('kafka.listeners', () => {
  const listeners = (yaml: string) => parseConfig(`kafka:\n  listeners:\n${yaml}`, 'config/x.yaml');

  test('absent: one PLAINTEXT listener on kafka.host and kafka.port, as before', async () => {
    const { effectiveListeners } = await import('../../src/config/listeners.js');
    const config = parseConfig('kafka:\n  port: 9092\n  advertisedHost: broker-1\n', 'x.yaml');
    assert.deepEqual(config.kafka.listeners, []);
    assert.deepEqual(effectiveListeners(config.kafka), [
      { name: 'PLAINTEXT', host: '127.0.0.1', port: 9092, securityProtocol: 'PLAINTEXT', advertisedHost: 'broker-1', advertisedPort: null, tls: null },
    ]);
  });

  test('a PLAINTEXT and an SSL listener, completed with their defaults', () => {
    const config = listeners(
      '    - { name: INTERNAL, host: 127.0.0.1, port: 9092, securityProtocol: PLAINTEXT }\n' +
        '    - { name: SSL, host: 0.0.0.0, port: 9093, advertisedHost: b1.example.com, tls: { certFile: /c.pem, keyFile: /k.pem, reloadIntervalMs: 30s } }\n',
    );
    assert.deepEqual(config.kafka.listeners, [
      { name: 'INTERNAL', host: '127.0.0.1', port: 9092, securityProtocol: 'PLAINTEXT', advertisedHost: null, advertisedPort: null, tls: null },
      {
        name: 'SSL',
        host: '0.0.0.0',
        port: 9093,
        securityProtocol: 'SSL',
        advertisedHost: 'b1.example.com',
        advertisedPort: null,
        tls: { certFile: '/c.pem', keyFile: '/k.pem', caFile: null, clientAuth: 'none', reloadIntervalMs: 30_000 },
      },
    ]);
  });

  test('as an environment variable: JSON', () => {
    const config = loadConfig({ env: { MERIDIAN_KAFKA__LISTENERS: '[{"name":"PLAINTEXT","host":"127.0.0.1","port":9092}]' } });
    assert.equal(config.kafka.listeners[0]!.securityProtocol, 'PLAINTEXT');
  });

  test('errors name the listener field, the file and the line', () => {
    const cases: Array<[string, RegExp]> = [
      ['    - { name: EXTERNAL, host: 127.0.0.1, port: 9093, securityProtocol: SSL }\n', /^config\/x\.yaml: kafka\.listeners\[0\]\.tls: expected a mapping with certFile and keyFile .* got nothing \(line 3\)$/],
      ['    - { name: EXTERNAL, host: 127.0.0.1, port: 9093, securityProtocol: SSL, tls: { keyFile: /k.pem } }\n', /kafka\.listeners\[0\]\.tls\.certFile: expected the path of the PEM certificate/],
      ['    - { name: E, host: 127.0.0.1, port: 9093, securityProtocol: SASL_SSL, tls: { certFile: /c, keyFile: /k, clientAuth: required } }\n', /kafka\.listeners\[0\]\.tls\.caFile: expected the path of a PEM file of the CAs that sign client certificates, since clientAuth is required/],
      ['    - { name: A, host: 127.0.0.1, port: 9092, securityProtocol: PLAINTEXT }\n    - { name: a, host: 127.0.0.1, port: 9093, securityProtocol: PLAINTEXT }\n', /kafka\.listeners\[1\]\.name: expected a name no other listener has/],
      ['    - { name: A, host: 0.0.0.0, port: 9092, advertisedHost: x, securityProtocol: PLAINTEXT }\n    - { name: B, host: 127.0.0.1, port: 9092, securityProtocol: PLAINTEXT }\n', /kafka\.listeners\[1\]\.port: expected a port no other listener on 127\.0\.0\.1 uses, got 9092/],
      ['    - { name: A, host: 127.0.0.1, port: 9092, securityProtocol: TLS }\n', /kafka\.listeners\[0\]\.securityProtocol: expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, got "TLS"/],
      ['    - { name: INTERNAL, host: 127.0.0.1, port: 9092 }\n', /kafka\.listeners\[0\]\.securityProtocol: expected one of/],
      ['    - { name: A, host: 0.0.0.0, port: 9092, securityProtocol: PLAINTEXT }\n', /kafka\.listeners\[0\]\.advertisedHost: expected a host name or address that clients can connect to, because host is 0\.0\.0\.0/],
      ['    - { name: A, host: 127.0.0.1, port: 9092, securityProtocol: PLAINTEXT, tls: { certFile: /c, keyFile: /k } }\n', /kafka\.listeners\[0\]\.tls: expected no tls settings, since securityProtocol PLAINTEXT does not use TLS/],
      ['    - { name: A, host: 127.0.0.1, port: 9092, securityProtocol: PLAINTEXT, prot: 1 }\n', /kafka\.listeners\[0\]\.prot: unknown field/],
    ];
    for (const [yaml, expected] of cases) assert.match(refused(() => listeners(yaml)).message, expected);
  });

  test('with listeners, kafka.host, port and advertised* must be left out', () => {
    const error = refused(() => parseConfig('kafka:\n  port: 9092\n  listeners:\n    - { name: PLAINTEXT, host: 127.0.0.1, port: 9092 }\n', 'config/x.yaml'));
    assert.match(error.message, /^config\/x\.yaml: kafka\.port: expected nothing, since kafka\.listeners is set .* got 9092 \(line 2\)$/);
  });
});
