/**
 * Replication policies: which topics go to which regions, and how.
 *
 * A policy names its topics (exact names or `*` globs) and a topology over regions from the
 * registry. From one region's point of view a policy reduces to its *links*: the remote
 * regions this region sends the topic to, and whether it forwards only what was produced
 * here or also what it received (relays):
 *
 *   mesh         regions: [a, b, c]       every region sends its own data to every other
 *   one-way      source: a, targets: [b]  a sends to b (primary to DR)
 *   fan-out      source: a, targets: [b, c]
 *   aggregation  sources: [a, b], target: c
 *   relay        hub: h, regions: [a, b]  spokes send their own data to the hub; the hub
 *                                         forwards everything to every spoke not on the
 *                                         data's hop path
 *   relay        path: [a, b, c]          a chain: each region forwards everything it holds
 *                                         to the next one
 *
 * The first policy whose topics match a topic governs it. Loop prevention does not depend
 * on the topology being sensible: a region never sends data to a region on its hop path,
 * and a receiver drops data that already passed through it.
 */
import { SASL_MECHANISMS, type LinkSecurityConfig } from '../config/schema.js';
import { ErrorCode, MeridianError } from '../errors.js';
import { parseSize } from '../units.js';

export const TOPOLOGIES = ['mesh', 'one-way', 'fan-out', 'aggregation', 'relay'] as const;
export type Topology = (typeof TOPOLOGIES)[number];

export interface RegionEntry {
  name: string;
  /** host:port of the region's Kafka listener: the first of `bootstrap`. */
  address: string;
  /**
   * Every bootstrap address given for the region (a region cluster lists several of its
   * brokers, as Kafka's bootstrap.servers; a single-broker region one). Absent: [address].
   */
  bootstrap?: string[];
  /** host:port of the region's admin API, when the registry names it (the CLI, the policy-agreement check). */
  admin?: string;
  /** This region's TLS towards that region, field by field over replication.tls. */
  tls?: Partial<LinkSecurityConfig['tls']>;
  /** This region's SASL credentials on that region, field by field over replication.sasl. */
  sasl?: Partial<LinkSecurityConfig['sasl']>;
  /** The principal that region's links authenticate as here ("User:eu-west-link"): requests claiming that region from any other principal are refused. */
  principal?: string;
}

export interface PolicyInput {
  name?: string;
  topics: string | string[];
  topology: Topology;
  regions?: string[];
  source?: string;
  targets?: string[];
  sources?: string[];
  target?: string;
  hub?: string;
  path?: string[];
  /** Unreplicated bytes per partition and link retention may delete anyway; -1: never. */
  backlogQuota?: number | string;
  /** Bytes per second per link; -1: unlimited. */
  rateLimit?: number | string;
}

export interface Policy {
  name: string;
  topics: string[];
  topology: Topology;
  regions: string[];
  edges: Array<{ from: string; to: string; relay: boolean }>;
  backlogQuota: number;
  rateLimit: number;
}

export interface Link {
  remote: string;
  /** Forward replicated data too (relay), not only data produced here. */
  relay: boolean;
  policy: Policy;
}

export class PolicyError extends MeridianError {
  readonly path: string;
  constructor(path: string, message: string) {
    super(ErrorCode.BadConfig, `${path}: ${message}`);
    this.path = path;
  }
}

const REGION_FIELDS = ['name', 'address', 'admin', 'tls', 'sasl', 'principal'];
const TLS_FIELDS: Record<keyof LinkSecurityConfig['tls'], 'boolean' | 'string'> = { enabled: 'boolean', caFile: 'string', certFile: 'string', keyFile: 'string', serverName: 'string' };
const SASL_FIELDS: Record<keyof LinkSecurityConfig['sasl'], 'mechanism' | 'string'> = { mechanism: 'mechanism', username: 'string', password: 'string' };

