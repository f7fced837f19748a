// TEMPORARY diagnostic (not for commit): MERIDIAN_LAG_TRACE=/path/prefix records timestamped events.
import fs from 'node:fs';
const file = process.env.MERIDIAN_LAG_TRACE;
const lines: string[] = [];
export const traceOn = file !== undefined && file !== '';
export function trace(s: string): void {
  if (traceOn) lines.push(`${(performance.timeOrigin + performance.now()).toFixed(3)} ${s}`);
}
import { monitorEventLoopDelay } from 'node:perf_hooks';
const h = monitorEventLoopDelay({ resolution: 1 });
if (traceOn) {
  h.enable();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const dump = () => {
    const c = process.cpuUsage(c0);
    fs.writeFileSync(`${file}.${process.pid}`, lines.join('\n') + '\n');
    fs.writeFileSync(`${file}.stats.${process.pid}`, `cpu ${((c.user + c.system) / 1000 / (performance.now() - t0) * 100).toFixed(1)}% loop p50 ${(h.percentile(50) / 1e6).toFixed(2)} p99 ${(h.percentile(99) / 1e6).toFixed(2)} p999 ${(h.percentile(99.9) / 1e6).toFixed(2)} max ${(h.max / 1e6).toFixed(2)}\n`);
  };
  process.on('exit', dump);
  setInterval(dump, 2000).unref();
}
