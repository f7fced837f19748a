/**
 * Loads a BrokerConfig from four layers, later ones winning field by field:
 * schema defaults < YAML file < MERIDIAN_* environment variables < programmatic overrides.
 *
 * Each layer is validated on its own before the merge, so an error names the place the bad
 * value came from (the file and its line, or the variable), the dotted field, what was
 * expected and what was found. All problems are reported at once: a broker that refuses to
 * start should not make its operator fix one typo per restart.
 *
 * This is the only module that reads process.env, so every setting comes from one place.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { LineCounter, parseDocument, isMap, isNode, isScalar, isSeq, type Document } from 'yaml';
import { ErrorCode, MeridianError } from '../errors.js';
import { parsePolicies, parseRegions, PolicyError } from '../replication/policy.js';
import { ListenerError, parseListeners } from './listeners.js';
import { DURATION_UNIT_NAMES, formatDuration, formatSize, parseUnit, SIZE_UNIT_NAMES, type UnitKind } from '../units.js';
import {
  brokerConfigSchema,
  isObjectSchema,
  isWildcardHost,
  schemaAt,
  schemaLeaves,
  type BrokerConfig,
  type BrokerConfigInput,
  type FieldSchema,
  type LeafSchema,
} from './schema.js';

export interface ConfigIssue {
  /** Where the value came from: a file path, an environment variable, or "overrides". */
  readonly source: string;
  /** Dotted field path; empty when the problem is the whole source (unreadable, bad YAML). */
  readonly path: string;
  /** What was expected and what was found. */
  readonly detail: string;
  readonly line?: number;
}

