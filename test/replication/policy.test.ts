/**
 * Replication policies: each topology reduced to the links a region runs (which remotes,
 * relay or not), first-match-wins topic selection, globs, and the errors an operator sees
 * for a bad policy or registry, directly and through loadConfig.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load-config.js';
import { linkSecurityOf, linksFor, parsePolicies, parseRegions, policyFor, PolicyError, sendersTo, type Policy } from '../../src/replication/policy.js';

const KNOWN = ['a', 'b', 'c', 'd', 'h'];

/** region -> its links for `topic`, as "remote" or "remote(relay)", sorted. */
function linkMap(policies: Policy[], topic = 't', regions = KNOWN): Record<string, string[]> {
  return Object.fromEntries(regions.map((r) => [r, linksFor(policies, r, topic).map((l) => (l.relay ? `${l.remote}(relay)` : l.remote)).sort()]));
}

function refused(fn: () => unknown, path: string, message?: RegExp): PolicyError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof PolicyError, `expected a PolicyError, got ${String(err)}`);
    assert.equal(err.path, path);
    assert.ok(err.message.startsWith(`${path}: `), err.message);
    assert.equal(err.code, 'BAD_CONFIG');
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail(`accepted; expected an error at ${path}`);
}

describe('topologies, from each region\'s point of view', () => {
  test('mesh: every region sends its own data to every other, never relaying', () => {
    const p = parsePolicies([{ topics: 't', topology: 'mesh', regions: ['a', 'b', 'c'] }], KNOWN);
    assert.deepEqual(linkMap(p), { a: ['b', 'c'], b: ['a', 'c'], c: ['a', 'b'], d: [], h: [] });
    assert.deepEqual(p[0].regions, ['a', 'b', 'c']);
    assert.equal(p[0].topology, 'mesh');
  });

  test('one-way: only the source sends, to its target', () => {
    const p = parsePolicies([{ topics: 't', topology: 'one-way', source: 'a', targets: ['b'] }], KNOWN);
    assert.deepEqual(linkMap(p), { a: ['b'], b: [], c: [], d: [], h: [] });
  });

  test('fan-out: the source sends to every target; targets send nothing', () => {
    const p = parsePolicies([{ topics: 't', topology: 'fan-out', source: 'a', targets: ['b', 'c', 'd'] }], KNOWN);
    assert.deepEqual(linkMap(p), { a: ['b', 'c', 'd'], b: [], c: [], d: [], h: [] });
  });

  test('aggregation: every source sends to the target; the target sends nothing', () => {
    const p = parsePolicies([{ topics: 't', topology: 'aggregation', sources: ['a', 'b', 'c'], target: 'd' }], KNOWN);
    assert.deepEqual(linkMap(p), { a: ['d'], b: ['d'], c: ['d'], d: [], h: [] });
  });

  test('relay hub: spokes send their own data to the hub; the hub relays to every spoke', () => {
    const p = parsePolicies([{ topics: 't', topology: 'relay', hub: 'h', regions: ['a', 'b', 'c'] }], KNOWN);
    assert.deepEqual(linkMap(p), { a: ['h'], b: ['h'], c: ['h'], d: [], h: ['a(relay)', 'b(relay)', 'c(relay)'] });
    assert.deepEqual(p[0].regions, ['h', 'a', 'b', 'c']);
  });

  test('relay path: each region forwards everything it holds to the next one; the last sends nothing', () => {
    const p = parsePolicies([{ topics: 't', topology: 'relay', path: ['a', 'b', 'c', 'd'] }], KNOWN);
    assert.deepEqual(linkMap(p), { a: ['b(relay)'], b: ['c(relay)'], c: ['d(relay)'], d: [], h: [] });
  });

  test('each link carries its policy; names default to policy-<index>; sizes parse', () => {
    const p = parsePolicies(
      [
        { topics: 'x', topology: 'mesh', regions: ['a', 'b'] },
        { name: 'dr', topics: ['t'], topology: 'one-way', source: 'a', targets: ['b'], backlogQuota: '1MiB', rateLimit: 2048 },
      ],
      KNOWN,
    );
    assert.equal(p[0].name, 'policy-0');
    assert.equal(p[0].backlogQuota, -1);
    assert.equal(p[0].rateLimit, -1);
    const [link] = linksFor(p, 'a', 't');
    assert.equal(link.policy.name, 'dr');
    assert.equal(link.policy.backlogQuota, 1024 * 1024);
    assert.equal(link.policy.rateLimit, 2048);
    assert.equal(parsePolicies([{ topics: 't', topology: 'mesh', regions: ['a', 'b'], backlogQuota: -1, rateLimit: '-1' }], KNOWN)[0].backlogQuota, -1);
    assert.equal(parsePolicies([{ topics: 't', topology: 'mesh', regions: ['a', 'b'], backlogQuota: 0 }], KNOWN)[0].backlogQuota, 0);
  });
});

