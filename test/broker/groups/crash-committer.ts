/**
 * Child process for the offset crash test. Opens the coordinator on `dir`, reads back what
 * each lane last committed, prints "ready", then runs 16 lanes concurrently. A lane owns
 * partitions p and p+100 of one topic and commits them together in one request with
 * increasing offsets; it prints "try <lane> <offset>" before a commit and
 * "ack <lane> <offset>" once the commit is acknowledged (durable). The parent kill -9s it.
 * Stdout to a pipe is asynchronous on POSIX (Node's "A note on process I/O"): a line still
 * queued in this process when it is killed never reaches the parent. So a commit starts only
 * once its "try" line is in the pipe; an "ack" line lost with the process only leaves the
 * parent expecting the commit it had in flight, which it accepts.
 */
import { GroupCoordinator } from '../../../src/broker/groups/group-coordinator.js';
import { reportLine as report } from '../../helpers/pipe-report.js';

export const LANES = 16;
export function laneTopic(lane: number): string {
  return `topic-${lane % 4}`;
}
export function lanePartition(lane: number): number {
  return Math.floor(lane / 4);
}


async function main(): Promise<void> {
  const [dir, round] = process.argv.slice(2);
  // A small compaction threshold, so kills also land mid-compaction.
  const gc = await GroupCoordinator.open({ dir, compactThresholdBytes: 8 * 1024 });
  const fetched = gc.fetchOffsets({ groupId: 'crash', topics: null });
  const start = new Array<bigint>(LANES).fill(0n);
  for (let lane = 0; lane < LANES; lane++) {
    const t = fetched.topics.find((x) => x.name === laneTopic(lane));
    const p = t?.partitions.find((x) => x.partitionIndex === lanePartition(lane));
    if (p !== undefined) start[lane] = p.committedOffset;
  }
  process.stdout.write('ready\n');
  await Promise.all(
    start.map(async (from, lane) => {
      for (let offset = from + 1n; ; offset++) {
        await report(`try ${lane} ${offset}\n`);
        const partition = lanePartition(lane);
        const metadata = `r${round}-${offset}`;
        const r = await gc.commitOffsets({
          groupId: 'crash',
          generationIdOrMemberEpoch: -1,
          memberId: '',
          groupInstanceId: null,
          topics: [
            {
              name: laneTopic(lane),
              partitions: [partition, partition + 100].map((partitionIndex) => ({ partitionIndex, committedOffset: offset, committedLeaderEpoch: 0, committedMetadata: metadata })),
            },
          ],
        });
        const failed = r.topics.flatMap((t) => t.partitions.flatMap((p) => (p.error === null ? [] : [p.error.code])));
        if (failed.length > 0) throw new Error(`commit failed: ${failed.join(',')}`);
        await report(`ack ${lane} ${offset}\n`);
      }
    }),
  );
}

if (process.argv[1] === new URL(import.meta.url).pathname) await main();
