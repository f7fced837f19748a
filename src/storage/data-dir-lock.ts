/**
 * One process owns a data directory. The lock is a file created exclusively (O_EXCL) that
 * names its owner by pid and by the kernel's start time of that pid, so a lock left behind
 * by a killed process is recognised as stale even when the pid has since been reused.
 * Stale locks are taken over by an atomic rename, so two processes racing for a stale lock
 * cannot both win.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, MeridianError } from '../errors.js';

const LOCK_FILE = 'meridian.lock';

interface LockOwner {
  pid: number;
  startTime: string | null;
  hostname?: string;
  acquiredAt?: string;
}

function processStartTime(pid: number): string | null {
  try {
    // Field 22 of /proc/PID/stat; the command name (field 2) may contain spaces, so cut after ')'.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function isAlive(owner: LockOwner): boolean {
  if (!Number.isInteger(owner.pid) || owner.pid <= 0) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const start = processStartTime(owner.pid);
  return owner.startTime === null || start === null || start === owner.startTime;
}

export class DataDirLock {
  readonly file: string;
  #released = false;

  private constructor(file: string) {
    this.file = file;
  }

  /** Takes the lock or throws DATA_DIR_LOCKED naming the directory and the owning pid. */
  static acquire(dataDir: string): DataDirLock {
    fs.mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, LOCK_FILE);
    const me: LockOwner = { pid: process.pid, startTime: processStartTime(process.pid), acquiredAt: new Date().toISOString() };
    const body = JSON.stringify(me) + '\n';
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        fs.writeFileSync(file, body, { flag: 'wx' });
        return new DataDirLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let owner: LockOwner;
      try {
        owner = JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
      } catch {
        owner = { pid: -1, startTime: null }; // half-written by a process that died at once
      }
      if (isAlive(owner)) {
        throw new MeridianError(
          ErrorCode.DataDirLocked,
          `data directory ${path.resolve(dataDir)} is in use by another Meridian process (pid ${owner.pid}); ` +
            'stop it or point this broker at another dataDir',
        );
      }
      // Stale: replace it atomically with our own claim, then check we are the one who won.
      const claim = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(claim, body);
      fs.renameSync(claim, file);
      const now = JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
      if (now.pid === me.pid) return new DataDirLock(file);
    }
    throw new MeridianError(ErrorCode.DataDirLocked, `could not take the lock on ${path.resolve(dataDir)}`);
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    fs.rmSync(this.file, { force: true });
  }
}
