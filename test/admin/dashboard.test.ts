/**
 * The built-in dashboard (GET / on each broker's admin port) in headless Chromium, driven by
 * playwright-core against Debian's `chromium`, as an operator would use it: two regions
 * with admin APIs and a token, us-east replicating one topic to eu-west through a TCP proxy
 * and tiering to a directory store. KafkaJS produces into us-east; the page of us-east asks
 * for the token, then shows both regions, the link with its lag, its lag chart and the
 * topics' local and tiered bytes. Cutting the link makes the page flag eu-west unreachable
 * and the lag figure rise; restoring it clears the problem; a different policy set on eu-west
 * is flagged as a disagreement. The disaster recovery panel shows orders as primary in
 * us-east and as a read-only copy of us-east in eu-west (with eu-west's offset sync to the
 * unreachable us-east down), and goes once eu-west has no policies. Screenshots go to a
 * temporary directory, and also to the directory named by MERIDIAN_SCREENSHOTS
 * (`MERIDIAN_SCREENSHOTS=docs/screenshots` refreshes the README's).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { test } from 'node:test';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { SECRETS } from '../helpers/secrets.js';

const TOKEN = SECRETS.dashboardToken;
const TOPIC = 'orders';
const LOCAL_TOPIC = 'clicks';
const CHROMIUM_CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
const SCREENSHOTS = process.env.MERIDIAN_SCREENSHOTS;

function chromiumPath(): string {
  const found = CHROMIUM_CANDIDATES.find((p) => fs.existsSync(p));
  if (found === undefined) {
    throw new Error(`chromium is not installed (looked for ${CHROMIUM_CANDIDATES.join(', ')}): the dashboard test drives Debian's chromium with playwright-core; install it with \`apt-get install -y chromium\` (scripts/install-tools.sh does)`);
  }
  return found;
}

async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

async function screenshot(page: Page, dir: string, name: string): Promise<string> {
  const file = path.join(dir, name);
  await page.screenshot({ path: file, fullPage: true });
  assert.ok(fs.statSync(file).size > 10_000, `${name} holds a picture`);
  if (SCREENSHOTS) {
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    fs.copyFileSync(file, path.join(SCREENSHOTS, name));
  }
  return file;
}

/** The number of seconds in a lag figure as the page prints it ("lag 2.4 s · 120 behind", "lag 3 min 4 s"). */
function lagSecondsOf(text: string): number {
  const m = /lag (?:(\d+) min )?(\d+(?:\.\d+)?) s/.exec(text);
  assert.ok(m, `a lag figure in "${text}"`);
  return Number(m[1] ?? 0) * 60 + Number(m[2]);
}

async function text(locator: Locator): Promise<string> {
  return (await locator.textContent({ timeout: 5_000 })) ?? '';
}

