import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestBudget } from '../../../src/protocol/kafka/request-budget.js';

const KiB = 1024;

describe('RequestBudget', () => {
  it('charges bytes as they arrive and is exhausted at its limit, whatever was announced', () => {
    const b = new RequestBudget(1000);
    b.take(600);
    assert.equal(b.exhausted, false);
    b.take(400);
    assert.equal(b.used, 1000);
    assert.equal(b.exhausted, true);
    // The bytes are already in memory: taking past the limit is recorded, never refused.
    b.take(64 * KiB);
    assert.equal(b.used, 1000 + 64 * KiB);
    b.give(64 * KiB + 1000);
    assert.equal(b.used, 0);
  });

  it('resumes waiters oldest first, one per socket read of room, once bytes come back', () => {
    const b = new RequestBudget(256 * KiB);
    b.take(256 * KiB);
    const resumed: string[] = [];
    for (const name of ['a', 'b', 'c', 'd']) b.wait(() => resumed.push(name));
    assert.equal(b.waiting, 4);
    b.give(100 * KiB);
    assert.deepEqual(resumed, ['a', 'b'], '100 KiB of room: two reads of up to 64 KiB');
    b.give(156 * KiB);
    assert.deepEqual(resumed, ['a', 'b', 'c', 'd']);
    assert.equal(b.waiting, 0);
  });

  it('resumes nobody while the budget is still over its limit', () => {
    const b = new RequestBudget(100);
    b.take(300);
    let resumed = 0;
    b.wait(() => resumed++);
    b.give(150);
    assert.equal(resumed, 0);
    b.give(100);
    assert.equal(resumed, 1);
  });

  it('forgets a waiter whose connection closed', () => {
    const b = new RequestBudget(100);
    b.take(100);
    const resumed: string[] = [];
    const cancel = b.wait(() => resumed.push('closed'));
    b.wait(() => resumed.push('open'));
    cancel();
    b.give(100);
    assert.deepEqual(resumed, ['open']);
  });

  it('refuses to give back more than was charged: that is an accounting bug', () => {
    const b = new RequestBudget(100);
    b.take(10);
    assert.throws(() => b.give(11), RangeError);
    assert.throws(() => new RequestBudget(0), RangeError);
  });
});
