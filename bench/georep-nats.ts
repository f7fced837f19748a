/**
 * bench:georep, baseline half — NATS JetStream mirroring a stream from one server to another
 * across a leafnode, measured on this machine, so Meridian's cross-region replication has a
 * known system to be compared against rather than a number from a vendor's blog.
 *
 *   node --import tsx bench/georep-nats.ts      # both phases once, prints the figures as JSON
 *
 * Two nats-server processes (NATS_SERVER, default /usr/sbin/nats-server): "hub" (JetStream
 * domain hub) owns the stream ORDERS; "leaf" (domain leaf) joins it over a leafnode and holds
 * ORDERS_MIRROR, a mirror of ORDERS. `JetStreamMirror.start` brings both up; then either
 * phase runs on its streams, as often as wanted. Full speed publishes as fast as the hub
 * acknowledges and watches how far the mirror falls behind (every 250 ms: messages acked by
 * the hub before the leaf's stream info was requested, minus the mirror's last sequence) and
 * how long it takes to catch up. Lag publishes at a fixed moderate rate and times each message
 * from the hub's publish acknowledgement to the moment a push consumer (ack none) on the leaf's
 * mirror delivers it to this process. bench:georep starts a fresh pair of servers for each lag
 * trial, as it does Meridian's regions.
 *
 * The publisher is not `js.publish()`: that one is client-bound (~13k msg/s here). Instead it
 * sends plain publishes with a reply subject under one inbox and parses the JetStream acks on a
 * single subscription, with a bounded window of unacknowledged messages — the same protocol,
 * without the per-message request machinery, which reaches the server's ceiling. Each payload
 * carries an 8-byte sequence number so acks and mirror reads can be matched to messages.
 * Both servers, the client and this script share the machine's 2 cores.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { AckPolicy, connect, createInbox, DeliverPolicy, nanos, StorageType, type JetStreamManager, type Msg, type NatsConnection } from 'nats';
import { freePort, percentile } from './harness.js';

const NATS_SERVER = process.env.NATS_SERVER ?? '/usr/sbin/nats-server';
const SUBJECT = 'orders.bench';
const STREAM = 'ORDERS';
const MIRROR = 'ORDERS_MIRROR';
/** Unacknowledged publishes allowed at once; the publisher refills when half have been acked. */
const WINDOW = 4096;
const SAMPLE_MS = 250;

export interface FullSpeedFigures {
  /** Publish rate at the hub at full speed (acked by the hub's JetStream), MB/s and msgs/s */
  produceMBps: number; produceMsgs: number;
  /** Rate at which the mirror on the leaf received those messages during/after the full-speed phase, MB/s (from first publish to the mirror holding the last message) */
  replicationMBps: number;
  /** Whether the mirror kept up: mirror lag (messages behind) at the end of the full-speed publish phase, and max observed lag in messages sampled every 250 ms */
  endLagMessages: number; maxLagMessages: number; catchUpMs: number;
}

export interface LagFigures {
  /** End-to-end lag at a fixed moderate rate: publish acked at hub → message readable from the mirror on the leaf, milliseconds */
  lagP50Ms: number; lagP99Ms: number; lagMaxMs: number; lagSamples: number;
}