describe('topic matching', () => {
  test('first match wins', () => {
    const p = parsePolicies(
      [
        { name: 'eu-only', topics: 'orders.eu', topology: 'one-way', source: 'a', targets: ['b'] },
        { name: 'all-orders', topics: 'orders.*', topology: 'mesh', regions: ['a', 'b', 'c'] },
        { name: 'shadowed', topics: 'orders.eu', topology: 'fan-out', source: 'c', targets: ['d'] },
      ],
      KNOWN,
    );
    assert.equal(policyFor(p, 'orders.eu')?.name, 'eu-only');
    assert.deepEqual(linkMap(p, 'orders.eu'), { a: ['b'], b: [], c: [], d: [], h: [] });
    assert.equal(policyFor(p, 'orders.us')?.name, 'all-orders');
    assert.deepEqual(linkMap(p, 'orders.us'), { a: ['b', 'c'], b: ['a', 'c'], c: ['a', 'b'], d: [], h: [] });
    assert.equal(policyFor(p, 'payments'), undefined);
    assert.deepEqual(linksFor(p, 'a', 'payments'), []);
  });

  test("globs: 'orders.*' matches 'orders.eu' but not 'orders' nor 'ordersXeu'; '.' and '-' are literal; lists match any", () => {
    const p = parsePolicies(
      [
        { name: 'orders', topics: 'orders.*', topology: 'mesh', regions: ['a', 'b'] },
        { name: 'list', topics: ['audit', 'log-*-raw'], topology: 'mesh', regions: ['a', 'b'] },
        { name: 'star', topics: '*', topology: 'one-way', source: 'c', targets: ['d'] },
      ],
      KNOWN,
    );
    const name = (t: string) => policyFor(p, t)?.name;
    assert.equal(name('orders.eu'), 'orders');
    assert.equal(name('orders.'), 'orders', '* matches the empty string');
    assert.equal(name('orders.eu.archive'), 'orders', '* spans dots');
    assert.equal(name('orders'), 'star');
    assert.equal(name('ordersXeu'), 'star', 'the dot is not a regex wildcard');
    assert.equal(name('xorders.eu'), 'star', 'anchored at the start');
    assert.equal(name('audit'), 'list');
    assert.equal(name('audit2'), 'star', 'exact names are exact');
    assert.equal(name('log-eu-raw'), 'list');
    assert.equal(name('log-eu-raw2'), 'star', 'anchored at the end');
    assert.equal(name('anything'), 'star');
  });
});

