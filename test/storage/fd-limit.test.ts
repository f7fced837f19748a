/**
 * The default bound on open segment files (`log.maxOpenFiles: null`) follows the process's
 * open-file limit: 60% of the soft limit, at least 256, at most 1,000,000; 4096 where the
 * limit cannot be read.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MAX_OPEN_FILES, derivedMaxOpenFiles } from '../../src/storage/fd-cache.js';

const limits = (soft: string, hard: string) =>
  [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max cpu time              unlimited            unlimited            seconds   ',
    `Max open files            ${soft.padEnd(20)} ${hard.padEnd(20)} files     `,
    'Max locked memory         8388608              8388608              bytes     ',
  ].join('\n');

test('60% of the soft limit, clamped to [256, 1,000,000]; 4096 when unreadable', () => {
  assert.equal(derivedMaxOpenFiles(limits('20000', '20000')), 12_000);
  assert.equal(derivedMaxOpenFiles(limits('1024', '524288')), 614, 'the soft limit, not the hard one');
  assert.equal(derivedMaxOpenFiles(limits('100', '100')), 256);
  assert.equal(derivedMaxOpenFiles(limits('unlimited', 'unlimited')), 1_000_000);
  assert.equal(derivedMaxOpenFiles(limits('1048576', '1048576')), 629_145);
  assert.equal(derivedMaxOpenFiles('Limit Soft Hard\nMax processes 10 10 processes\n'), DEFAULT_MAX_OPEN_FILES);
  assert.equal(derivedMaxOpenFiles(limits('lots', 'lots')), DEFAULT_MAX_OPEN_FILES);
});

test('a process started under `ulimit -n 1000` derives 600 from its own limit', () => {
  const mod = fileURLToPath(new URL('../../src/storage/fd-cache.ts', import.meta.url));
  const script = `import('${mod}').then((m) => console.log(m.derivedMaxOpenFiles()))`;
  const out = execFileSync('bash', ['-c', `ulimit -n 1000 && exec "${process.execPath}" --import tsx -e "${script}"`], { encoding: 'utf8' });
  assert.equal(out.trim(), '600');
});
