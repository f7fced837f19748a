/**
 * The node flags a broker process is started with, by every entry point Meridian ships:
 * `npm start`, the `meridian` command's shebang, the Docker image's entrypoint, `meridian dev
 * --brokers N`'s brokers, and the benchmarks' and tests' brokers (test/deploy/node-flags.test.ts
 * checks the first three).
 *
 *   --initial-old-space-size=128   V8's old generation may reach 128 MiB before its first
 *       full collection, and its allocation limit never drops below that. A broker's live
 *       heap is small (about 23 MB under produce at 50,000 msg/s) while it allocates hundreds
 *       of MB/s of short-lived request objects. On such a small heap V8 sets a limit only
 *       ~24 MB above the live size, less than its young generation can promote between two
 *       checks, so it kept starting incremental marking ("Start (task)" in
 *       --trace-incremental-marking): 86 full mark-compacts in two 10 s runs at 50,000 msg/s,
 *       0.45-0.6 s of GC per run, pauses up to 14-20 ms. With the flag: none during the runs
 *       (3 in a 4-minute run, all by the idle-time memory reducer), GC 21-27 ms per run,
 *       pauses under 5 ms (bench/README.md, "GC at 50,000 msg/s"). The cost is memory: up to
 *       ~100 MB more heap before the first full collection.
 *
 * V8 sizes the heap when the process starts: `v8.setFlagsFromString` later has no effect, and
 * node refuses this flag in NODE_OPTIONS, so it must be on node's command line.
 */
export const BROKER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];

/** The flags of BROKER_NODE_FLAGS this process was not started with (by name, any value). */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  const given = new Set(execArgv.map(flagName));
  return BROKER_NODE_FLAGS.filter((f) => !given.has(flagName(f)));
}

/** `--initial-old-space-size=128` -> `--initial-old-space-size`; V8 also accepts underscores. */
function flagName(flag: string): string {
  return flag.split('=')[0]!.replace(/_/g, '-');
}
