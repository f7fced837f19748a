/**
 * An independent reading of Kafka's message schemas (the committed copy in
 * src/protocol/kafka/spec/), for tests: which fields a version has, in which form, and what a
 * field's default is. Written from Kafka's protocol rules, deliberately without anything from
 * src/protocol/kafka/gen/, so that a generator bug shows up as a disagreement instead of being
 * repeated here. Values follow the generated codecs' naming contract (JSON names with the
 * first letter lowered; int64 as bigint, bytes and records as Buffer, uuid as a dashed
 * lowercase string).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SPEC_DIR = fileURLToPath(new URL('../../../../../src/protocol/kafka/spec/', import.meta.url));

export const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

/** A version range as the schemas write it: "3+", "0-7", "5"; null for "none" or absent. */
export interface VersionRange {
  readonly lo: number;
  readonly hi: number;
}

export function range(text: string | undefined): VersionRange | null {
  if (text === undefined || text === 'none') return null;
  const plus = /^(\d+)\+$/.exec(text);
  if (plus !== null) return { lo: Number(plus[1]), hi: Number.POSITIVE_INFINITY };
  const span = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (span === null) throw new Error(`cannot read version range ${JSON.stringify(text)}`);
  return { lo: Number(span[1]), hi: Number(span[2] ?? span[1]) };
}

export function covers(r: VersionRange | null, version: number): boolean {
  return r !== null && version >= r.lo && version <= r.hi;
}

export type FieldType =
  | { readonly kind: 'primitive'; readonly name: string }
  | { readonly kind: 'struct'; readonly name: string; readonly fields: readonly Field[] }
  | { readonly kind: 'array'; readonly item: FieldType };

export interface Field {
  /** The JSON name. */
  readonly name: string;
  /** The property name in the generated interfaces. */
  readonly prop: string;
  readonly type: FieldType;
  readonly versions: VersionRange | null;
  readonly nullableVersions: VersionRange | null;
  readonly taggedVersions: VersionRange | null;
  readonly tag: number | null;
  /** A field-level flexibleVersions, which overrides the message's for this field's encoding. */
  readonly flexibleVersions: VersionRange | null | undefined;
  readonly default: unknown;
  readonly ignorable: boolean;
}

export interface MessageSchema {
  readonly name: string;
  readonly apiKey: number;
  readonly lo: number;
  readonly hi: number;
  readonly flexibleVersions: VersionRange | null;
  readonly fields: readonly Field[];
}

export interface ApiSchema {
  /** "Produce", "DescribeConfigs", ... */
  readonly name: string;
  readonly request: MessageSchema;
  readonly response: MessageSchema;
}

interface RawField {
  name: string;
  type: string;
  versions?: string;
  nullableVersions?: string;
  taggedVersions?: string;
  tag?: number;
  flexibleVersions?: string;
  default?: unknown;
  ignorable?: boolean;
  fields?: RawField[];
}

interface RawMessage {
  apiKey: number;
  name: string;
  validVersions: string;
  flexibleVersions?: string;
  fields: RawField[];
  commonStructs?: { name: string; fields: RawField[] }[];
}

/** Kafka's schema files are JSON with whole-line `//` comments (the license header, notes). */
function parseJsonWithLineComments(text: string): unknown {
  return JSON.parse(
    text
      .split('\n')
      .filter((line) => !line.trimStart().startsWith('//'))
      .join('\n'),
  );
}

