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
 *   --heap-growing-percent=100   after a full collection the old generation may grow to twice
 *       what survived it before the next one (V8 picks up to ~4x by itself when collections
 *       look cheap). Under load a broker promotes short-lived request state (a Fetch of 10,000
 *       partitions long-polls for up to 500 ms, outliving two scavenges): bench:scale's
 *       us-east, with ~190 MB live, grew to 700-740 MB between mark-compacts, an RSS peak of
 *       960 MiB in the lag run and 1025 MiB over the whole bench (target < 1 GiB). With the
 *       flag, same run: 370-385 MB between them, RSS peak 572 MiB; mark-compacts every ~2.3 s
 *       instead of ~10 s, 2.4 s of GC in 70 s instead of 1.1 s, the lag unchanged within its
 *       noise. A small heap keeps its 128 MiB floor (the flag above).
 *
 * V8 sizes the heap when the process starts: `v8.setFlagsFromString` later has no effect, and
 * node refuses these flags in NODE_OPTIONS, so they must be on node's command line.
 */
export const BROKER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128', '--heap-growing-percent=100'];

/** The flags of BROKER_NODE_FLAGS this process was not started with (by name, any value). */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  const given = new Set(execArgv.map(flagName));
  return BROKER_NODE_FLAGS.filter((f) => !given.has(flagName(f)));
}

/** `--initial-old-space-size=128` -> `--initial-old-space-size`; V8 also accepts underscores. */
function flagName(flag: string): string {
  return flag.split('=')[0]!.replace(/_/g, '-');
}
