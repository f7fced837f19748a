/**
 * The log's write helpers (src/storage/fs-util.ts): writevFully (through the I/O pool) and
 * writevFullySync (on the calling thread, for journaled rounds) write every byte at its
 * position, past Linux's 1,024-buffer cap on one writev, and leave the caller's array as it
 * was (the journal reads the same buffers after the segment write). A short write is made
 * real with a file-size limit (prlimit --fsize): the kernel writes up to the limit, and the
 * retry of the rest fails with EFBIG.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { writevFully, writevFullySync } from '../../src/storage/fs-util.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const t = tmpDir();
after(() => t.cleanup());

for (const [name, write] of [
  ['writevFully', writevFully],
  ['writevFullySync', async (fd: number, bufs: Buffer[], pos: number) => writevFullySync(fd, bufs, pos)],
] as const) {
  test(`${name} writes 2,500 buffers of different sizes at a position, byte for byte, without changing the caller's array`, async () => {
    const file = path.join(t.dir, `${name}.bin`);
    const head = crypto.randomBytes(777);
    fs.writeFileSync(file, head);
    const bufs = Array.from({ length: 2500 }, (_, i) => crypto.randomBytes(1 + (i % 97)));
    const before = [...bufs];
    const fd = fs.openSync(file, 'r+');
    try {
      const n = await write(fd, bufs, head.length);
      const expected = Buffer.concat(bufs);
      assert.equal(n, expected.length);
      assert.ok(fs.readFileSync(file).equals(Buffer.concat([head, expected])), 'the file holds the head, then every buffer in order');
      assert.equal(bufs.length, before.length);
      assert.ok(bufs.every((b, i) => b === before[i]), 'the same buffers, in the same places');
    } finally {
      fs.closeSync(fd);
    }
  });
}

test("a short write is retried from where it stopped, and the caller's array stays as it was (a file-size limit: a short write, then EFBIG)", () => {
  const file = path.join(t.dir, 'short.bin');
  const child = path.join(t.dir, 'short-write.mts');
  const helpers = new URL('../../src/storage/fs-util.ts', import.meta.url).pathname;
  fs.writeFileSync(
    child,
    `import fs from 'node:fs';
import { writevFully, writevFullySync } from ${JSON.stringify(helpers)};
const out: Record<string, unknown> = {};
for (const [name, write] of [['sync', async (fd: number, b: Buffer[]) => writevFullySync(fd, b, 0)], ['async', (fd: number, b: Buffer[]) => writevFully(fd, b, 0)]] as const) {
  const bufs = [Buffer.alloc(3000, 1), Buffer.alloc(3000, 2), Buffer.alloc(100, 3)];
  const before = [...bufs];
  const fd = fs.openSync(${JSON.stringify(file)} + name, 'w+');
  let code = 'none';
  await write(fd, bufs).catch((e: NodeJS.ErrnoException) => { code = e.code ?? String(e); });
  fs.closeSync(fd);
  out[name] = { code, size: fs.statSync(${JSON.stringify(file)} + name).size, unchanged: bufs.length === 3 && bufs.every((b, i) => b === before[i] && b.length === before[i].length) };
}
console.log(JSON.stringify(out));
`,
  );
  let stdout: string;
  try {
    stdout = execFileSync('prlimit', ['--fsize=5000', process.execPath, '--import', 'tsx', child], { encoding: 'utf8' });
  } catch (err) {
    throw new Error(`prlimit (util-linux) is needed to make a short write: ${(err as Error).message}`);
  }
  const out = JSON.parse(stdout) as Record<string, { code: string; size: number; unchanged: boolean }>;
  for (const name of ['sync', 'async']) {
    assert.deepEqual(out[name], { code: 'EFBIG', size: 5000, unchanged: true }, `${name}: written up to the limit, the rest refused, the array untouched`);
    const data = fs.readFileSync(file + name);
    assert.ok(data.equals(Buffer.concat([Buffer.alloc(3000, 1), Buffer.alloc(2000, 2)])), `${name}: the bytes before the limit are the buffers' own`);
  }
});