export class ConfigError extends MeridianError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], options: { cause?: unknown } = {}) {
    super(ErrorCode.BadConfig, issues.map(formatIssue).join('\n'), { retriable: false, ...options });
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

function formatIssue(issue: ConfigIssue): string {
  const where = issue.path === '' ? '' : `${issue.path}: `;
  const line = issue.line === undefined ? '' : ` (line ${issue.line})`;
  return `${issue.source}: ${where}${issue.detail}${line}`;
}

export interface LoadConfigOptions {
  /** YAML file to read. Without it, only defaults, environment and overrides apply. */
  file?: string;
  /** Defaults to process.env; pass {} to ignore the environment (tests). */
  env?: NodeJS.ProcessEnv;
  overrides?: BrokerConfigInput;
}

export function loadConfig(options: LoadConfigOptions = {}): BrokerConfig {
  const layers: Layer[] = [];
  if (options.file !== undefined) layers.push(fileLayer(readConfigFile(options.file), options.file));
  layers.push(envLayer(options.env ?? process.env));
  if (options.overrides !== undefined) layers.push(plainLayer(options.overrides, 'overrides'));
  return resolveLayers(layers);
}

/** Defaults < the given YAML text. The environment is not consulted. */
export function parseConfig(text: string, sourceName = '<inline>'): BrokerConfig {
  return resolveLayers([fileLayer(text, sourceName)]);
}

/** The embedded defaults, resolved (sizes in bytes, durations in ms). */
export function defaultConfig(): BrokerConfig {
  return resolveLayers([]);
}

// ---------------------------------------------------------------------------------------
// Environment variables

const ENV_PREFIX = 'MERIDIAN_';

/**
 * The `meridian` CLI's own variables (which admin API to talk to, and its token): they
 * share the prefix but are not broker config, so a shell that exports them for the CLI can
 * still start a broker. The broker's token is MERIDIAN_ADMIN__TOKEN (admin.token).
 */
export const CLIENT_ENV_VARS: ReadonlySet<string> = new Set(['MERIDIAN_ADMIN', 'MERIDIAN_ADMIN_TOKEN']);

/** ['log', 'segmentBytes'] -> "MERIDIAN_LOG__SEGMENT_BYTES". */
export function envVarName(path: readonly string[]): string {
  return ENV_PREFIX + path.map((segment) => segment.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('__');
}

export interface EnvVar {
  readonly name: string;
  /** Dotted field path, e.g. "log.segmentBytes". */
  readonly path: string;
  readonly description: string;
  readonly default: unknown;
}

/** Every variable the loader understands, one per leaf field, in schema order. */
export function listEnvVars(): EnvVar[] {
  return schemaLeaves().map(({ path, schema }) => ({
    name: envVarName(path),
    path: path.join('.'),
    description: schema.description,
    default: schema.default,
  }));
}

function envLayer(env: NodeJS.ProcessEnv): Layer {
  const fields = new Map(schemaLeaves().map((leaf) => [envVarName(leaf.path), leaf]));
  const data: Record<string, unknown> = {};
  const sources = new Map<string, string>();
  const raw = new Map<string, string>();
  const early: ConfigIssue[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined || CLIENT_ENV_VARS.has(name)) continue;
    const field = fields.get(name);
    if (field === undefined) {
      // Refused rather than ignored: a misspelt override that silently falls back to the
      // default is the failure this loader exists to prevent.
      const suggestion = closest(name, [...fields.keys()]);
      early.push({
        source: name,
        path: '',
        detail: `unknown configuration variable${suggestion === undefined ? '' : `; did you mean ${suggestion}?`} (see listEnvVars() or src/config/README.md)`,
      });
      continue;
    }
    setIn(data, field.path, coerceEnvValue(value, field.schema));
    sources.set(field.path.join('.'), name);
    raw.set(field.path.join('.'), value);
  }
  return {
    data,
    early,
    sourceOf: (path) => sources.get(path.join('.')) ?? 'environment',
    originalAt: (path) => raw.get(path.join('.')),
    lineOf: () => undefined,
  };
}

/** Turns the text of a variable into the JSON type the schema wants; leaves it as text when it cannot, so validation reports it. */
function coerceEnvValue(text: string, schema: LeafSchema): unknown {
  const types: readonly string[] = typeof schema.type === 'string' ? [schema.type] : schema.type;
  const trimmed = text.trim();
  if (types.includes('null') && (trimmed === '' || trimmed === 'null')) return null;
  if (types.includes('integer') && /^-?\d+$/.test(trimmed)) return Number(trimmed);
  if (types.includes('array') && trimmed.startsWith('[')) {
    try {
      return JSON.parse(trimmed) as unknown;
    } catch {
      return text;
    }
  }
  if (types.includes('boolean')) {
    if (/^true$/i.test(trimmed)) return true;
    if (/^false$/i.test(trimmed)) return false;
  }
  return text;
}

// ---------------------------------------------------------------------------------------
// Layers

interface Layer {
  readonly data: unknown;
  /** Problems found before validation (unknown variables). */
  readonly early: readonly ConfigIssue[];
  sourceOf(path: readonly string[]): string;
  /** The value as the user wrote it, for "got ..." in messages. */
  originalAt(path: readonly string[]): unknown;
  lineOf(path: readonly string[]): number | undefined;
}

function plainLayer(data: unknown, source: string): Layer {
  return { data, early: [], sourceOf: () => source, originalAt: (path) => getIn(data, path), lineOf: () => undefined };
}

function readConfigFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const detail =
      code === 'ENOENT'
        ? `config file not found (looked for ${resolve(file)})`
        : `cannot read config file: ${code ?? (error as Error).message}`;
    throw new ConfigError([{ source: file, path: '', detail }], { cause: error });
  }
}

function fileLayer(text: string, source: string): Layer {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax !== undefined) {
    // The yaml message already carries "at line L, column C" and a caret under the spot.
    throw new ConfigError([{ source, path: '', detail: `invalid YAML: ${syntax.message.trimEnd()}` }], { cause: syntax });
  }
  // An empty file (or one holding only comments) means "all defaults".
  const data: unknown = doc.contents === null ? {} : doc.toJS();
  return {
    data,
    early: [],
    sourceOf: () => source,
    originalAt: (path) => getIn(data, path),
    lineOf: (path) => lineOfPath(doc, lineCounter, path),
  };
}

function lineOfPath(doc: Document, lineCounter: LineCounter, path: readonly string[]): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined = isNode(node) ? node.range?.[0] : undefined;
  for (const key of path) {
    if (isSeq(node) && /^\d+$/.test(key)) {
      node = node.items[Number(key)];
      if (!isNode(node)) break;
      offset = node.range?.[0] ?? offset;
      continue;
    }
    if (!isMap(node)) break;
    const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === key);
    if (pair === undefined) break;
    offset = isScalar(pair.key) ? pair.key.range?.[0] : offset;
    node = pair.value;
  }
  return offset === undefined ? undefined : lineCounter.linePos(offset).line;
}