describe('policy errors name the field', () => {
  const ok = { topics: 't', topology: 'mesh', regions: ['a', 'b'] };

  test('not a list, not a mapping', () => {
    refused(() => parsePolicies({ topics: 't' }, KNOWN), 'replication.policies', /list of policies/);
    refused(() => parsePolicies([ok, 'mesh'], KNOWN), 'replication.policies[1]', /mapping/);
  });

  test('unknown topology', () => {
    refused(() => parsePolicies([{ topics: 't', topology: 'star', regions: ['a', 'b'] }], KNOWN), 'replication.policies[0].topology', /expected one of mesh, one-way, fan-out, aggregation, relay, got "star"/);
    refused(() => parsePolicies([ok, { topics: 't' }], KNOWN), 'replication.policies[1].topology', /got undefined/);
  });

  test('unknown region, with the known ones listed', () => {
    refused(() => parsePolicies([{ topics: 't', topology: 'mesh', regions: ['a', 'zz'] }], KNOWN), 'replication.policies[0].regions', /"zz" is not a region in replication\.regions \(known: a, b, c, d, h\)/);
    refused(() => parsePolicies([{ topics: 't', topology: 'one-way', source: 'zz', targets: ['a'] }], KNOWN), 'replication.policies[0].source', /"zz"/);
    refused(() => parsePolicies([{ topics: 't', topology: 'aggregation', sources: ['a'], target: 'zz' }], KNOWN), 'replication.policies[0].target', /"zz"/);
    refused(() => parsePolicies([{ topics: 't', topology: 'relay', hub: 'zz', regions: ['a'] }], KNOWN), 'replication.policies[0].hub', /"zz"/);
    refused(() => parsePolicies([{ topics: 't', topology: 'relay', path: ['a', 'zz'] }], KNOWN), 'replication.policies[0].path', /"zz"/);
  });

  test('a source listed as a target (and the like) is refused', () => {
    refused(() => parsePolicies([{ topics: 't', topology: 'one-way', source: 'a', targets: ['b', 'a'] }], KNOWN), 'replication.policies[0].targets', /source a cannot also be a target/);
    refused(() => parsePolicies([{ topics: 't', topology: 'fan-out', source: 'c', targets: ['c'] }], KNOWN), 'replication.policies[0].targets', /source c cannot also be a target/);
    refused(() => parsePolicies([{ topics: 't', topology: 'aggregation', sources: ['a', 'd'], target: 'd' }], KNOWN), 'replication.policies[0].sources', /target d cannot also be a source/);
    refused(() => parsePolicies([{ topics: 't', topology: 'relay', hub: 'h', regions: ['a', 'h'] }], KNOWN), 'replication.policies[0].regions', /hub h cannot also be a spoke/);
    refused(() => parsePolicies([{ topics: 't', topology: 'mesh', regions: ['a', 'b', 'a'] }], KNOWN), 'replication.policies[0].regions', /listed twice/);
  });

  test('a missing field', () => {
    refused(() => parsePolicies([{ topology: 'mesh', regions: ['a', 'b'] }], KNOWN), 'replication.policies[0].topics', /topic name or pattern/);
    refused(() => parsePolicies([{ topics: [], topology: 'mesh', regions: ['a', 'b'] }], KNOWN), 'replication.policies[0].topics');
    refused(() => parsePolicies([{ topics: 't', topology: 'mesh' }], KNOWN), 'replication.policies[0].regions', /needs a list of at least 2 regions/);
    refused(() => parsePolicies([{ topics: 't', topology: 'mesh', regions: ['a'] }], KNOWN), 'replication.policies[0].regions', /at least 2/);
    refused(() => parsePolicies([{ topics: 't', topology: 'one-way', targets: ['b'] }], KNOWN), 'replication.policies[0].source', /needs source/);
    refused(() => parsePolicies([{ topics: 't', topology: 'fan-out', source: 'a' }], KNOWN), 'replication.policies[0].targets', /at least 1/);
    refused(() => parsePolicies([{ topics: 't', topology: 'aggregation', sources: ['a'] }], KNOWN), 'replication.policies[0].target', /needs target/);
    refused(() => parsePolicies([{ topics: 't', topology: 'relay', regions: ['a'] }], KNOWN), 'replication.policies[0].hub', /needs hub/);
  });

  test('a bad backlogQuota or rateLimit, an unknown field, a bad topic pattern', () => {
    refused(() => parsePolicies([{ ...ok, backlogQuota: 'lots' }], KNOWN), 'replication.policies[0].backlogQuota', /expected a size such as 10GiB, or -1 for unlimited, got "lots"/);
    refused(() => parsePolicies([{ ...ok, backlogQuota: -5 }], KNOWN), 'replication.policies[0].backlogQuota', /got -5/);
    refused(() => parsePolicies([{ ...ok, backlogQuota: 1.5 }], KNOWN), 'replication.policies[0].backlogQuota');
    refused(() => parsePolicies([{ ...ok, rateLimit: '10 parsecs' }], KNOWN), 'replication.policies[0].rateLimit');
    refused(() => parsePolicies([{ ...ok, target: 'b', tpoics: 'x' }], KNOWN), 'replication.policies[0].tpoics', /unknown field/);
    refused(() => parsePolicies([{ ...ok, topics: 'bad topic!' }], KNOWN), 'replication.policies[0].topics');
  });
});

