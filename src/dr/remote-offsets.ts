/**
 * What peers told this region through OffsetSync (dr-api.ts): each group's committed
 * offsets in the other regions, as per-origin vectors, and each partition's end offset in
 * the regions that send it here. Durable before the OffsetSync is acknowledged, so an
 * acknowledged commit survives a crash of either side (the sender resends what was not
 * acknowledged). The writes are asynchronous and shared: syncs that arrive while one is
 * written wait for the next write, which covers them all (group commit, as the offset store
 * does), so the event loop never blocks on the disk.
 *
 * Files (in `<dataDir>/dr/`): a snapshot, `remote-offsets.json`, and a journal,
 * `remote-offsets.<N>.journal`, where N is named by the snapshot (`journal`). A write appends
 * one line per entry that changed since the last write (and the heard times, and topics
 * dropped) and fdatasyncs the journal: O(changed), where rewriting the snapshot is O(every
 * group partition and partition end). bench:scale's 10,000 partitions change a few hundred
 * ends per 200 ms sync while the file holds 10,000 ends and a commit per group partition;
 * the whole file rewritten and fsync'd on every such sync was 3-5% of each broker (and a
 * megabyte-sized write on the disk the partitions fdatasync to). When the journal has grown
 * past the snapshot (at least JOURNAL_MIN_BYTES), the next write is a new snapshot instead:
 * written to a temp file, fsynced, renamed (the directory fsynced) and naming journal N+1,
 * which it creates empty first; the old journal is then deleted. A crash between the rename
 * and the delete leaves a journal no snapshot names: never read, deleted by the next
 * snapshot. A journal's last line may be torn by a crash mid-append: it was never
 * acknowledged (the fdatasync had not returned), so loading stops there, and the first write
 * after a restart is a snapshot (nothing is appended after a torn line).
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
import { closeAsync, fdatasyncAsync, openAsync, writevFully } from '../storage/fs-util.js';
import type { OffsetSyncRequest } from './dr-api.js';

const FILE = 'remote-offsets.json';
/** A journal is compacted into a new snapshot once it is larger than the snapshot and this. */
export const JOURNAL_MIN_BYTES = 1024 * 1024;
const journalName = (generation: number) => `remote-offsets.${generation}.journal`;
const JOURNAL_FILE = /^remote-offsets\.(\d+)\.journal$/;

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
  /** The generation of the journal that continues this snapshot (absent: none). */
  journal?: number;
}

/** One journal line: a commit or an end as the snapshot writes it, the heard times, or a topic dropped. */
type JournalLine = { c: FileShape['commits'][number] } | { e: FileShape['ends'][number] } | { heard: NonNullable<FileShape['heard']> } | { drop: string };

