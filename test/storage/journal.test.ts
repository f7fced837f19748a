/**
 * The shared journal of fsync mode (src/storage/journal.ts): appends of many logs made
 * durable in groups, and the start-up replay that writes them back into segment files a
 * crash left short: every record after its log's last barrier, none after a torn one, none
 * into a segment file that is gone. Real files throughout; the lost page cache of a crash is
 * played by cutting the segment files short before the replay.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { LogJournal, replayJournal, type JournalMember } from '../../src/storage/journal.js';
import { realIo } from '../../src/storage/fs-util.js';
import { segmentFileName, LOG_SUFFIX } from '../../src/storage/partition-files.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dirs(): { journal: string; logs: string } {
  const t = tmpDir();
  cleanups.push(t.cleanup);
  return { journal: path.join(t.dir, 'journal'), logs: path.join(t.dir, 'logs') };
}

/** A segment file the test writes as a log would, and can cut short as a crash would. */
class FakeLog implements JournalMember {
  readonly file: string;
  syncs = 0;
  constructor(logs: string, readonly name: string, readonly base = 0n) {
    fs.mkdirSync(path.join(logs, name), { recursive: true });
    this.file = path.join(logs, name, segmentFileName(base, LOG_SUFFIX));
    fs.writeFileSync(this.file, '');
  }
  async syncForJournal(): Promise<void> {
    this.syncs++;
  }
  write(position: number, data: Buffer): void {
    const fd = fs.openSync(this.file, 'r+');
    fs.writeSync(fd, data, 0, data.length, position);
    fs.closeSync(fd);
  }
  contents(): Buffer {
    return fs.readFileSync(this.file);
  }
}

function generationFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith('.journal')).sort();
}

test('appends of many logs are made durable in groups, and a replay writes every one back into files a crash cut short', async () => {
  const d = dirs();
  const journal = await LogJournal.open(d.journal);
  const logs = Array.from({ length: 10 }, (_, i) => new FakeLog(d.logs, `orders-${i}`));
  const expected = logs.map(() => [] as Buffer[]);
  // Five rounds of 10 logs x 5 writes, each round's appends issued together.
  for (let round = 0; round < 5; round++) {
    const acks: Promise<void>[] = [];
    for (let i = 0; i < logs.length; i++) {
      for (let k = 0; k < 5; k++) {
        const data = crypto.randomBytes(100 + ((i * 7 + k * 13 + round) % 900));
        const at = expected[i]!.reduce((n, b) => n + b.length, 0);
        logs[i]!.write(at, data);
        expected[i]!.push(data);
        // A record may be split across buffers, as a write round's batches are.
        acks.push(journal.append(logs[i]!, logs[i]!.name, 0n, at, [data.subarray(0, 50), data.subarray(50)]));
      }
    }
    await Promise.all(acks);
  }
  const stats = journal.stats();
  assert.equal(stats.records, 250);
  assert.ok(stats.groups <= 25, `250 appends in 5 rounds took ${stats.groups} groups (one write and fdatasync each)`);
  await journal.close();
  // The crash: every segment file lost its unsynced tail (here: all of it, or half of it).
  logs.forEach((l, i) => fs.truncateSync(l.file, i % 2 === 0 ? 0 : Math.floor(l.contents().length / 2)));
  const r = await replayJournal(d.journal, d.logs);
  assert.deepEqual({ applied: r.applied, voided: r.voided, missing: r.missing, tornBytes: r.tornBytes }, { applied: 250, voided: 0, missing: 0, tornBytes: 0 });
  logs.forEach((l, i) => assert.ok(l.contents().equals(Buffer.concat(expected[i]!)), `${l.name} is byte-identical after the replay`));
  assert.deepEqual(generationFiles(d.journal), [], 'the replay removes the generations it applied');
});

