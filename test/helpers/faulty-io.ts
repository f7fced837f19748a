/**
 * A LogIo over the real disk calls whose writes (both paths) or fdatasyncs fail with `code`
 * (EIO: a disk going away; ENOSPC: a full disk) while `failing` is set: what the failing-storage
 * and ship-fence tests hand a PartitionLog or a broker (inject.logIo).
 */
import { realIo, type LogIo } from '../../src/storage/fs-util.js';

export function faultyIo(which: 'write' | 'fdatasync', code = 'EIO'): LogIo & { failing: boolean } {
  const fail = () => Object.assign(new Error(`${code}: ${which} failed`), { code, ...(code === 'EIO' ? { errno: -5 } : {}) });
  const io = {
    failing: false,
    writev: async (fd: number, bufs: Buffer[], pos: number) => {
      if (io.failing && which === 'write') throw fail();
      return realIo.writev(fd, bufs, pos);
    },
    // The journal's small rounds are written on the event loop's thread.
    writevSync: (fd: number, bufs: Buffer[], pos: number) => {
      if (io.failing && which === 'write') throw fail();
      return realIo.writevSync!(fd, bufs, pos);
    },
    fdatasync: async (fd: number) => {
      if (io.failing && which === 'fdatasync') throw fail();
      return realIo.fdatasync(fd);
    },
  };
  return io;
}