function resolveLayers(userLayers: readonly Layer[]): BrokerConfig {
  const defaults = validated(plainLayer(schemaDefaults(), 'defaults'));
  if (defaults.issues.length > 0) {
    throw new Error(`Meridian's own config defaults are invalid: ${defaults.issues.map(formatIssue).join('; ')}`);
  }
  const issues: ConfigIssue[] = [];
  let merged = defaults.value;
  for (const layer of userLayers) {
    const result = validated(layer);
    issues.push(...layer.early, ...result.issues);
    if (result.issues.length === 0) merged = deepMerge(merged, result.value);
  }
  if (issues.length > 0) throw new ConfigError(issues);
  const listenerIssues = completeListeners(merged, userLayers);
  if (listenerIssues.length > 0) throw new ConfigError(listenerIssues);
  const config = merged as unknown as BrokerConfig;
  const crossIssues = crossFieldIssues(config, userLayers);
  if (crossIssues.length > 0) throw new ConfigError(crossIssues);
  return config;
}

function schemaDefaults(node: FieldSchema = brokerConfigSchema): unknown {
  if (!isObjectSchema(node)) return node.default;
  return Object.fromEntries(Object.entries(node.properties).map(([key, child]) => [key, schemaDefaults(child)]));
}

/**
 * `kafka.listeners`, checked in depth by listeners.ts and replaced (in the merged config) by
 * the completed list; with listeners set, the single listener's four fields must be unset.
 */
function completeListeners(merged: Record<string, unknown>, layers: readonly Layer[]): ConfigIssue[] {
  const kafka = merged.kafka as Record<string, unknown>;
  try {
    kafka.listeners = parseListeners(kafka.listeners);
  } catch (err) {
    if (!(err instanceof ListenerError)) throw err;
    const path = err.path.split(/[.[\]]+/).filter(Boolean);
    const at = whereSet(layers, ['kafka', 'listeners'], path);
    return [{ source: at.source, path: err.path, detail: err.message.slice(err.path.length + 2), ...(at.line === undefined ? {} : { line: at.line }) }];
  }
  if ((kafka.listeners as unknown[]).length === 0) return [];
  const issues: ConfigIssue[] = [];
  for (const field of ['host', 'port', 'advertisedHost', 'advertisedPort']) {
    const at = whereSet(layers, ['kafka', field]);
    if (at.source === 'defaults') continue;
    const value = layers.findLast((l) => getIn(l.data, ['kafka', field]) !== undefined)?.originalAt(['kafka', field]);
    issues.push({
      source: at.source,
      path: `kafka.${field}`,
      detail: `expected nothing, since kafka.listeners is set (each listener has its own host, port, advertisedHost and advertisedPort), got ${renderValue(value)}`,
      ...(at.line === undefined ? {} : { line: at.line }),
    });
  }
  return issues;
}