test('a barrier voids its log\'s earlier records, so a replay never writes back a tail that was truncated', async () => {
  const d = dirs();
  const journal = await LogJournal.open(d.journal);
  const a = new FakeLog(d.logs, 'a-0');
  const b = new FakeLog(d.logs, 'b-0');
  const old = Buffer.alloc(4000, 0x6f);
  a.write(0, old);
  await journal.append(a, 'a-0', 0n, 0, [old]);
  b.write(0, old);
  await journal.append(b, 'b-0', 0n, 0, [old]);
  // Log a truncates to 1000 (having synced its segment), then writes 500 new bytes there.
  await journal.barrier('a-0');
  fs.truncateSync(a.file, 1000);
  const fresh = Buffer.alloc(500, 0x6e);
  a.write(1000, fresh);
  await journal.append(a, 'a-0', 0n, 1000, [fresh]);
  await journal.close();
  fs.truncateSync(a.file, 1000); // the crash loses the new bytes
  fs.truncateSync(b.file, 0);
  const r = await replayJournal(d.journal, d.logs);
  assert.equal(r.voided, 1);
  assert.equal(r.applied, 2);
  assert.ok(a.contents().equals(Buffer.concat([old.subarray(0, 1000), fresh])), 'a holds its first 1000 bytes and the 500 written after the truncation, nothing of the cut tail');
  assert.ok(b.contents().equals(old), 'another log\'s records are not voided');
});

test('a replay stops at a torn record, and skips records whose segment file is gone', async () => {
  const d = dirs();
  const journal = await LogJournal.open(d.journal);
  const kept = new FakeLog(d.logs, 'kept-0');
  const gone = new FakeLog(d.logs, 'gone-0', 500n);
  const first = Buffer.alloc(300, 1);
  const second = Buffer.alloc(300, 2);
  await journal.append(kept, 'kept-0', 0n, 0, [first]);
  await journal.append(gone, 'gone-0', 500n, 0, [first]);
  await journal.append(kept, 'kept-0', 0n, 300, [second]);
  await journal.close();
  // The last record torn: its last 10 bytes never reached the disk.
  const [gen] = generationFiles(d.journal);
  const file = path.join(d.journal, gen!);
  fs.truncateSync(file, fs.statSync(file).size - 10);
  fs.truncateSync(kept.file, 0);
  fs.rmSync(path.join(d.logs, 'gone-0'), { recursive: true });
  const r = await replayJournal(d.journal, d.logs);
  assert.deepEqual({ records: r.records, applied: r.applied, missing: r.missing }, { records: 2, applied: 1, missing: 1 });
  assert.ok(r.tornBytes > 0);
  assert.ok(kept.contents().equals(first), 'everything before the torn record is back, nothing after it');
  assert.equal(fs.existsSync(path.join(d.logs, 'gone-0')), false, 'a replay never creates a segment file');
});

test('a corrupt byte inside a record stops the replay there', async () => {
  const d = dirs();
  const journal = await LogJournal.open(d.journal);
  const log = new FakeLog(d.logs, 'c-0');
  await journal.append(log, 'c-0', 0n, 0, [Buffer.alloc(100, 1)]);
  await journal.append(log, 'c-0', 0n, 100, [Buffer.alloc(100, 2)]);
  await journal.close();
  const [gen] = generationFiles(d.journal);
  const file = path.join(d.journal, gen!);
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 50] ^= 0xff; // inside the second record's data
  fs.writeFileSync(file, bytes);
  const r = await replayJournal(d.journal, d.logs);
  assert.equal(r.applied, 1);
  assert.ok(log.contents().equals(Buffer.alloc(100, 1)));
});

