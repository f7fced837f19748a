/**
 * Crash test with a real process: a child commits offsets in a loop and reports each one
 * once acknowledged; we kill -9 it at random moments, reopen the coordinator, and check that
 * every lane reads back its last acknowledged commit, or the one commit it had in flight
 * (durable but not yet acknowledged), with both partitions of that request in agreement.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { GroupCoordinator } from '../../../src/broker/groups/group-coordinator.js';
import { LANES, lanePartition, laneTopic } from './crash-committer.js';
import { cleanupAll, freshDir } from './group-helpers.js';

after(cleanupAll);

const CHILD = fileURLToPath(new URL('./crash-committer.ts', import.meta.url));
const ROUNDS = 10;

interface Lane {
  acked: bigint;
  tried: bigint;
}

function runAndKill(dir: string, round: number, lanes: Lane[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(round)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let stderr = '';
    let acks = 0;
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const [kind, lane, offset] = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        if (kind === 'ready') {
          setTimeout(() => child.kill('SIGKILL'), 100 + Math.floor(Math.random() * 400));
        } else if (kind === 'try') {
          lanes[Number(lane)].tried = BigInt(offset);
        } else if (kind === 'ack') {
          const l = lanes[Number(lane)];
          assert.equal(BigInt(offset), l.tried, 'one commit in flight per lane');
          l.acked = BigInt(offset);
          acks++;
        }
      }
    });
    // 'close', not 'exit': 'exit' can come before the last acknowledgements the child wrote
    // have been read from its stdout, and the check below would then judge a stale view.
    child.on('close', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acks);
      else reject(new Error(`child exited ${code}: ${stderr}`));
    });
  });
}

test(`kill -9 during durable offset commits loses no acknowledged commit (${ROUNDS} rounds)`, { timeout: 120_000 }, async (t) => {
  const dir = freshDir();
  const lanes: Lane[] = Array.from({ length: LANES }, () => ({ acked: 0n, tried: 0n }));
  let totalAcks = 0;
  for (let round = 0; round < ROUNDS; round++) {
    totalAcks += await runAndKill(dir, round, lanes);
    const gc = await GroupCoordinator.open({ dir, compactThresholdBytes: 8 * 1024 });
    try {
      const topics = gc.fetchOffsets({
        groupId: 'crash',
        topics: [0, 1, 2, 3].map((t) => ({ name: `topic-${t}`, partitionIndexes: [0, 1, 2, 3, 100, 101, 102, 103] })),
      }).topics;
      lanes.forEach((l, lane) => {
        const parts = topics.find((t) => t.name === laneTopic(lane))?.partitions ?? [];
        const p = parts.find((x) => x.partitionIndex === lanePartition(lane));
        const twin = parts.find((x) => x.partitionIndex === lanePartition(lane) + 100);
        assert.ok(p && twin);
        const got = p.committedOffset === -1n ? 0n : p.committedOffset;
        assert.equal(twin.committedOffset, p.committedOffset, `round ${round} lane ${lane}: a request is durable all or nothing`);
        assert.ok(got === l.acked || got === l.tried, `round ${round} lane ${lane}: read ${got}, acknowledged ${l.acked}, in flight ${l.tried}`);
        if (got > 0n) assert.match(p.metadata ?? '', new RegExp(`^r\\d+-${got}$`));
        // The next child continues from what is stored.
        l.acked = got;
        l.tried = got;
      });
    } finally {
      await gc.close();
    }
  }
  t.diagnostic(`${totalAcks} acknowledged commits over ${ROUNDS} rounds`);
  assert.ok(totalAcks > ROUNDS * 50, `only ${totalAcks} acknowledged commits`);
  assert.ok(fs.existsSync(path.join(dir, 'offsets.snapshot')), 'rounds crossed compactions');
});
