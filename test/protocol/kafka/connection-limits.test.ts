import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientAddress, ConnectionLimits, RefusalReason } from '../../../src/protocol/kafka/connection-limits.js';

const roomy = { maxConnections: 1000, maxConnectionsPerIp: 1000, maxConnectionCreationRate: 1000 };

describe('ConnectionLimits', () => {
  it('refuses a client address over its limit while others still connect', () => {
    const limits = new ConnectionLimits({ ...roomy, maxConnectionsPerIp: 2 }, 0);
    assert.equal(limits.admit('10.0.0.1', 0), null);
    assert.equal(limits.admit('10.0.0.1', 0), null);
    assert.equal(limits.admit('10.0.0.1', 0), RefusalReason.MaxConnectionsPerIp);
    assert.equal(limits.admit('10.0.0.2', 0), null);
    limits.release('10.0.0.1');
    assert.equal(limits.admit('10.0.0.1', 0), null);
    assert.equal(limits.open, 3);
  });

  it('refuses every address once the broker-wide limit is reached', () => {
    const limits = new ConnectionLimits({ ...roomy, maxConnections: 3 }, 0);
    for (const ip of ['a', 'b', 'c']) assert.equal(limits.admit(ip, 0), null);
    assert.equal(limits.admit('d', 0), RefusalReason.MaxConnections);
    limits.release('b');
    assert.equal(limits.admit('d', 0), null);
  });

  it('accepts a burst of one second of the creation rate, then refills continuously', () => {
    const limits = new ConnectionLimits({ ...roomy, maxConnectionCreationRate: 10 }, 0);
    for (let i = 0; i < 10; i++) assert.equal(limits.admit(`ip${i}`, 0), null, `burst connection ${i}`);
    assert.equal(limits.admit('late', 0), RefusalReason.CreationRate);
    assert.equal(limits.admit('late', 50), RefusalReason.CreationRate, 'half a token after 50 ms');
    assert.equal(limits.admit('late', 100), null, 'one token after 100 ms');
    assert.equal(limits.admit('late', 100), RefusalReason.CreationRate);
    // A long quiet spell refills the bucket to one second's worth, no more.
    let admitted = 0;
    while (limits.admit('again', 60_000) === null) admitted++;
    assert.equal(admitted, 10);
  });

  it('spends no token on a connection refused for another limit', () => {
    const limits = new ConnectionLimits({ ...roomy, maxConnectionsPerIp: 1, maxConnectionCreationRate: 2 }, 0);
    assert.equal(limits.admit('flood', 0), null);
    for (let i = 0; i < 100; i++) assert.equal(limits.admit('flood', 0), RefusalReason.MaxConnectionsPerIp);
    assert.equal(limits.admit('other', 0), null, 'the flood left the last token');
  });

  it('counts an IPv4 client on a dual-stack listener under its IPv4 address', () => {
    assert.equal(clientAddress('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(clientAddress('127.0.0.1'), '127.0.0.1');
    assert.equal(clientAddress('::1'), '::1');
    assert.equal(clientAddress('2001:db8::ffff:1'), '2001:db8::ffff:1');
  });
});