/** The server's version as `nats-server --version` gives it, e.g. `v2.9.10`. */
export function natsServerVersion(): string {
  const r = spawnSync(NATS_SERVER, ['--version'], { encoding: 'utf8' });
  if (r.error) throw new Error(`${NATS_SERVER}: ${r.error.message} (bash scripts/install-tools.sh installs it)`);
  return r.stdout.trim().replace(/^nats-server:\s*/, '');
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Server {
  name: string;
  child: ChildProcess;
  /** The last lines nats-server wrote (it logs to stderr), for error messages. */
  tail: () => string;
  exited: () => boolean;
}

function startServer(dir: string, name: string, conf: string): Server {
  const file = path.join(dir, `${name}.conf`);
  fs.writeFileSync(file, conf);
  const child = spawn(NATS_SERVER, ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  let exited = false;
  child.stderr!.on('data', (d) => {
    log = (log + d).slice(-4000);
  });
  child.on('error', (e) => {
    exited = true;
    log += `\nspawn ${NATS_SERVER}: ${e.message}`;
  });
  child.on('exit', (code, signal) => {
    exited = true;
    log += `\n(nats-server exited: ${signal ?? `code ${code}`})`;
  });
  return { name, child, tail: () => log.trim().split('\n').slice(-10).join('\n'), exited: () => exited };
}

/** SIGTERM, then SIGKILL if it has not gone in 5 s. */
async function stopServer(s: Server): Promise<void> {
  if (s.exited() || s.child.exitCode !== null || s.child.signalCode !== null) return;
  const gone = new Promise<void>((r) => s.child.once('exit', () => r()));
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}

async function until<T>(what: string, servers: Server[], timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    for (const s of servers) if (s.exited()) throw new Error(`nats-server ${s.name} exited while waiting for ${what}:\n${s.tail()}`);
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    await sleep(50);
  }
}

/**
 * The fast-path publisher: plain PUBs with reply subject `<inbox>.<seq>`, acks parsed on one
 * `<inbox>.*` subscription. At most WINDOW messages are unacknowledged.
 */
class AckedPublisher {
  readonly #nc: NatsConnection;
  readonly #inbox = createInbox();
  readonly #template: Buffer;
  #outstanding = 0;
  #waiter: (() => void) | undefined;
  #error: Error | undefined;
  acked = 0;
  /** Highest stream sequence the hub has acknowledged. */
  lastStreamSeq = 0;
  onAck: ((seq: number, at: number) => void) | undefined;

  constructor(nc: NatsConnection, messageBytes: number) {
    if (messageBytes < 8) throw new Error('messageBytes must be at least 8 (the sequence number)');
    this.#nc = nc;
    this.#template = Buffer.alloc(messageBytes, 0x6e);
    nc.subscribe(`${this.#inbox}.*`, { callback: (err, m) => this.#ack(err, m) });
  }

  #ack(err: Error | null, m: Msg): void {
    const at = performance.now();
    if (err) return this.#fail(err);
    let ack: { seq?: number; error?: { code: number; description: string } };
    try {
      ack = m.data.length > 0 ? JSON.parse(m.string()) : {};
    } catch {
      return this.#fail(new Error(`unparseable JetStream ack: ${m.string()}`));
    }
    if (ack.error || typeof ack.seq !== 'number') {
      const status = m.headers ? ` (status ${m.headers.code} ${m.headers.description})` : '';
      return this.#fail(new Error(`publish not acknowledged${status}: ${m.string()}`));
    }
    if (ack.seq > this.lastStreamSeq) this.lastStreamSeq = ack.seq;
    this.acked++;
    this.#outstanding--;
    this.onAck?.(Number(m.subject.slice(this.#inbox.length + 1)), at);
    if (this.#waiter && this.#outstanding <= WINDOW / 2) this.#wake();
  }

  #fail(e: Error): void {
    this.#error ??= e;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  #wait(): Promise<void> {
    return new Promise((r) => (this.#waiter = r));
  }

  /** Publishes message `seq`; waits first if the window is full. */
  async publish(seq: number): Promise<void> {
    if (this.#error) throw this.#error;
    if (this.#outstanding >= WINDOW) await this.#wait();
    if (this.#error) throw this.#error;
    const payload = Buffer.from(this.#template);
    payload.writeUInt32BE(Math.floor(seq / 2 ** 32), 0);
    payload.writeUInt32BE(seq >>> 0, 4);
    this.#outstanding++;
    this.#nc.publish(SUBJECT, payload, { reply: `${this.#inbox}.${seq}` });
  }

  /** Waits until every published message has been acknowledged. */
  async drain(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#outstanding > 0) {
      if (this.#error) throw this.#error;
      if (Date.now() > deadline) throw new Error(`${this.#outstanding} publishes still unacknowledged after ${timeoutMs} ms`);
      await sleep(1);
    }
    if (this.#error) throw this.#error;
  }
}

function readSeq(data: Uint8Array): number {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return b.readUInt32BE(0) * 2 ** 32 + b.readUInt32BE(4);
}


/** A hub and a leaf nats-server with ORDERS and its mirror, and a publisher on the hub. */
export class JetStreamMirror {
  readonly #servers: Server[];
  readonly #conns: NatsConnection[];
  readonly #leafNc: NatsConnection;
  readonly #leafJsm: JetStreamManager;
  readonly #pub: AckedPublisher;
  readonly #messageBytes: number;
  readonly #log: (s: string) => void;
  /** The next payload sequence number: they run on across phases. */
  #nextSeq = 0;

  private constructor(servers: Server[], conns: NatsConnection[], leafNc: NatsConnection, leafJsm: JetStreamManager, pub: AckedPublisher, messageBytes: number, log: (s: string) => void) {
    this.#servers = servers;
    this.#conns = conns;
    this.#leafNc = leafNc;
    this.#leafJsm = leafJsm;
    this.#pub = pub;
    this.#messageBytes = messageBytes;
    this.#log = log;
  }

  /** Starts both servers in `dir` (hub/ and leaf/ below it), the stream and its mirror. */
  static async start(opts: { dir: string; messageBytes: number; log?: (s: string) => void }): Promise<JetStreamMirror> {
    const log = opts.log ?? (() => {});
    const [hubPort, hubHttp, leafnodePort, leafPort, leafHttp] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const hubDir = path.join(opts.dir, 'hub');
    const leafDir = path.join(opts.dir, 'leaf');
    fs.mkdirSync(hubDir, { recursive: true });
    fs.mkdirSync(leafDir, { recursive: true });
    const servers: Server[] = [];
    const conns: NatsConnection[] = [];
    try {
      servers.push(
        startServer(
          opts.dir,
          'hub',
          [
            'server_name: hub',
            `listen: 127.0.0.1:${hubPort}`,
            `http: 127.0.0.1:${hubHttp}`,
            `jetstream { store_dir: ${JSON.stringify(hubDir)}, domain: hub, max_file_store: 2GB }`,
            `leafnodes { listen: 127.0.0.1:${leafnodePort} }`,
            '',
          ].join('\n'),
        ),
      );
      servers.push(
        startServer(
          opts.dir,
          'leaf',
          [
            'server_name: leaf',
            `listen: 127.0.0.1:${leafPort}`,
            `http: 127.0.0.1:${leafHttp}`,
            `jetstream { store_dir: ${JSON.stringify(leafDir)}, domain: leaf, max_file_store: 2GB }`,
            `leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:${leafnodePort}" } ] }`,
            '',
          ].join('\n'),
        ),
      );

      await until('the leafnode to connect', servers, 20_000, async () => {
        const res = await fetch(`http://127.0.0.1:${hubHttp}/leafz`);
        const body = (await res.json()) as { leafnodes?: number };
        return body.leafnodes === 1 ? true : undefined;
      });
      log(`hub :${hubPort} and leaf :${leafPort} up, leafnode connected`);

      const hubNc = await connect({ servers: `127.0.0.1:${hubPort}`, name: 'georep-publisher' });
      conns.push(hubNc);
      const leafNc = await connect({ servers: `127.0.0.1:${leafPort}`, name: 'georep-mirror-reader' });
      conns.push(leafNc);
      const hubJsm = await until('JetStream on the hub', servers, 20_000, () => hubNc.jetstreamManager());
      const leafJsm: JetStreamManager = await until('JetStream on the leaf', servers, 20_000, () => leafNc.jetstreamManager());
      await hubJsm.streams.add({ name: STREAM, subjects: ['orders.>'], storage: StorageType.File });
      await until('the mirror to be created', servers, 20_000, () =>
        leafJsm.streams.add({ name: MIRROR, storage: StorageType.File, mirror: { name: STREAM, domain: 'hub' } }),
      );
      return new JetStreamMirror(servers, conns, leafNc, leafJsm, new AckedPublisher(hubNc, opts.messageBytes), opts.messageBytes, log);
    } catch (err) {
      await Promise.all(conns.map((nc) => nc.close().catch(() => {})));
      await Promise.all(servers.map(stopServer));
      throw err;
    }
  }

  async #mirrorSeq(): Promise<number> {
    return (await this.#leafJsm.streams.info(MIRROR)).state.last_seq;
  }

  #checkServers(): void {
    for (const s of this.#servers) if (s.exited()) throw new Error(`nats-server ${s.name} exited during the run:\n${s.tail()}`);
  }

  /** Publishes `total` messages as fast as the hub acknowledges them; the mirror's progress. */
  async fullSpeed(total: number): Promise<FullSpeedFigures> {
    const pub = this.#pub;
    const log = this.#log;
    let maxLag = 0;
    let publishing = true;
    const sampler = (async () => {
      while (publishing) {
        const t = performance.now();
        try {
          const hubSeq = pub.lastStreamSeq;
          const info = await this.#leafJsm.streams.info(MIRROR);
          maxLag = Math.max(maxLag, hubSeq - info.state.last_seq);
        } catch (e) {
          log(`lag sample failed (skipped): ${String(e)}`);
        }
        await sleep(Math.max(0, SAMPLE_MS - (performance.now() - t)));
      }
    })();
    const t0 = performance.now();
    let tPublished: number;
    try {
      for (let i = 0; i < total; i++) await pub.publish(this.#nextSeq++);
      await pub.drain();
      tPublished = performance.now();
    } finally {
      publishing = false;
      await sampler;
    }
    const produceSeconds = (tPublished - t0) / 1000;
    const last = pub.lastStreamSeq;
    const endLag = last - (await this.#mirrorSeq());
    maxLag = Math.max(maxLag, endLag);
    log(`full speed: ${total} messages acked in ${produceSeconds.toFixed(2)} s; mirror ${endLag} behind at the end`);
    let caughtUp = endLag <= 0 ? performance.now() : 0;
    while (caughtUp === 0) {
      this.#checkServers();
      if (performance.now() - tPublished > 120_000) throw new Error('the mirror did not catch up within 120 s');
      await sleep(10);
      if ((await this.#mirrorSeq()) >= last) caughtUp = performance.now();
    }
    const catchUpMs = endLag <= 0 ? 0 : caughtUp - tPublished;
    const bytes = total * this.#messageBytes;
    log(`full speed: mirror complete ${catchUpMs.toFixed(0)} ms after the last ack`);
    return {
      produceMBps: bytes / produceSeconds / 1e6,
      produceMsgs: total / produceSeconds,
      replicationMBps: bytes / ((caughtUp - t0) / 1000) / 1e6,
      endLagMessages: endLag,
      maxLagMessages: maxLag,
      catchUpMs,
    };
  }

  /**
   * Publishes `rate` msgs/s for `seconds` s and times each message from the hub's ack to its
   * delivery from the leaf's mirror; the first second is warm-up.
   */
  async lag(rate: number, seconds: number): Promise<LagFigures> {
    const pub = this.#pub;
    // Earlier dirty pages are written back first, as in the Meridian runs, so that writeback
    // does not land in the middle of the lag measurement.
    spawnSync('sync');
    const count = Math.floor(rate * seconds);
    const base = this.#nextSeq;
    this.#nextSeq += count;
    const ackAt = new Float64Array(count).fill(NaN);
    const readAt = new Float64Array(count).fill(NaN);
    const sentAt = new Float64Array(count).fill(NaN);
    let read = 0;
    pub.onAck = (seq, at) => {
      const i = seq - base;
      if (i >= 0 && i < count) ackAt[i] = at;
    };
    // A push consumer (ack none) on the leaf's mirror, delivering to a plain subscription: the
    // server sends each message as soon as the mirror stores it. (The client's ordered
    // consumers, pull or push, gave the same figures within run-to-run noise.)
    const deliverTo = createInbox();
    const reader = this.#leafNc.subscribe(deliverTo, {
      callback: (err, m) => {
        const at = performance.now();
        if (err || m.data.length < 8) return;
        const i = readSeq(m.data) - base;
        if (i >= 0 && i < count && Number.isNaN(readAt[i])) {
          readAt[i] = at;
          read++;
        }
      },
    });
    await this.#leafJsm.consumers.add(MIRROR, {
      deliver_subject: deliverTo,
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: pub.lastStreamSeq + 1,
      inactive_threshold: nanos(60_000),
    });
    try {
      await sleep(200); // let the consumer settle before the clock starts
      const start = performance.now();
      let sent = 0;
      while (sent < count) {
        const due = Math.min(count, Math.floor(((performance.now() - start) / 1000) * rate));
        while (sent < due) {
          await pub.publish(base + sent);
          sentAt[sent++] = performance.now();
        }
        this.#checkServers();
        await sleep(1);
      }
      await pub.drain();
      const deadline = performance.now() + 60_000;
      while (read < count) {
        this.#checkServers();
        if (performance.now() > deadline) throw new Error(`only ${read} of ${count} messages readable from the mirror after 60 s`);
        await sleep(5);
      }
    } finally {
      reader.unsubscribe();
      pub.onAck = undefined;
    }
    // The first second's messages are warm-up. Lag can come out slightly negative: the ack (hub →
    // publisher connection) and the mirrored copy (hub → leaf → reader connection) race, and
    // whichever socket this process services first is stamped first.
    const warmUp = Math.min(count, Math.floor(rate));
    const sorted = (f: (i: number) => number) => {
      const xs: number[] = [];
      for (let i = warmUp; i < count; i++) xs.push(f(i));
      return xs.sort((a, b) => a - b);
    };
    const lags = sorted((i) => readAt[i] - ackAt[i]);
    const ackRtt = sorted((i) => ackAt[i] - sentAt[i]);
    const sendToRead = sorted((i) => readAt[i] - sentAt[i]);
    const ms = (xs: number[], p: number) => (xs.length ? percentile(xs, p) : NaN);
    const figures: LagFigures = { lagP50Ms: ms(lags, 50), lagP99Ms: ms(lags, 99), lagMaxMs: ms(lags, 100), lagSamples: lags.length };
    this.#log(
      `lag: ${count} messages at ${rate} msg/s; ack→readable p50 ${figures.lagP50Ms.toFixed(2)} ms, p99 ${figures.lagP99Ms.toFixed(2)} ms, ` +
        `min ${ms(lags, 0).toFixed(2)} ms (${lags.filter((l) => l < 0).length} read before their ack was seen); ` +
        `publish→ack p50 ${ms(ackRtt, 50).toFixed(2)} ms, p99 ${ms(ackRtt, 99).toFixed(2)} ms; ` +
        `publish→readable p50 ${ms(sendToRead, 50).toFixed(2)} ms, p99 ${ms(sendToRead, 99).toFixed(2)} ms`,
    );
    return figures;
  }

  async close(): Promise<void> {
    await Promise.all(this.#conns.map((nc) => nc.close().catch(() => {})));
    await Promise.all(this.#servers.map(stopServer));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { benchDir } = await import('./harness.js');
  const dir = benchDir('georep-nats');
  const mirror = await JetStreamMirror.start({ dir, messageBytes: 1024, log: (s) => console.error(`georep-nats: ${s}`) });
  try {
    const full = await mirror.fullSpeed(200_000);
    const lag = await mirror.lag(5000, 10);
    console.log(JSON.stringify({ ...full, ...lag }, null, 2));
  } finally {
    await mirror.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