for (const syncFileSystem of [true, false]) {
test(`a full generation rotates: ${syncFileSystem ? 'one syncfs' : 'each of its logs'} syncs the segments, then it is deleted; a replay reads the generation left`, async () => {
  const d = dirs();
  const journal = await LogJournal.open(d.journal, { generationBytes: 2048, syncFileSystem });
  const logs = Array.from({ length: 4 }, (_, i) => new FakeLog(d.logs, `r-${i}`));
  const positions = [0, 0, 0, 0];
  const all = logs.map(() => [] as Buffer[]);
  for (let k = 0; k < 40; k++) {
    const i = k % 4;
    const data = Buffer.alloc(200, k + 1); // never zero: a slot the replay did not write reads as zeros
    logs[i]!.write(positions[i]!, data);
    await journal.append(logs[i]!, logs[i]!.name, 0n, positions[i]!, [data]);
    positions[i]! += 200;
    all[i]!.push(data);
  }
  const stats = journal.stats();
  assert.ok(stats.rotations >= 3, `${stats.rotations} rotations for ~9 KiB in 2 KiB generations`);
  // Retired generations are deleted once their logs synced; the current one stays.
  const deadline = Date.now() + 10_000;
  while (generationFiles(d.journal).length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(generationFiles(d.journal).length, 1, 'only the current generation is left');
  if (!syncFileSystem) for (const l of logs) assert.ok(l.syncs >= 1, `${l.name} was asked to sync before a generation holding its records was deleted`);
  else for (const l of logs) assert.equal(l.syncs, 0, `one syncfs covered ${l.name}`);
  await journal.close();
  // Only the current generation's records come back; the older ones were synced by their logs.
  for (const l of logs) fs.truncateSync(l.file, 0);
  const r = await replayJournal(d.journal, d.logs);
  let replayedSlots = 0;
  for (let i = 0; i < 4; i++) {
    const got = logs[i]!.contents();
    const slots = got.length / 200;
    let seenData = false;
    for (let s = 0; s < slots; s++) {
      const slot = got.subarray(s * 200, (s + 1) * 200);
      if (slot.every((b) => b === 0)) {
        assert.equal(seenData, false, `r-${i}: the replayed records are the newest ones, with no hole after them`);
        continue;
      }
      seenData = true;
      replayedSlots++;
      assert.ok(slot.equals(all[i]![s]!), `r-${i} slot ${s} is what was written there`);
    }
  }
  assert.equal(replayedSlots, r.applied);
  assert.ok(r.applied > 0 && r.applied < 40, `${r.applied} records in the last generation`);
});
}

test('a journal opened after a crash starts a new generation after the ones left, and they all replay', async () => {
  const d = dirs();
  const log = new FakeLog(d.logs, 'g-0');
  const j1 = await LogJournal.open(d.journal);
  await j1.append(log, 'g-0', 0n, 0, [Buffer.alloc(10, 1)]);
  await j1.close();
  const j2 = await LogJournal.open(d.journal);
  await j2.append(log, 'g-0', 0n, 10, [Buffer.alloc(10, 2)]);
  await j2.close();
  assert.equal(generationFiles(d.journal).length, 2);
  const r = await replayJournal(d.journal, d.logs);
  assert.equal(r.generations, 2);
  assert.ok(log.contents().equals(Buffer.concat([Buffer.alloc(10, 1), Buffer.alloc(10, 2)])));
});

test('a group refused for want of space leaves no torn bytes behind: records in the generations after it still replay', async () => {
  const d = dirs();
  // The disk runs out of space halfway through one group's write (part of it reaches the file).
  let failNext = false;
  const io = {
    writev: async (fd: number, bufs: Buffer[], position: number) => {
      if (failNext) {
        failNext = false;
        const all = Buffer.concat(bufs);
        fs.writeSync(fd, all, 0, all.length >> 1, position);
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      }
      return realIo.writev(fd, bufs, position);
    },
    fdatasync: realIo.fdatasync,
  };
  const journal = await LogJournal.open(d.journal, { io, generationBytes: 1000, syncFileSystem: false });
  // A log that cannot sync its segments: no generation retires, so the replay reads them all,
  // as after a crash before they retired.
  const log = new FakeLog(d.logs, 's-0');
  log.syncForJournal = () => Promise.reject(new Error('EIO: the test keeps every generation'));
  const acked: Buffer[] = [];
  let at = 0;
  const put = async (data: Buffer) => {
    log.write(at, data);
    await journal.append(log, 's-0', 0n, at, [data]);
    at += data.length;
    acked.push(data);
  };
  await put(Buffer.alloc(100, 1));
  failNext = true;
  await assert.rejects(journal.append(log, 's-0', 0n, at, [Buffer.alloc(2000, 9)]), /out of space/);
  // Enough small records to fill this generation past the refused group's leftover, and rotate.
  for (let k = 2; k < 30; k++) await put(Buffer.alloc(100, k));
  assert.ok(journal.stats().rotations >= 2);
  await journal.close();
  assert.ok(generationFiles(d.journal).length >= 3, 'every generation is still there');
  fs.truncateSync(log.file, 0);
  const r = await replayJournal(d.journal, d.logs);
  assert.equal(r.tornBytes, 0, 'no generation ends in a torn record');
  assert.equal(r.applied, acked.length);
  assert.ok(log.contents().equals(Buffer.concat(acked)), 'every acknowledged record is back, from every generation');
});

function spareFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith('.spare')).sort();
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('a retired generation\'s file is reused for a later one, written over: a replay after a crash reads the new records and stops at the older ones', async () => {
  const d = dirs();
  const journal = await LogJournal.open(d.journal, { generationBytes: 4096, syncFileSystem: false });
  const old = new FakeLog(d.logs, 'old-0');
  const fresh = new FakeLog(d.logs, 'new-0');
  // Large records of one log until a rotation has reused a retired generation's file.
  let at = 0;
  for (let k = 1; journal.stats().reused < 1; k++) {
    assert.ok(k < 200, 'a retired generation was reused within 200 records of 4 KiB generations');
    const data = Buffer.alloc(1000, k);
    old.write(at, data);
    await journal.append(old, 'old-0', 0n, at, [data]);
    at += data.length;
  }
  // Then records of another log, as large (the same record size, so that where the new
  // records end an older whole record starts: only the generation in its CRC stops a replay
  // there), until the next reused generation holds only those.
  const reusedBefore = journal.stats().reused;
  const acked: Buffer[] = [];
  let inCurrent = 0;
  let pos = 0;
  for (let k = 1; journal.stats().reused <= reusedBefore || inCurrent < 3; k++) {
    assert.ok(k < 500, 'the next reused generation came within 500 records');
    const rotations = journal.stats().rotations;
    const data = Buffer.alloc(1000, k);
    fresh.write(pos, data);
    await journal.append(fresh, 'new-0', 0n, pos, [data]);
    acked.push(data);
    pos += data.length;
    inCurrent = journal.stats().rotations === rotations ? inCurrent + 1 : 1;
  }
  const current = journal.stats().generation;
  await until('the older generations to retire', () => generationFiles(d.journal).length === 1);
  const [file] = generationFiles(d.journal);
  assert.equal(file, `${String(current).padStart(20, '0')}.journal`);
  assert.ok(fs.statSync(path.join(d.journal, file!)).size > journal.stats().generationBytes + 1000, 'the current generation was written over an older one\'s file, which still holds its records past the new ones');
  assert.ok(spareFiles(d.journal).length >= 1 && spareFiles(d.journal).length <= 2, `retired generations are kept as spares (at most 2): ${spareFiles(d.journal).join(', ')}`);
  // The crash image: the journal's files as they are, the segments' unsynced tails lost.
  const image = path.join(path.dirname(d.journal), 'image');
  fs.cpSync(d.journal, image, { recursive: true });
  const zs = Buffer.alloc(at, 0x5a);
  old.write(0, zs); // any older record written back would show here
  fs.truncateSync(fresh.file, 0);
  const r = await replayJournal(image, d.logs, { syncFileSystem: false });
  assert.equal(r.applied, inCurrent, 'exactly the records of the current generation are written back');
  assert.equal(r.missing, 0);
  assert.ok(r.tornBytes > 1000, `the older records past them are not read (${r.tornBytes} bytes)`);
  assert.ok(old.contents().equals(zs), 'no older generation\'s record of old-0 was written back');
  const got = fresh.contents();
  const firstReplayed = acked.length - inCurrent;
  assert.equal(got.length, pos);
  for (let i = 0; i < acked.length; i++) {
    const slot = got.subarray(i * 1000, (i + 1) * 1000);
    if (i < firstReplayed) assert.ok(slot.every((b) => b === 0), `record ${i} was synced by its log before its generation retired, not replayed`);
    else assert.ok(slot.equals(acked[i]!), `record ${i} is back byte for byte`);
  }
  // A clean close cuts the older records off the current generation; a new journal in the
  // same directory (after the start-up replay removed the generations) numbers its
  // generation past every file there, so no record a spare holds can check in it, and takes a spare.
  await journal.close();
  assert.equal(fs.statSync(path.join(d.journal, file!)).size, journal.stats().generationBytes, 'close cut the reused file to its last record');
  assert.deepEqual(await replayJournal(d.journal, d.logs, { syncFileSystem: false }).then((x) => x.tornBytes), 0);
  const spares = spareFiles(d.journal).map((n) => Number(n.slice(0, 20)));
  const next = await LogJournal.open(d.journal, { syncFileSystem: false });
  assert.ok(next.stats().generation > Math.max(...spares), `generation ${next.stats().generation} comes after every spare (${spares.join(', ')})`);
  assert.equal(spareFiles(d.journal).length, spares.length - 1, 'the new generation reused a spare');
  await next.close();
});

