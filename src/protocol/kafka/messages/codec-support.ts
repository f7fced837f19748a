/**
 * The run-time support of the generated message codecs (every other file in this folder is
 * written by gen/gen-messages.ts). Hand-written, kept small: the generated code does the
 * field work inline, and only calls here for errors, the rare tagged field and the one
 * primitive the Reader and Writer lack (UINT16).
 */
import { KafkaDecodeError } from '../codec-errors.js';
import type { Reader } from '../reader.js';
import { Writer } from '../writer.js';

/** The value of a uuid field that is absent or unset (Kafka's Uuid.ZERO_UUID). */
export const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

/**
 * A request or response version outside the schema's validVersions. A KafkaDecodeError, so a
 * connection handler that does not look further treats it like any malformed request; one
 * that does can answer UNSUPPORTED_VERSION (35) instead. Checking the version against the
 * codec's minVersion/maxVersion before decoding avoids both.
 */
export class UnsupportedVersionError extends KafkaDecodeError {
  readonly apiKey: number;
  readonly version: number;

  constructor(message: string, apiKey: number, version: number, offset: number) {
    super(message, offset);
    this.name = 'UnsupportedVersionError';
    this.apiKey = apiKey;
    this.version = version;
  }
}

export function unsupportedDecodeVersion(
  message: string,
  apiKey: number,
  version: number,
  min: number,
  max: number,
  offset: number,
): UnsupportedVersionError {
  return new UnsupportedVersionError(
    `${message} version ${version} is not supported (valid versions ${min}-${max})`,
    apiKey,
    version,
    offset,
  );
}

/** Encoding happens on the broker's own values, so a bad version there is a bug: RangeError, as in Writer. */
export function unsupportedEncodeVersion(message: string, version: number, min: number, max: number): RangeError {
  return new RangeError(`Cannot encode ${message} version ${version}: valid versions are ${min}-${max}`);
}

/**
 * A field the version cannot carry was given a non-default value, and the schema does not
 * mark it ignorable: dropping it would change the meaning of the message, so Kafka's
 * generated code refuses (UnsupportedVersionException), and so does this.
 */
export function unsupportedField(message: string, version: number, field: string, versions: string): RangeError {
  return new RangeError(
    `Cannot encode ${message} version ${version}: ${field} has a non-default value but only exists in versions ${versions}`,
  );
}

/** The value of a field that is nullable in other versions but not in this one. */
export function nonNull<T>(value: T | null, message: string, version: number, field: string): T {
  if (value === null) {
    throw new RangeError(`Cannot encode ${message} version ${version}: ${field} is null but is not nullable in this version`);
  }
  return value;
}

/** A known tagged field must use exactly the size its header declared. */
export function checkTaggedFieldSize(reader: Reader, start: number, size: number, field: string): void {
  const used = reader.offset - start;
  if (used !== size) {
    throw new KafkaDecodeError(
      `Tagged field ${field} at offset ${start} declares ${size} bytes but its value takes ${used}`,
      start,
    );
  }
}

/**
 * One tagged field: tag, size, value. The size comes first, so the value is built aside;
 * tagged fields are rare and small (leader hints, feature lists), never records.
 */
export function writeTaggedField(writer: Writer, tag: number, writeValue: (w: Writer) => void): void {
  const value = new Writer(32);
  writeValue(value);
  writer.uvarint(tag).uvarint(value.length).rawBytes(value.toBuffer());
}

export function readUint16(reader: Reader, field: string): number {
  return reader.rawBytes(2, field).readUInt16BE(0);
}

export function writeUint16(writer: Writer, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new RangeError(`UINT16 out of range: ${value}`);
  writer.int16(value > 0x7fff ? value - 0x10000 : value);
}