/** Rules one field's schema cannot state. */
function crossFieldIssues(config: BrokerConfig, layers: readonly Layer[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (config.kafka.listeners.length === 0 && config.kafka.advertisedHost === null && isWildcardHost(config.kafka.host)) {
    const at = whereSet(layers, ['kafka', 'host']);
    issues.push({
      source: at.source,
      path: 'kafka.advertisedHost',
      detail: `expected a host name or address that clients can connect to, because kafka.host is ${config.kafka.host} (every interface, which clients cannot connect to), got null`,
      ...(at.line === undefined ? {} : { line: at.line }),
    });
  }
  if (config.log.maxBatchBytes > config.kafka.maxFrameBytes) {
    let at = whereSet(layers, ['log', 'maxBatchBytes']);
    if (at.source === 'defaults') at = whereSet(layers, ['kafka', 'maxFrameBytes']);
    issues.push({
      source: at.source,
      path: 'log.maxBatchBytes',
      detail: `expected at most kafka.maxFrameBytes (${formatSize(config.kafka.maxFrameBytes)}), since a batch arrives inside one request frame, got ${formatSize(config.log.maxBatchBytes)}`,
      ...(at.line === undefined ? {} : { line: at.line }),
    });
  }
  if (config.kafka.queuedMaxRequestBytes < config.kafka.maxFrameBytes) {
    let at = whereSet(layers, ['kafka', 'queuedMaxRequestBytes']);
    if (at.source === 'defaults') at = whereSet(layers, ['kafka', 'maxFrameBytes']);
    issues.push({
      source: at.source,
      path: 'kafka.queuedMaxRequestBytes',
      detail: `expected at least kafka.maxFrameBytes (${formatSize(config.kafka.maxFrameBytes)}), since one whole request must fit in the budget, got ${formatSize(config.kafka.queuedMaxRequestBytes)}`,
      ...(at.line === undefined ? {} : { line: at.line }),
    });
  }
  issues.push(...requiredWhenIssues(config, layers));
  issues.push(...replicationIssues(config, layers));
  return issues;
}

/** Fields the schema marks `requiredWhen`, left null while the fields they depend on say they are needed. */
function requiredWhenIssues(config: BrokerConfig, layers: readonly Layer[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const { path, schema } of schemaLeaves()) {
    const rule = schema.requiredWhen;
    if (rule === undefined || getIn(config, path) !== null) continue;
    const conditions = Object.entries(rule.when).map(([field, values]) => ({ field: field.split('.'), value: getIn(config, field.split('.')), values }));
    if (!conditions.every((c) => c.values.includes(c.value))) continue;
    if (rule.unlessSet !== undefined && getIn(config, rule.unlessSet.split('.')) !== null) continue;
    // Point at the file that asked for the field: where it is set to null, or else where
    // the most specific field it depends on (the store's type, listed last) got its value.
    const reasons = conditions.reverse();
    let at = whereSet(layers, path);
    for (const c of reasons) if (at.source === 'defaults') at = whereSet(layers, c.field);
    const because = reasons.map((c) => `${c.field.join('.')} is ${String(c.value)}`).join(' and ');
    issues.push({
      source: at.source,
      path: path.join('.'),
      detail: `expected ${rule.expected}, since ${because}, got null`,
      ...(at.line === undefined ? {} : { line: at.line }),
    });
  }
  return issues;
}

/** Regions and policies are checked by the replication module's own parser. */
function replicationIssues(config: BrokerConfig, layers: readonly Layer[]): ConfigIssue[] {
  const r = config.replication;
  const policyIssue = (err: unknown): ConfigIssue => {
    if (!(err instanceof PolicyError)) throw err;
    // "replication.policies[1].targets" -> the line of that very item's field, where known.
    const path = err.path.split(/[.[\]]+/).filter(Boolean);
    const at = whereSet(layers, path.slice(0, 2), path);
    return { source: at.source, path: err.path, detail: err.message.slice(err.path.length + 2), ...(at.line === undefined ? {} : { line: at.line }) };
  };
  let names: string[];
  try {
    names = parseRegions(r.regions).map((x) => x.name);
  } catch (err) {
    return [policyIssue(err)];
  }
  const issues: ConfigIssue[] = [];
  // Every region's config carries the same registry, its own entry included: a
  // registry without this region means a misspelt region or a file meant for another mesh,
  // and such a broker would otherwise start and replicate nothing without a word.
  if (names.length > 0 && !names.includes(config.region)) {
    let at = whereSet(layers, ['region']);
    const defaulted = at.source === 'defaults';
    if (defaulted) at = whereSet(layers, ['replication', 'regions']);
    issues.push({
      source: at.source,
      path: 'region',
      detail: `expected one of the regions listed in replication.regions (${names.join(', ')}), since the registry must include this broker's own region, got ${JSON.stringify(config.region)}${defaulted ? ' (the default: region is not set)' : ''}`,
      ...(at.line === undefined ? {} : { line: at.line }),
    });
  }
  try {
    parsePolicies(r.policies, [config.region, ...names]);
  } catch (err) {
    issues.push(policyIssue(err));
  }
  return issues;
}

/**
 * The last layer that sets `path`, and the line of `linePath` in it (by default `path`
 * itself; a deeper path points into a list the layer set).
 */
function whereSet(layers: readonly Layer[], path: readonly string[], linePath: readonly string[] = path): { source: string; line?: number } {
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i]!;
    if (getIn(layer.data, path) !== undefined) {
      const line = layer.lineOf(linePath);
      return line === undefined ? { source: layer.sourceOf(path) } : { source: layer.sourceOf(path), line };
    }
  }
  return { source: 'defaults' };
}