test('a generation written before records carried their generation in the CRC still replays', async () => {
  const d = dirs();
  const log = new FakeLog(d.logs, 'legacy-0');
  fs.mkdirSync(d.journal, { recursive: true });
  // The earlier format, built by hand: length | crc32c (unseeded) | kind | log | base | position | data.
  const records: Buffer[] = [];
  const datas = [Buffer.alloc(300, 1), Buffer.alloc(200, 2)];
  let position = 0;
  for (const data of datas) {
    const name = Buffer.from('legacy-0');
    const body = Buffer.alloc(1 + 2 + name.length + 16 + data.length);
    body.writeUInt8(1, 0);
    body.writeUInt16BE(name.length, 1);
    name.copy(body, 3);
    body.writeBigInt64BE(0n, 3 + name.length);
    body.writeBigInt64BE(BigInt(position), 11 + name.length);
    data.copy(body, 19 + name.length);
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.writeUInt32BE(crc32c(body) >>> 0, 4);
    records.push(head, body);
    position += data.length;
  }
  fs.writeFileSync(path.join(d.journal, '00000000000000000007.journal'), Buffer.concat(records));
  const r = await replayJournal(d.journal, d.logs, { syncFileSystem: false });
  assert.deepEqual({ applied: r.applied, tornBytes: r.tornBytes }, { applied: 2, tornBytes: 0 });
  assert.ok(log.contents().equals(Buffer.concat(datas)));
});

