/**
 * kcat against one test broker, the way a user drives it: `produce` feeds stdin and checks
 * that kcat exited cleanly, `consume` reads a topic from the beginning to its end (`-e`) and
 * returns every message byte for byte (see kcat-json.ts). Always asynchronous: the broker
 * under test runs on this process's event loop.
 */
import assert from 'node:assert/strict';
import { kcat, type KcatResult } from './kcat.js';
import { parseKcatJson, type KcatMessage } from './kcat-json.js';

export class KcatClient {
  readonly bootstrap: string;

  constructor(bootstrap: string) {
    this.bootstrap = bootstrap;
  }

  /** Runs kcat with `-b <bootstrap>` and fails, showing its stderr, unless it exits 0. */
  async run(args: string[], input?: Buffer | string, timeoutMs = 60_000): Promise<KcatResult> {
    const r = await kcat(['-b', this.bootstrap, ...args], input, timeoutMs);
    assert.equal(r.code, 0, `kcat ${args.join(' ')} exited ${r.code}; stderr:\n${r.stderr.slice(-4000)}`);
    return r;
  }

  /**
   * `kcat -P`: produces `input` and returns once kcat has flushed (it waits for every
   * delivery report before exiting). A failed delivery is logged as "% ERROR" or
   * "Delivery failed" on stderr, which fails the call.
   */
  async produce(topic: string, input: Buffer | string, extraArgs: string[] = []): Promise<KcatResult> {
    const r = await this.run(['-P', '-t', topic, ...extraArgs], input);
    assert.doesNotMatch(r.stderr, /ERROR|[Dd]elivery failed|Failed to produce/, `kcat -P stderr:\n${r.stderr.slice(-4000)}`);
    return r;
  }

  /** `kcat -C -J -o beginning -e`: the whole topic, in kcat's output order. */
  async consumeAll(topic: string, extraArgs: string[] = []): Promise<KcatMessage[]> {
    const r = await this.run(['-C', '-J', '-t', topic, '-o', 'beginning', '-e', ...extraArgs]);
    return parseKcatJson(r.stdout);
  }
}

/** Messages grouped by partition, each list in the order kcat printed it. */
export function byPartition(messages: KcatMessage[]): Map<number, KcatMessage[]> {
  const m = new Map<number, KcatMessage[]>();
  for (const msg of messages) {
    const list = m.get(msg.partition) ?? [];
    list.push(msg);
    m.set(msg.partition, list);
  }
  return m;
}

/**
 * Asserts that each partition's offsets run `from`, `from+1`, ... with no gap and no repeat,
 * which is what a consumer reading a log from `from` must see.
 */
export function assertContiguous(messages: KcatMessage[], from: (partition: number) => number = () => 0): void {
  for (const [p, list] of byPartition(messages)) {
    const expected = list.map((_, i) => from(p) + i);
    const got = list.map((m) => m.offset);
    if (got.some((o, i) => o !== expected[i])) {
      const at = got.findIndex((o, i) => o !== expected[i]);
      assert.fail(`partition ${p}: offset #${at} is ${got[at]}, expected ${expected[at]} (offsets must be contiguous from ${from(p)})`);
    }
  }
}
