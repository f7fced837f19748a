/**
 * The dashboard's HTML shell. Everything it shows is drawn by the script (client-*.ts) from
 * the JSON of this broker's /v1 routes; the shell holds no data, so it is served without the
 * admin token and the script asks for the token when the API answers 401.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Meridian dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/style.css">
</head>
<body>
<header>
  <h1>Meridian</h1>
  <span id="region" class="region-name" data-testid="this-region"></span>
  <span id="meta" class="meta"></span>
  <span class="spacer"></span>
  <span id="status" class="status" role="status" data-testid="poll-status">connecting…</span>
  <button id="forget-token" type="button" hidden>Forget token</button>
</header>
<main>
  <form id="token-form" class="panel token" hidden>
    <h2>Admin token</h2>
    <p id="token-reason">This broker's admin API needs its token (admin.token) for reads.</p>
    <p>It is kept in this tab's session storage only and sent as <code>Authorization: Bearer</code> to this broker.</p>
    <label>Token <input id="token-input" type="password" autocomplete="off" required></label>
    <button type="submit">Use token</button>
  </form>
  <section id="problems" class="panel problems" aria-labelledby="problems-title" data-testid="problems">
    <h2 id="problems-title">Problems</h2>
    <ul id="problem-list"></ul>
  </section>
  <section class="panel" aria-labelledby="graph-title">
    <h2 id="graph-title">Regions and replication links</h2>
    <svg id="graph" data-testid="region-graph" viewBox="0 0 640 270" role="img" aria-label="regions and replication links"></svg>
    <p class="note" id="graph-note"></p>
  </section>
  <section class="panel" aria-labelledby="lag-title">
    <h2 id="lag-title">Replication lag over time</h2>
    <div id="lag-charts" class="charts" data-testid="lag-charts"></div>
  </section>
  <section id="dr" class="panel wide" aria-labelledby="dr-title" data-testid="dr" hidden>
    <h2 id="dr-title">Disaster recovery</h2>
    <div id="dr-body"></div>
    <div id="dr-report" class="dr-report" data-testid="dr-report-view" hidden>
      <h3 id="dr-report-title"></h3>
      <button id="dr-report-close" type="button">Close</button>
      <pre id="dr-report-body"></pre>
    </div>
  </section>
  <section id="security" class="panel wide" aria-labelledby="security-title" data-testid="security">
    <h2 id="security-title">Security</h2>
    <div id="security-body"></div>
  </section>
  <section class="panel wide" aria-labelledby="topics-title">
    <h2 id="topics-title">Topics: local and tiered bytes</h2>
    <div id="topics" data-testid="topics"></div>
  </section>
</main>
<footer id="footer"></footer>
<script src="/dashboard/app.js" defer></script>
</body>
</html>
`;