function steadyProducer(producer: Producer): { stop: () => Promise<void> } {
  let stopped = false;
  const done = (async () => {
    for (let i = 0; !stopped; i++) {
      await producer.send({ topic: TOPIC, messages: Array.from({ length: 10 }, (_, j) => ({ value: `more-${i}-${j}-${'y'.repeat(200)}` })) });
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  done.catch(() => {}); // observed by stop()
  return {
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

async function adminCall(tb: TestBroker, method: string, route: string, body?: unknown): Promise<Response> {
  const a = tb.broker.adminAddress!;
  return fetch(`http://${a.host}:${a.port}${route}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

test('the page, its script and stylesheet are served without the token; the API behind them is not', { timeout: 60_000 }, async (t) => {
  const tb = await startBroker({ region: 'us-east', admin: { port: 0, token: TOKEN } } as BrokerConfigInput);
  t.after(() => tb.cleanup());
  const base = `http://127.0.0.1:${tb.broker.adminPort}`;
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(await page.text(), /<script src="\/dashboard\/app\.js"/);
  const script = await fetch(`${base}/dashboard/app.js`);
  assert.equal(script.status, 200);
  assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
  new vm.Script(await script.text(), { filename: 'dashboard/app.js' }); // a syntax error fails here, naming the line
  const css = await fetch(`${base}/dashboard/style.css`);
  assert.equal(css.status, 200);
  assert.match(css.headers.get('content-type') ?? '', /^text\/css/);
  assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/, 'no inline or remote script runs');
  assert.equal((await fetch(`${base}/v1/regions`)).status, 401, 'the data still needs the token');
  const doc = (await (await fetch(`${base}/openapi.json`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { paths: Record<string, unknown> };
  assert.ok(!('/' in doc.paths) && !('/dashboard/app.js' in doc.paths), 'the page is not part of the API document');
});

test('two regions in headless Chromium: regions, the link with its lag, charts and tiered bytes appear, and follow a cut link and a policy disagreement', { timeout: 240_000 }, async (t) => {
  const policies = [{ name: 'orders-to-eu', topics: TOPIC, topology: 'one-way', source: 'us-east', targets: ['eu-west'] }];
  const replication = (regions: Array<{ name: string; address: string; admin?: string }>) => ({
    regions,
    policies,
    retry: { initialMs: 50, maxMs: 500 },
    requestTimeoutMs: 5000,
  });
  // eu-west holds the same policies as us-east (they agree); nothing leaves it.
  const eu = await startBroker({
    region: 'eu-west',
    topics: { autoCreate: false },
    admin: { port: 0, token: TOKEN },
    replication: replication([{ name: 'us-east', address: '127.0.0.1:1' }, { name: 'eu-west', address: '127.0.0.1:1' }]),
  } as BrokerConfigInput);
  t.after(() => eu.cleanup());
  const proxy = new TcpProxy({ targetPort: eu.port });
  await proxy.start();
  t.after(() => proxy.close());
  const store = tmpDir('meridian-dashboard-store-');
  t.after(store.cleanup);
  const us = await startBroker({
    region: 'us-east',
    topics: { autoCreate: false },
    log: { segmentBytes: 16 * 1024 },
    tiered: { enabled: true, store: { type: 'fs', dir: store.dir }, checkIntervalMs: 100 },
    admin: { port: 0, token: TOKEN },
    replication: replication([
      { name: 'us-east', address: '127.0.0.1:1' },
      { name: 'eu-west', address: `127.0.0.1:${proxy.port}`, admin: `127.0.0.1:${eu.broker.adminPort}` },
    ]),
  } as BrokerConfigInput);
  t.after(() => us.cleanup());

  const kafka = new Kafka({ clientId: 'dashboard-test', brokers: [us.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 50 } });
  const admin = kafka.admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2 }, { topic: LOCAL_TOPIC, numPartitions: 1 }], waitForLeaders: true }), true);
  const producer = kafka.producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  for (let i = 0; i < 4; i++) {
    await producer.send({ topic: TOPIC, messages: Array.from({ length: 50 }, (_, j) => ({ key: `k${j}`, value: `order-${i}-${j}-${'x'.repeat(400)}` })) });
  }
  await producer.send({ topic: LOCAL_TOPIC, messages: Array.from({ length: 40 }, (_, j) => ({ value: `click-${j}-${'z'.repeat(300)}` })) });

  const browser = await launch();
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  const shots = tmpDir('meridian-dashboard-shots-');
  t.after(shots.cleanup);

  // The API needs the token for reads: the page asks for it, and a wrong one is refused.
  await page.goto(`http://127.0.0.1:${us.broker.adminPort}/?refresh=500`);
  const tokenInput = page.getByLabel('Token');
  await tokenInput.waitFor();
  await tokenInput.fill('not-the-token');
  await page.getByRole('button', { name: 'Use token' }).click();
  await page.getByText('The token was refused').waitFor();
  await tokenInput.fill(TOKEN);
  await page.getByRole('button', { name: 'Use token' }).click();

  // Both regions, the link us-east → eu-west with a lag figure, no problems.
  const usNode = page.getByTestId('region-us-east');
  const euNode = page.getByTestId('region-eu-west');
  await usNode.waitFor();
  assert.match(await usNode.textContent() ?? '', /us-east\s*this broker/);
  assert.match(await euNode.textContent() ?? '', /eu-west/);
  assert.equal(await page.getByTestId('this-region').textContent(), 'us-east');
  assert.equal(await page.title(), 'Meridian · us-east');
  const link = page.getByTestId('link-eu-west');
  const linkLag = link.getByTestId('link-lag');
  await waitFor('the link\'s lag figure with nothing behind', async () => /^lag \d+\.\d s · 0 behind$/.test(await text(linkLag)), 60_000, 200, async () => `link label: ${await text(linkLag)}`);
  assert.equal(lagSecondsOf(await linkLag.textContent() ?? ''), 0, 'a live link with nothing behind shows no lag');
  assert.match(await link.getAttribute('data-state') ?? '', /^(running|idle)$/);
  assert.match(await link.getByTestId('link-rate').textContent() ?? '', /\/s · 1 topic$/);
  await page.getByText('No problems').waitFor();

  // The lag chart of the link, and each topic's bytes; orders' sealed segments reach the store.
  const chart = page.getByTestId(`chart-eu-west-${TOPIC}`);
  await chart.locator('polyline').waitFor({ state: 'attached' }); // a flat line (lag 0) has no height, so Playwright calls it hidden
  assert.match(await chart.locator('h3').textContent() ?? '', /us-east → eu-west · orders/);
  const tieredBytes = page.getByTestId(`topic-${TOPIC}`).getByTestId('tiered-bytes');
  await waitFor(`${TOPIC}'s tiered bytes on the page`, async () => /^tiered \d/.test(await text(tieredBytes)) && (await text(tieredBytes)) !== 'tiered 0 B', 60_000, 200, async () => `shown: ${await text(tieredBytes)}`);
  const apiTopics = await (await adminCall(us, 'GET', '/v1/topics')).json() as Array<{ name: string; localBytes: number; tieredBytes: number }>;
  assert.ok(apiTopics.find((x) => x.name === TOPIC)!.tieredBytes > 0);
  assert.match(await page.getByTestId(`topic-${LOCAL_TOPIC}`).textContent() ?? '', /clicks.*local \d+(\.\d)? KiB · tiered/);
  await screenshot(page, shots.dir, 'dashboard.png');

  // Disaster recovery: orders is one-way from us-east, so us-east is its primary and eu-west
  // holds a read-only copy; each page shows its own region's view.
  const usDr = page.getByTestId('dr').getByTestId(`dr-topic-${TOPIC}`);
  await usDr.waitFor();
  assert.equal(await text(usDr.getByTestId('dr-role')), 'primary');
  assert.equal(await text(usDr.getByTestId('dr-primary')), 'us-east');
  assert.equal(await text(usDr.getByTestId('dr-epoch')), '0');
  assert.equal(await text(usDr.getByTestId('dr-phase')), 'policy');
  assert.equal(await page.getByTestId('dr').getByTestId(`dr-topic-${LOCAL_TOPIC}`).count(), 0, 'a topic no policy replicates is not a DR topic');
  assert.equal(await text(page.getByTestId('dr-conflicts')), 'No group conflicts.');
  // Security: this dev-style region serves one PLAINTEXT listener with ACLs off.
  const security = page.getByTestId('security');
  const listener = security.getByTestId('security-listener-PLAINTEXT');
  await listener.waitFor();
  assert.equal(await text(listener.getByTestId('security-protocol')), 'PLAINTEXT');
  assert.equal(await text(security.getByTestId('security-authorization')), 'off (everything allowed)');
  assert.equal(await text(security.getByTestId('security-throttled')), 'No principal throttled by a quota.');
  const euPage = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const euPageErrors: string[] = [];
  euPage.on('pageerror', (err) => euPageErrors.push(err.message));
  await euPage.goto(`http://127.0.0.1:${eu.broker.adminPort}/?refresh=500`);
  await euPage.getByLabel('Token').fill(TOKEN);
  await euPage.getByRole('button', { name: 'Use token' }).click();
  const euDrPanel = euPage.getByTestId('dr');
  const euDr = euDrPanel.getByTestId(`dr-topic-${TOPIC}`);
  await euDr.waitFor();
  assert.equal(await text(euDr.getByTestId('dr-role')), 'read-only copy');
  assert.equal(await text(euDr.getByTestId('dr-primary')), 'us-east');
  assert.equal(await text(euDr.getByTestId('dr-epoch')), '0');
  // eu-west's offset sync to us-east goes to an address that refuses connections.
  const euSync = euDrPanel.getByTestId('dr-sync-us-east');
  await waitFor('eu-west\'s offset sync to us-east shown down with its error', async () => (await text(euSync.getByTestId('dr-connected'))) === 'no' && /connect/.test(await text(euSync.getByTestId('dr-last-error'))), 30_000, 200, async () => `row: ${await text(euSync)}`);
  assert.equal(await text(euSync.getByTestId('dr-last-success')), 'never');

  // Cut the link while us-east keeps producing: eu-west unreachable on top, the lag rises.
  const steady = steadyProducer(producer);
  t.after(() => steady.stop());
  proxy.setRefusing(true);
  const problems = page.getByTestId('problems');
  await problems.getByText('eu-west is unreachable from us-east').waitFor({ timeout: 60_000 });
  await waitFor('the lag figure to rise while the link is cut', async () => {
    const shown = await text(linkLag);
    return lagSecondsOf(shown) >= 2 && !/ 0 behind$/.test(shown);
  }, 60_000, 200, async () => `link label: ${await text(linkLag)}`);
  // The link client reconnects to the refusing proxy between polls, so one refresh may catch
  // it connected for an instant: wait for a refresh that draws the cut, rather than sample one.
  await waitFor('the arrow drawn as a broken link and eu-west as unreachable', async () => (await link.getAttribute('class')) === 'link down' && /unreachable/.test((await euNode.textContent()) ?? ''), 60_000, 200, async () => `arrow class: ${await link.getAttribute('class')}; node: ${await euNode.textContent()}`);
  assert.match(await problems.textContent() ?? '', /Link us-east → eu-west · orders is backing off/);
  assert.match(await chart.getByTestId('chart-lag').textContent() ?? '', /[1-9]/, 'the chart shows the current lag');
  await screenshot(page, shots.dir, 'dashboard-link-cut.png');

  // Restored: the problem goes and the lag falls back once producing stops.
  proxy.setRefusing(false);
  await steady.stop();
  await page.getByText('No problems').waitFor({ timeout: 90_000 });
  await waitFor('the lag figure back to nothing', async () => (await text(linkLag)) === 'lag 0.0 s · 0 behind', 90_000, 200, async () => `link label: ${await text(linkLag)}`);
  assert.equal(await link.getAttribute('class'), 'link');

  // eu-west takes a different policy set: us-east's page flags the disagreement.
  assert.equal((await adminCall(eu, 'PUT', '/v1/replication/policies', { policies: [] })).status, 200);
  await problems.getByText("eu-west's replication policies differ from us-east's").waitFor({ timeout: 30_000 });
  assert.match(await problems.textContent() ?? '', /meridian replication apply FILE/);
  // Without policies eu-west has no DR topics and no offset sync peers: its panel goes.
  await euDrPanel.waitFor({ state: 'hidden', timeout: 30_000 });
  assert.deepEqual(euPageErrors, [], 'eu-west\'s page ran without script errors');

  assert.deepEqual(pageErrors, [], 'the page ran without script errors');
});
