/**
 * The dashboard script's drawing half (browser JavaScript, served inside /dashboard/app.js
 * after client-app.ts's declarations are in scope): DOM and SVG builders, number formats, the
 * region graph, the lag charts, the topic bars and the disaster recovery tables. Pure functions of the data they are given;
 * polling, history and problems are client-app.ts.
 *
 * Kept as a string because the broker ships compiled JavaScript only (dist/ has no asset
 * files) and the page must need no build step. The text avoids backquotes and dollar-brace
 * so it can sit in String.raw unchanged; every value reaches the page through textContent
 * or setAttribute, never as markup (topic and region names are user data).
 */
export const CLIENT_RENDER_JS = String.raw`
const SVG_NS = 'http://www.w3.org/2000/svg';
const STATE_RANK = ['idle', 'running', 'starting', 'backing-off', 'error'];

function fill(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') node.textContent = String(v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children || []) if (c !== null && c !== undefined) node.append(c);
  return node;
}
function el(tag, attrs, children) {
  return fill(document.createElement(tag), attrs, children);
}
function svg(tag, attrs, children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 1 : 0)) + ' ' + units[i];
}
function formatLag(seconds) {
  if (seconds < 10) return seconds.toFixed(1) + ' s';
  if (seconds < 120) return Math.round(seconds) + ' s';
  const m = Math.floor(seconds / 60);
  if (m < 120) return m + ' min ' + Math.round(seconds - m * 60) + ' s';
  return (seconds / 3600).toFixed(1) + ' h';
}
function formatCount(n) {
  return Math.round(n).toLocaleString('en-US');
}
function worstState(a, b) {
  return STATE_RANK.indexOf(a) >= STATE_RANK.indexOf(b) ? a : b;
}
/** 1, 2 or 5 times a power of ten, at least v: a chart's top that reads well. */
function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const GRAPH = { w: 640, h: 270, nodeW: 150, nodeH: 58 };

function nodePositions(n) {
  const { w, h } = GRAPH;
  if (n === 1) return [{ x: w / 2, y: h / 2 }];
  if (n === 2) return [{ x: 95, y: h / 2 }, { x: w - 95, y: h / 2 }];
  // This region on the left, the others around an ellipse.
  const out = [];
  for (let i = 0; i < n; i++) {
    const a = Math.PI + (i * 2 * Math.PI) / n;
    out.push({ x: w / 2 + (w / 2 - 110) * Math.cos(a), y: h / 2 + (h / 2 - 45) * Math.sin(a) });
  }
  return out;
}

/** Where the segment from a box's centre towards (dx, dy) leaves the box (with a margin). */
function boxEdge(dx, dy) {
  const hw = GRAPH.nodeW / 2 + 8;
  const hh = GRAPH.nodeH / 2 + 8;
  const s = Math.min(dx === 0 ? Infinity : hw / Math.abs(dx), dy === 0 ? Infinity : hh / Math.abs(dy));
  return { x: dx * s, y: dy * s };
}

/**
 * view: { regions: [{ name, self, admin, reachable (true, false or null: unknown),
 * link: null or { state, lagSeconds, backlogRecords, bytesPerSecond, topics } }] }, this
 * region first. One arrow per remote this region replicates to.
 */
function drawGraph(root, view) {
  const { w, h, nodeW, nodeH } = GRAPH;
  root.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
  const defs = svg('defs', {}, STATE_RANK.map((s) =>
    svg('marker', { id: 'arrow-' + s, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, [
      svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 's-' + s }),
    ])));
  const pos = nodePositions(view.regions.length);
  const links = [];
  const nodes = [];
  view.regions.forEach((r, i) => {
    const p = pos[i];
    if (!r.self && r.link) {
      const from = pos[0];
      const dx = p.x - from.x;
      const dy = p.y - from.y;
      const len = Math.hypot(dx, dy) || 1;
      const a = boxEdge(dx / len, dy / len);
      const x1 = from.x + a.x, y1 = from.y + a.y, x2 = p.x - a.x, y2 = p.y - a.y;
      const mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
      const state = r.link.state;
      const cls = 's-' + state;
      links.push(svg('g', { class: 'link' + (r.reachable === false ? ' down' : ''), 'data-testid': 'link-' + r.name, 'data-state': state }, [
        svg('title', { text: view.self + ' → ' + r.name + ': ' + state + (r.link.error ? ' (' + r.link.error + ')' : '') }),
        svg('line', { x1, y1, x2, y2, class: cls, 'marker-end': 'url(#arrow-' + state + ')' }),
        svg('text', { x: mx, y: my - 26, 'text-anchor': 'middle', class: 'state ' + cls, text: state + (r.reachable === false ? ' · unreachable' : '') }),
        svg('text', { x: mx, y: my - 10, 'text-anchor': 'middle', class: 'lag', 'data-testid': 'link-lag', text: 'lag ' + formatLag(r.link.lagSeconds) + ' · ' + formatCount(r.link.backlogRecords) + ' behind' }),
        svg('text', { x: mx, y: my + 20, 'text-anchor': 'middle', class: 'rate', 'data-testid': 'link-rate', text: formatBytes(r.link.bytesPerSecond) + '/s · ' + r.link.topics + (r.link.topics === 1 ? ' topic' : ' topics') }),
      ]));
    }
    const sub = r.self ? 'this broker' : r.reachable === false ? 'unreachable' : r.link ? 'replicated to' : 'no link from here';
    const box = svg('g', { class: 'node' + (r.self ? ' self' : '') + (r.reachable === false ? ' unreachable' : ''), 'data-testid': 'region-' + r.name }, [
      svg('rect', { x: p.x - nodeW / 2, y: p.y - nodeH / 2, width: nodeW, height: nodeH, rx: 8 }),
      svg('text', { x: p.x, y: p.y - 3, 'text-anchor': 'middle', class: 'name', text: r.name }),
      svg('text', { x: p.x, y: p.y + 16, 'text-anchor': 'middle', class: 'sub', text: sub }),
    ]);
    // A peer's own dashboard, one click away, when the registry names its admin address.
    nodes.push(!r.self && r.admin ? svg('a', { href: 'http://' + r.admin + '/' }, [svg('title', { text: 'open ' + r.name + "'s dashboard" }), box]) : box);
  });
  root.replaceChildren(defs, ...links, ...nodes);
}

/**
 * samples: [{ t, lag }], oldest first, none older than maxWindowMs. The time axis spans the
 * history kept so far (at least a minute), so a freshly opened page shows a line, not a dot.
 */
function drawLagChart(samples, now, maxWindowMs, state) {
  const kept = samples.length > 0 ? now - samples[0].t : 0;
  const windowMs = Math.min(maxWindowMs, Math.max(60000, Math.ceil(kept / 60000) * 60000));
  const W = 360, H = 110, L = 44, R = 8, T = 8, B = 18;
  const top = niceCeil(Math.max(1, ...samples.map((s) => s.lag)));
  const x = (t) => L + ((t - (now - windowMs)) / windowMs) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const points = samples.map((s) => x(s.t).toFixed(1) + ',' + y(s.lag).toFixed(1)).join(' ');
  return svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'lag over the last ' + Math.round(windowMs / 60000) + ' minutes' }, [
    svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
    svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
    svg('line', { class: 'axis', x1: L, y1: y(top / 2), x2: W - R, y2: y(top / 2), 'stroke-dasharray': '2 4' }),
    svg('text', { class: 'tick', x: L - 4, y: T + 8, 'text-anchor': 'end', text: formatLag(top) }),
    svg('text', { class: 'tick', x: L - 4, y: H - B, 'text-anchor': 'end', text: '0 s' }),
    svg('text', { class: 'tick', x: L, y: H - 4, text: '−' + Math.round(windowMs / 60000) + ' min' }),
    svg('text', { class: 'tick', x: W - R, y: H - 4, 'text-anchor': 'end', text: 'now' }),
    samples.length > 0 ? svg('polyline', { class: 's-' + state, points }) : null,
  ]);
}

function formatAge(ms) {
  return ms === null || ms === undefined ? 'never' : formatLag(Math.max(0, ms) / 1000) + ' ago';
}
function formatTime(ms) {
  return ms === null || ms === undefined ? '—' : new Date(ms).toLocaleString('en-GB');
}
function table(cls, head, rows) {
  return el('table', { class: cls }, [
    el('thead', {}, [el('tr', {}, head.map((h) => el('th', { text: h })))]),
    el('tbody', {}, rows),
  ]);
}

/**
 * dr: GET /v1/dr. Each DR topic's role here, the offset sync with each peer and the groups
 * in conflict; onReport(id) shows a saved report (the link also opens the API route).
 * Returns false when there is nothing to show (no DR topic, no peer, no conflict).
 */
function drawDr(root, dr, now, onReport) {
  if (dr.topics.length === 0 && dr.offsetSync.length === 0 && dr.conflicts.length === 0) {
    root.replaceChildren(el('p', { class: 'empty', text: 'No DR topics in ' + dr.region + '.' }));
    return false;
  }
  const topics = dr.topics.length === 0
    ? el('p', { class: 'empty', text: 'No DR topics in ' + dr.region + ' (no one-way or fan-out policy includes it).' })
    : table('dr-table', ['Topic', 'Role here', 'Primary', 'Epoch', 'Phase', 'Since', 'Primary end reported', 'Report'], dr.topics.map((t) => {
      const ages = t.primaryEnds.map((e) => e.ageMs);
      const ends = !t.readOnly ? '—' : ages.length === 0 ? 'never' : formatAge(Math.max(...ages)) + (ages.length < 2 ? '' : ' (oldest of ' + ages.length + ' partitions)');
      const report = t.reportId === null ? '—' : el('a', { href: '/v1/dr/reports/' + encodeURIComponent(t.reportId), 'data-testid': 'dr-report', text: t.reportId });
      if (t.reportId !== null) report.addEventListener('click', (e) => {
        e.preventDefault();
        onReport(t.reportId);
      });
      const busy = t.phase === 'promoting' || t.phase === 'failing-back';
      return el('tr', { 'data-testid': 'dr-topic-' + t.topic, class: t.readOnly ? 'copy' : 'primary' }, [
        el('td', { class: 'name', title: t.topic + ' (policy ' + t.policy + ', ' + t.topology + ')', text: t.topic }),
        el('td', { 'data-testid': 'dr-role', class: 'role', text: t.readOnly ? 'read-only copy' : 'primary' }),
        el('td', { 'data-testid': 'dr-primary', text: t.primary }),
        el('td', { 'data-testid': 'dr-epoch', class: 'num', text: String(t.epoch) }),
        el('td', { 'data-testid': 'dr-phase', class: busy ? 'busy' : null, text: t.phase }),
        el('td', { text: formatTime(t.since) }),
        el('td', { 'data-testid': 'dr-ends', text: ends }),
        el('td', {}, [report]),
      ]);
    }));
  const sync = dr.offsetSync.length === 0
    ? el('p', { class: 'empty', text: 'No offset sync peers.' })
    : table('dr-table', ['Offset sync to', 'Connected', 'Pending commits', 'Last success', 'Syncs / failures', 'Last error'], dr.offsetSync.map((p) =>
      el('tr', { 'data-testid': 'dr-sync-' + p.region }, [
        el('td', { class: 'name', text: p.region }),
        el('td', { 'data-testid': 'dr-connected', class: p.connected ? 'up' : 'down', text: p.connected ? 'yes' : 'no' }),
        el('td', { 'data-testid': 'dr-pending', class: 'num', text: formatCount(p.pendingCommits) }),
        el('td', { 'data-testid': 'dr-last-success', text: p.lastSuccessAt === null ? 'never' : formatAge(now - p.lastSuccessAt) }),
        el('td', { class: 'num', text: formatCount(p.syncs) + ' / ' + formatCount(p.failures) }),
        el('td', { 'data-testid': 'dr-last-error', class: 'error-text', text: p.lastError || '—' }),
      ])));
  const conflicts = dr.conflicts.length === 0
    ? el('p', { class: 'empty', 'data-testid': 'dr-conflicts', text: 'No group conflicts.' })
    : el('ul', { class: 'dr-conflicts', 'data-testid': 'dr-conflicts' }, dr.conflicts.map((c) =>
      el('li', {}, [el('b', { text: c.group }), ' on ' + c.topic + '-' + c.partition + ': ' + c.region + ' committed at ' + formatTime(c.commitTimestamp) + ' while the group had members here (since ' + formatTime(c.activeSince) + '); not applied']),
    ));
  root.replaceChildren(topics, sync, el('h3', { text: 'Group conflicts' }), conflicts);
  return true;
}

/** topics: GET /v1/topics. One stacked bar per topic, scaled to the largest. */
function drawTopics(root, topics) {
  if (topics.length === 0) {
    root.replaceChildren(el('p', { class: 'empty', text: 'No topics yet.' }));
    return;
  }
  const most = Math.max(1, ...topics.map((t) => t.localBytes + t.tieredBytes));
  const rows = topics.map((t) => {
    const local = el('span', { class: 'local' });
    local.style.width = ((100 * t.localBytes) / most).toFixed(2) + '%';
    const tiered = el('span', { class: 'tiered' });
    tiered.style.width = ((100 * t.tieredBytes) / most).toFixed(2) + '%';
    return el('div', { class: 'topic', 'data-testid': 'topic-' + t.name }, [
      el('span', { class: 'name', title: t.name + (t.replicationPolicy ? ' (replicated by ' + t.replicationPolicy + ')' : ''), text: t.name }),
      el('span', { class: 'bar', title: formatBytes(t.localBytes) + ' local, ' + formatBytes(t.tieredBytes) + ' tiered' }, [local, tiered]),
      el('span', { class: 'figures' }, [
        el('span', { 'data-testid': 'local-bytes', text: 'local ' + formatBytes(t.localBytes) }),
        ' · ',
        el('span', { 'data-testid': 'tiered-bytes', text: 'tiered ' + formatBytes(t.tieredBytes) }),
      ]),
    ]);
  });
  const legend = el('div', { class: 'legend' }, [el('span', { class: 'sw local' }), 'on this broker\'s disk', el('span', { class: 'sw tiered' }), 'in the object store']);
  root.replaceChildren(...rows, legend);
}

/** The security panel: listeners, who is connected, authorization, logins, throttled principals. */
function drawSecurity(root, sec) {
  const a = sec.authorization;
  const summary = el('p', { class: 'security-summary', 'data-testid': 'security-summary' }, [
    'ACLs ', el('b', { 'data-testid': 'security-authorization', class: a.enabled ? 'up' : 'down', text: a.enabled ? 'enforced' : 'off (everything allowed)' }),
    ' · ' + formatCount(a.acls) + ' ACLs · ' + formatCount(sec.users) + ' users · superusers ' + (a.superUsers.length === 0 ? 'none' : a.superUsers.join(', ')),
    ' · logins ', el('b', { 'data-testid': 'security-logins-ok', text: formatCount(sec.authentications.succeeded) }), ' ok / ',
    el('b', { 'data-testid': 'security-logins-failed', class: sec.authentications.failed > 0 ? 'busy' : null, text: formatCount(sec.authentications.failed) }), ' failed',
    ' · denials ', el('b', { 'data-testid': 'security-denials', text: formatCount(sec.denials) }),
  ]);
  const listeners = table('security-table', ['Listener', 'Protocol', 'Address', 'Connections', 'Certificate'], sec.listeners.map((l) =>
    el('tr', { 'data-testid': 'security-listener-' + l.name }, [
      el('td', { class: 'name', text: l.name }),
      el('td', { 'data-testid': 'security-protocol', text: l.securityProtocol }),
      el('td', { text: l.host + ':' + l.port }),
      el('td', { class: 'num', text: formatCount(l.connections) }),
      el('td', { text: l.certificateSerial === null ? '—' : 'serial ' + l.certificateSerial }),
    ])));
  const principals = sec.principals.length === 0
    ? el('p', { class: 'empty', text: 'No client connected.' })
    : table('security-table', ['Principal', 'Connections'], sec.principals.map((p) =>
      el('tr', {}, [el('td', { class: 'name', text: p.principal }), el('td', { class: 'num', text: formatCount(p.connections) })])));
  const rate = (v, limit, unit) => (unit === 'bytes' ? formatBytes(v) + '/s' : formatCount(Math.round(v)) + '/s') + (limit === null ? '' : ' of ' + (unit === 'bytes' ? formatBytes(limit) + '/s' : formatCount(limit) + '/s'));
  const throttled = sec.quotas.throttled.length === 0
    ? el('p', { class: 'empty', 'data-testid': 'security-throttled', text: 'No principal throttled by a quota.' })
    : table('security-table', ['Throttled principal', 'Produce', 'Fetch', 'Requests', 'Throttled for'], sec.quotas.throttled.map((q) =>
      el('tr', { 'data-testid': 'security-throttled-' + q.principal }, [
        el('td', { class: 'name', text: q.principal }),
        el('td', { class: 'num', text: rate(q.rates.produce, q.quotas.producerByteRate, 'bytes') }),
        el('td', { class: 'num', text: rate(q.rates.fetch, q.quotas.consumerByteRate, 'bytes') }),
        el('td', { class: 'num', text: rate(q.rates.request, q.quotas.requestRate, 'requests') }),
        el('td', { class: 'num', text: (q.throttleSeconds.produce + q.throttleSeconds.fetch + q.throttleSeconds.request).toFixed(1) + ' s' }),
      ])));
  root.replaceChildren(summary, listeners, principals, throttled);
}
`;
