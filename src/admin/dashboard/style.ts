/** The dashboard's stylesheet (served as /dashboard/style.css). State colours match the SVG legend. */
export const STYLE_CSS = `
:root {
  --bg: #f5f6f8; --panel: #fff; --ink: #1d232b; --muted: #66707c; --line: #d9dde3;
  --ok: #2e9e5b; --idle: #7f9c8a; --starting: #4a7bd0; --warn: #c98a0b; --error: #d2463c;
  --local: #4a7bd0; --tiered: #9a6fd0;
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); }
header { display: flex; align-items: baseline; gap: 12px; padding: 10px 20px; background: #1d232b; color: #fff; }
header h1 { margin: 0; font-size: 18px; }
header .region-name { font-weight: 600; font-size: 16px; white-space: nowrap; }
header .meta { color: #aab3be; font-size: 12px; }
header .spacer { flex: 1; }
header .status { font-size: 12px; color: #aab3be; white-space: nowrap; }
header .status.down { color: #ff9c94; font-weight: 600; }
header button { font: inherit; font-size: 12px; }
main { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; padding: 14px 20px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 0; }
.panel h2 { margin: 0 0 8px; font-size: 14px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.problems, .token, .wide { grid-column: 1 / -1; }
.problems ul { list-style: none; margin: 0; padding: 0; }
.problems li { padding: 6px 10px; margin: 4px 0; border-left: 4px solid var(--warn); background: #fff8e6; }
.problems li.error { border-color: var(--error); background: #fdeceb; }
.problems li.ok { border-color: var(--ok); background: #eaf6ef; }
.problems li .what { font-weight: 600; }
.token label { display: block; margin: 6px 0; }
.token input { font: inherit; padding: 4px 6px; width: 24em; max-width: 100%; }
.token .error { color: var(--error); font-weight: 600; }
#graph { width: 100%; height: auto; display: block; }
#graph .node rect { fill: #fff; stroke: #1d232b; stroke-width: 1.5; }
#graph .node.self rect { fill: #1d232b; }
#graph .node.self text { fill: #fff; }
#graph .node.unreachable rect { stroke: var(--error); stroke-dasharray: 5 4; }
#graph .node .name { font-weight: 600; font-size: 15px; }
#graph .node .sub { font-size: 12px; fill: var(--muted); }
#graph .node.self .sub { fill: #aab3be; }
#graph .link line { stroke-width: 3; }
#graph .link.down line { stroke-dasharray: 8 6; }
#graph .link text { font-size: 13px; paint-order: stroke; stroke: #fff; stroke-width: 4px; }
#graph .link .lag { font-weight: 600; }
.s-running { stroke: var(--ok); fill: var(--ok); }
.s-idle { stroke: var(--idle); fill: var(--idle); }
.s-starting { stroke: var(--starting); fill: var(--starting); }
.s-backing-off { stroke: var(--warn); fill: var(--warn); }
.s-error { stroke: var(--error); fill: var(--error); }
#graph .link text.s-running, #graph .link text.s-idle { fill: #1d6b3d; }
.note { color: var(--muted); font-size: 12px; margin: 4px 0 0; }
.charts { display: grid; grid-template-columns: 1fr; gap: 10px; }
.chart h3 { margin: 0; font-size: 13px; }
.chart .now { font-size: 12px; color: var(--muted); }
.chart .now b { color: var(--ink); }
.chart svg { width: 100%; height: auto; display: block; }
.chart .axis { stroke: var(--line); stroke-width: 1; }
.chart .tick { font-size: 10px; fill: var(--muted); }
.chart polyline { fill: none; stroke-width: 2; }
.empty { color: var(--muted); font-style: italic; }
.topic { display: grid; grid-template-columns: 14em 1fr 16em; gap: 8px; align-items: center; margin: 4px 0; }
.topic .name { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.topic .bar { display: flex; height: 14px; background: #eef0f3; border-radius: 3px; overflow: hidden; }
.topic .bar .local { background: var(--local); }
.topic .bar .tiered { background: var(--tiered); }
.topic .figures { font-size: 12px; color: var(--muted); font-variant-numeric: tabular-nums; }
.legend { font-size: 12px; color: var(--muted); margin-top: 6px; }
.legend .sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 4px 0 10px; vertical-align: -1px; }
.legend .sw.local { background: var(--local); }
.legend .sw.tiered { background: var(--tiered); }
.security-table { width: 100%; border-collapse: collapse; margin: 0 0 10px; font-size: 13px; }
.security-table th { text-align: left; font-weight: 600; color: var(--muted); border-bottom: 1px solid var(--line); padding: 3px 8px 3px 0; }
.security-table td { padding: 3px 8px 3px 0; border-bottom: 1px solid #eef0f3; vertical-align: top; }
.dr-table { width: 100%; border-collapse: collapse; margin: 0 0 10px; font-size: 13px; }
.dr-table th { text-align: left; font-weight: 600; color: var(--muted); border-bottom: 1px solid var(--line); padding: 3px 8px 3px 0; }
.dr-table td { padding: 3px 8px 3px 0; border-bottom: 1px solid #eef0f3; vertical-align: top; }
.dr-table .name { font-weight: 600; }
.dr-table .num { font-variant-numeric: tabular-nums; }
.dr-table tr.copy .role { color: var(--starting); }
.dr-table tr.primary .role { color: #1d6b3d; font-weight: 600; }
.dr-table .busy, .dr-table .down { color: var(--warn); font-weight: 600; }
.dr-table .up { color: #1d6b3d; }
.dr-table .error-text { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
#dr h3 { margin: 6px 0 4px; font-size: 13px; }
.dr-conflicts { margin: 0; padding-left: 18px; }
.dr-report { border-top: 1px solid var(--line); margin-top: 8px; }
.dr-report pre { max-height: 320px; overflow: auto; background: #f5f6f8; padding: 8px; font-size: 12px; }
footer { padding: 0 20px 16px; color: var(--muted); font-size: 12px; }
@media (max-width: 900px) { main { grid-template-columns: 1fr; } }
`;