// ---------------------------------------------------------------------------------------
// Validation

// A pure function of a constant schema, compiled once because compiling costs milliseconds.
let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (compiled !== undefined) return compiled;
  const ajv = new Ajv({ allErrors: true, allowUnionTypes: true, strict: true });
  ajv.addKeyword({ keyword: 'expected', schemaType: 'string' });
  ajv.addKeyword({ keyword: 'requiredWhen', schemaType: 'object' }); // checked after the merge: requiredWhenIssues
  ajv.addKeyword({
    keyword: 'unit',
    schemaType: 'string',
    // Declared untyped so it runs before the number keywords: minimum and maximum then see bytes or ms.
    modifying: true,
    errors: false,
    validate: (kind: UnitKind, data: unknown, _schema: unknown, cxt?: { parentData: Record<string, unknown>; parentDataProperty: string | number }) => {
      if (typeof data !== 'string' && typeof data !== 'number') return true; // `type` reports it
      const value = parseUnit(kind, data);
      if (value === undefined) return false;
      if (cxt !== undefined) cxt.parentData[cxt.parentDataProperty] = value;
      return true;
    },
  });
  compiled = ajv.compile(brokerConfigSchema);
  return compiled;
}

function validated(layer: Layer): { value: Record<string, unknown>; issues: ConfigIssue[] } {
  // Validation rewrites units in place; the caller's object (and layer.originalAt) stay untouched.
  const value = structuredClone(layer.data) as Record<string, unknown>;
  const validate = validator();
  if (validate(value)) return { value, issues: [] };
  const seen = new Set<string>();
  const issues: ConfigIssue[] = [];
  for (const error of validate.errors ?? []) {
    const issue = issueFromAjv(error, layer);
    const key = `${issue.source}\0${issue.path}`;
    if (seen.has(key)) continue; // one message per field: the first says what was expected
    seen.add(key);
    issues.push(issue);
  }
  return { value, issues };
}

function issueFromAjv(error: ErrorObject, layer: Layer): ConfigIssue {
  const parentPath = error.instancePath === '' ? [] : error.instancePath.slice(1).split('/').map(unescapePointer);
  if (error.keyword === 'additionalProperties') {
    const key = String((error.params as { additionalProperty: string }).additionalProperty);
    const path = [...parentPath, key];
    const parent = schemaAt(parentPath);
    const known = parent !== undefined && isObjectSchema(parent) ? Object.keys(parent.properties) : [];
    const suggestion = closest(key, known);
    return withLine(layer, path, {
      source: layer.sourceOf(path),
      path: path.join('.'),
      detail: `unknown field, expected one of ${known.join(', ')}${suggestion === undefined ? '' : `; did you mean ${suggestion}?`}`,
    });
  }
  const path = parentPath;
  const node = schemaAt(path);
  const itemOf = node === undefined && /^\d+$/.test(path.at(-1) ?? '') ? schemaAt(path.slice(0, -1)) : undefined;
  if (itemOf !== undefined && !isObjectSchema(itemOf)) {
    // An item of a list field: the list's owner checks items in depth, ajv only their type.
    const shown = `${path.slice(0, -1).join('.')}[${path.at(-1)}]`;
    return withLine(layer, path.slice(0, -1), { source: layer.sourceOf(path), path: shown, detail: `expected a mapping, got ${renderValue(layer.originalAt(path))}` });
  }
  const original = layer.originalAt(path);
  let detail = `expected ${node === undefined ? 'a valid value' : describeExpected(node, error.keyword !== 'unit')}, got ${renderValue(original)}`;
  if (node !== undefined && !isObjectSchema(node)) {
    if (error.keyword === 'unit') {
      detail += `; known units: ${(node.unit === 'size' ? SIZE_UNIT_NAMES : DURATION_UNIT_NAMES).join(', ')}`;
    } else if ((error.keyword === 'minimum' || error.keyword === 'maximum') && node.unit !== undefined && typeof original === 'string') {
      detail += ` (${String(error.data ?? parseUnit(node.unit, original))} ${node.unit === 'size' ? 'bytes' : 'ms'})`;
    } else if (error.keyword === 'enum' && typeof original === 'string' && node.enum !== undefined) {
      const suggestion = closest(original, node.enum.map(String));
      if (suggestion !== undefined) detail += `; did you mean ${suggestion}?`;
    }
  }
  return withLine(layer, path, { source: layer.sourceOf(path), path: path.join('.'), detail });
}

