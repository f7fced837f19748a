/**
 * Messages built from the schemas (kafka-schema.ts), for the codec tests: random ones
 * (fast-check arbitraries) and one deterministic sample per version. Either way a field the
 * version lacks holds its default, because that is what decoding that version yields;
 * tagged fields get random values, their default included (then they are not written).
 */
import fc from 'fast-check';
import {
  defaultOf,
  nullableIn,
  present,
  taggedIn,
  ZERO_UUID,
  type Field,
  type FieldType,
  type MessageSchema,
} from './kafka-schema.js';
import type { RawTag } from './reference-encoder.js';

type Value = Record<string, unknown>;

function formatUuid(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function primitiveArb(name: string): fc.Arbitrary<unknown> {
  switch (name) {
    case 'int8':
      return fc.integer({ min: -0x80, max: 0x7f });
    case 'int16':
      return fc.integer({ min: -0x8000, max: 0x7fff });
    case 'uint16':
      return fc.integer({ min: 0, max: 0xffff });
    case 'int32':
      return fc.oneof(fc.integer({ min: -2, max: 2 }), fc.integer({ min: -0x80000000, max: 0x7fffffff }));
    case 'int64':
      return fc.oneof(fc.bigInt({ min: -2n, max: 2n }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
    case 'float64':
      return fc.double();
    case 'bool':
      return fc.boolean();
    case 'uuid':
      return fc.oneof(fc.constant(ZERO_UUID), fc.uint8Array({ minLength: 16, maxLength: 16 }).map(formatUuid));
    case 'string':
      // Graphemes: multi-byte UTF-8, so a length counted in characters instead of bytes fails.
      return fc.string({ unit: 'grapheme', maxLength: 6 });
    case 'bytes':
    case 'records':
      return fc.uint8Array({ maxLength: 12 }).map((a) => Buffer.from(a));
    default:
      throw new Error(`no arbitrary for ${name}`);
  }
}

function typeArb(message: MessageSchema, t: FieldType, version: number): fc.Arbitrary<unknown> {
  if (t.kind === 'primitive') return primitiveArb(t.name);
  if (t.kind === 'array') return fc.array(typeArb(message, t.item, version), { maxLength: 3 });
  return structArb(message, t.fields, version);
}

function fieldArb(message: MessageSchema, f: Field, version: number): fc.Arbitrary<unknown> {
  if (!present(f, version)) return fc.constant(defaultOf(f));
  let arb = typeArb(message, f.type, version);
  if (nullableIn(f, version)) arb = fc.option(arb, { nil: null, freq: 4 });
  if (taggedIn(f, version)) arb = fc.oneof(fc.constant(defaultOf(f)), arb);
  return arb;
}

export function structArb(message: MessageSchema, fields: readonly Field[], version: number): fc.Arbitrary<Value> {
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of fields) shape[f.prop] = fieldArb(message, f, version);
  return fc.record(shape, { noNullPrototype: true });
}

export function messageArb(message: MessageSchema, version: number): fc.Arbitrary<Value> {
  return structArb(message, message.fields, version);
}

/**
 * Unknown tagged fields for the first tag buffers of a message: tags up to 300 and values
 * up to 150 bytes, so tags and sizes of two varint bytes occur.
 */
export const unknownTagsArb: fc.Arbitrary<RawTag[][]> = fc.array(
  fc.array(
    fc.record({
      tag: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 300 })),
      data: fc.oneof(fc.uint8Array({ maxLength: 4 }), fc.uint8Array({ minLength: 120, maxLength: 150 })),
    }),
    { minLength: 1, maxLength: 2 },
  ),
  { minLength: 1, maxLength: 6 },
);

/**
 * One deterministic message per version: every field present in the version gets a value
 * derived from a running counter (non-default, multi-byte where it matters: uint16 above
 * 0x7fff, int32 and int64 beyond one byte, strings with a two-byte character), every fourth
 * nullable field is null, arrays hold one struct or two primitives.
 */
export function sampleMessage(message: MessageSchema, version: number): Value {
  let counter = 0;
  const primitive = (name: string, prop: string): unknown => {
    const c = ++counter;
    switch (name) {
      case 'int8':
        return (c % 100) - 50;
      case 'int16':
        return 300 + c;
      case 'uint16':
        return 0x8000 + c;
      case 'int32':
        return c % 2 === 0 ? 70_000 + c : -(70_000 + c);
      case 'int64':
        return (c % 2 === 0 ? 1n : -1n) * (1_000_000_007n * BigInt(c));
      case 'float64':
        return c + 0.25;
      case 'bool':
        return c % 2 === 1;
      case 'uuid':
        return formatUuid(Uint8Array.from({ length: 16 }, (_, i) => (c * 16 + i) & 0xff));
      case 'string':
        return c % 3 === 0 ? `${prop}-é${c}` : `${prop}-${c}`;
      case 'bytes':
      case 'records':
        return Buffer.from([c & 0xff, (c + 1) & 0xff, (c + 2) & 0xff]);
      default:
        throw new Error(`no sample for ${name}`);
    }
  };
  const typed = (t: FieldType, prop: string): unknown => {
    if (t.kind === 'primitive') return primitive(t.name, prop);
    if (t.kind === 'struct') return struct(t.fields);
    return t.item.kind === 'struct' ? [typed(t.item, prop)] : [typed(t.item, prop), typed(t.item, prop)];
  };
  const struct = (fields: readonly Field[]): Value => {
    const value: Value = {};
    for (const f of fields) {
      if (!present(f, version)) {
        value[f.prop] = defaultOf(f);
      } else if (nullableIn(f, version) && ++counter % 4 === 0) {
        value[f.prop] = null;
      } else {
        value[f.prop] = typed(f.type, f.prop);
      }
    }
    return value;
  };
  return struct(message.fields);
}
