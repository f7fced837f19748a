/**
 * The ledger of what producers were told, and the check of one reader's view of a topic
 * against it: every acknowledged record once, nothing twice, nothing unknown, byte for byte,
 * in produce order.
 */
import type { ReadRecord } from '../../../test/helpers/replication-check.js';
import type { Tally } from './context.js';

export type { ReadRecord };

export interface Verdict {
  lost: number;
  duplicates: number;
  corrupt: number;
  /** Records whose produce failed or timed out that are present (at most once is fine). */
  uncertainPresent: Set<string>;
  problems: string[];
}

type Status = 'acked' | 'uncertain';

/**
 * One producer's records to one partition: values are unique and self-describing
 * (`<stream>#<seq>|` then filler derived from the sequence number, bytes 0x20-0xfe so kcat
 * can produce them line by line), so any reader can tell which record it holds and whether
 * every byte is right. A record is 'acked' once its producer was told so, 'uncertain' when
 * the send failed or timed out (it may be there once, never twice).
 */
export class Stream {
  readonly name: string;
  readonly partition: number;
  readonly keyed: boolean;
  readonly #bytes: number;
  readonly status: Status[] = [];

  constructor(name: string, partition: number, o: { keyed: boolean; bytes: number }) {
    this.name = name;
    this.partition = partition;
    this.keyed = o.keyed;
    this.#bytes = o.bytes;
  }

  value(seq: number): Buffer {
    const head = Buffer.from(`${this.name}#${seq}|`);
    const filler = Buffer.alloc(this.#bytes + (seq % 64));
    for (let i = 0; i < filler.length; i++) filler[i] = 0x20 + ((seq * 31 + i * 7) % 0xdf);
    return Buffer.concat([head, filler]);
  }

  key(seq: number): Buffer | null {
    return this.keyed ? Buffer.from(`k${seq % 13}`) : null;
  }

  /** The next `n` records, not yet sent. */
  take(n: number): Array<{ seq: number; key: Buffer | null; value: Buffer }> {
    const from = this.status.length;
    for (let i = 0; i < n; i++) this.status.push('uncertain');
    return Array.from({ length: n }, (_, i) => ({ seq: from + i, key: this.key(from + i), value: this.value(from + i) }));
  }

  ack(seqs: readonly number[]): void {
    for (const s of seqs) this.status[s] = 'acked';
  }

  get acked(): number {
    return this.status.filter((s) => s === 'acked').length;
  }
}

export class Ledger {
  readonly #streams = new Map<string, Stream>();

  stream(name: string, partition: number, o: { keyed: boolean; bytes?: number }): Stream {
    if (name.includes('#') || name.includes('|')) throw new Error(`stream name ${name} may not hold # or |`);
    const s = new Stream(name, partition, { keyed: o.keyed, bytes: o.bytes ?? 60 });
    this.#streams.set(name, s);
    return s;
  }

  get acknowledged(): number {
    let n = 0;
    for (const s of this.#streams.values()) n += s.acked;
    return n;
  }

  /**
   * Checks one reader's view of a whole topic: every acknowledged record once, nothing
   * twice, nothing unknown, every byte and key as produced, each stream in produce order
   * within its partition. `streams` limits the check to some of them (default all).
   */
  check(where: string, read: readonly ReadRecord[], streams: readonly Stream[] = [...this.#streams.values()]): Verdict {
    const v: Verdict = { lost: 0, duplicates: 0, corrupt: 0, uncertainPresent: new Set(), problems: [] };
    const mine = new Map(streams.map((s) => [s.name, s]));
    const seen = new Map<string, number>();
    const lastSeq = new Map<string, number>();
    const say = (kind: string, text: string) => {
      if (v.problems.filter((p) => p.startsWith(`${where}: ${kind}`)).length < 3) v.problems.push(`${where}: ${kind} ${text}`);
    };
    for (const r of read) {
      const at = `${r.partition}@${r.offset}`;
      const text = r.value?.toString('latin1') ?? '';
      const m = /^([^#|]+)#(\d+)\|/.exec(text);
      if (!m) {
        v.corrupt++;
        say('unknown record', `at ${at}: ${JSON.stringify(text.slice(0, 40))}`);
        continue;
      }
      const stream = this.#streams.get(m[1]);
      if (!mine.has(m[1])) {
        if (!stream) {
          v.corrupt++;
          say('unknown record', `at ${at}: ${JSON.stringify(text.slice(0, 40))}`);
        }
        continue;
      }
      const s = mine.get(m[1])!;
      const seq = Number(m[2]);
      if (seq >= s.status.length) {
        v.corrupt++;
        say('never sent', `${s.name}#${seq} at ${at}`);
        continue;
      }
      const id = `${s.name}#${seq}`;
      if (r.partition !== s.partition || !r.value!.equals(s.value(seq)) || !sameBytes(r.key, s.key(seq))) {
        v.corrupt++;
        say('corrupt', `${id} at ${at}: partition ${r.partition} (want ${s.partition}), value ${r.value!.equals(s.value(seq)) ? 'intact' : 'differs'}, key ${sameBytes(r.key, s.key(seq)) ? 'intact' : 'differs'}`);
        continue;
      }
      const n = (seen.get(id) ?? 0) + 1;
      seen.set(id, n);
      if (n > 1) {
        v.duplicates++;
        say('duplicate', `${id} (copy ${n}) at ${at}`);
        continue;
      }
      if (s.status[seq] === 'uncertain') v.uncertainPresent.add(id);
      const last = lastSeq.get(s.name) ?? -1;
      if (seq < last) {
        v.corrupt++;
        say('out of order', `${id} at ${at} after ${s.name}#${last}`);
      }
      lastSeq.set(s.name, Math.max(last, seq));
    }
    for (const s of streams) {
      s.status.forEach((st, seq) => {
        if (st === 'acked' && !seen.has(`${s.name}#${seq}`)) {
          v.lost++;
          say('lost', `${s.name}#${seq} (acknowledged, not read)`);
        }
      });
    }
    return v;
  }
}

function sameBytes(a: Buffer | null, b: Buffer | null): boolean {
  return a === null || b === null ? a === b : a.equals(b);
}

/**
 * Adds several readers' verdicts to the tally: each column takes the worst reader (two
 * readers seeing one lost record is one lost record), and every problem is kept.
 */
export function addVerdicts(tally: Tally, verdicts: readonly Verdict[]): void {
  tally.lost += Math.max(0, ...verdicts.map((v) => v.lost));
  tally.duplicates += Math.max(0, ...verdicts.map((v) => v.duplicates));
  tally.corrupt += Math.max(0, ...verdicts.map((v) => v.corrupt));
  for (const v of verdicts) tally.problems.push(...v.problems);
}
