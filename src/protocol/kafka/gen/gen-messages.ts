/**
 * Generates the request/response codecs of src/protocol/kafka/messages/ from Kafka's message
 * schemas (clients/src/main/resources/common/message/*Request.json and *Response.json), whose
 * committed copy is src/protocol/kafka/spec/ (its README names the Kafka commit). The output
 * is committed too, and a test regenerates it from that copy and compares byte for byte, so
 * the codecs cannot drift from generator + spec:
 *
 *   node --import tsx src/protocol/kafka/gen/gen-messages.ts src/protocol/kafka/spec src/protocol/kafka/messages
 *
 * One file per API (`produce.ts`, `list-offsets.ts`, ...) holds the request and the response
 * codec; `index.ts` lists them by API key. The generated code is straight-line reads and
 * writes with the version tests folded in at generation time, never a schema walked at run
 * time: Produce and Fetch are the broker's hot path. The support it needs at run time lives
 * in the hand-written messages/codec-support.ts.
 *
 * What the schemas may use, after Kafka's own generator (generator/src/main/java/org/apache/
 * kafka/message): validVersions, flexibleVersions (message and field), versions,
 * nullableVersions, taggedVersions + tag, default, ignorable, inline struct `fields`, struct
 * types defined once and referenced by name (also from commonStructs), arrays of structs and
 * of primitives, and the types int8 int16 int32 int64 uint16 float64 bool string bytes
 * records uuid, and structs nullable in some versions (an INT8 marker in those versions: -1
 * null, 1 present). Anything else (tagged nullable structs, arrays of arrays, ...) fails
 * generation with the file and field named, instead of producing a codec that is silently
 * wrong.
 *
 * This file is longer than the usual module because parsing, the codec emitter and the
 * grammar printer share one field model; splitting them would only spread it over files.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

// ---------------------------------------------------------------------------------------
// The schema JSON

export interface SpecField {
  readonly name: string;
  readonly type: string;
  readonly versions?: string;
  readonly nullableVersions?: string;
  readonly taggedVersions?: string;
  readonly tag?: number;
  readonly default?: string | number | boolean;
  readonly ignorable?: boolean;
  readonly flexibleVersions?: string;
  readonly about?: string;
  readonly fields?: readonly SpecField[];
}

export interface SpecStruct {
  readonly name: string;
  readonly versions?: string;
  readonly fields: readonly SpecField[];
}

export interface SpecMessage {
  readonly apiKey: number;
  readonly type: string;
  readonly name: string;
  readonly validVersions: string;
  readonly flexibleVersions?: string;
  readonly deprecatedVersions?: string;
  readonly latestVersionUnstable?: boolean;
  readonly fields: readonly SpecField[];
  readonly commonStructs?: readonly SpecStruct[];
}

/** Kafka's schemas are JSON plus `//` line comments; drop the comments, never inside strings. */
export function stripJsonComments(text: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
      out += c;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else {
      out += c;
    }
  }
  return out;
}

export function parseSpec(text: string, file: string): SpecMessage {
  let json: unknown;
  try {
    json = JSON.parse(stripJsonComments(text));
  } catch (error) {
    throw new Error(`${file}: not JSON after stripping // comments`, { cause: error });
  }
  const spec = json as SpecMessage;
  if (typeof spec !== 'object' || spec === null) throw new Error(`${file}: not an object`);
  if (spec.type !== 'request' && spec.type !== 'response') throw new Error(`${file}: type must be request or response`);
  if (!Number.isInteger(spec.apiKey)) throw new Error(`${file}: apiKey missing`);
  if (typeof spec.name !== 'string' || !/^[A-Z][A-Za-z0-9]*(Request|Response)$/.test(spec.name)) {
    throw new Error(`${file}: name ${JSON.stringify(spec.name)} does not end in Request or Response`);
  }
  if (typeof spec.validVersions !== 'string') throw new Error(`${file}: validVersions missing`);
  if (!Array.isArray(spec.fields)) throw new Error(`${file}: fields missing`);
  return spec;
}

// ---------------------------------------------------------------------------------------
// Version sets, as bit masks: Kafka versions are small (Fetch is at 17), and masks make the
// "in which versions is this field present, nullable, compact" questions one AND each.

const MAX_VERSION = 30;

function rangeMask(lo: number, hi: number): number {
  let mask = 0;
  for (let v = lo; v <= hi; v++) mask |= 1 << v;
  return mask;
}

/** "3+", "0-7", "5" or "none", clipped to 0..max. */
export function parseVersions(text: string | undefined, max: number, what: string): number {
  if (text === undefined || text === 'none') return 0;
  const m = /^(\d+)(\+|-(\d+))?$/.exec(text.trim());
  if (m === null) throw new Error(`${what}: cannot parse versions ${JSON.stringify(text)}`);
  const lo = Number(m[1]);
  const hi = m[2] === '+' ? Infinity : m[3] !== undefined ? Number(m[3]) : lo;
  if (lo > MAX_VERSION || lo > hi) throw new Error(`${what}: versions ${text} are out of range`);
  return lo > max ? 0 : rangeMask(lo, Math.min(hi, max));
}

function versionList(mask: number): number[] {
  const list: number[] = [];
  for (let v = 0; v <= MAX_VERSION; v++) if (mask & (1 << v)) list.push(v);
  return list;
}

/** "0-2, 5" */
export function formatVersions(mask: number): string {
  const runs: string[] = [];
  const list = versionList(mask);
  for (let i = 0; i < list.length; ) {
    let j = i;
    while (j + 1 < list.length && list[j + 1] === list[j] + 1) j++;
    runs.push(i === j ? `${list[i]}` : `${list[i]}-${list[j]}`);
    i = j + 1;
  }
  return runs.length === 0 ? 'none' : runs.join(', ');
}

/** Kafka's own spelling: "3+" when the set runs to the newest version. */
function formatFieldVersions(mask: number, max: number): string {
  const list = versionList(mask);
  if (list.length > 0 && list[list.length - 1] === max && mask === rangeMask(list[0], max)) return `${list[0]}+`;
  return formatVersions(mask);
}

/**
 * A condition on `version` that is true exactly for the versions in `set`, assuming the
 * version is one of `domain`: the shortest test, so `version >= 9` rather than a list.
 */
