/**
 * The dashboard script's live half (browser JavaScript, see client-render.ts for why it is a
 * string): polls this broker's GET /v1/cluster, /v1/regions, /v1/replication/status,
 * /v1/topics, /v1/dr and /v1/security one round after another (never two rounds at once; a slow peer in /v1/regions
 * delays the next round instead of piling up), keeps each link's lag for the last few
 * minutes in the tab, and derives the problems shown on top.
 *
 * Only this broker is asked (same origin, so no CORS): what it knows of its peers comes
 * through its own API. The admin token, when reads need one, is asked on a 401 and kept in
 * sessionStorage (this tab only, gone when it closes); a refused token asks again.
 */
export const CLIENT_APP_JS = String.raw`
const TOKEN_KEY = 'meridian.adminToken';
const WINDOW_MS = 5 * 60 * 1000;
const params = new URLSearchParams(location.search);
// ?refresh=ms overrides the polling period (between 0.25 s and 60 s).
const EVERY_MS = Math.min(60000, Math.max(250, Number(params.get('refresh')) || 1500));
const lagHistory = new Map();
let lastProblems = [];
let timer = null;

class Unauthorized extends Error {}

const $ = (id) => document.getElementById(id);

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const res = await fetch(path, { headers: token ? { authorization: 'Bearer ' + token } : {}, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized(token ? 'The token was refused; enter the admin token of this broker.' : "This broker's admin API needs its token (admin.token) for reads.");
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(path + ' answered HTTP ' + res.status + (body && body.error ? ' ' + body.error.code + ': ' + body.error.message : ''));
  return body;
}

function linkKey(l) {
  return l.remote + '\u0000' + l.policy + '\u0000' + l.topic;
}

function remember(links, now) {
  const seen = new Set();
  for (const l of links) {
    const key = linkKey(l);
    seen.add(key);
    const samples = lagHistory.get(key) || [];
    samples.push({ t: now, lag: l.lagSeconds });
    while (samples.length > 0 && samples[0].t < now - WINDOW_MS) samples.shift();
    lagHistory.set(key, samples);
  }
  for (const key of [...lagHistory.keys()]) if (!seen.has(key)) lagHistory.delete(key);
}

function shortPrint(fp) {
  return fp ? fp.slice(0, 12) : 'unknown';
}

/** Problems first: { level: 'error' | 'warning', what, detail }. */
function problemsOf(d) {
  const self = d.cluster.region;
  const own = (d.regions.find((r) => r.self) || {}).fingerprint;
  const remotes = new Map(d.replication.remotes.map((r) => [r.remote, r]));
  const out = [];
  for (const r of d.regions) {
    if (r.self) continue;
    const remote = remotes.get(r.name);
    if (remote && !remote.connected) {
      out.push({ level: 'error', what: r.name + ' is unreachable from ' + self, detail: 'no connection to ' + remote.address + '; its links retry, and what they have not sent waits in ' + self + '.' });
    }
    if (r.policiesAgree === false) {
      out.push({ level: 'error', what: r.name + "'s replication policies differ from " + self + "'s", detail: 'fingerprint ' + shortPrint(r.fingerprint) + ' there, ' + shortPrint(own) + ' here; apply one set to every region with: meridian replication apply FILE' });
    } else if (r.policiesAgree === null && r.admin !== null) {
      out.push({ level: 'warning', what: "Cannot compare " + r.name + "'s replication policies", detail: r.policyError || 'its admin API did not answer' });
    }
  }
  for (const l of d.replication.links) {
    const name = self + ' → ' + l.remote + ' · ' + l.topic;
    if (l.state === 'error') out.push({ level: 'error', what: 'Link ' + name + ' is in error', detail: l.error || '' });
    else if (l.state === 'backing-off') out.push({ level: 'warning', what: 'Link ' + name + ' is backing off', detail: (l.error || 'retrying') + '; lag ' + formatLag(l.lagSeconds) + ', ' + formatCount(l.backlogRecords) + ' records behind' });
    if (l.quotaDroppedRecords > 0) out.push({ level: 'warning', what: 'Link ' + name + ' dropped ' + formatCount(l.quotaDroppedRecords) + ' records', detail: 'retention deleted them before ' + l.remote + ' got them (backlog quota)' });
  }
  for (const h of d.replication.holds) {
    out.push({ level: 'error', what: 'Partition ' + h.topic + '-' + h.partition + ' is held for ' + h.remote, detail: 'replication to ' + h.remote + ' stopped on a divergence until an operator resolves it: ' + h.file });
  }
  for (const t of d.dr.topics) {
    if (t.phase === 'promoting') out.push({ level: 'warning', what: 'Promote of ' + t.topic + ' is under way or was interrupted', detail: 'meridian dr promote --topic ' + t.topic + ' completes it (epoch ' + t.epoch + ')' });
    if (t.phase === 'failing-back') out.push({ level: 'warning', what: 'Failback of ' + t.topic + ' is under way or was interrupted', detail: 'replication of it is refused until it completes: meridian dr failback --topic ' + t.topic + ' --confirm' });
  }
  for (const c of d.dr.conflicts) {
    out.push({ level: 'warning', what: 'Group ' + c.group + ' is consuming in two regions', detail: c.region + ' committed on ' + c.topic + '-' + c.partition + ' while the group had members in ' + self + '; that commit is not applied here' });
  }
  return out.sort((a, b) => (a.level === b.level ? 0 : a.level === 'error' ? -1 : 1));
}

function renderProblems(problems) {
  const items = problems.map((p) => el('li', { class: p.level, 'data-level': p.level }, [el('span', { class: 'what', text: p.what }), p.detail ? ': ' + p.detail : '']));
  $('problem-list').replaceChildren(...(items.length > 0 ? items : [el('li', { class: 'ok', text: 'No problems: every link is up, no holds, the regions agree on their policies.' })]));
  $('problems-title').textContent = problems.length > 0 ? 'Problems (' + problems.length + ')' : 'Problems';
}

function graphView(d) {
  const remotes = new Map(d.replication.remotes.map((r) => [r.remote, r]));
  const ordered = [...d.regions.filter((r) => r.self), ...d.regions.filter((r) => !r.self)];
  return {
    self: d.cluster.region,
    regions: ordered.map((r) => {
      const remote = remotes.get(r.name);
      const link = r.links.length === 0 ? null : r.links.reduce((a, l) => ({
        state: worstState(a.state, l.state),
        error: a.error || l.error,
        lagSeconds: Math.max(a.lagSeconds, l.lagSeconds),
        backlogRecords: a.backlogRecords + l.backlogRecords,
        bytesPerSecond: a.bytesPerSecond + l.bytesPerSecond,
        topics: a.topics + l.topics,
      }), { state: 'idle', error: null, lagSeconds: 0, backlogRecords: 0, bytesPerSecond: 0, topics: 0 });
      return { name: r.name, self: r.self, admin: r.admin, reachable: r.self ? true : remote ? remote.connected : null, link };
    }),
  };
}

function renderCharts(d, now) {
  const charts = d.replication.links.map((l) => el('div', { class: 'chart', 'data-testid': 'chart-' + l.remote + '-' + l.topic }, [
    el('h3', { text: d.cluster.region + ' → ' + l.remote + ' · ' + l.topic }),
    el('div', { class: 'now' }, [
      'lag ', el('b', { 'data-testid': 'chart-lag', text: formatLag(l.lagSeconds) }),
      ' · ', el('b', { text: formatCount(l.backlogRecords) }), ' records (' + formatBytes(l.backlogBytes) + ') behind · ',
      el('b', { text: formatBytes(l.bytesPerSecond) + '/s' }), ' · ' + l.state + ' · policy ' + l.policy,
    ]),
    drawLagChart(lagHistory.get(linkKey(l)) || [], now, WINDOW_MS, l.state),
  ]));
  $('lag-charts').replaceChildren(...(charts.length > 0 ? charts : [el('p', { class: 'empty', text: 'No replication links from ' + d.cluster.region + '.' })]));
}

function render(d, now) {
  const c = d.cluster;
  document.title = 'Meridian · ' + c.region;
  $('region').textContent = c.region;
  $('meta').textContent = 'cluster ' + c.clusterId + ' · Meridian ' + c.version + ' · Kafka ' + c.kafka.host + ':' + c.kafka.port + (c.tiered.enabled ? ' · tiered to ' + c.tiered.store : '');
  remember(d.replication.links, now);
  lastProblems = problemsOf(d);
  renderProblems(lastProblems);
  drawGraph($('graph'), graphView(d));
  $('graph-note').textContent = 'Arrows are the links from ' + c.region + ' (lag · records behind · throughput), coloured by state. Click a region to open its own dashboard.';
  renderCharts(d, now);
  drawTopics($('topics'), d.topics);
  $('dr').hidden = !drawDr($('dr-body'), d.dr, now, showReport);
  drawSecurity($('security-body'), d.security);
}

/** A saved promote or failback report, fetched with the token (a plain link would lack it). */
async function showReport(id) {
  const box = $('dr-report');
  box.hidden = false;
  $('dr-report-title').textContent = 'Report ' + id;
  $('dr-report-body').textContent = 'loading…';
  try {
    $('dr-report-body').textContent = JSON.stringify(await api('/v1/dr/reports/' + encodeURIComponent(id)), null, 2);
  } catch (err) {
    $('dr-report-body').textContent = String(err && err.message ? err.message : err);
  }
}

function setStatus(text, down) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('down', down);
}

function askToken(reason) {
  $('token-reason').textContent = reason;
  $('token-form').hidden = false;
  $('token-input').focus();
  setStatus('waiting for the admin token', true);
}

let polling = false;
let pollAgain = false;

/** One round; the next is scheduled when it ends, so rounds never overlap. */
async function poll() {
  if (polling) {
    pollAgain = true;
    return;
  }
  polling = true;
  timer = null;
  let waitForToken = false;
  try {
    const [cluster, regions, replication, topics, dr, security] = await Promise.all([api('/v1/cluster'), api('/v1/regions'), api('/v1/replication/status?workers=false'), api('/v1/topics'), api('/v1/dr'), api('/v1/security')]);
    $('token-form').hidden = true;
    render({ cluster, regions, replication, topics, dr, security }, Date.now());
    setStatus('live · updated ' + new Date().toLocaleTimeString('en-GB'), false);
  } catch (err) {
    if (err instanceof Unauthorized) {
      askToken(err.message);
      waitForToken = true; // polling resumes when a token is entered
    } else {
      renderProblems([{ level: 'error', what: "This broker's admin API does not answer", detail: String(err && err.message ? err.message : err) + '; the figures below are from the last answer.' }, ...lastProblems]);
      setStatus('admin API unreachable; retrying', true);
    }
  } finally {
    polling = false;
  }
  $('forget-token').hidden = sessionStorage.getItem(TOKEN_KEY) === null;
  if (pollAgain) {
    pollAgain = false;
    poll();
  } else if (!waitForToken) {
    timer = setTimeout(poll, EVERY_MS);
  }
}

function restart() {
  if (timer !== null) clearTimeout(timer);
  timer = null;
  poll();
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
  $('token-input').value = '';
  restart();
});
$('forget-token').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  restart();
});
$('dr-report-close').addEventListener('click', () => {
  $('dr-report').hidden = true;
});
$('footer').textContent = 'Polls this broker\'s GET /v1/cluster, /v1/regions, /v1/replication/status, /v1/topics, /v1/dr and /v1/security every ' + EVERY_MS / 1000 + ' s; the lag history lives in this tab (last ' + WINDOW_MS / 60000 + ' minutes).';
poll();
`;
