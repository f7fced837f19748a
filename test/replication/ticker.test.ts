/**
 * The replicator's shared tick (src/replication/ticker.ts): it runs only while someone is
 * subscribed, calls every subscriber at each tick, and stops at the first tick that finds
 * none, so idle workers leave no timer behind.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ticker } from '../../src/replication/ticker.js';
import { waitFor } from '../helpers/wait.js';

test('the shared tick runs only while subscribed, calls each subscriber, and stops once none is left', async () => {
  const ticker = new Ticker(5);
  assert.equal(ticker.running, false, 'no timer before anyone waits');
  const calls = { a: 0, b: 0 };
  const offA = ticker.subscribe(() => calls.a++);
  const offB = ticker.subscribe(() => calls.b++);
  assert.equal(ticker.running, true);
  assert.equal(ticker.waiting, 2);
  await waitFor('both subscribers to be called twice', () => calls.a >= 2 && calls.b >= 2, 5000, 5);
  offA();
  const a = calls.a;
  await waitFor('b to be called again', () => calls.b >= calls.a + 2, 5000, 5);
  assert.equal(calls.a, a, 'an unsubscribed waiter is not called again');
  offB();
  assert.equal(ticker.waiting, 0);
  await waitFor('the interval to stop at the first tick without a subscriber', () => !ticker.running, 5000, 5);
  // And starts again for the next waiter.
  const offC = ticker.subscribe(() => {});
  assert.equal(ticker.running, true);
  offC();
  await waitFor('the interval to stop again', () => !ticker.running, 5000, 5);
});