test('giving back space on a full disk deletes the spare files first', async () => {
  const d = dirs();
  const journal = await LogJournal.open(d.journal, { generationBytes: 2048, syncFileSystem: false });
  const log = new FakeLog(d.logs, 'sp-0');
  for (let k = 0; spareFiles(d.journal).length === 0; k++) {
    assert.ok(k < 100, 'a retired generation became a spare within 100 records');
    await journal.append(log, 'sp-0', 0n, k * 500, [Buffer.alloc(500, k + 1)]);
  }
  journal.giveBackSpace();
  await until('the checkpoint', () => journal.stats().checkpoints === 1);
  assert.deepEqual(spareFiles(d.journal), [], 'no spare file is left');
  await journal.close();
});

test('after a restart the journal starts in a spare: a log out of space gets the older records it holds back (and any other spare), before any write', async () => {
  const d = dirs();
  const j1 = await LogJournal.open(d.journal, { generationBytes: 2048, syncFileSystem: false });
  const log = new FakeLog(d.logs, 'rs-0');
  for (let k = 0; spareFiles(d.journal).length < 1; k++) {
    assert.ok(k < 300, 'a spare within 300 records');
    await j1.append(log, 'rs-0', 0n, k * 500, [Buffer.alloc(500, k + 1)]);
  }
  await j1.close();
  await replayJournal(d.journal, d.logs, { syncFileSystem: false });
  const spares = spareFiles(d.journal).length;
  const j2 = await LogJournal.open(d.journal, { syncFileSystem: false });
  const [current] = generationFiles(d.journal);
  assert.equal(spareFiles(d.journal).length, spares - 1, 'the new generation took a spare');
  assert.ok(fs.statSync(path.join(d.journal, current!)).size > 0, 'and holds its older records until written over');
  j2.giveBackSpace();
  await until('the checkpoint', () => j2.stats().checkpoints === 1);
  assert.deepEqual(spareFiles(d.journal), []);
  assert.equal(fs.statSync(path.join(d.journal, current!)).size, 0, 'the reused file is cut to nothing');
  await j2.close();
});