export function parseRegions(input: unknown, field = 'replication.regions'): RegionEntry[] {
  if (!Array.isArray(input)) throw new PolicyError(field, 'expected a list of { name, address, admin?, tls?, sasl?, principal? }');
  const seen = new Set<string>();
  return input.map((r, i) => {
    const at = `${field}[${i}]`;
    if (typeof r !== 'object' || r === null) throw new PolicyError(at, 'expected { name, address, admin?, tls?, sasl?, principal? }');
    const { name, address: rawAddress } = r as Record<string, unknown>;
    if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) throw new PolicyError(`${at}.name`, `expected a region name (lowercase letters, digits, dashes), got ${JSON.stringify(name)}`);
    const bootstrap = bootstrapOf(rawAddress, `${at}.address`);
    const address = bootstrap[0];
    const { admin, tls, sasl, principal } = r as Record<string, unknown>;
    if (admin !== undefined && (typeof admin !== 'string' || !/^[^:\s]+:\d{1,5}$/.test(admin))) throw new PolicyError(`${at}.admin`, `expected host:port of the region's admin API, got ${JSON.stringify(admin)}`);
    const unknownKeys = Object.keys(r as object).filter((k) => !REGION_FIELDS.includes(k));
    if (unknownKeys.length > 0) throw new PolicyError(`${at}.${unknownKeys[0]}`, `unknown field, expected one of ${REGION_FIELDS.join(', ')}`);
    if (seen.has(name)) throw new PolicyError(`${at}.name`, `region ${name} is listed twice`);
    if (principal !== undefined && (typeof principal !== 'string' || !/^[A-Za-z]+:.+$/.test(principal))) throw new PolicyError(`${at}.principal`, `expected a principal such as "User:${name}-link", got ${JSON.stringify(principal)}`);
    seen.add(name);
    const entry: RegionEntry = { name, address };
    if (bootstrap.length > 1) entry.bootstrap = bootstrap;
    if (admin !== undefined) entry.admin = admin as string;
    if (tls !== undefined) entry.tls = linkSection(tls, TLS_FIELDS, `${at}.tls`) as RegionEntry['tls'];
    if (sasl !== undefined) entry.sasl = linkSection(sasl, SASL_FIELDS, `${at}.sasl`) as RegionEntry['sasl'];
    if (principal !== undefined) entry.principal = principal as string;
    return entry;
  });
}

/**
 * A region's bootstrap addresses: one host:port (a single broker, or one broker of a
 * cluster), several separated by commas as Kafka's bootstrap.servers ("h1:9092,h2:9092"),
 * or a list of them. A region cluster is best listed with several: the link reaches it
 * while any one of them is up, then follows its Metadata (remote-leaders.ts).
 */
function bootstrapOf(input: unknown, at: string): string[] {
  const list = typeof input === 'string' ? input.split(',').map((a) => a.trim()) : Array.isArray(input) ? input : [];
  const ok = list.length > 0 && list.every((a) => typeof a === 'string' && /^[^:\s,]+:\d{1,5}$/.test(a));
  if (!ok) throw new PolicyError(at, `expected host:port of the region's Kafka listener, several separated by commas or as a list for a region cluster ("h1:9092,h2:9092"), got ${JSON.stringify(input)}`);
  const unique = [...new Set(list as string[])];
  return unique;
}

/** Every bootstrap address of a registry entry. */
export function bootstrapAddresses(entry: RegionEntry): string[] {
  return entry.bootstrap ?? [entry.address];
}

/** A region's tls or sasl mapping: the fields of replication.tls / replication.sasl, each optional. */
function linkSection(input: unknown, fields: Record<string, 'boolean' | 'string' | 'mechanism'>, at: string): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new PolicyError(at, `expected a mapping of ${Object.keys(fields).join(', ')}`);
  for (const [k, v] of Object.entries(input)) {
    const kind = fields[k];
    if (kind === undefined) throw new PolicyError(`${at}.${k}`, `unknown field, expected one of ${Object.keys(fields).join(', ')}`);
    const ok = kind === 'boolean' ? typeof v === 'boolean' : kind === 'mechanism' ? v === null || (SASL_MECHANISMS as readonly unknown[]).includes(v) : v === null || (typeof v === 'string' && v !== '');
    // The value is not echoed: it may be a password.
    if (!ok) throw new PolicyError(`${at}.${k}`, kind === 'boolean' ? 'expected true or false' : kind === 'mechanism' ? `expected one of ${SASL_MECHANISMS.join(', ')}, or null` : 'expected a non-empty string, or null');
  }
  return { ...input };
}

