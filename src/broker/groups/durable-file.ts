/**
 * Asynchronous counterparts of storage/fs-util.ts's writeFileAtomicSync and fsyncDirSync:
 * an offset snapshot can be megabytes, and the broker's event loop must keep serving while
 * it is written and fsync'd.
 */
import fs from 'node:fs';
import { promisify } from 'node:util';
import { closeAsync, writevFully } from '../../storage/fs-util.js';

const openAsync = promisify(fs.open);
const fsyncAsync = promisify(fs.fsync);

/** Writes `file` whole and fsyncs it; the caller renames it into place. */
export async function writeFileDurable(file: string, data: Buffer): Promise<void> {
  const fd = await openAsync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o644);
  try {
    await writevFully(fd, [data], 0);
    await fsyncAsync(fd);
  } finally {
    await closeAsync(fd);
  }
}

/** Makes renames and new entries in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await openAsync(dir, fs.constants.O_RDONLY);
  try {
    await fsyncAsync(fd);
  } finally {
    await closeAsync(fd);
  }
}