describe('parseRegions', () => {
  test('parses a registry', () => {
    assert.deepEqual(parseRegions([{ name: 'eu-west', address: 'eu.example.com:9092' }, { name: 'us-east', address: '10.0.0.1:19092' }]), [
      { name: 'eu-west', address: 'eu.example.com:9092' },
      { name: 'us-east', address: '10.0.0.1:19092' },
    ]);
    assert.deepEqual(parseRegions([]), []);
  });

  test('a bad address names the field and the value', () => {
    for (const address of ['eu.example.com', 'eu.example.com:', 'eu.example.com:port', ':9092', 'a b:9092', 'eu:9092:1', 9092]) {
      refused(() => parseRegions([{ name: 'eu-west', address }]), 'replication.regions[0].address', /expected host:port/);
    }
    refused(() => parseRegions([{ name: 'eu-west', address: 'h:1' }, { name: 'us-east' }]), 'replication.regions[1].address');
  });

  test('duplicates, bad names, unknown fields, not a list', () => {
    refused(() => parseRegions([{ name: 'eu-west', address: 'a:1' }, { name: 'us-east', address: 'b:2' }, { name: 'eu-west', address: 'c:3' }]), 'replication.regions[2].name', /eu-west is listed twice/);
    refused(() => parseRegions([{ name: 'EU West', address: 'a:1' }]), 'replication.regions[0].name', /region name/);
    refused(() => parseRegions([{ name: 'eu-west', address: 'a:1', port: 3 }]), 'replication.regions[0].port', /unknown field/);
    refused(() => parseRegions({ 'eu-west': 'a:1' }), 'replication.regions', /list/);
  });

  test('a region\'s own link settings (tls, sasl) and principal; the link to it takes them field by field over the defaults', () => {
    const [entry] = parseRegions([{ name: 'eu-west', address: 'a:1', tls: { caFile: '/etc/eu-ca.pem', serverName: 'eu.example.com' }, sasl: { username: 'us-east-link', password: 'pw' }, principal: 'User:eu-west-link' }]);
    assert.deepEqual(entry, { name: 'eu-west', address: 'a:1', tls: { caFile: '/etc/eu-ca.pem', serverName: 'eu.example.com' }, sasl: { username: 'us-east-link', password: 'pw' }, principal: 'User:eu-west-link' });
    const defaults = { tls: { enabled: true, caFile: '/etc/ca.pem', certFile: null, keyFile: null, serverName: null }, sasl: { mechanism: 'SCRAM-SHA-512' as const, username: 'default', password: 'default-pw' } };
    assert.deepEqual(linkSecurityOf(entry, defaults), {
      tls: { enabled: true, caFile: '/etc/eu-ca.pem', certFile: null, keyFile: null, serverName: 'eu.example.com' },
      sasl: { mechanism: 'SCRAM-SHA-512', username: 'us-east-link', password: 'pw' },
    });
  });

  test('bad link settings name the field and never echo a value', () => {
    refused(() => parseRegions([{ name: 'eu-west', address: 'a:1', tls: { enable: true } }]), 'replication.regions[0].tls.enable', /unknown field, expected one of enabled, caFile, certFile, keyFile, serverName/);
    refused(() => parseRegions([{ name: 'eu-west', address: 'a:1', tls: { enabled: 'yes' } }]), 'replication.regions[0].tls.enabled', /expected true or false/);
    refused(() => parseRegions([{ name: 'eu-west', address: 'a:1', tls: true }]), 'replication.regions[0].tls', /expected a mapping/);
    refused(() => parseRegions([{ name: 'eu-west', address: 'a:1', sasl: { mechanism: 'GSSAPI' } }]), 'replication.regions[0].sasl.mechanism', /SCRAM-SHA-256, SCRAM-SHA-512, PLAIN/);
    const err = refused(() => parseRegions([{ name: 'eu-west', address: 'a:1', sasl: { password: 12345678 } }]), 'replication.regions[0].sasl.password', /non-empty string/);
    assert.ok(!err.message.includes('12345678'));
    refused(() => parseRegions([{ name: 'eu-west', address: 'a:1', principal: 'eu-west-link' }]), 'replication.regions[0].principal', /User:eu-west-link/);
  });
});

