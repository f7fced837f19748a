/**
 * The disk's own answer to bench:scale's one-connection produce, without a broker: the same
 * bytes written and made durable the way a log per partition in fsync mode writes them.
 *
 *   node --import tsx bench/fsync-pattern.ts DIR FILES WRITE_BYTES WRITES_PER_REQUEST IN_FLIGHT TOTAL_BYTES
 *
 * FILES files (one per partition) are created in DIR, then IN_FLIGHT "requests" run at a
 * time, each writing WRITE_BYTES to each of the next WRITES_PER_REQUEST files in turn and
 * fdatasyncing each file it wrote (in parallel, on node's I/O pool, as the partition logs
 * do), until TOTAL_BYTES are written. With FILES = 1 and one write of ~1 MB per request this
 * is the one-partition baseline's pattern. Prints one JSON line: MB/s and this process's
 * user and system CPU seconds over the timed part. DIR is removed at the end.
 *
 * bench:scale runs two of these at once, as its two regions each write the same bytes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const writeAsync = promisify(fs.write);
const fdatasyncAsync = promisify(fs.fdatasync);

async function main(): Promise<void> {
  const [dir, filesArg, writeArg, perRequestArg, inFlightArg, totalArg] = process.argv.slice(2);
  const [files, writeBytes, perRequest, inFlight, total] = [filesArg, writeArg, perRequestArg, inFlightArg, totalArg].map(Number);
  if (!dir || ![files, writeBytes, perRequest, inFlight, total].every((n) => Number.isSafeInteger(n) && n > 0)) {
    throw new Error('usage: fsync-pattern.ts DIR FILES WRITE_BYTES WRITES_PER_REQUEST IN_FLIGHT TOTAL_BYTES');
  }
  fs.mkdirSync(dir, { recursive: true });
  const fds: number[] = [];
  try {
    for (let i = 0; i < files; i++) fds.push(fs.openSync(path.join(dir, `p${i}.log`), 'w'));
    const positions = new Array<number>(files).fill(0);
    const data = Buffer.alloc(writeBytes, 0x73);
    const writes = Math.ceil(total / writeBytes);
    let next = 0;
    const one = async (i: number) => {
      const at = positions[i]!;
      positions[i] = at + writeBytes;
      await writeAsync(fds[i]!, data, 0, writeBytes, at);
      await fdatasyncAsync(fds[i]!);
    };
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < writes) {
          const request: Promise<void>[] = [];
          for (let k = 0; k < perRequest && next < writes; k++) request.push(one(next++ % files));
          await Promise.all(request);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    console.log(JSON.stringify({ mbps: (writes * writeBytes) / seconds / 1e6, userSeconds: cpu.user / 1e6, systemSeconds: cpu.system / 1e6 }));
  } finally {
    for (const fd of fds) fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
