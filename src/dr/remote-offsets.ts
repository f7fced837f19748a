/**
 * What peers told this region through OffsetSync (dr-api.ts): each group's committed
 * offsets in the other regions, as per-origin vectors, and each partition's end offset in
 * the regions that send it here. Persisted in `<dataDir>/dr/remote-offsets.json`, written
 * to a temp file, fsynced and renamed (the directory fsynced) before the OffsetSync is
 * acknowledged, so an acknowledged commit survives a crash of either side (the sender
 * resends what was not acknowledged). The writes are asynchronous and shared: syncs that
 * arrive while one is written wait for the next write, which covers them all (group commit,
 * as the offset store does), so the event loop never blocks on the disk.
 *
 * Dedup: per (group, topic, partition, sender) only the newest commit by commit time is
 * kept; a resend or a late, older commit changes nothing.
 *
 * The file holds one entry per group partition and peer: its size follows the number of
 * groups, not the commit rate (the sender coalesces commits between syncs).
 *
 * Heartbeats. A sender sends only the partition ends that changed, and a sync at least every
 * 2 s even when nothing did (offset-publisher.ts). Every successful sync means "every end
 * you hold from me is current as of `sentAt`", so the sync's time is kept per sender
 * (`heard`) and `endOf` reports an end as received at the later of its own arrival and the
 * sender's last sync: the age a promote reports stays the time since the primary was last
 * heard from, with no per-partition work per heartbeat. A heartbeat changes nothing durable
 * by itself: the file is written only when a commit or an end changed (the heard times go
 * with that write, and at shutdown), so an idle region writes nothing. After a crash the
 * heard times on disk may be older than the last heartbeat: a promote then reports an older
 * age, never a younger one.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { fsyncDir, writeFileDurable } from '../broker/groups/durable-file.js';
import type { OffsetSyncRequest } from './dr-api.js';

const FILE = 'remote-offsets.json';

export interface RemoteCommit {
  region: string;
  offset: bigint;
  commitTimestamp: number;
  vector: Map<string, bigint>;
  /** When this region received it (ms since the epoch). */
  receivedAt: number;
}

export interface RemoteEnd {
  region: string;
  topicId: string;
  endOffset: bigint;
  lastTimestamp: number;
  /** When the peer sent it (its clock) and when it arrived (ours). */
  sentAt: number;
  receivedAt: number;
}

interface FileShape {
  version: 1;
  commits: Array<{ group: string; topic: string; partition: number; region: string; offset: string; commitTimestamp: number; receivedAt: number; vector: Record<string, string> }>;
  ends: Array<{ topic: string; partition: number; region: string; topicId: string; endOffset: string; lastTimestamp: number; sentAt: number; receivedAt: number }>;
  /** Per sender, its last sync (absent in files written before heartbeats). */
  heard?: Record<string, { sentAt: number; receivedAt: number }>;
}

const tp = (topic: string, partition: number) => `${topic}\0${partition}`;

export class RemoteOffsets {
  readonly file: string;
  /** group -> topic\0partition -> region -> commit */
  #commits = new Map<string, Map<string, Map<string, RemoteCommit>>>();
  /** topic\0partition -> region -> end */
  #ends = new Map<string, Map<string, RemoteEnd>>();
  #log: Logger | undefined;
  #waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  #writing = false;
  /** sender -> its last successful sync: confirms every end held from it. */
  #heard = new Map<string, { sentAt: number; receivedAt: number }>();
  /** A heard time changed since the last write (written with the next one, or at shutdown). */
  #heardDirty = false;
  #stats = { writes: 0, syncs: 0, unchangedSyncs: 0 };
  /** Each stored commit's and end's line of the file (see #serialise). */
  #json = new WeakMap<object, string>();

  constructor(dir: string, logger?: Logger) {
    this.file = path.join(dir, FILE);
    this.#log = logger;
    this.#load();
  }