function loadMessage(file: string): MessageSchema {
  const raw = parseJsonWithLineComments(readFileSync(join(SPEC_DIR, file), 'utf8')) as RawMessage;
  const structs = new Map<string, RawField[]>();
  const collect = (fields: RawField[]): void => {
    for (const f of fields) {
      if (f.fields === undefined) continue;
      structs.set(f.type.replace(/^\[\]/, ''), f.fields);
      collect(f.fields);
    }
  };
  for (const common of raw.commonStructs ?? []) {
    structs.set(common.name, common.fields);
    collect(common.fields);
  }
  collect(raw.fields);

  const typeOf = (text: string): FieldType => {
    if (text.startsWith('[]')) return { kind: 'array', item: typeOf(text.slice(2)) };
    const fields = structs.get(text);
    if (fields !== undefined) return { kind: 'struct', name: text, fields: fields.map(field) };
    if (/^[A-Z]/.test(text)) throw new Error(`${file}: struct ${text} is not defined`);
    return { kind: 'primitive', name: text };
  };
  const field = (f: RawField): Field => ({
    name: f.name,
    prop: f.name.charAt(0).toLowerCase() + f.name.slice(1),
    type: typeOf(f.type),
    versions: range(f.versions),
    nullableVersions: range(f.nullableVersions),
    taggedVersions: range(f.taggedVersions),
    tag: f.tag ?? null,
    flexibleVersions: f.flexibleVersions === undefined ? undefined : range(f.flexibleVersions),
    default: f.default,
    ignorable: f.ignorable === true,
  });
  const valid = range(raw.validVersions);
  if (valid === null || !Number.isFinite(valid.hi)) throw new Error(`${file}: validVersions ${raw.validVersions}`);
  return {
    name: raw.name,
    apiKey: raw.apiKey,
    lo: valid.lo,
    hi: valid.hi,
    flexibleVersions: range(raw.flexibleVersions),
    fields: raw.fields.map(field),
  };
}

/** Every API of the committed schemas, by name. */
export function loadApiSchemas(): Map<string, ApiSchema> {
  const apis = new Map<string, ApiSchema>();
  for (const file of readdirSync(SPEC_DIR).sort()) {
    const m = /^(\w+)Request\.json$/.exec(file);
    if (m === null) continue;
    apis.set(m[1], { name: m[1], request: loadMessage(file), response: loadMessage(`${m[1]}Response.json`) });
  }
  return apis;
}

export function isFlexible(message: MessageSchema, version: number): boolean {
  return covers(message.flexibleVersions, version);
}

/** Present in this version at all (as a regular or as a tagged field). */
export function present(f: Field, version: number): boolean {
  return covers(f.versions, version);
}

export function taggedIn(f: Field, version: number): boolean {
  return present(f, version) && covers(f.taggedVersions, version);
}

export function nullableIn(f: Field, version: number): boolean {
  return present(f, version) && covers(f.nullableVersions, version);
}

/** Whether a string, bytes, records or array field takes its compact (KIP-482) form. */
export function compactIn(message: MessageSchema, f: Field, version: number): boolean {
  if (!isFlexible(message, version)) return false;
  return f.flexibleVersions === undefined || covers(f.flexibleVersions, version);
}

/** The field's default value: the schema's `default`, else Kafka's zero value of its type. */
export function defaultOf(f: Field): unknown {
  const d = f.default;
  const t = f.type;
  if (d === 'null') return null;
  if (t.kind === 'array') return [];
  if (t.kind === 'struct') return defaultStruct(t.fields);
  switch (t.name) {
    case 'bool':
      return d === true || d === 'true';
    case 'int64':
      return d === undefined ? 0n : BigInt(String(d).trim());
    case 'string':
      return d === undefined ? '' : String(d);
    case 'uuid':
      return ZERO_UUID;
    case 'bytes':
      return Buffer.alloc(0);
    case 'records':
      // Kafka's generated classes start records out as null, nullable or not.
      return null;
    default:
      // int8, int16, int32, uint16, float64; hex defaults such as "0x7fffffff" included.
      return d === undefined ? 0 : Number(String(d).trim());
  }
}

export function defaultStruct(fields: readonly Field[]): Record<string, unknown> {
  const value: Record<string, unknown> = {};
  for (const f of fields) value[f.prop] = defaultOf(f);
  return value;
}

/** Tags the struct uses in any version: injected unknown tags must avoid them. */
export function knownTags(fields: readonly Field[]): Set<number> {
  return new Set(fields.flatMap((f) => (f.tag === null ? [] : [f.tag])));
}