describe('sendersTo: who may send a topic to a region (the receiving side\'s check)', () => {
  const senders = (input: unknown[], region: string, topic = 't') => sendersTo(parsePolicies(input, KNOWN), region, topic).senders.sort();
  test('each topology: exactly the regions whose links reach the region', () => {
    assert.deepEqual(senders([{ topics: 't', topology: 'mesh', regions: ['a', 'b', 'c'] }], 'b'), ['a', 'c']);
    assert.deepEqual(senders([{ topics: 't', topology: 'aggregation', sources: ['a', 'b'], target: 'c' }], 'c'), ['a', 'b']);
    assert.deepEqual(senders([{ topics: 't', topology: 'aggregation', sources: ['a', 'b'], target: 'c' }], 'a'), []);
    assert.deepEqual(senders([{ topics: 't', topology: 'relay', path: ['a', 'b', 'c'] }], 'c'), ['b']);
    assert.deepEqual(senders([{ topics: 't', topology: 'relay', hub: 'h', regions: ['a', 'b'] }], 'a'), ['h']);
    assert.deepEqual(senders([{ topics: 't', topology: 'relay', hub: 'h', regions: ['a', 'b'] }], 'h'), ['a', 'b']);
    // One writer, but whichever region is primary now sends (disaster recovery admits only it).
    assert.deepEqual(senders([{ topics: 't', topology: 'fan-out', source: 'a', targets: ['b', 'c'] }], 'b'), ['a', 'c']);
    assert.deepEqual(senders([{ topics: 't', topology: 'one-way', source: 'a', targets: ['b'] }], 'd'), []);
    assert.deepEqual(senders([{ topics: 'other', topology: 'mesh', regions: ['a', 'b'] }], 'b'), [], 'no policy covers t');
  });
  test('agrees with linksFor in every non-DR topology', () => {
    for (const policy of [
      { topics: 't', topology: 'mesh', regions: ['a', 'b', 'c', 'd'] },
      { topics: 't', topology: 'aggregation', sources: ['a', 'b', 'd'], target: 'c' },
      { topics: 't', topology: 'relay', path: ['d', 'a', 'b', 'c'] },
      { topics: 't', topology: 'relay', hub: 'h', regions: ['a', 'b', 'c'] },
    ]) {
      const policies = parsePolicies([policy], KNOWN);
      for (const to of KNOWN) assert.deepEqual(senders([policy], to), KNOWN.filter((from) => linksFor(policies, from, 't').some((l) => l.remote === to)).sort(), `${policy.topology} to ${to}`);
    }
  });
});