  /**
   * Applies a sync in memory. Returns the commits that were new (newer than what was held),
   * for conflict detection, and `durable`, which settles once a write covering it is on
   * disk (at once when nothing changed): the OffsetSync is answered after it.
   */
  apply(req: OffsetSyncRequest, now = Date.now()): { fresh: Array<RemoteCommit & { group: string; topic: string; partition: number }>; durable: Promise<void> } {
    const fresh: Array<RemoteCommit & { group: string; topic: string; partition: number }> = [];
    let changed = false;
    for (const c of req.commits) {
      let byTp = this.#commits.get(c.group);
      if (byTp === undefined) this.#commits.set(c.group, (byTp = new Map()));
      let byRegion = byTp.get(tp(c.topic, c.partition));
      if (byRegion === undefined) byTp.set(tp(c.topic, c.partition), (byRegion = new Map()));
      const held = byRegion.get(req.senderRegion);
      if (held !== undefined && (held.commitTimestamp > c.commitTimestamp || (held.commitTimestamp === c.commitTimestamp && held.offset >= c.offset))) continue;
      const commit: RemoteCommit = { region: req.senderRegion, offset: c.offset, commitTimestamp: c.commitTimestamp, vector: new Map(c.vector), receivedAt: now };
      byRegion.set(req.senderRegion, commit);
      fresh.push({ ...commit, group: c.group, topic: c.topic, partition: c.partition });
      changed = true;
    }
    for (const e of req.ends) {
      let byRegion = this.#ends.get(tp(e.topic, e.partition));
      if (byRegion === undefined) this.#ends.set(tp(e.topic, e.partition), (byRegion = new Map()));
      const held = byRegion.get(req.senderRegion);
      // The newest report wins even when the end went back (the peer failed back).
      if (held !== undefined && held.sentAt > req.sentAt) continue;
      byRegion.set(req.senderRegion, { region: req.senderRegion, topicId: e.topicId, endOffset: e.endOffset, lastTimestamp: e.lastTimestamp, sentAt: req.sentAt, receivedAt: now });
      changed = true;
    }
    const heard = this.#heard.get(req.senderRegion);
    if (heard === undefined || heard.sentAt <= req.sentAt) {
      this.#heard.set(req.senderRegion, { sentAt: req.sentAt, receivedAt: now });
      this.#heardDirty = true;
    }
    this.#stats.syncs++;
    if (!changed) this.#stats.unchangedSyncs++;
    return { fresh, durable: changed ? this.#persist() : Promise.resolve() };
  }

  /** Counters: file writes, syncs applied, and syncs that changed nothing (no write). */
  stats(): Readonly<{ writes: number; syncs: number; unchangedSyncs: number }> {
    return { ...this.#stats };
  }

  /** The commits peers hold for a group's partition, newest commit first. */
  commitsFor(group: string, topic: string, partition: number): RemoteCommit[] {
    const byRegion = this.#commits.get(group)?.get(tp(topic, partition));
    return byRegion === undefined ? [] : [...byRegion.values()].sort((a, b) => b.commitTimestamp - a.commitTimestamp);
  }

  /** Every group with a commit from a peer, and its partitions. */
  groups(): Array<{ group: string; partitions: Array<{ topic: string; partition: number }> }> {
    return [...this.#commits].map(([group, byTp]) => ({
      group,
      partitions: [...byTp.keys()].map((k) => {
        const [topic, p] = k.split('\0');
        return { topic, partition: Number(p) };
      }),
    }));
  }

  /**
   * What `region` last reported of a partition's end; `sentAt`/`receivedAt` are those of its
   * last sync when that came later (a heartbeat confirmed the end unchanged).
   */
  endOf(topic: string, partition: number, region: string): RemoteEnd | undefined {
    const e = this.#ends.get(tp(topic, partition))?.get(region);
    const heard = this.#heard.get(region);
    if (e === undefined || heard === undefined || heard.sentAt < e.sentAt || heard.receivedAt <= e.receivedAt) return e;
    return { ...e, sentAt: heard.sentAt, receivedAt: heard.receivedAt };
  }