/**
 * An io whose writes fail with ENOSPC while `full` is set (after writing half of what they
 * were given), and whose fdatasyncs fail with `syncCode` while `syncFails` is set.
 */
function fillingIo(syncCode = 'EIO'): { io: typeof realIo; full: boolean; syncFails: boolean; refused: number } {
  const state = {
    full: false,
    syncFails: false,
    refused: 0,
    io: {
      ...realIo,
      writev: async (fd: number, bufs: Buffer[], position: number) => {
        if (state.full) {
          state.refused++;
          const all = Buffer.concat(bufs);
          fs.writeSync(fd, all, 0, all.length >> 1, position);
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        }
        return realIo.writev(fd, bufs, position);
      },
      fdatasync: async (fd: number) => {
        if (state.syncFails) throw Object.assign(new Error(`${syncCode}: fdatasync failed`), { code: syncCode });
        return realIo.fdatasync(fd);
      },
    },
  };
  return state;
}

test('a write that runs out of space first gives back the space the journal holds (its logs sync, its file is cut to nothing), then goes through', async () => {
  const d = dirs();
  const disk = fillingIo();
  const journal = await LogJournal.open(d.journal, { io: disk.io, syncFileSystem: false });
  const logs = [new FakeLog(d.logs, 'g-0'), new FakeLog(d.logs, 'g-1')];
  const held = Buffer.alloc(3000, 7);
  for (const l of logs) {
    l.write(0, held);
    await journal.append(l, l.name, 0n, 0, [held]);
  }
  const [file] = generationFiles(d.journal);
  assert.ok(fs.statSync(path.join(d.journal, file!)).size > 6000);
  // The disk is full for one write: the journal gives its 6 KB back, and the retry fits.
  const last = Buffer.alloc(500, 8);
  logs[0]!.write(3000, last);
  disk.full = true;
  const appended = journal.append(logs[0]!, 'g-0', 0n, 3000, [last]);
  await new Promise<void>((r) => setImmediate(r));
  disk.full = false;
  await appended;
  assert.equal(disk.refused, 1);
  assert.deepEqual(logs.map((l) => l.syncs), [1, 1], 'every log that appended synced its segments before the space was given back');
  assert.equal(journal.stats().checkpoints, 1);
  const size = fs.statSync(path.join(d.journal, file!)).size;
  assert.ok(size < 1000, `the generation holds only the retried record (${size} bytes)`);
  await journal.close();
  // A crash: what the logs synced stays, the last record's bytes are lost from the segment.
  fs.truncateSync(logs[0]!.file, 3000);
  const r = await replayJournal(d.journal, d.logs);
  assert.deepEqual({ applied: r.applied, tornBytes: r.tornBytes }, { applied: 1, tornBytes: 0 });
  assert.ok(logs[0]!.contents().equals(Buffer.concat([held, last])));
  assert.ok(logs[1]!.contents().equals(held));
});