function withLine(layer: Layer, path: readonly string[], issue: ConfigIssue): ConfigIssue {
  const line = layer.lineOf(path);
  return line === undefined ? issue : { ...issue, line };
}

function unescapePointer(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

// ---------------------------------------------------------------------------------------
// Messages

/** withRange: false when the value could not even be read, so limits would only distract. */
function describeExpected(node: FieldSchema, withRange = true): string {
  if (isObjectSchema(node)) return `a mapping with the fields ${Object.keys(node.properties).join(', ')}`;
  if (node.expected !== undefined) return node.expected;
  const types: readonly string[] = typeof node.type === 'string' ? [node.type] : node.type;
  let text: string;
  if (types.includes('array')) return 'a list (in an environment variable: JSON, e.g. [{"name": "eu-west", "address": "10.0.0.2:9092"}])';
  if (node.unit === 'size') text = `a size such as 128MiB or a number of bytes${withRange ? unitRange(node, formatSize) : ''}`;
  else if (node.unit === 'duration') text = `a duration such as 30s or a number of milliseconds${withRange ? unitRange(node, formatLongDuration) : ''}`;
  else if (node.enum !== undefined) text = `one of ${node.enum.join(', ')}`;
  else if (types.includes('integer')) text = `an integer${integerRange(node)}`;
  else if (types.includes('boolean')) text = 'true or false';
  else if (node.pattern !== undefined) text = `a string matching ${node.pattern}`;
  else text = node.minLength !== undefined && node.minLength > 0 ? 'a non-empty string' : 'a string';
  return types.includes('null') ? `${text}, or null` : text;
}

function integerRange(node: LeafSchema): string {
  const { minimum: min, maximum: max } = node;
  if (min !== undefined && max !== undefined) return ` from ${min} to ${max}`;
  if (min !== undefined) return ` of at least ${min}`;
  if (max !== undefined) return ` of at most ${max}`;
  return '';
}

function unitRange(node: LeafSchema, format: (n: number) => string): string {
  const parts: string[] = [];
  if (node.minimum === -1) parts.push('or -1 for unlimited');
  else if (node.minimum !== undefined && node.minimum > 0) parts.push(`at least ${format(node.minimum)}`);
  if (node.maximum !== undefined && node.maximum < Number.MAX_SAFE_INTEGER) parts.push(`at most ${format(node.maximum)}`);
  return parts.length === 0 ? '' : `, ${parts.join(', ')}`;
}

function formatLongDuration(ms: number): string {
  const exact = formatDuration(ms);
  return exact.endsWith('ms') && ms >= 86_400_000 ? `${exact} (about ${(ms / 86_400_000).toFixed(1)}d)` : exact;
}

function renderValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

/** The candidate a typo most plausibly meant, if any is close enough to suggest. */
function closest(input: string, candidates: readonly string[]): string | undefined {
  const squash = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]/g, '');
  const wanted = squash(input);
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const other = squash(candidate);
    if (other === wanted) return candidate; // segment_bytes, SegmentBytes, MERIDIAN_LOG_SEGMENT_BYTES
    const distance = editDistance(wanted, other);
    const limit = Math.max(2, Math.floor(Math.max(wanted.length, other.length) / 3));
    const prefix = Math.min(wanted.length, other.length) >= 3 && (wanted.startsWith(other) || other.startsWith(wanted));
    if ((distance <= limit || prefix) && (best === undefined || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

// ---------------------------------------------------------------------------------------
// Plain-object helpers

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function getIn(data: unknown, path: readonly string[]): unknown {
  let node = data;
  for (const key of path) {
    if (Array.isArray(node) && /^\d+$/.test(key)) {
      node = node[Number(key)];
      continue;
    }
    if (!isPlainObject(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

function setIn(data: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = data;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    node = isPlainObject(next) ? next : (node[key] = {});
  }
  node[path[path.length - 1]!] = value;
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}