export function versionCondition(set: number, domain: number): string {
  const within = set & domain;
  if (within === domain) return 'true';
  if (within === 0) return 'false';
  const all = versionList(domain);
  const runs: string[] = [];
  for (let i = 0; i < all.length; ) {
    if (!(within & (1 << all[i]))) {
      i++;
      continue;
    }
    let j = i;
    while (j + 1 < all.length && within & (1 << all[j + 1])) j++;
    const parts: string[] = [];
    if (i > 0) parts.push(`version >= ${all[i]}`);
    if (j < all.length - 1) parts.push(`version <= ${all[j]}`);
    if (parts.length === 2 && all[i] === all[j]) parts.splice(0, 2, `version === ${all[i]}`);
    runs.push(parts.join(' && '));
    i = j + 1;
  }
  return runs.length === 1 ? runs[0] : runs.map((r) => (r.includes('&&') ? `(${r})` : r)).join(' || ');
}

// ---------------------------------------------------------------------------------------
// The model

type Primitive = 'int8' | 'int16' | 'int32' | 'int64' | 'uint16' | 'float64' | 'bool' | 'string' | 'bytes' | 'records' | 'uuid';
const PRIMITIVES: ReadonlySet<string> = new Set<Primitive>([
  'int8', 'int16', 'int32', 'int64', 'uint16', 'float64', 'bool', 'string', 'bytes', 'records', 'uuid',
]);

interface PrimitiveType {
  readonly kind: 'primitive';
  readonly primitive: Primitive;
}
interface StructType {
  readonly kind: 'struct';
  readonly struct: StructModel;
}
type FieldType = PrimitiveType | StructType | { readonly kind: 'array'; readonly item: PrimitiveType | StructType };

interface FieldModel {
  /** The property name: the JSON name in lowerCamelCase. */
  readonly name: string;
  /** The name in Kafka's protocol grammar. */
  readonly snake: string;
  /**
   * Path used in error messages, e.g. `topicData[].partitionData[].records`; a struct used
   * by several fields starts from its type name instead (`NodeEndpoint.host`).
   */
  label: string;
  readonly type: FieldType;
  readonly versions: number;
  readonly nullable: number;
  readonly tagged: number;
  readonly tag: number | null;
  readonly ignorable: boolean;
  /** Versions in which strings, bytes, records and arrays take their compact form. */
  readonly compact: number;
  readonly about: string;
  readonly spec: SpecField;
}

interface StructModel {
  readonly file: string;
  readonly typeName: string;
  readonly tsName: string;
  readonly isTop: boolean;
  readonly fields: FieldModel[];
  /** The versions of the message in which this struct can appear. */
  ctx: number;
}

interface MessageModel {
  readonly file: string;
  readonly text: string;
  readonly spec: SpecMessage;
  readonly name: string;
  readonly kind: 'Request' | 'Response';
  readonly valid: number;
  readonly min: number;
  readonly max: number;
  readonly flexible: number;
  readonly top: StructModel;
  readonly structs: StructModel[];
  /** [alias, target]: the literal `<message><struct>` spelling of names that already start with the message name. */
  readonly aliases: [string, string][];
}

export interface ApiModel {
  readonly name: string;
  readonly kebab: string;
  readonly apiKey: number;
  readonly request: MessageModel;
  readonly response: MessageModel;
}

const RESERVED_LOCALS = new Set([
  'reader', 'writer', 'version', 'msg', 'tagCount', 'tag', 'size', 'start', 'i', 'r', 'w', 'item',
  'break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default', 'delete', 'do', 'else', 'enum',
  'export', 'extends', 'false', 'finally', 'for', 'function', 'if', 'import', 'in', 'instanceof', 'new', 'null',
  'return', 'super', 'switch', 'this', 'throw', 'true', 'try', 'typeof', 'var', 'void', 'while', 'with', 'yield',
  'let', 'static', 'implements', 'interface', 'package', 'private', 'protected', 'public', 'await',
]);