test('on a disk that stays full an append is refused with nothing torn left behind, and a log whose records were given back truncates without writing a barrier', async () => {
  const d = dirs();
  const disk = fillingIo();
  const journal = await LogJournal.open(d.journal, { io: disk.io, syncFileSystem: false });
  const a = new FakeLog(d.logs, 'full-0');
  const first = Buffer.alloc(2000, 1);
  a.write(0, first);
  await journal.append(a, 'full-0', 0n, 0, [first]);
  disk.full = true;
  await assert.rejects(journal.append(a, 'full-0', 0n, 2000, [Buffer.alloc(2000, 2)]), /out of space/);
  assert.equal(journal.stats().checkpoints, 1, 'the space was given back once');
  assert.equal(disk.refused, 2, 'the group was tried again after the space was given back, once');
  // Its records were made redundant by the checkpoint: a barrier has nothing to void, and
  // needs no space.
  const records = journal.stats().records;
  await journal.barrier('full-0');
  assert.equal(journal.stats().records, records, 'no barrier written');
  // A log that never appended needs none either.
  await journal.barrier('never-0');
  assert.equal(disk.refused, 2);
  disk.full = false;
  const again = Buffer.alloc(300, 3);
  a.write(2000, again);
  await journal.append(a, 'full-0', 0n, 2000, [again]);
  await journal.barrier('full-0');
  assert.equal(journal.stats().records, records + 2, 'the log appended again: its barrier is written');
  await journal.close();
  const r = await replayJournal(d.journal, d.logs);
  assert.deepEqual({ applied: r.applied, voided: r.voided, tornBytes: r.tornBytes }, { applied: 0, voided: 1, tornBytes: 0 });
});

test('a replay reads a generation a chunk at a time: records across chunk boundaries, one larger than a chunk, more segment files than it keeps open, and a torn last record', async () => {
  const d = dirs();
  const journal = await LogJournal.open(d.journal, { syncFileSystem: false });
  // 200 logs (more than a replay keeps open), ~12 MB of records of uneven sizes (several
  // 4 MiB chunks, so records straddle their boundaries), one of 5 MiB (larger than a chunk).
  const logs = Array.from({ length: 200 }, (_, i) => new FakeLog(d.logs, `wide-${i}`));
  const written = logs.map(() => 0);
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const acks: Promise<void>[] = [];
  const put = (i: number, data: Buffer) => {
    logs[i]!.write(written[i]!, data);
    acks.push(journal.append(logs[i]!, logs[i]!.name, 0n, written[i]!, [data]));
    written[i]! += data.length;
  };
  for (let k = 0; k < 600; k++) put(k % 200, crypto.randomBytes(1 + Math.floor(rand() * 40_000)));
  put(3, crypto.randomBytes(5 * 1024 * 1024));
  for (let k = 0; k < 10; k++) put(k, crypto.randomBytes(1000 + k));
  await Promise.all(acks);
  await journal.close();
  const expected = logs.map((l) => l.contents());
  // The crash: every segment file lost everything; the journal's last record is torn.
  for (const l of logs) fs.truncateSync(l.file, 0);
  const [file] = generationFiles(d.journal);
  const full = path.join(d.journal, file!);
  fs.truncateSync(full, fs.statSync(full).size - 500);
  // Each file written back synced on its own (as when syncfs cannot run).
  const r = await replayJournal(d.journal, d.logs, { syncFileSystem: false });
  assert.equal(r.applied, 610, 'every record but the torn one');
  assert.ok(r.tornBytes > 0 && r.tornBytes < 1100, `only the last record is torn (${r.tornBytes} bytes)`);
  logs.forEach((l, i) => {
    // Log 9's last record (1009 bytes) was the torn one.
    const want = i === 9 ? expected[i]!.subarray(0, expected[i]!.length - 1009) : expected[i]!;
    assert.ok(l.contents().equals(want), `${l.name} is byte-identical after the replay`);
  });
});

