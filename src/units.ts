/**
 * Sizes and durations as people write them ("128MiB", "7d") and as Meridian counts them
 * (bytes, milliseconds). Shared by the config schema and every module that reads a size
 * from its own input (replication policies), so both accept exactly the same spellings.
 */

export type UnitKind = 'size' | 'duration';

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

// No bare "m": minutes or months is exactly the ambiguity a config file must not have.
const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

export const SIZE_UNIT_NAMES = ['B', 'KB', 'MB', 'GB', 'TB', 'KiB', 'MiB', 'GiB', 'TiB'] as const;
export const DURATION_UNIT_NAMES = ['ms', 's', 'min', 'h', 'd'] as const;

const QUANTITY = /^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/;

/**
 * "4KiB" -> 4096, "10MB" -> 10000000, "512" -> 512, 512 -> 512. Units are case-insensitive.
 * Returns undefined when the text is not a size or is not a whole number of bytes.
 */
export function parseSize(input: number | string): number | undefined {
  return parseQuantity(input, SIZE_UNITS, 'b');
}

/** "250ms", "30s", "5min", "2h", "7d" or a number of milliseconds. */
export function parseDuration(input: number | string): number | undefined {
  return parseQuantity(input, DURATION_UNITS, 'ms');
}

export function parseUnit(kind: UnitKind, input: number | string): number | undefined {
  return kind === 'size' ? parseSize(input) : parseDuration(input);
}

function parseQuantity(input: number | string, units: Readonly<Record<string, number>>, bare: string): number | undefined {
  if (typeof input === 'number') return Number.isSafeInteger(input) ? input : undefined;
  const match = QUANTITY.exec(input);
  if (match === null) return undefined;
  const factor = units[(match[2] || bare).toLowerCase()];
  if (factor === undefined) return undefined;
  // Scale decimals exactly ("1.5GiB") without floating-point drift, then insist on a whole result.
  const [whole = '', frac = ''] = match[1]!.split('.');
  const scale = 10 ** frac.length;
  const value = (Number(whole + frac) * factor) / scale;
  return Number.isSafeInteger(value) ? value : undefined;
}

/** 134217728 -> "128MiB", 1000 -> "1000B"; the largest binary unit that divides exactly. */
export function formatSize(bytes: number): string {
  for (const name of ['TiB', 'GiB', 'MiB', 'KiB'] as const) {
    const factor = SIZE_UNITS[name.toLowerCase()]!;
    if (bytes !== 0 && bytes % factor === 0) return `${bytes / factor}${name}`;
  }
  return `${bytes}B`;
}

/** 604800000 -> "7d", 1500 -> "1500ms". */
export function formatDuration(ms: number): string {
  for (const name of ['d', 'h', 'min', 's'] as const) {
    const factor = DURATION_UNITS[name]!;
    if (ms !== 0 && ms % factor === 0) return `${ms / factor}${name}`;
  }
  return `${ms}ms`;
}
