/**
 * A reference encoder for tests: walks a message schema at run time and writes the bytes
 * Kafka's protocol rules prescribe, with its own byte writing (no Writer, nothing generated),
 * so it can judge the generated encoders. The rules
 * (https://kafka.apache.org/protocol#protocol_types, KIP-482):
 *
 * - Fixed-width integers are big-endian; BOOLEAN is one byte 0/1; FLOAT64 is IEEE 754
 *   big-endian; UUID is 16 bytes; UINT16 is unsigned.
 * - Classic STRING: INT16 length then UTF-8, -1 for null. Classic BYTES/RECORDS: INT32
 *   length, -1 for null. Classic ARRAY: INT32 count, -1 for null.
 * - In flexible versions (compact forms): the length or count + 1 as an unsigned varint, 0
 *   for null.
 * - Every struct of a flexible version ends with a tag buffer: an unsigned varint count,
 *   then per field, in ascending tag order, unsigned varint tag, unsigned varint size and
 *   the value in its compact form. A tagged field is written only when it differs from its
 *   default.
 * - A struct nullable in a version is preceded by an INT8: -1 for null, 1 when present.
 */
import { isDeepStrictEqual } from 'node:util';
import {
  compactIn,
  defaultOf,
  isFlexible,
  knownTags,
  nullableIn,
  present,
  taggedIn,
  type Field,
  type FieldType,
  type MessageSchema,
} from './kafka-schema.js';

export interface RawTag {
  readonly tag: number;
  readonly data: Uint8Array;
}

export interface ReferenceOptions {
  /**
   * Unknown tagged fields to add to the n-th tag buffer written (n counts from 0 in writing
   * order); tags any field of that struct uses are left out, so only truly unknown ones go in.
   */
  readonly unknownTags?: readonly (readonly RawTag[])[];
}

class Bytes {
  readonly parts: Buffer[] = [];

  fixed(size: number, write: (b: Buffer) => void): void {
    const b = Buffer.alloc(size);
    write(b);
    this.parts.push(b);
  }

  raw(data: Uint8Array): void {
    this.parts.push(Buffer.from(data));
  }

  uvarint(value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`uvarint ${value}`);
    const out: number[] = [];
    let v = value;
    while (v >= 0x80) {
      out.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    out.push(v);
    this.parts.push(Buffer.from(out));
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.parts);
  }
}

class Encoder {
  readonly #message: MessageSchema;
  readonly #version: number;
  readonly #unknown: readonly (readonly RawTag[])[];
  #tagBuffers = 0;

  constructor(message: MessageSchema, version: number, options: ReferenceOptions) {
    this.#message = message;
    this.#version = version;
    this.#unknown = options.unknownTags ?? [];
  }

  struct(out: Bytes, fields: readonly Field[], value: Record<string, unknown>, where: string): void {
    const v = this.#version;
    for (const f of fields) {
      if (!present(f, v) || taggedIn(f, v)) continue;
      this.#value(out, f, f.type, value[f.prop], compactIn(this.#message, f, v), nullableIn(f, v), `${where}.${f.prop}`);
    }
    if (!isFlexible(this.#message, v)) return;
    const tags: { tag: number; data: Uint8Array }[] = [];
    for (const f of fields) {
      if (!taggedIn(f, v) || isDeepStrictEqual(value[f.prop], defaultOf(f))) continue;
      const inner = new Bytes();
      this.#value(inner, f, f.type, value[f.prop], true, nullableIn(f, v), `${where}.${f.prop}`);
      tags.push({ tag: f.tag as number, data: inner.toBuffer() });
    }
    const known = knownTags(fields);
    for (const extra of this.#unknown[this.#tagBuffers++] ?? []) {
      if (known.has(extra.tag) || tags.some((t) => t.tag === extra.tag)) continue;
      tags.push(extra);
    }
    tags.sort((a, b) => a.tag - b.tag);
    out.uvarint(tags.length);
    for (const t of tags) {
      out.uvarint(t.tag);
      out.uvarint(t.data.length);
      out.raw(t.data);
    }
  }

  #value(out: Bytes, f: Field, t: FieldType, value: unknown, compact: boolean, nullable: boolean, where: string): void {
    if (value === null) {
      if (!nullable) throw new RangeError(`${where} is null but not nullable in version ${this.#version}`);
      if (t.kind === 'struct') out.fixed(1, (b) => b.writeInt8(-1));
      else if (compact) out.uvarint(0);
      else if (t.kind === 'primitive' && t.name === 'string') out.fixed(2, (b) => b.writeInt16BE(-1));
      else out.fixed(4, (b) => b.writeInt32BE(-1));
      return;
    }
    if (t.kind === 'struct') {
      if (nullable) out.fixed(1, (b) => b.writeInt8(1));
      this.struct(out, t.fields, value as Record<string, unknown>, where);
      return;
    }
    if (t.kind === 'array') {
      const items = value as unknown[];
      this.#length(out, items.length, compact, 4);
      items.forEach((item, i) => this.#value(out, f, t.item, item, compact, false, `${where}[${i}]`));
      return;
    }
    switch (t.name) {
      case 'int8':
        return out.fixed(1, (b) => b.writeInt8(value as number));
      case 'int16':
        return out.fixed(2, (b) => b.writeInt16BE(value as number));
      case 'uint16':
        return out.fixed(2, (b) => b.writeUInt16BE(value as number));
      case 'int32':
        return out.fixed(4, (b) => b.writeInt32BE(value as number));
      case 'int64':
        return out.fixed(8, (b) => b.writeBigInt64BE(value as bigint));
      case 'float64':
        return out.fixed(8, (b) => b.writeDoubleBE(value as number));
      case 'bool':
        return out.fixed(1, (b) => b.writeUInt8(value === true ? 1 : 0));
      case 'uuid': {
        const hex = (value as string).replaceAll('-', '');
        if (!/^[0-9a-f]{32}$/.test(hex)) throw new RangeError(`${where}: not a uuid: ${String(value)}`);
        return out.raw(Buffer.from(hex, 'hex'));
      }
      case 'string': {
        const data = Buffer.from(value as string, 'utf8');
        this.#length(out, data.length, compact, 2);
        return out.raw(data);
      }
      case 'bytes':
      case 'records': {
        const data = value as Buffer;
        this.#length(out, data.length, compact, 4);
        return out.raw(data);
      }
      default:
        throw new Error(`${where}: unknown type ${t.name}`);
    }
  }

  #length(out: Bytes, length: number, compact: boolean, classicSize: 2 | 4): void {
    if (compact) out.uvarint(length + 1);
    else if (classicSize === 2) out.fixed(2, (b) => b.writeInt16BE(length));
    else out.fixed(4, (b) => b.writeInt32BE(length));
  }
}

/** The bytes of `value` as `message` at `version`, by the protocol rules above. */
export function referenceEncode(
  message: MessageSchema,
  version: number,
  value: Record<string, unknown>,
  options: ReferenceOptions = {},
): Buffer {
  if (version < message.lo || version > message.hi) throw new RangeError(`${message.name} has no version ${version}`);
  const out = new Bytes();
  new Encoder(message, version, options).struct(out, message.fields, value, message.name);
  return out.toBuffer();
}