/** The TLS and SASL settings of this region's link to `entry`: its own fields over the defaults. */
export function linkSecurityOf(entry: RegionEntry, defaults: LinkSecurityConfig): LinkSecurityConfig {
  return { tls: { ...defaults.tls, ...entry.tls }, sasl: { ...defaults.sasl, ...entry.sasl } };
}

const POLICY_FIELDS = ['name', 'topics', 'topology', 'regions', 'source', 'targets', 'sources', 'target', 'hub', 'path', 'backlogQuota', 'rateLimit'];

/** Validates policies against the registry (`known`, which includes this region). */
export function parsePolicies(input: unknown, known: readonly string[], field = 'replication.policies'): Policy[] {
  if (!Array.isArray(input)) throw new PolicyError(field, 'expected a list of policies');
  // Callers pass this region first and then the registry, which usually lists it too; an
  // error message naming the known regions must name each once.
  const names = [...new Set(known)];
  return input.map((raw, i) => parsePolicy(raw, names, `${field}[${i}]`, i));
}

function parsePolicy(raw: unknown, known: readonly string[], at: string, index: number): Policy {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new PolicyError(at, 'expected a mapping');
  const p = raw as Record<string, unknown>;
  for (const k of Object.keys(p)) if (!POLICY_FIELDS.includes(k)) throw new PolicyError(`${at}.${k}`, `unknown field, expected one of ${POLICY_FIELDS.join(', ')}`);
  const topicsRaw = typeof p.topics === 'string' ? [p.topics] : p.topics;
  if (!Array.isArray(topicsRaw) || topicsRaw.length === 0 || !topicsRaw.every((t) => typeof t === 'string' && /^[a-zA-Z0-9._*-]+$/.test(t))) {
    throw new PolicyError(`${at}.topics`, 'expected a topic name or pattern (* matches any characters), or a list of them');
  }
  const topology = p.topology as Topology;
  if (!TOPOLOGIES.includes(topology)) throw new PolicyError(`${at}.topology`, `expected one of ${TOPOLOGIES.join(', ')}, got ${JSON.stringify(p.topology)}`);
  const region = (name: string) => (v: unknown): string => {
    if (typeof v !== 'string' || !known.includes(v)) throw new PolicyError(`${at}.${name}`, `${JSON.stringify(v)} is not a region in replication.regions (known: ${known.join(', ')})`);
    return v;
  };
  const list = (name: string, min: number): string[] => {
    const v = p[name];
    if (!Array.isArray(v) || v.length < min) throw new PolicyError(`${at}.${name}`, `topology ${topology} needs a list of at least ${min} regions`);
    const out = v.map(region(name));
    if (new Set(out).size !== out.length) throw new PolicyError(`${at}.${name}`, 'a region is listed twice');
    return out;
  };
  const one = (name: string): string => {
    if (p[name] === undefined) throw new PolicyError(`${at}.${name}`, `topology ${topology} needs ${name}`);
    return region(name)(p[name]);
  };
  const edges: Policy['edges'] = [];
  let regions: string[];
  switch (topology) {
    case 'mesh':
      regions = list('regions', 2);
      for (const a of regions) for (const b of regions) if (a !== b) edges.push({ from: a, to: b, relay: false });
      break;
    case 'one-way':
    case 'fan-out': {
      const source = one('source');
      const targets = list('targets', 1);
      if (targets.includes(source)) throw new PolicyError(`${at}.targets`, `the source ${source} cannot also be a target`);
      regions = [source, ...targets];
      for (const t of targets) edges.push({ from: source, to: t, relay: false });
      break;
    }
    case 'aggregation': {
      const target = one('target');
      const sources = list('sources', 1);
      if (sources.includes(target)) throw new PolicyError(`${at}.sources`, `the target ${target} cannot also be a source`);
      regions = [...sources, target];
      for (const s of sources) edges.push({ from: s, to: target, relay: false });
      break;
    }
    case 'relay': {
      if (p.path !== undefined) {
        regions = list('path', 2);
        for (let i = 0; i + 1 < regions.length; i++) edges.push({ from: regions[i], to: regions[i + 1], relay: true });
      } else {
        const hub = one('hub');
        const spokes = list('regions', 1);
        if (spokes.includes(hub)) throw new PolicyError(`${at}.regions`, `the hub ${hub} cannot also be a spoke`);
        regions = [hub, ...spokes];
        for (const s of spokes) edges.push({ from: s, to: hub, relay: false }, { from: hub, to: s, relay: true });
      }
      break;
    }
  }
  return {
    name: typeof p.name === 'string' ? p.name : `policy-${index}`,
    topics: topicsRaw as string[],
    topology,
    regions,
    edges,
    backlogQuota: sizeField(p.backlogQuota, `${at}.backlogQuota`),
    rateLimit: sizeField(p.rateLimit, `${at}.rateLimit`),
  };
}