describe('loadConfig', () => {
  // The registry lists every region, the broker's own included (its config's `region` is
  // eu-west in most cases below, us-east by default in the others).
  const regions = [
    { name: 'us-east', address: '127.0.0.1:19092' },
    { name: 'ap-south', address: '127.0.0.1:19093' },
    { name: 'eu-west', address: '127.0.0.1:19094' },
  ];

  function configError(load: () => unknown): ConfigError {
    try {
      load();
    } catch (err) {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      return err;
    }
    assert.fail('the config was accepted');
  }

  test('accepts policies over this region and the registry', () => {
    const c = loadConfig({ env: {}, overrides: { region: 'eu-west', replication: { regions, policies: [{ topics: 'orders.*', topology: 'mesh', regions: ['eu-west', 'us-east', 'ap-south'] }] } } });
    assert.deepEqual(c.replication.regions, regions);
    assert.equal(c.replication.policies.length, 1);
  });

  test('a bad policy is refused with a ConfigError naming replication.policies[i].field', () => {
    const e1 = configError(() => loadConfig({ env: {}, overrides: { region: 'eu-west', replication: { regions, policies: [{ topics: 't', topology: 'ring', regions: ['eu-west', 'us-east'] }] } } }));
    assert.match(e1.message, /overrides: replication\.policies\[0\]\.topology: expected one of mesh, one-way, fan-out, aggregation, relay, got "ring"/);
    assert.deepEqual(e1.issues.map((i) => i.path), ['replication.policies[0].topology']);
    const e2 = configError(() =>
      loadConfig({
        env: {},
        overrides: { region: 'eu-west', replication: { regions, policies: [{ topics: 'a', topology: 'mesh', regions: ['eu-west', 'us-east'] }, { topics: 'b', topology: 'one-way', source: 'eu-west', targets: ['mars'] }] } },
      }),
    );
    assert.match(e2.message, /replication\.policies\[1\]\.targets: "mars" is not a region in replication\.regions \(known: eu-west, us-east, ap-south\)/);
  });

  test('a bad region entry is refused with a ConfigError naming replication.regions[i]', () => {
    const e = configError(() => loadConfig({ env: {}, overrides: { replication: { regions: [{ name: 'us-west', address: 'nohost' }] } } }));
    assert.match(e.message, /replication\.regions\[0\]\.address: expected host:port/);
  });

  test('MERIDIAN_REPLICATION__REGIONS and MERIDIAN_REPLICATION__POLICIES hold JSON', () => {
    const policies = [
      { name: 'orders', topics: ['orders.*'], topology: 'relay', hub: 'eu-west', regions: ['us-east', 'ap-south'], backlogQuota: '64MiB' },
      { topics: '*', topology: 'aggregation', sources: ['us-east', 'ap-south'], target: 'eu-west' },
    ];
    const c = loadConfig({
      env: {
        MERIDIAN_REGION: 'eu-west',
        MERIDIAN_REPLICATION__REGIONS: JSON.stringify(regions),
        MERIDIAN_REPLICATION__POLICIES: ` ${JSON.stringify(policies)}\n`,
      },
    });
    assert.equal(c.region, 'eu-west');
    assert.deepEqual(c.replication.regions, regions);
    assert.deepEqual(c.replication.policies, policies);
    const parsed = parsePolicies(c.replication.policies, ['eu-west', ...regions.map((r) => r.name)]);
    assert.equal(parsed[0].backlogQuota, 64 * 1024 * 1024);
    assert.deepEqual(linksFor(parsed, 'eu-west', 'orders.x').map((l) => [l.remote, l.relay]), [['us-east', true], ['ap-south', true]]);
  });

  test('a bad policy in MERIDIAN_REPLICATION__POLICIES is refused naming the variable and the field', () => {
    const e = configError(() =>
      loadConfig({ env: { MERIDIAN_REPLICATION__REGIONS: JSON.stringify(regions), MERIDIAN_REPLICATION__POLICIES: JSON.stringify([{ topics: 't', topology: 'one-way', source: 'us-east', targets: ['us-east'] }]) } }),
    );
    assert.match(e.message, /MERIDIAN_REPLICATION__POLICIES: replication\.policies\[0\]\.targets: the source us-east cannot also be a target/);
  });

  test('MERIDIAN_REPLICATION__POLICIES that is not a JSON list is refused, saying a list was expected', () => {
    for (const value of ['[{topics: t', '{"topics":"t","topology":"mesh"}']) {
      const e = configError(() => loadConfig({ env: { MERIDIAN_REPLICATION__POLICIES: value } }));
      assert.match(e.message, /MERIDIAN_REPLICATION__POLICIES: replication\.policies: /);
      assert.doesNotMatch(e.message, /expected a string/, `the field is a list, not a string: ${e.message}`);
      assert.match(e.message, /list|array/i, e.message);
    }
  });

  test('replication.regions or .policies that is not a list is refused, saying a list was expected', () => {
    const cases: Array<() => unknown> = [
      () => loadConfig({ env: {}, overrides: { replication: { policies: { topics: 't' } as never } } }),
      () => loadConfig({ env: {}, overrides: { replication: { regions: 'eu-west' as never } } }),
    ];
    for (const load of cases) {
      const e = configError(load);
      assert.match(e.message, /replication\.(policies|regions): /);
      assert.doesNotMatch(e.message, /expected a string/, `the field is a list, not a string: ${e.message}`);
      assert.match(e.message, /list|array/i, e.message);
    }
  });
});
