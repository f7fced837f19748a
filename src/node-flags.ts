/**
 * The node flags a broker process is started with, by every entry point Meridian ships:
 * `npm start`, the `meridian` command's shebang, the Docker image's entrypoint, and the
 * benchmarks' brokers (test/deploy/node-flags.test.ts checks that they all carry them).
 *
 *   --max-semi-space-size=32   a young generation of 2 x 32 MiB instead of node 20's 2 x 16.
 *       A broker allocates a request's buffers, batches and promises and drops them within
 *       a millisecond. With the default young generation, objects still in flight at a
 *       scavenge were promoted, and at 50,000 msg/s the old generation filled and V8 ran a
 *       full mark-compact about every 100 ms (77 in a 10 s run, 0.5 s of pauses). With 32 MiB
 *       they die young: 5 mark-compacts in the same run. bench/README.md, "GC at 50,000 msg/s".
 *
 * V8 sizes the young generation at start-up: `v8.setFlagsFromString` later has no effect,
 * so the flag must be on node's command line or in NODE_OPTIONS.
 */
export const BROKER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];

/** The flags of BROKER_NODE_FLAGS this process was not started with (by name, any value). */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].map(flagName));
  return BROKER_NODE_FLAGS.filter((f) => !given.has(flagName(f)));
}

/** `--max-semi-space-size=32` -> `--max-semi-space-size`; V8 also accepts underscores. */
function flagName(flag: string): string {
  return flag.split('=')[0]!.replace(/_/g, '-');
}
