/**
 * Human output of the CLI: aligned tables and readable sizes and durations. Only for people:
 * scripts read `--json`, whose values stay raw (bytes, seconds, offsets as strings).
 */

/**
 * Columns padded to their widest cell, two spaces apart, headers in capitals as kubectl and
 * rpk print them. A header ending in `>` marks a right-aligned column (numbers, sizes), so
 * magnitudes line up.
 */
export function table(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const right = headers.map((h) => h.endsWith('>'));
  const names = headers.map((h) => (h.endsWith('>') ? h.slice(0, -1) : h).toUpperCase());
  const cells = rows.map((r) => r.map((c) => String(c)));
  const widths = names.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(names), ...cells.map(line)].join('\n') + '\n';
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 0 B, 512 B, 1.5 KiB, 12 MiB. Accepts the API's strings for counts past 2^53. */
export function bytes(n: number | string | null | undefined): string {
  if (n === null || n === undefined) return '-';
  let v = Number(n);
  if (!Number.isFinite(v)) return String(n);
  let u = 0;
  while (Math.abs(v) >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${BYTE_UNITS[u]}`;
}

/** 0.4s, 12s, 3m05s, 2h10m, 3d4h. */
export function seconds(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '-';
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.round(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

export function rate(bytesPerSecond: number | null | undefined): string {
  return bytesPerSecond === null || bytesPerSecond === undefined ? '-' : `${bytes(Math.round(bytesPerSecond))}/s`;
}
