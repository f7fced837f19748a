/**
 * One latency run in a process of its own (bench/latency.ts `inChild`): argv[2] is the
 * LatencySpec as JSON, argv[3] the file its latencies (ms, sorted, float64) are written to;
 * the client's GC summary goes to stdout as JSON.
 */
import fs from 'node:fs';
import { runHere, type LatencySpec } from './latency.js';

const [specJson, out] = process.argv.slice(2);
if (specJson === undefined || out === undefined) throw new Error('usage: latency-run.ts SPEC_JSON OUT_FILE');
const run = await runHere(JSON.parse(specJson) as LatencySpec);
fs.writeFileSync(out, new Uint8Array(Float64Array.from(run.latencies).buffer));
process.stdout.write(JSON.stringify(run.clientGc));
