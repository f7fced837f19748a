/**
 * The few lines `meridian dev` (npm start) prints once every region is up: where to connect
 * and three commands to paste. Pure text from the resolved configs, so what it says is what
 * the brokers were started with (config/us-east.yaml and config/eu-west.yaml).
 */
import path from 'node:path';

export interface BannerRegion {
  readonly region: string;
  /** host:port of the Kafka listener, as clients bootstrap. */
  readonly kafka: string;
  /** http://host:port of the admin API (and dashboard), when the broker serves one. */
  readonly admin?: string;
  readonly dataDir: string;
}

/**
 * The banner text, ending in a newline. Regions in start order: the first produces, the
 * second consumes. `cli` is how the user runs this command (see cliCommand).
 */
export function devBanner(regions: readonly BannerRegion[], cwd: string, cli = 'meridian'): string {
  const [first, second = first] = regions;
  if (first === undefined) return '';
  const width = Math.max(...regions.map((r) => r.region.length));
  const topic = 'demo';
  const lines = [
    '',
    `Meridian dev mesh is running: ${regions.map((r) => r.region).join(' <-> ')}, replicating every topic both ways. Ctrl-C stops it.`,
    '',
    ...regions.map((r) => {
      const admin = r.admin === undefined ? '' : `   admin and dashboard ${r.admin}/`;
      return `  ${r.region.padEnd(width)}   Kafka bootstrap ${r.kafka}${admin}`;
    }),
    `  ${'data'.padEnd(width)}   ${commonDataDir(regions, cwd)}`,
    '',
    `Produce in ${first.region}, consume in ${second.region}, and look at both:`,
    '',
    `  printf 'k1:hello\\nk2:world\\n' | kcat -b ${first.kafka} -t ${topic} -P -K:`,
    `  kcat -b ${second.kafka} -t ${topic} -C -o beginning -e -f '%k:%s\\n'`,
    `  ${cli} status`,
    '',
    '(kcat: apt-get install kcat, or brew install kcat.)',
    '',
  ];
  return lines.join('\n');
}

/** The folder holding every region's data directory, relative to cwd when inside it. */
function commonDataDir(regions: readonly BannerRegion[], cwd: string): string {
  const parents = new Set(regions.map((r) => path.dirname(path.resolve(cwd, r.dataDir))));
  const shown = [...parents].map((dir) => {
    const rel = path.relative(cwd, dir);
    return rel === '' ? '.' : rel.startsWith('..') || path.isAbsolute(rel) ? dir : `./${rel}`;
  });
  return shown.join(', ');
}

/**
 * How to run `meridian` again from cwd: `node bin/meridian.js` when the entry script sits in
 * cwd (a clone, after npm start), else `meridian` (an installed package puts it on PATH).
 */
export function cliCommand(entryScript: string | undefined, cwd: string): string {
  if (entryScript === undefined) return 'meridian';
  const rel = path.relative(cwd, entryScript);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return 'meridian';
  return `node ${rel.split(path.sep).join('/')}`;
}