test('the journal takes a round only while several logs write at once (minSharingLogs within the window or the one before)', async () => {
  const d = dirs();
  const journal = await LogJournal.open(d.journal, { minSharingLogs: 3 });
  // One log writing alone, however often: never.
  for (let t = 0; t < 100; t += 1) assert.equal(journal.sharing('solo', t), false);
  // Three logs within one window: yes, for each of them.
  assert.equal(journal.sharing('b', 100), false);
  assert.equal(journal.sharing('c', 105), false);
  assert.equal(journal.sharing('solo', 107), true);
  assert.equal(journal.sharing('b', 109), true);
  // The next window still counts the last one's three...
  assert.equal(journal.sharing('solo', 112), true);
  // ...but not after a quiet window.
  assert.equal(journal.sharing('solo', 140), false);
  await journal.close();
  const always = await LogJournal.open(dirs().journal, { minSharingLogs: 1 });
  assert.equal(always.sharing('solo', 0), true);
  await always.close();
});

test('a refused group whose cut cannot be made durable (its fdatasync fails, even with ENOSPC) takes the journal offline instead of refusing it as retriable', async () => {
  const d = dirs();
  const disk = fillingIo('ENOSPC');
  const journal = await LogJournal.open(d.journal, { io: disk.io, syncFileSystem: false });
  const a = new FakeLog(d.logs, 'cutsync-0');
  await journal.append(a, 'cutsync-0', 0n, 0, [Buffer.alloc(1000, 1)]);
  disk.full = true;
  disk.syncFails = true;
  await assert.rejects(journal.append(a, 'cutsync-0', 0n, 1000, [Buffer.alloc(1000, 2)]), /offline/);
  disk.full = false;
  disk.syncFails = false;
  await assert.rejects(journal.append(a, 'cutsync-0', 0n, 1000, [Buffer.alloc(10, 3)]), /offline/, 'nothing is written after a cut that may not hold');
  await journal.close();
});

test('a spare deleted by hand is skipped: the next rotation starts its generation in a new file', async () => {
  const d = dirs();
  const journal = await LogJournal.open(d.journal, { generationBytes: 2048, syncFileSystem: false });
  const log = new FakeLog(d.logs, 'gone-spare-0');
  let k = 0;
  const put = () => journal.append(log, 'gone-spare-0', 0n, k * 500, [Buffer.alloc(500, ++k)]);
  while (spareFiles(d.journal).length === 0) {
    assert.ok(k < 100, 'a spare within 100 records');
    await put();
  }
  for (const s of spareFiles(d.journal)) fs.rmSync(path.join(d.journal, s));
  const rotations = journal.stats().rotations;
  while (journal.stats().rotations < rotations + 2) await put();
  await journal.close();
  assert.equal((await replayJournal(d.journal, d.logs, { syncFileSystem: false })).tornBytes, 0);
});

test('a checkpoint whose fdatasync after the cut fails takes the journal offline: the file no longer matches, so nothing more is written to it', async () => {
  const d = dirs();
  const disk = fillingIo('EIO');
  const journal = await LogJournal.open(d.journal, { io: disk.io, syncFileSystem: false });
  const a = new FakeLog(d.logs, 'cut-0');
  const first = Buffer.alloc(1000, 1);
  a.write(0, first);
  await journal.append(a, 'cut-0', 0n, 0, [first]);
  disk.full = true;
  disk.syncFails = true;
  await assert.rejects(journal.append(a, 'cut-0', 0n, 1000, [Buffer.alloc(1000, 2)]), /out of space|offline/);
  disk.full = false;
  disk.syncFails = false;
  await assert.rejects(journal.append(a, 'cut-0', 0n, 1000, [Buffer.alloc(10, 3)]), /offline/, 'later appends are refused, not written after a hole');
  assert.equal(journal.stats().checkpoints, 0);
  await journal.close();
});