function sizeField(v: unknown, at: string): number {
  if (v === undefined || v === -1 || v === '-1') return -1;
  const n = typeof v === 'number' || typeof v === 'string' ? parseSize(v) : undefined;
  if (n === undefined || n < 0) throw new PolicyError(at, `expected a size such as 10GiB, or -1 for unlimited, got ${JSON.stringify(v)}`);
  return n;
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\-]/g, '\\$&').replace(/\*/g, '.*')}$`);
}

/**
 * Each policy's patterns, compiled once: produce asks for every partition of every request
 * whether a DR policy governs the topic. Policies are immutable values, so a WeakMap keyed by
 * the policy is a memo of a pure function, dropped with the policy.
 */
const compiled = new WeakMap<Policy, Array<string | RegExp>>();

export function topicMatches(policy: Policy, topic: string): boolean {
  let patterns = compiled.get(policy);
  if (patterns === undefined) compiled.set(policy, (patterns = policy.topics.map((t) => (t.includes('*') ? globToRegExp(t) : t))));
  return patterns.some((p) => (typeof p === 'string' ? p === topic : p.test(topic)));
}

/** The first policy governing `topic`, if any. */
export function policyFor(policies: readonly Policy[], topic: string): Policy | undefined {
  return policies.find((p) => topicMatches(p, topic));
}

/** The links `region` runs for `topic` under `policies`. */
export function linksFor(policies: readonly Policy[], region: string, topic: string): Link[] {
  const policy = policyFor(policies, topic);
  if (policy === undefined) return [];
  return policy.edges.filter((e) => e.from === region).map((e) => ({ remote: e.to, relay: e.relay, policy }));
}

/**
 * The regions `policies` have send `topic` to `region`: the sending side's `linksFor` seen
 * from the receiver, so the receiving side admits exactly what senders do. Under one-way and
 * fan-out policies that is every other region of the policy, because the sender is whichever
 * region is the topic's primary now (dr/disaster-recovery.ts `effectiveLinks`), and disaster
 * recovery's admission then takes data from that primary only.
 */
export function sendersTo(policies: readonly Policy[], region: string, topic: string): { policy: Policy | undefined; senders: string[] } {
  const policy = policyFor(policies, topic);
  if (policy === undefined) return { policy, senders: [] };
  if (policy.topology === 'one-way' || policy.topology === 'fan-out') return { policy, senders: policy.regions.includes(region) ? policy.regions.filter((r) => r !== region) : [] };
  return { policy, senders: [...new Set(policy.edges.filter((e) => e.to === region).map((e) => e.from))] };
}

/**
 * Whether a running link may keep its workers under new policies: same remote, relay mode
 * and policy content (a changed quota or rate limit restarts them with the new values).
 */
export function sameLink(a: Link, b: Link): boolean {
  return a.remote === b.remote && a.relay === b.relay && (a.policy === b.policy || JSON.stringify(a.policy) === JSON.stringify(b.policy));
}