  /** Topics with commits or ends from peers. */
  topics(): string[] {
    const out = new Set<string>();
    for (const byTp of this.#commits.values()) for (const k of byTp.keys()) out.add(k.split('\0')[0]);
    for (const k of this.#ends.keys()) out.add(k.split('\0')[0]);
    return [...out];
  }

  /** Forgets a topic (deleted here). */
  dropTopic(topic: string): void {
    let changed = false;
    for (const byTp of this.#commits.values()) for (const k of [...byTp.keys()]) if (k.startsWith(`${topic}\0`)) changed = byTp.delete(k) || changed;
    for (const k of [...this.#ends.keys()]) if (k.startsWith(`${topic}\0`)) changed = this.#ends.delete(k) || changed;
    if (changed) void this.#persist().catch((err) => this.#log?.warn({ file: this.file, err: (err as Error).message }, 'remote offsets not saved; peers resend them'));
  }

  #persist(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      if (!this.#writing) void this.#writeLoop();
    });
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    while (this.#waiters.length > 0) {
      const batch = this.#waiters.splice(0);
      try {
        const tmp = `${this.file}.tmp`;
        this.#heardDirty = false;
        this.#stats.writes++;
        await writeFileDurable(tmp, Buffer.from(this.#serialise()));
        await fs.promises.rename(tmp, this.file);
        await fsyncDir(path.dirname(this.file));
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.#writing = false;
  }

  /** Waits for writes under way, and writes the heard times if they changed since (shutdown). */
  async flush(): Promise<void> {
    if (this.#writing || this.#heardDirty) await this.#persist().catch(() => {});
  }

  #serialise(): string {
    // Each entry's JSON is made once: stored commits and ends are replaced, never changed, so
    // a write re-encodes only what changed since the last one. Re-encoding every entry on every
    // write (a group over 10,000 partitions, its vectors, every partition's end) was 5-9% of
    // each broker's CPU in bench:scale's lag run, where syncs arrive every 200 ms.
    const commits: string[] = [];
    for (const [group, byTp] of this.#commits) {
      for (const [k, byRegion] of byTp) {
        for (const c of byRegion.values()) {
          commits.push(
            this.#jsonOf(c, (): FileShape['commits'][number] => {
              const [topic, p] = k.split('\0');
              return { group, topic, partition: Number(p), region: c.region, offset: String(c.offset), commitTimestamp: c.commitTimestamp, receivedAt: c.receivedAt, vector: Object.fromEntries([...c.vector].map(([o, v]) => [o, String(v)])) };
            }),
          );
        }
      }
    }
    const ends: string[] = [];
    for (const [k, byRegion] of this.#ends) {
      for (const e of byRegion.values()) {
        ends.push(
          this.#jsonOf(e, (): FileShape['ends'][number] => {
            const [topic, p] = k.split('\0');
            return { topic, partition: Number(p), region: e.region, topicId: e.topicId, endOffset: String(e.endOffset), lastTimestamp: e.lastTimestamp, sentAt: e.sentAt, receivedAt: e.receivedAt };
          }),
        );
      }
    }
    return `{"version":1,"commits":[${commits.join(',')}],"ends":[${ends.join(',')}],"heard":${JSON.stringify(Object.fromEntries(this.#heard))}}\n`;
  }

  /** `entry`'s line of the file, encoded from `shape()` the first time it is written. */
  #jsonOf(entry: object, shape: () => object): string {
    let json = this.#json.get(entry);
    if (json === undefined) {
      json = JSON.stringify(shape());
      this.#json.set(entry, json);
    }
    return json;
  }

  #load(): void {
    if (!fs.existsSync(this.file)) return;
    let s: FileShape;
    try {
      s = JSON.parse(fs.readFileSync(this.file, 'utf8')) as FileShape;
      if (s.version !== 1 || !Array.isArray(s.commits) || !Array.isArray(s.ends)) throw new Error('not a remote-offsets file');
    } catch (err) {
      // Peers resend every commit and end they hold on their next sync: losing this file
      // costs a resync, never a wrong offset.
      this.#log?.warn({ file: this.file, err: (err as Error).message }, 'remote offsets file unreadable; starting empty until peers resend');
      return;
    }
    for (const c of s.commits) {
      let byTp = this.#commits.get(c.group);
      if (byTp === undefined) this.#commits.set(c.group, (byTp = new Map()));
      let byRegion = byTp.get(tp(c.topic, c.partition));
      if (byRegion === undefined) byTp.set(tp(c.topic, c.partition), (byRegion = new Map()));
      byRegion.set(c.region, { region: c.region, offset: BigInt(c.offset), commitTimestamp: c.commitTimestamp, receivedAt: c.receivedAt, vector: new Map(Object.entries(c.vector).map(([o, v]) => [o, BigInt(v)])) });
    }
    for (const [region, h] of Object.entries(s.heard ?? {})) if (typeof h?.sentAt === 'number' && typeof h.receivedAt === 'number') this.#heard.set(region, { sentAt: h.sentAt, receivedAt: h.receivedAt });
    for (const e of s.ends) {
      let byRegion = this.#ends.get(tp(e.topic, e.partition));
      if (byRegion === undefined) this.#ends.set(tp(e.topic, e.partition), (byRegion = new Map()));
      byRegion.set(e.region, { region: e.region, topicId: e.topicId, endOffset: BigInt(e.endOffset), lastTimestamp: e.lastTimestamp, sentAt: e.sentAt, receivedAt: e.receivedAt });
    }
  }
}
