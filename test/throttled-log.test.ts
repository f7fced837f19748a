import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { ThrottledLog } from '../src/throttled-log.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  let now = 0;
  const warn = new ThrottledLog(logger, 10_000, () => now);
  return { lines, warn, at: (ms: number) => (now = ms) };
}

describe('ThrottledLog', () => {
  it('logs the first event of a reason and counts the rest of its interval', () => {
    const { lines, warn, at } = capture();
    for (let i = 0; i < 1000; i++) warn.warn('max-connections', { remote: `10.0.0.1:${i}` }, 'refusing connection');
    warn.warn('idle', { remote: '10.0.0.2:1' }, 'closing idle connection');
    assert.deepEqual(lines.map((l) => [l.reason, l.remote, l.suppressed]), [['max-connections', '10.0.0.1:0', undefined], ['idle', '10.0.0.2:1', undefined]]);
    at(10_000);
    warn.warn('max-connections', { remote: '10.0.0.1:5000' }, 'refusing connection');
    assert.deepEqual(lines.at(-1), { ...lines.at(-1), reason: 'max-connections', remote: '10.0.0.1:5000', suppressed: 999, level: 40 });
  });

  it('reports what a flood left uncounted once its interval passes, and on flush', () => {
    const { lines, warn, at } = capture();
    for (let i = 0; i < 5; i++) warn.warn('idle', { remote: `r${i}` }, 'closing idle connection');
    warn.tick();
    assert.equal(lines.length, 1, 'within the interval: nothing more');
    at(12_000);
    warn.tick();
    assert.equal(lines.length, 2);
    assert.equal(lines[1].suppressed, 4);
    assert.equal(lines[1].remote, 'r4');
    warn.warn('idle', { remote: 'r5' }, 'closing idle connection');
    warn.flush();
    assert.equal(lines.length, 3);
    assert.equal(lines[2].suppressed, 1);
    warn.flush();
    assert.equal(lines.length, 3, 'nothing left to report');
  });
});