/** An entry changed since the last write, with what its journal line needs. */
type Dirty = { kind: 'c'; group: string; key: string; entry: RemoteCommit } | { kind: 'e'; key: string; entry: RemoteEnd } | { kind: 'drop'; topic: string };

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
  #stats = { writes: 0, syncs: 0, unchangedSyncs: 0, snapshots: 0, journalBytes: 0 };
  /** Each stored commit's and end's line of the file (see #serialise). */
  #json = new WeakMap<object, string>();
  /** Changes not yet written, in the order they were applied. */
  #dirty: Dirty[] = [];
  /** The journal the snapshot on disk names (0: none), its size, and the snapshot's. */
  #generation = 0;
  #journalBytes = 0;
  #snapshotBytes = 0;
  /** The next write is a snapshot: no journal yet, a restart, or an append that failed. */
  #snapshotNext = true;
  #journalFd: number | undefined;

  constructor(dir: string, logger?: Logger) {
    this.file = path.join(dir, FILE);
    this.#log = logger;
    this.#load();
  }

  /** The journal that continues the snapshot on disk, if any (for tests and operators). */
  get journalFile(): string | undefined {
    return this.#generation > 0 ? path.join(path.dirname(this.file), journalName(this.#generation)) : undefined;
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
      this.#dirty.push({ kind: 'c', group: c.group, key: tp(c.topic, c.partition), entry: commit });
      fresh.push({ ...commit, group: c.group, topic: c.topic, partition: c.partition });
      changed = true;
    }
    for (const e of req.ends) {
      let byRegion = this.#ends.get(tp(e.topic, e.partition));
      if (byRegion === undefined) this.#ends.set(tp(e.topic, e.partition), (byRegion = new Map()));
      const held = byRegion.get(req.senderRegion);
      // The newest report wins even when the end went back (the peer failed back).
      if (held !== undefined && held.sentAt > req.sentAt) continue;
      const end: RemoteEnd = { region: req.senderRegion, topicId: e.topicId, endOffset: e.endOffset, lastTimestamp: e.lastTimestamp, sentAt: req.sentAt, receivedAt: now };
      byRegion.set(req.senderRegion, end);
      this.#dirty.push({ kind: 'e', key: tp(e.topic, e.partition), entry: end });
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

  /**
   * Counters: writes (journal appends and snapshots), syncs applied, syncs that changed
   * nothing (no write), snapshots written, and bytes appended to journals.
   */
  stats(): Readonly<{ writes: number; syncs: number; unchangedSyncs: number; snapshots: number; journalBytes: number }> {
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
    if (!this.#drop(topic)) return;
    this.#dirty.push({ kind: 'drop', topic });
    void this.#persist().catch((err) => this.#log?.warn({ file: this.file, err: (err as Error).message }, 'remote offsets not saved; peers resend them'));
  }

  /** Deletes a topic's commits and ends; whether there were any. */
  #drop(topic: string): boolean {
    let changed = false;
    for (const byTp of this.#commits.values()) for (const k of [...byTp.keys()]) if (k.startsWith(`${topic}\0`)) changed = byTp.delete(k) || changed;
    for (const k of [...this.#ends.keys()]) if (k.startsWith(`${topic}\0`)) changed = this.#ends.delete(k) || changed;
    return changed;
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
        this.#stats.writes++;
        const compact = this.#snapshotNext || (this.#journalBytes >= JOURNAL_MIN_BYTES && this.#journalBytes >= this.#snapshotBytes);
        await (compact ? this.#writeSnapshot() : this.#appendJournal());
        for (const w of batch) w.resolve();
      } catch (err) {
        // The journal may end in a torn line now: the next write starts a new one.
        this.#snapshotNext = true;
        for (const w of batch) w.reject(err);
      }
    }
    this.#writing = false;
  }

  /** Appends what changed since the last write to the journal, and fdatasyncs it. */
  async #appendJournal(): Promise<void> {
    // Taken before the first await: what is applied meanwhile goes with the next write.
    const dirty = this.#dirty.splice(0);
    const lines: string[] = [];
    for (const d of dirty) {
      if (d.kind === 'c') lines.push(`{"c":${this.#commitJson(d.group, d.key, d.entry)}}`);
      else if (d.kind === 'e') lines.push(`{"e":${this.#endJson(d.key, d.entry)}}`);
      else lines.push(JSON.stringify({ drop: d.topic } satisfies JournalLine));
    }
    if (this.#heardDirty) lines.push(JSON.stringify({ heard: Object.fromEntries(this.#heard) } satisfies JournalLine));
    this.#heardDirty = false;
    const data = Buffer.from(`${lines.join('\n')}\n`);
    // Written at the size this process gave it (never O_APPEND: Linux ignores the position then).
    this.#journalFd ??= await openAsync(this.journalFile!, fs.constants.O_WRONLY);
    await writevFully(this.#journalFd, [data], this.#journalBytes);
    await fdatasyncAsync(this.#journalFd);
    this.#journalBytes += data.length;
    this.#stats.journalBytes += data.length;
  }

  /**
   * Writes the whole state as a new snapshot naming a new, empty journal, then deletes the
   * journals no snapshot names any more.
   */
  async #writeSnapshot(): Promise<void> {
    const dir = path.dirname(this.file);
    const generation = this.#generation + 1;
    // Taken before the first await, like an append: the snapshot covers everything in it.
    this.#dirty = [];
    this.#heardDirty = false;
    const data = Buffer.from(this.#serialise(generation));
    await this.#closeJournal();
    const journal = path.join(dir, journalName(generation));
    await closeAsync(await openAsync(journal, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o644));
    const tmp = `${this.file}.tmp`;
    await writeFileDurable(tmp, data);
    await fs.promises.rename(tmp, this.file);
    // Makes both the rename and the new journal's directory entry durable.
    await fsyncDir(dir);
    this.#generation = generation;
    this.#journalBytes = 0;
    this.#snapshotBytes = data.length;
    this.#snapshotNext = false;
    this.#stats.snapshots++;
    for (const name of await fs.promises.readdir(dir)) {
      const m = JOURNAL_FILE.exec(name);
      if (m !== null && Number(m[1]) !== generation) await fs.promises.rm(path.join(dir, name), { force: true });
    }
  }

  async #closeJournal(): Promise<void> {
    const fd = this.#journalFd;
    this.#journalFd = undefined;
    if (fd !== undefined) await closeAsync(fd);
  }

  /**
   * Waits for writes under way, and writes the heard times if they changed since (shutdown);
   * then closes the journal (a later write opens it again).
   */
  async flush(): Promise<void> {
    if (this.#writing || this.#heardDirty) await this.#persist().catch(() => {});
    if (!this.#writing) await this.#closeJournal().catch(() => {});
  }

  #serialise(generation: number): string {
    // Each entry's JSON is made once: stored commits and ends are replaced, never changed, so
    // a write re-encodes only what changed since the last one. Re-encoding every entry on every
    // write (a group over 10,000 partitions, its vectors, every partition's end) was 5-9% of
    // each broker's CPU in bench:scale's lag run, where syncs arrive every 200 ms.
    const commits: string[] = [];
    for (const [group, byTp] of this.#commits) {
      for (const [k, byRegion] of byTp) {
        for (const c of byRegion.values()) commits.push(this.#commitJson(group, k, c));
      }
    }
    const ends: string[] = [];
    for (const [k, byRegion] of this.#ends) {
      for (const e of byRegion.values()) ends.push(this.#endJson(k, e));
    }
    return `{"version":1,"commits":[${commits.join(',')}],"ends":[${ends.join(',')}],"heard":${JSON.stringify(Object.fromEntries(this.#heard))},"journal":${generation}}\n`;
  }

  /** A commit as the snapshot and the journal write it (`key`: topic\0partition). */
  #commitJson(group: string, key: string, c: RemoteCommit): string {
    return this.#jsonOf(c, (): FileShape['commits'][number] => {
      const [topic, p] = key.split('\0');
      return { group, topic, partition: Number(p), region: c.region, offset: String(c.offset), commitTimestamp: c.commitTimestamp, receivedAt: c.receivedAt, vector: Object.fromEntries([...c.vector].map(([o, v]) => [o, String(v)])) };
    });
  }

  #endJson(key: string, e: RemoteEnd): string {
    return this.#jsonOf(e, (): FileShape['ends'][number] => {
      const [topic, p] = key.split('\0');
      return { topic, partition: Number(p), region: e.region, topicId: e.topicId, endOffset: String(e.endOffset), lastTimestamp: e.lastTimestamp, sentAt: e.sentAt, receivedAt: e.receivedAt };
    });
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
    for (const c of s.commits) this.#loadCommit(c);
    this.#loadHeard(s.heard ?? {});
    for (const e of s.ends) this.#loadEnd(e);
    if (typeof s.journal === 'number' && Number.isInteger(s.journal) && s.journal > 0) {
      this.#generation = s.journal;
      this.#replay(this.journalFile!);
    }
  }

  /**
   * Applies a journal's lines in order. A line that does not parse ends it: a crash tore the
   * last append, which was never acknowledged. Lines after it would be a defect: logged.
   */
  #replay(file: string): void {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      // Created before the snapshot named it: only a lost file system entry gets here.
      this.#log?.warn({ file, err: (err as Error).message }, 'remote offsets journal unreadable; what it held is resent by peers');
      return;
    }
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (lines[i] === '') continue;
      let line: JournalLine;
      try {
        line = JSON.parse(lines[i]) as JournalLine;
      } catch {
        const rest = lines.slice(i + 1).filter((l) => l !== '').length;
        if (rest > 0) this.#log?.warn({ file, line: i + 1, linesAfter: rest }, 'remote offsets journal has an unreadable line before its end; loaded up to it');
        return;
      }
      if ('c' in line) this.#loadCommit(line.c);
      else if ('e' in line) this.#loadEnd(line.e);
      else if ('heard' in line) this.#loadHeard(line.heard);
      else if ('drop' in line) this.#drop(line.drop);
    }
  }

  #loadCommit(c: FileShape['commits'][number]): void {
    let byTp = this.#commits.get(c.group);
    if (byTp === undefined) this.#commits.set(c.group, (byTp = new Map()));
    let byRegion = byTp.get(tp(c.topic, c.partition));
    if (byRegion === undefined) byTp.set(tp(c.topic, c.partition), (byRegion = new Map()));
    byRegion.set(c.region, { region: c.region, offset: BigInt(c.offset), commitTimestamp: c.commitTimestamp, receivedAt: c.receivedAt, vector: new Map(Object.entries(c.vector).map(([o, v]) => [o, BigInt(v)])) });
  }

  #loadEnd(e: FileShape['ends'][number]): void {
    let byRegion = this.#ends.get(tp(e.topic, e.partition));
    if (byRegion === undefined) this.#ends.set(tp(e.topic, e.partition), (byRegion = new Map()));
    byRegion.set(e.region, { region: e.region, topicId: e.topicId, endOffset: BigInt(e.endOffset), lastTimestamp: e.lastTimestamp, sentAt: e.sentAt, receivedAt: e.receivedAt });
  }

  #loadHeard(heard: NonNullable<FileShape['heard']>): void {
    for (const [region, h] of Object.entries(heard)) if (typeof h?.sentAt === 'number' && typeof h.receivedAt === 'number') this.#heard.set(region, { sentAt: h.sentAt, receivedAt: h.receivedAt });
  }
}