function lowerCamel(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

export function snakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

export function kebabCase(name: string): string {
  return snakeCase(name).replaceAll('_', '-');
}

function childStruct(f: FieldModel): StructModel | null {
  const t = f.type.kind === 'array' ? f.type.item : f.type;
  return t.kind === 'struct' ? t.struct : null;
}

export function buildMessage(file: string, text: string): MessageModel {
  const spec = parseSpec(text, file);
  const kind = spec.type === 'request' ? 'Request' : 'Response';
  const valid = parseVersions(spec.validVersions, MAX_VERSION, `${file} validVersions`);
  if (valid === 0) throw new Error(`${file}: no valid versions`);
  const list = versionList(valid);
  const min = list[0];
  const max = list[list.length - 1];
  if (valid !== rangeMask(min, max)) throw new Error(`${file}: validVersions must be one range`);
  const flexible = parseVersions(spec.flexibleVersions, max, `${file} flexibleVersions`) & valid;

  // Every struct type the message defines (inline or in commonStructs), so a field may name
  // a struct defined elsewhere in the file, before or after it.
  const definitions = new Map<string, readonly SpecField[]>();
  const define = (name: string, fields: readonly SpecField[], where: string): void => {
    if (definitions.has(name)) throw new Error(`${file}: struct ${name} is defined twice (${where})`);
    definitions.set(name, fields);
  };
  const collect = (fields: readonly SpecField[]): void => {
    for (const f of fields) {
      if (f.fields !== undefined) {
        define(f.type.startsWith('[]') ? f.type.slice(2) : f.type, f.fields, f.name);
        collect(f.fields);
      }
    }
  };
  for (const common of spec.commonStructs ?? []) {
    define(common.name, common.fields, 'commonStructs');
    collect(common.fields);
  }
  collect(spec.fields);

  const structs = new Map<string, StructModel>();
  const aliases: [string, string][] = [];
  const usedNames = new Set<string>([spec.name]);

  const buildStruct = (typeName: string, fields: readonly SpecField[], isTop: boolean): StructModel => {
    let tsName = spec.name;
    if (!isTop) {
      const literal = spec.name + typeName;
      tsName = typeName.startsWith(spec.name) ? typeName : literal;
      if (tsName !== literal) aliases.push([literal, tsName]);
      if (usedNames.has(tsName) || usedNames.has(literal)) throw new Error(`${file}: type name ${tsName} is used twice`);
      usedNames.add(tsName).add(literal);
    }
    const model: StructModel = { file, typeName, tsName, isTop, fields: [], ctx: 0 };
    if (!isTop) structs.set(typeName, model);
    const names = new Set<string>();
    const tags = new Set<number>();
    for (const f of fields) {
      const where = `${file} field ${isTop ? '' : `${typeName}.`}${f.name}`;
      if (typeof f.name !== 'string' || !/^[A-Za-z][A-Za-z0-9]*$/.test(f.name)) throw new Error(`${where}: bad name`);
      const name = lowerCamel(f.name);
      if (names.has(name)) throw new Error(`${where}: duplicate field name`);
      names.add(name);
      const type = resolveType(f, where);
      const versions = parseVersions(f.versions, max, `${where} versions`);
      if (f.versions === undefined) throw new Error(`${where}: versions missing`);
      const nullable = parseVersions(f.nullableVersions, max, `${where} nullableVersions`) & versions;
      const tagged = parseVersions(f.taggedVersions, max, `${where} taggedVersions`) & versions;
      if (nullable !== 0 && type.kind === 'struct' && tagged !== 0) {
        throw new Error(`${where}: tagged nullable structs are not supported`);
      }
      if (nullable !== 0 && type.kind === 'primitive' && !['string', 'bytes', 'records'].includes(type.primitive)) {
        throw new Error(`${where}: a ${type.primitive} cannot be nullable`);
      }
      if ((f.tag === undefined) !== (f.taggedVersions === undefined)) throw new Error(`${where}: tag and taggedVersions go together`);
      if (f.tag !== undefined) {
        if (!Number.isInteger(f.tag) || f.tag < 0) throw new Error(`${where}: bad tag ${f.tag}`);
        if (tags.has(f.tag)) throw new Error(`${where}: tag ${f.tag} is used twice in one struct`);
        tags.add(f.tag);
        if ((tagged & ~flexible) !== 0) throw new Error(`${where}: tagged in a version that is not flexible`);
      }
      const fieldFlexible = f.flexibleVersions === undefined ? flexible : parseVersions(f.flexibleVersions, max, `${where} flexibleVersions`) & flexible;
      model.fields.push({
        name,
        snake: snakeCase(f.name),
        label: name,
        type,
        versions,
        nullable,
        tagged,
        tag: f.tag ?? null,
        ignorable: f.ignorable === true,
        compact: fieldFlexible,
        about: f.about ?? '',
        spec: f,
      });
    }
    return model;
  };

  const resolveType = (f: SpecField, where: string): FieldType => {
    if (typeof f.type !== 'string') throw new Error(`${where}: type missing`);
    const isArray = f.type.startsWith('[]');
    const base = isArray ? f.type.slice(2) : f.type;
    let item: PrimitiveType | StructType;
    if (PRIMITIVES.has(base)) {
      if (f.fields !== undefined) throw new Error(`${where}: a ${base} cannot have fields`);
      item = { kind: 'primitive', primitive: base as Primitive };
    } else if (/^[A-Z][A-Za-z0-9]*$/.test(base)) {
      const existing = structs.get(base);
      if (existing !== undefined) {
        item = { kind: 'struct', struct: existing };
      } else {
        const fields = definitions.get(base);
        if (fields === undefined) throw new Error(`${where}: unknown type ${f.type}`);
        item = { kind: 'struct', struct: buildStruct(base, fields, false) };
      }
    } else {
      throw new Error(`${where}: unsupported type ${f.type}`);
    }
    if (!isArray) return item;
    if (item.kind === 'primitive' && item.primitive === 'records') throw new Error(`${where}: arrays of records are not supported`);
    return { kind: 'array', item };
  };

  const top = buildStruct(spec.name, spec.fields, true);

  const widen = (struct: StructModel, ctx: number): void => {
    if ((struct.ctx | ctx) === struct.ctx) return;
    struct.ctx |= ctx;
    for (const f of struct.fields) {
      const child = childStruct(f);
      if (child !== null) widen(child, struct.ctx & f.versions);
    }
  };
  widen(top, valid);

  const references = new Map<StructModel, number>();
  for (const s of [top, ...structs.values()]) {
    for (const f of s.fields) {
      const child = childStruct(f);
      if (child !== null) references.set(child, (references.get(child) ?? 0) + 1);
    }
  }
  const labelled = new Set<StructModel>();
  const assignLabels = (struct: StructModel, path: string): void => {
    labelled.add(struct);
    for (const f of struct.fields) {
      f.label = path + f.name;
      const child = childStruct(f);
      if (child === null || labelled.has(child)) continue;
      const shared = (references.get(child) ?? 0) > 1;
      assignLabels(child, shared ? `${child.typeName}.` : `${f.label}${f.type.kind === 'array' ? '[]' : ''}.`);
    }
  };
  assignLabels(top, '');

  // Every default must make sense even where no version needs it yet.
  for (const s of [top, ...structs.values()]) {
    for (const f of s.fields) defaultExpr(f, new FileContext(), `${file} field ${f.label}`);
  }

  return {
    file,
    text,
    spec,
    name: spec.name,
    kind,
    valid,
    min,
    max,
    flexible,
    top,
    structs: [...structs.values()],
    aliases,
  };
}

// ---------------------------------------------------------------------------------------
// Per-type code fragments

function tsType(f: FieldModel): string {
  const nullable = f.nullable !== 0 ? ' | null' : '';
  const t = f.type;
  if (t.kind === 'struct') return t.struct.tsName + nullable;
  if (t.kind === 'array') return `${t.item.kind === 'struct' ? t.item.struct.tsName : primitiveTsType(t.item.primitive)}[]${nullable}`;
  if (t.primitive === 'records') return 'Buffer | null';
  return primitiveTsType(t.primitive) + nullable;
}

function primitiveTsType(p: Primitive): string {
  switch (p) {
    case 'int64':
      return 'bigint';
    case 'bool':
      return 'boolean';
    case 'string':
    case 'uuid':
      return 'string';
    case 'bytes':
    case 'records':
      return 'Buffer';
    default:
      return 'number';
  }
}

const INT_RANGES: Partial<Record<Primitive, [number, number]>> = {
  int8: [-0x80, 0x7f],
  int16: [-0x8000, 0x7fff],
  int32: [-0x80000000, 0x7fffffff],
  uint16: [0, 0xffff],
};

function quote(text: string): string {
  return `'${text.replace(/[\\']/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}'`;
}

/** Shared state of one generated file: which helpers it imports, which struct helpers it needs. */
class FileContext {
  readonly support = new Set<string>();
  /** Structs whose default${'$'}{name}() / isDefault${'$'}{name}() the emitted code calls. */
  readonly defaults = new Set<StructModel>();
  readonly isDefaults = new Set<StructModel>();
}

/** The TS expression of a field's default: JSON `default`, else Kafka's zero value. */
function defaultExpr(f: FieldModel, ctx: FileContext, where: string): string {
  const d = f.spec.default;
  const t = f.type;
  if (t.kind === 'struct') {
    if (d === 'null' && f.nullable !== 0) return 'null';
    if (d !== undefined) throw new Error(`${where}: a struct can only default to null, and only where nullable`);
    ctx.defaults.add(t.struct);
    return `default${t.struct.tsName}()`;
  }
  if (t.kind === 'array') {
    if (d === undefined) return '[]';
    if (d === 'null' && f.nullable !== 0) return 'null';
    throw new Error(`${where}: bad array default ${JSON.stringify(d)}`);
  }
  switch (t.primitive) {
    case 'bool':
      if (d === undefined || d === false || d === 'false') return 'false';
      if (d === true || d === 'true') return 'true';
      throw new Error(`${where}: bad boolean default ${JSON.stringify(d)}`);
    case 'int64': {
      if (d === undefined) return '0n';
      const text = String(d).trim();
      const negative = text.startsWith('-');
      let value: bigint;
      try {
        value = BigInt(negative ? text.slice(1) : text) * (negative ? -1n : 1n);
      } catch {
        throw new Error(`${where}: bad int64 default ${JSON.stringify(d)}`);
      }
      if (value < -(2n ** 63n) || value >= 2n ** 63n) throw new Error(`${where}: int64 default out of range`);
      return `${value}n`;
    }
    case 'float64': {
      const value = d === undefined ? 0 : Number(d);
      if (!Number.isFinite(value)) throw new Error(`${where}: bad float64 default ${JSON.stringify(d)}`);
      return String(value);
    }
    case 'string':
      if (d === undefined) return "''";
      if (d === 'null') {
        if (f.nullable === 0) throw new Error(`${where}: default null on a field that is never nullable`);
        return 'null';
      }
      return quote(String(d));
    case 'uuid':
      if (d !== undefined) throw new Error(`${where}: uuid defaults are not supported`);
      ctx.support.add('ZERO_UUID');
      return 'ZERO_UUID';
    case 'bytes':
      if (d === undefined) return 'Buffer.alloc(0)';
      if (d === 'null' && f.nullable !== 0) return 'null';
      throw new Error(`${where}: bad bytes default ${JSON.stringify(d)}`);
    case 'records':
      if (d !== undefined && d !== 'null') throw new Error(`${where}: bad records default ${JSON.stringify(d)}`);
      return 'null';
    default: {
      const value = d === undefined ? 0 : Number(String(d).trim());
      const [lo, hi] = INT_RANGES[t.primitive] as [number, number];
      if (!Number.isInteger(value) || value < lo || value > hi) {
        throw new Error(`${where}: default ${JSON.stringify(d)} does not fit ${t.primitive}`);
      }
      return String(value);
    }
  }
}

/** An expression that is true when `value` equals the field's default (what Kafka's generated equals() decides). */
function isDefaultExpr(f: FieldModel, value: string, ctx: FileContext, where: string): string {
  const t = f.type;
  if (t.kind === 'struct') {
    if (defaultExpr(f, ctx, where) === 'null') return `${value} === null`;
    ctx.isDefaults.add(t.struct);
    const isDefault = `isDefault${t.struct.tsName}(${value})`;
    return f.nullable !== 0 ? `(${value} !== null && ${isDefault})` : isDefault;
  }
  const def = defaultExpr(f, ctx, where);
  const emptyish = t.kind === 'array' || t.primitive === 'bytes';
  if (emptyish) {
    if (def === 'null') return `${value} === null`;
    return f.nullable !== 0 ? `(${value} !== null && ${value}.length === 0)` : `${value}.length === 0`;
  }
  return `${value} === ${def}`;
}

function nonDefaultExpr(f: FieldModel, value: string, ctx: FileContext, where: string): string {
  const expr = isDefaultExpr(f, value, ctx, where);
  if (expr.startsWith('isDefault')) return `!${expr}`;
  if (expr.startsWith('(')) return `!${expr}`;
  return expr.replace(' === ', ' !== ');
}

function stringish(kind: 'String' | 'Bytes', compact: boolean, nullable: boolean): string {
  return `${compact ? 'compact' : ''}${nullable ? 'Nullable' : ''}${kind}`.replace(/^./, (c) => c.toLowerCase());
}

function readPrimitive(p: Primitive, reader: string, compact: boolean, nullable: boolean, label: string, ctx: FileContext): string {
  const l = quote(label);
  switch (p) {
    case 'bool':
      return `${reader}.boolean(${l})`;
    case 'uint16':
      ctx.support.add('readUint16');
      return `readUint16(${reader}, ${l})`;
    case 'string':
      return `${reader}.${stringish('String', compact, nullable)}(${l})`;
    case 'bytes':
    case 'records':
      return `${reader}.${stringish('Bytes', compact, nullable)}(${l})`;
    default:
      return `${reader}.${p}(${l})`;
  }
}

function readExpr(f: FieldModel, v: number, reader: string, ctx: FileContext): string {
  const compact = (f.compact & (1 << v)) !== 0;
  const nullable = (f.nullable & (1 << v)) !== 0;
  const t = f.type;
  if (t.kind === 'struct') {
    const decode = `decode${t.struct.tsName}(${reader}, version)`;
    // A nullable struct is preceded by an INT8 marker, in the versions where it is nullable
    // only: -1 (any negative) null, 1 present (Kafka's MessageDataGenerator).
    return nullable ? `(${reader}.int8(${quote(f.label)}) < 0 ? null : ${decode})` : decode;
  }
  if (t.kind === 'primitive') return readPrimitive(t.primitive, reader, compact, nullable, f.label, ctx);
  const method = `${compact ? 'compact' : ''}${nullable ? 'Nullable' : ''}Array`.replace(/^./, (c) => c.toLowerCase());
  const item = t.item.kind === 'struct' ? `decode${t.item.struct.tsName}(r, version)` : readPrimitive(t.item.primitive, 'r', compact, false, f.label, ctx);
  return `${reader}.${method}((r) => ${item}, ${quote(f.label)})`;
}

function writePrimitive(p: Primitive, writer: string, value: string, compact: boolean, nullable: boolean, ctx: FileContext): string {
  switch (p) {
    case 'bool':
      return `${writer}.boolean(${value})`;
    case 'uint16':
      ctx.support.add('writeUint16');
      return `writeUint16(${writer}, ${value})`;
    case 'string':
      return `${writer}.${stringish('String', compact, nullable)}(${value})`;
    case 'bytes':
    case 'records':
      return `${writer}.${stringish('Bytes', compact, nullable)}(${value})`;
    default:
      return `${writer}.${p}(${value})`;
  }
}

function writeStatement(m: MessageModel, f: FieldModel, v: number, writer: string, value: string, ctx: FileContext): string {
  const compact = (f.compact & (1 << v)) !== 0;
  const nullable = (f.nullable & (1 << v)) !== 0;
  const t = f.type;
  let checked = value;
  // Null where this version cannot carry it: Kafka's generated code throws too.
  if (!nullable && (f.nullable !== 0 || (t.kind === 'primitive' && t.primitive === 'records'))) {
    ctx.support.add('nonNull');
    checked = `nonNull(${value}, ${quote(m.name)}, version, ${quote(f.label)})`;
  }
  if (t.kind === 'struct') {
    if (!nullable) return `encode${t.struct.tsName}(${writer}, version, ${checked});`;
    return `if (${value} === null) ${writer}.int8(-1); else encode${t.struct.tsName}(${writer}.int8(1), version, ${value});`;
  }
  if (t.kind === 'primitive') return `${writePrimitive(t.primitive, writer, checked, compact, nullable, ctx)};`;
  const method = `${compact ? 'compact' : ''}${nullable ? 'Nullable' : ''}Array`.replace(/^./, (c) => c.toLowerCase());
  const item = t.item.kind === 'struct' ? `encode${t.item.struct.tsName}(w, version, item)` : writePrimitive(t.item.primitive, 'w', 'item', compact, false, ctx);
  return `${writer}.${method}(${checked}, (w, item) => ${item});`;
}

/** Groups the versions of `domain` by the code each needs, newest first. */
function groupByCode(domain: number, codeFor: (v: number) => string): { mask: number; code: string }[] {
  const groups = new Map<string, number>();
  for (const v of versionList(domain).reverse()) {
    const code = codeFor(v);
    groups.set(code, (groups.get(code) ?? 0) | (1 << v));
  }
  return [...groups].map(([code, mask]) => ({ mask, code }));
}

function chainExpression(groups: { mask: number; code: string }[], domain: number): string {
  const [first, ...rest] = groups;
  if (rest.length === 0) return first.code;
  const cond = versionCondition(first.mask, domain);
  return `${cond} ? ${first.code} : ${chainExpression(rest, domain & ~first.mask)}`;
}

function chainStatements(groups: { mask: number; code: string }[], domain: number, indent: string): string[] {
  const lines: string[] = [];
  let remaining = domain;
  let open = false;
  for (const g of groups) {
    if (g.code === '') continue;
    const cond = versionCondition(g.mask, remaining);
    if (cond === 'true') {
      if (open) lines.push(`${indent}} else {`, `${indent}  ${g.code}`, `${indent}}`);
      else lines.push(`${indent}${g.code}`);
      return lines;
    }
    lines.push(`${indent}${open ? '} else ' : ''}if (${cond}) {`, `${indent}  ${g.code}`);
    open = true;
    remaining &= ~g.mask;
  }
  if (open) lines.push(`${indent}}`);
  return lines;
}

function localName(f: FieldModel): string {
  return RESERVED_LOCALS.has(f.name) ? `${f.name}_` : f.name;
}

function taggedFields(s: StructModel): FieldModel[] {
  return s.fields.filter((f) => (f.tagged & s.ctx) !== 0).sort((a, b) => (a.tag as number) - (b.tag as number));
}

/** The one compact/nullable shape of a tagged field; Kafka never changes it across tagged versions. */
function taggedVersion(f: FieldModel, s: StructModel, where: string): number {
  const versions = versionList(f.tagged & s.ctx);
  const key = (v: number): string => `${(f.nullable >> v) & 1}`;
  if (versions.some((v) => key(v) !== key(versions[0]))) throw new Error(`${where}: nullability changes across tagged versions`);
  return versions[0];
}

// ---------------------------------------------------------------------------------------
// Emitting one message

function emitInterface(m: MessageModel, s: StructModel): string[] {
  const lines = [
    `/** ${s.isTop ? `${m.name}, versions ${formatVersions(m.valid)}` : `${s.typeName} of ${m.name}`}. */`,
    `export interface ${s.tsName} {`,
  ];
  for (const f of s.fields) {
    const notes = [`versions ${formatFieldVersions(f.versions, m.max)}`];
    if (f.nullable !== 0) notes.push(`nullable ${formatFieldVersions(f.nullable, m.max)}`);
    if (f.tagged !== 0) notes.push(`tag ${f.tag} in ${formatFieldVersions(f.tagged, m.max)}`);
    if (f.spec.default !== undefined) notes.push(`default ${String(f.spec.default)}`);
    if (f.ignorable) notes.push('ignorable');
    const about = f.about.trim().replace(/\*\//g, '*\\/').replace(/\s+/g, ' ');
    lines.push(`  /** ${about === '' ? '' : `${about} `}(${notes.join('; ')}) */`, `  ${f.name}: ${tsType(f)};`);
  }
  lines.push('}');
  return lines;
}

function emitDecode(m: MessageModel, s: StructModel, ctx: FileContext): string[] {
  const lines: string[] = [];
  const domain = s.ctx;
  if (s.isTop) {
    ctx.support.add('unsupportedDecodeVersion');
    lines.push(
      `export function decode${m.name}(reader: Reader, version: number): ${m.name} {`,
      `  if (!(version >= ${m.min} && version <= ${m.max})) {`,
      `    throw unsupportedDecodeVersion(${quote(m.name)}, ${m.spec.apiKey}, version, ${m.min}, ${m.max}, reader.offset);`,
      '  }',
    );
  } else {
    lines.push(`function decode${s.tsName}(reader: Reader, version: number): ${s.tsName} {`);
  }
  const tagged = taggedFields(s);
  for (const f of s.fields) {
    const where = `${m.file} field ${f.label}`;
    const regular = f.versions & ~f.tagged;
    const groups = groupByCode(domain, (v) => ((regular >> v) & 1 ? readExpr(f, v, 'reader', ctx) : defaultExpr(f, ctx, where)));
    const decl = tagged.includes(f) ? 'let' : 'const';
    lines.push(`  ${decl} ${localName(f)}: ${tsType(f)} = ${chainExpression(groups, domain)};`);
  }
  const flexible = m.flexible & domain;
  if (flexible !== 0) {
    const cond = versionCondition(flexible, domain);
    const indent = cond === 'true' ? '  ' : '    ';
    if (cond !== 'true') lines.push(`  if (${cond}) {`);
    if (tagged.length === 0) {
      lines.push(`${indent}reader.skipTaggedFields(${quote(s.isTop ? m.name : s.tsName)});`);
    } else {
      ctx.support.add('checkTaggedFieldSize');
      lines.push(
        `${indent}const tagCount = reader.uvarint('tagged field count');`,
        `${indent}for (let i = 0; i < tagCount; i++) {`,
        `${indent}  const tag = reader.uvarint('tag');`,
        `${indent}  const size = reader.uvarint('tagged field size');`,
        `${indent}  const start = reader.offset;`,
        `${indent}  switch (tag) {`,
      );
      for (const f of tagged) {
        const v = taggedVersion(f, s, `${m.file} field ${f.label}`);
        const tagCond = versionCondition(f.tagged, flexible);
        const read = [
          `${localName(f)} = ${readExpr(f, v, 'reader', ctx)};`,
          `checkTaggedFieldSize(reader, start, size, ${quote(f.label)});`,
        ];
        lines.push(`${indent}    case ${f.tag}:`);
        if (tagCond === 'true') {
          lines.push(...read.map((l) => `${indent}      ${l}`));
        } else {
          lines.push(
            `${indent}      if (${tagCond}) {`,
            ...read.map((l) => `${indent}        ${l}`),
            `${indent}      } else {`,
            `${indent}        reader.skip(size, 'tagged field');`,
            `${indent}      }`,
          );
        }
        lines.push(`${indent}      break;`);
      }
      lines.push(
        `${indent}    default:`,
        `${indent}      reader.skip(size, 'unknown tagged field');`,
        `${indent}  }`,
        `${indent}}`,
      );
    }
    if (cond !== 'true') lines.push('  }');
  }
  const props = s.fields.map((f) => (localName(f) === f.name ? f.name : `${f.name}: ${localName(f)}`));
  lines.push(props.length === 0 ? '  return {};' : `  return { ${props.join(', ')} };`, '}');
  return lines;
}

function emitEncode(m: MessageModel, s: StructModel, ctx: FileContext): string[] {
  const lines: string[] = [];
  const domain = s.ctx;
  if (s.isTop) {
    ctx.support.add('unsupportedEncodeVersion');
    lines.push(
      `export function encode${m.name}(writer: Writer, version: number, msg: ${m.name}): void {`,
      `  if (!(version >= ${m.min} && version <= ${m.max})) throw unsupportedEncodeVersion(${quote(m.name)}, version, ${m.min}, ${m.max});`,
    );
  } else {
    lines.push(`function encode${s.tsName}(writer: Writer, version: number, msg: ${s.tsName}): void {`);
  }
  for (const f of s.fields) {
    const where = `${m.file} field ${f.label}`;
    const regular = f.versions & ~f.tagged;
    const value = `msg.${f.name}`;
    const groups = groupByCode(domain, (v) => {
      if ((regular >> v) & 1) return writeStatement(m, f, v, 'writer', value, ctx);
      if ((f.tagged >> v) & 1 || f.ignorable) return '';
      // Kafka refuses to drop a non-default value of a field the version cannot carry,
      // unless the schema marks it ignorable (MessageDataGenerator, "non-ignorable").
      ctx.support.add('unsupportedField');
      return `if (${nonDefaultExpr(f, value, ctx, where)}) throw unsupportedField(${quote(m.name)}, version, ${quote(f.label)}, ${quote(formatFieldVersions(f.versions, m.max))});`;
    });
    lines.push(...chainStatements(groups, domain, '  '));
  }
  const flexible = m.flexible & domain;
  if (flexible !== 0) {
    const cond = versionCondition(flexible, domain);
    const indent = cond === 'true' ? '  ' : '    ';
    if (cond !== 'true') lines.push(`  if (${cond}) {`);
    const tagged = taggedFields(s);
    if (tagged.length === 0) {
      lines.push(`${indent}writer.uvarint(0);`);
    } else {
      ctx.support.add('writeTaggedField');
      lines.push(`${indent}let tagCount = 0;`);
      for (const f of tagged) {
        const tagCond = versionCondition(f.tagged, flexible);
        const nonDefault = nonDefaultExpr(f, `msg.${f.name}`, ctx, `${m.file} field ${f.label}`);
        lines.push(`${indent}const writeTag${f.tag} = ${tagCond === 'true' ? '' : `${tagCond} && `}${nonDefault};`);
        lines.push(`${indent}if (writeTag${f.tag}) tagCount++;`);
      }
      lines.push(`${indent}writer.uvarint(tagCount);`);
      for (const f of tagged) {
        const v = taggedVersion(f, s, `${m.file} field ${f.label}`);
        const stmt = writeStatement(m, f, v, 'w', `msg.${f.name}`, ctx).replace(/;$/, '');
        lines.push(`${indent}if (writeTag${f.tag}) writeTaggedField(writer, ${f.tag}, (w) => ${stmt});`);
      }
    }
    if (cond !== 'true') lines.push('  }');
  }
  lines.push('}');
  return lines;
}

/** default<Struct>() and isDefault<Struct>() for the structs the file's code calls them for. */
function emitStructHelpers(ctx: FileContext): string[] {
  const lines: string[] = [];
  const doneDefaults = new Set<StructModel>();
  const doneIsDefaults = new Set<StructModel>();
  // Each helper may ask for the helpers of nested structs, so run until nothing new appears.
  for (;;) {
    const s = [...ctx.defaults].find((d) => !doneDefaults.has(d));
    const t = [...ctx.isDefaults].find((d) => !doneIsDefaults.has(d));
    if (s !== undefined) {
      doneDefaults.add(s);
      const props = s.fields.map((f) => `${f.name}: ${defaultExpr(f, ctx, `${s.file} field ${f.label}`)}`);
      lines.push('', `function default${s.tsName}(): ${s.tsName} {`, `  return { ${props.join(', ')} };`, '}');
    } else if (t !== undefined) {
      doneIsDefaults.add(t);
      const checks = t.fields.map((f) => isDefaultExpr(f, `value.${f.name}`, ctx, `${t.file} field ${f.label}`));
      lines.push(
        '',
        `function isDefault${t.tsName}(value: ${t.tsName}): boolean {`,
        `  return ${checks.length === 0 ? 'true' : checks.join(' && ')};`,
        '}',
      );
    } else {
      return lines;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Kafka's protocol grammar, as in https://kafka.apache.org/protocol#protocol_messages

function grammarType(f: FieldModel, p: Primitive, v: number, tagged: boolean): string {
  const compact = tagged || (f.compact & (1 << v)) !== 0;
  const nullable = (f.nullable & (1 << v)) !== 0;
  const prefix = compact ? 'COMPACT_' : '';
  switch (p) {
    case 'string':
      return `${prefix}${nullable ? 'NULLABLE_' : ''}STRING`;
    case 'bytes':
      return `${prefix}${nullable ? 'NULLABLE_' : ''}BYTES`;
    case 'records':
      return `${prefix}RECORDS`;
    case 'bool':
      return 'BOOLEAN';
    default:
      return p.toUpperCase();
  }
}

function grammarSequence(m: MessageModel, s: StructModel, v: number): string {
  const parts = s.fields
    .filter((f) => (f.versions >> v) & 1 && !((f.tagged >> v) & 1))
    .map((f) => (f.type.kind === 'array' ? `[${f.snake}]` : f.snake));
  if ((m.flexible >> v) & 1) parts.push('TAG_BUFFER');
  return parts.join(' ');
}

function grammarFields(m: MessageModel, s: StructModel, v: number, indent: string): string[] {
  const lines: string[] = [];
  const present = s.fields.filter((f) => (f.versions >> v) & 1);
  const ordered = [...present.filter((f) => !((f.tagged >> v) & 1)), ...present.filter((f) => (f.tagged >> v) & 1)];
  for (const f of ordered) {
    const tagged = ((f.tagged >> v) & 1) !== 0;
    const suffix = tagged ? ` (tagged field ${f.tag})` : '';
    const t = f.type.kind === 'array' ? f.type.item : f.type;
    if (t.kind === 'struct') {
      const seq = grammarSequence(m, t.struct, v);
      lines.push(`${indent}${f.snake} =>${seq === '' ? '' : ` ${seq}`}${suffix}`);
      lines.push(...grammarFields(m, t.struct, v, `${indent}  `));
    } else {
      lines.push(`${indent}${f.snake} => ${grammarType(f, t.primitive, v, tagged)}${suffix}`);
    }
  }
  return lines;
}

export function renderGrammar(api: string, m: MessageModel): string[] {
  const byBody = new Map<string, number>();
  for (const v of versionList(m.valid)) {
    const seq = grammarSequence(m, m.top, v);
    const body = [`=>${seq === '' ? '' : ` ${seq}`}`, ...grammarFields(m, m.top, v, '  ')].join('\n');
    byBody.set(body, (byBody.get(body) ?? 0) | (1 << v));
  }
  const lines: string[] = [];
  for (const [body, mask] of byBody) {
    const [first, ...rest] = body.split('\n');
    lines.push(`${api} ${m.kind} (Version: ${formatVersions(mask)}) ${first}`, ...rest);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------
// Files

export interface GeneratorInfo {
  /** The spec commit, for the header. */
  readonly commit: string;
}

const GENERATED_MARK = '// GENERATED by src/protocol/kafka/gen/gen-messages.ts';
const REGENERATE = 'node --import tsx src/protocol/kafka/gen/gen-messages.ts src/protocol/kafka/spec src/protocol/kafka/messages';

function sha256(...texts: string[]): string {
  const hash = createHash('sha256');
  for (const t of texts) hash.update(t);
  return hash.digest('hex');
}

export function buildApi(request: MessageModel, response: MessageModel): ApiModel {
  const name = request.name.slice(0, -'Request'.length);
  if (response.name !== `${name}Response`) throw new Error(`${request.file} and ${response.file} do not pair`);
  for (const key of ['apiKey', 'validVersions', 'flexibleVersions'] as const) {
    if (request.spec[key] !== response.spec[key]) throw new Error(`${name}: request and response disagree on ${key}`);
  }
  return { name, kebab: kebabCase(name), apiKey: request.spec.apiKey, request, response };
}

export function flexibleFrom(m: MessageModel): number | null {
  return m.flexible === 0 ? null : versionList(m.flexible)[0];
}

export function renderApi(api: ApiModel, info: GeneratorInfo): string {
  const ctx = new FileContext();
  const { request, response } = api;
  const code: string[] = [];
  for (const m of [request, response]) {
    for (const s of [m.top, ...m.structs]) code.push('', ...emitInterface(m, s));
    for (const [alias, target] of m.aliases) {
      code.push('', `/** The literal \`${m.name}\` + \`${target.slice(m.name.length)}\` spelling of ${target}. */`, `export type ${alias} = ${target};`);
    }
  }
  for (const m of [request, response]) {
    for (const s of [m.top, ...m.structs]) code.push('', ...emitDecode(m, s, ctx), '', ...emitEncode(m, s, ctx));
  }
  code.push(...emitStructHelpers(ctx));

  const flex = flexibleFrom(request);
  const unstable = request.spec.latestVersionUnstable === true || response.spec.latestVersionUnstable === true;
  const summary = [
    `${api.name} (API key ${api.apiKey}): versions ${formatVersions(request.valid)}`,
    flex === null ? 'never flexible' : `flexible from ${flex}`,
  ];
  if (request.spec.deprecatedVersions !== undefined) summary.push(`deprecated ${request.spec.deprecatedVersions}`);
  if (unstable) summary.push(`v${request.max} unstable (latestVersionUnstable)`);

  const header = [
    `${GENERATED_MARK} from Kafka's`,
    `// ${request.file} and ${response.file} (apache/kafka ${info.commit},`,
    `// clients/src/main/resources/common/message/; input sha256 ${sha256(request.text, response.text)}).`,
    '// Do not edit by hand; regenerate with',
    `//   ${REGENERATE}`,
    '',
    '/*',
    ` * ${summary.join(', ')}.`,
    ' *',
    ...[...renderGrammar(api.name, request), '', ...renderGrammar(api.name, response)].map((l) => (l === '' ? ' *' : ` * ${l}`)),
    ' */',
  ];
  const support = [...ctx.support].sort();
  const imports = [
    "import type { Reader } from '../reader.js';",
    "import type { Writer } from '../writer.js';",
    ...(support.length === 0 ? [] : [`import { ${support.join(', ')} } from './codec-support.js';`]),
  ];
  return [...header, ...imports, ...code, ''].join('\n');
}

export function renderIndex(apis: readonly ApiModel[], info: GeneratorInfo): string {
  const sorted = [...apis].sort((a, b) => a.apiKey - b.apiKey);
  const lines = [
    `${GENERATED_MARK} from Kafka's message schemas`,
    `// (apache/kafka ${info.commit}). Do not edit by hand; regenerate with`,
    `//   ${REGENERATE}`,
    '',
    "import type { Reader } from '../reader.js';",
    "import type { Writer } from '../writer.js';",
  ];
  for (const api of sorted) {
    const n = api.name;
    lines.push(
      `import { decode${n}Request, decode${n}Response, encode${n}Request, encode${n}Response, type ${n}Request, type ${n}Response } from './${api.kebab}.js';`,
    );
  }
  lines.push('');
  for (const api of sorted) lines.push(`export * from './${api.kebab}.js';`);
  lines.push(
    "export { UnsupportedVersionError, ZERO_UUID } from './codec-support.js';",
    '',
    '/**',
    ' * The codecs of one API. The broker decodes requests and encodes responses; the other',
    ' * two directions exist for tests and tools. Methods rather than function properties, so',
    ' * that every MessageCodec<Req, Res> is also a MessageCodec (the map below).',
    ' */',
    'export interface MessageCodec<Req = unknown, Res = unknown> {',
    '  readonly name: string;',
    '  readonly apiKey: number;',
    '  readonly minVersion: number;',
    '  readonly maxVersion: number;',
    '  /** The first version with compact encodings and tag buffers, or null if none is flexible. */',
    '  readonly flexibleFrom: number | null;',
    "  /** Kafka's latestVersionUnstable: maxVersion is still being designed; do not advertise it. */",
    '  readonly latestVersionUnstable: boolean;',
    '  decodeRequest(reader: Reader, version: number): Req;',
    '  encodeRequest(writer: Writer, version: number, msg: Req): void;',
    '  decodeResponse(reader: Reader, version: number): Res;',
    '  encodeResponse(writer: Writer, version: number, msg: Res): void;',
    '}',
  );
  for (const api of sorted) {
    const n = api.name;
    const unstable = api.request.spec.latestVersionUnstable === true || api.response.spec.latestVersionUnstable === true;
    lines.push(
      '',
      `export const ${lowerCamel(n)}Codec: MessageCodec<${n}Request, ${n}Response> = {`,
      `  name: ${quote(n)},`,
      `  apiKey: ${api.apiKey},`,
      `  minVersion: ${api.request.min},`,
      `  maxVersion: ${api.request.max},`,
      `  flexibleFrom: ${flexibleFrom(api.request)},`,
      `  latestVersionUnstable: ${unstable},`,
      `  decodeRequest: decode${n}Request,`,
      `  encodeRequest: encode${n}Request,`,
      `  decodeResponse: decode${n}Response,`,
      `  encodeResponse: encode${n}Response,`,
      '};',
    );
  }
  lines.push(
    '',
    '/** Every generated codec by API name, typed. */',
    'export const messageCodecsByName = {',
    ...sorted.map((api) => `  ${api.name}: ${lowerCamel(api.name)}Codec,`),
    '} as const;',
    '',
    'export type MessageApiName = keyof typeof messageCodecsByName;',
    '',
    '/** Every generated codec by API key. */',
    'export const messageCodecs: ReadonlyMap<number, MessageCodec> = new Map<number, MessageCodec>(',
    '  Object.values(messageCodecsByName).map((codec): [number, MessageCodec] => [codec.apiKey, codec]),',
    ');',
    '',
  );
  return lines.join('\n');
}

/** Reads every *Request.json / *Response.json pair of `specDir`. */
export function loadApis(specDir: string): ApiModel[] {
  const files = readdirSync(specDir).filter((f) => /(Request|Response)\.json$/.test(f)).sort();
  const messages = new Map<string, MessageModel>();
  for (const file of files) messages.set(file, buildMessage(file, readFileSync(join(specDir, file), 'utf8')));
  const apis: ApiModel[] = [];
  const keys = new Set<number>();
  for (const [file, request] of messages) {
    if (!file.endsWith('Request.json')) continue;
    const responseFile = file.replace(/Request\.json$/, 'Response.json');
    const response = messages.get(responseFile);
    if (response === undefined) throw new Error(`${file} has no ${responseFile}`);
    if (request.kind !== 'Request' || response.kind !== 'Response') throw new Error(`${file}: type does not match the file name`);
    const api = buildApi(request, response);
    if (keys.has(api.apiKey)) throw new Error(`API key ${api.apiKey} appears twice`);
    keys.add(api.apiKey);
    apis.push(api);
  }
  for (const file of messages.keys()) {
    if (file.endsWith('Response.json') && !messages.has(file.replace(/Response\.json$/, 'Request.json'))) {
      throw new Error(`${file} has no request`);
    }
  }
  return apis;
}

export function specCommit(specDir: string): string {
  try {
    const readme = readFileSync(join(specDir, 'README.md'), 'utf8');
    const m = /commit ([0-9a-f]{40})/.exec(readme);
    if (m !== null) return `commit ${m[1]}`;
  } catch {
    // no README: say so in the header rather than guess
  }
  return 'commit unknown';
}

/** Renders every file: name → contents. */
export function renderAll(specDir: string): Map<string, string> {
  const apis = loadApis(specDir);
  const info: GeneratorInfo = { commit: specCommit(specDir) };
  const out = new Map<string, string>();
  for (const api of apis) out.set(`${api.kebab}.ts`, renderApi(api, info));
  out.set('index.ts', renderIndex(apis, info));
  return out;
}

function main(argv: readonly string[]): void {
  const [specDir, outDir] = argv;
  if (specDir === undefined || outDir === undefined) throw new Error('usage: gen-messages.ts <specDir> <outDir>');
  const files = renderAll(specDir);
  mkdirSync(outDir, { recursive: true });
  // Drop generated files whose API has left the spec; hand-written files are never touched.
  for (const existing of readdirSync(outDir)) {
    if (!existing.endsWith('.ts') || files.has(existing)) continue;
    if (readFileSync(join(outDir, existing), 'utf8').startsWith(GENERATED_MARK)) unlinkSync(join(outDir, existing));
  }
  for (const [name, text] of files) writeFileSync(join(outDir, name), text);
  process.stdout.write(`wrote ${files.size} files to ${outDir}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2));
}
