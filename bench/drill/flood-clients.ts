/**
 * The bad clients of scenario 8, run as their own process so their work does not share an
 * event loop with the well-behaved client whose latency is measured:
 *
 *   node --import tsx bench/drill/flood-clients.ts <port> <idle> <slowloris> <fuzzers> <seed>
 *
 * - idle: connections that never send a byte;
 * - slowloris: connections that send a valid ApiVersions request one byte per second;
 * - fuzzers: workers that connect, send random bytes or a malformed frame (negative, zero or
 *   huge size; a valid header with an unknown API or version and a garbage body; a frame cut
 *   short), wait up to 200 ms and hang up, at most 50 connections per second each.
 * A connection the broker closes (or refuses) is replaced after a second, so the flood keeps
 * its size. Idle and slowloris connections open at 500 per second, under the broker's
 * default creation rate. Prints `OPEN <idle> <slowloris>` once all are connected (or after 20 s, with how many are), and
 * `STATS <json>` in answer to a `stats` line on stdin; SIGTERM closes everything and exits.
 */
import net from 'node:net';
import readline from 'node:readline';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { RawClient } from '../../test/helpers/raw-kafka.js';
import { seededRandom, sleep } from './shared/context.js';

const [port, idleCount, slowCount, fuzzers, seed] = process.argv.slice(2).map(Number);
const random = seededRandom(seed);
const int = (n: number) => Math.floor(random() * n);
const stats = { idleOpen: 0, slowOpen: 0, closedByBroker: { idle: 0, slowloris: 0 }, refusedOrReset: 0, fuzzConnections: 0, fuzzAnswered: 0 };
const sockets = new Set<net.Socket>();
let stopping = false;

const template = await RawClient.connect(port);
const apiVersions = template.frame(ApiKey.ApiVersions, 3, { clientSoftwareName: 'slowloris', clientSoftwareVersion: '1' });
const metadata = template.frame(ApiKey.Metadata, 4, { topics: null, allowAutoTopicCreation: false, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false });
template.close();

function connect(): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      sockets.add(s);
      resolve(s);
    });
    s.once('error', () => resolve(null));
    s.on('close', () => sockets.delete(s));
    s.on('data', () => {});
  });
}

/** Keeps one connection of `kind` open, replacing it a second after the broker drops it. */
async function hold(kind: 'idle' | 'slowloris'): Promise<void> {
  while (!stopping) {
    const s = await connect();
    if (!s) {
      stats.refusedOrReset++;
      await sleep(1000);
      continue;
    }
    const key = kind === 'idle' ? 'idleOpen' : 'slowOpen';
    stats[key]++;
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    if (kind === 'slowloris') {
      void (async () => {
        for (let i = 0; i < apiVersions.length && !s.destroyed; i++) {
          s.write(apiVersions.subarray(i, i + 1));
          await sleep(1000);
        }
      })();
    }
    await closed;
    stats[key]--;
    if (!stopping) {
      stats.closedByBroker[kind]++;
      await sleep(1000);
    }
  }
}

function garbage(): Buffer {
  const kind = int(6);
  const body = Buffer.alloc(int(200));
  for (let i = 0; i < body.length; i++) body[i] = int(256);
  if (kind === 0) return body;
  const size = Buffer.alloc(4);
  if (kind === 1) size.writeInt32BE(-1 - int(1000));
  else if (kind === 2) size.writeInt32BE(0);
  else if (kind === 3) size.writeInt32BE(0x7fffffff - int(1000));
  if (kind <= 3) return Buffer.concat([size, body]);
  if (kind === 4) {
    // A valid request header with an unknown API key or version, then garbage.
    const head = Buffer.alloc(8);
    head.writeInt16BE(int(2) ? 200 + int(1000) : ApiKey.Produce, 0);
    head.writeInt16BE(int(2) ? 50 + int(100) : int(12), 2);
    head.writeInt32BE(int(1000), 4);
    const frame = Buffer.concat([Buffer.alloc(4), head, body]);
    frame.writeInt32BE(frame.length - 4, 0);
    return frame;
  }
  const valid = int(2) ? apiVersions : metadata;
  return valid.subarray(0, 1 + int(valid.length - 1));
}

async function fuzz(): Promise<void> {
  while (!stopping) {
    const t0 = Date.now();
    const s = await connect();
    if (s) {
      stats.fuzzConnections++;
      s.once('data', () => stats.fuzzAnswered++);
      s.write(garbage());
      await Promise.race([new Promise((r) => s.once('close', r)), sleep(200)]);
      s.destroy();
    } else {
      stats.refusedOrReset++;
    }
    await sleep(Math.max(0, 20 - (Date.now() - t0)));
  }
}

const holders: Array<Promise<void>> = [];
for (let i = 0; i < idleCount + slowCount; i++) {
  holders.push(hold(i < idleCount ? 'idle' : 'slowloris'));
  if (i % 50 === 49) await sleep(100);
}
const openBy = Date.now() + 20_000;
while (stats.idleOpen + stats.slowOpen < idleCount + slowCount && Date.now() < openBy) await sleep(50);
process.stdout.write(`OPEN ${stats.idleOpen} ${stats.slowOpen}\n`);
for (let i = 0; i < fuzzers; i++) holders.push(fuzz());

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'stats') process.stdout.write(`STATS ${JSON.stringify(stats)}\n`);
});
process.once('SIGTERM', () => {
  stopping = true;
  for (const s of sockets) s.destroy();
  process.exit(0);
});
