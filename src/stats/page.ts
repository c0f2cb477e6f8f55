/**
 * The live stats page: one HTML document with its CSS and script inline (no build step), charts
 * drawn by uPlot (served by Myelin from the installed package), values pushed over SSE.
 * Large layout: a projector at 1920×1080, read from across a room (large type, high contrast).
 * Small layout (`?layout=small`): a 480×320 or 320×240 display, numbers first.
 */
export interface StatsPageOptions {
  serverName: string;
  version: string;
  small: boolean;
  intervalMs: number;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const CSS = `
:root { --bg:#000; --fg:#fff; --dim:#b8b8b8; --line:#333; --msg:#ffd60a; --users:#4cc9f0; --fedin:#2ee59d; --fedout:#ff8fab; --rooms:#c77dff; --mem:#f4a261; --up:#2ee59d; --down:#ff4d4d; }
* { box-sizing: border-box; margin: 0; padding: 0; }
html, body { height: 100%; background: var(--bg); color: var(--fg); font-family: "DejaVu Sans", "Liberation Sans", system-ui, sans-serif; overflow: hidden; }
body { display: flex; flex-direction: column; padding: 1.2vh 1.2vw; gap: 1.2vh; }
header { display: flex; align-items: baseline; justify-content: space-between; gap: 2vw; }
header h1 { font-size: 4.2vh; font-weight: 700; letter-spacing: .02em; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
header .meta { font-size: 2.6vh; color: var(--dim); white-space: nowrap; }
#live { display: inline-block; width: 1.6vh; height: 1.6vh; border-radius: 50%; background: var(--down); margin-right: .6vw; vertical-align: middle; }
#live.on { background: var(--up); }
main { flex: 1; display: grid; grid-template-columns: repeat(3, 1fr); grid-template-rows: repeat(2, 1fr); gap: 1.2vh 1.2vw; min-height: 0; }
.tile { border: 2px solid var(--line); border-radius: 1.2vh; padding: 1.2vh 1vw; display: flex; flex-direction: column; min-height: 0; min-width: 0; }
.label { font-size: 2.8vh; color: var(--dim); text-transform: uppercase; letter-spacing: .08em; white-space: nowrap; }
.value { font-size: 9vh; font-weight: 800; line-height: 1.05; font-variant-numeric: tabular-nums; white-space: nowrap; }
.value small { font-size: 4vh; font-weight: 700; color: var(--dim); margin-left: .4vw; }
.sub { font-size: 2.6vh; color: var(--dim); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-variant-numeric: tabular-nums; }
.chart { flex: 1; min-height: 0; margin-top: .6vh; overflow: hidden; position: relative; }
.chart > .uplot, #spark > .uplot { position: absolute; left: 0; top: 0; }
#t-messages .value { color: var(--msg); } #t-users .value { color: var(--users); } #t-rooms .value { color: var(--rooms); } #t-system .value { color: var(--mem); }
.fed { display: flex; gap: 2vw; } .fed .in { color: var(--fedin); } .fed .out { color: var(--fedout); }
#tunnel-state { font-size: 12vh; font-weight: 900; }
#tunnel-state.up { color: var(--up); } #tunnel-state.down { color: var(--down); } #tunnel-state.off { color: var(--dim); }
.u-legend { display: none; }
body.small { padding: 4px; gap: 4px; }
body.small header h1 { font-size: 6.5vh; }
body.small header .meta { font-size: 5vh; }
body.small #live { width: 4vh; height: 4vh; }
body.small main { gap: 4px; }
body.small .tile { border-width: 1px; border-radius: 4px; padding: 2px 4px; justify-content: center; }
body.small .label { font-size: 5.5vh; letter-spacing: 0; text-transform: none; }
.label .short, body.small .label .long, body.small .value small { display: none; }
body.small .label .short { display: inline; }
body.small .fed { font-size: 8vh; gap: 3vw; }
body.small .value { font-size: 11vh; }
body.small .value small { font-size: 6vh; }
body.small .sub { font-size: 4.6vh; }
body.small #tunnel-state { font-size: 11vh; }
body.small .chart { display: none; }
body.small #spark { display: block; height: 22vh; position: relative; overflow: hidden; }
#spark { display: none; }
`;

const SCRIPT = `
(function () {
  var cfg = JSON.parse(document.getElementById('cfg').textContent);
  var small = cfg.small;
  var maxPoints = 300;
  var samples = [];
  var charts = [];
  var fmt = new Intl.NumberFormat('en-US');
  function $(id) { return document.getElementById(id); }
  function set(id, text) { var e = $(id); if (e && e.textContent !== text) e.textContent = text; }
  function n(x) { return fmt.format(Math.round(x)); }
  function rate(x) { return x >= 10 || x === 0 ? n(x) : x.toFixed(1); }
  function plural(x, w) { return n(x) + ' ' + w + (Math.round(x) === 1 ? '' : 's'); }
  function mb(x) { return n(x / 1048576); }
  function dur(s) {
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return d > 0 ? d + 'd ' + h + 'h' : h > 0 ? h + 'h ' + m + 'm' : m + 'm ' + (s % 60) + 's';
  }
  function chart(el, series, scales) {
    if (!window.uPlot || !el) return null;
    var opts = {
      width: Math.max(10, el.clientWidth), height: Math.max(10, el.clientHeight),
      legend: { show: false }, cursor: { show: false }, select: { show: false },
      padding: [12, 12, 12, 0],
      scales: Object.assign({ x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.15 : 1]; } } }, scales || {}),
      axes: [
        { show: false, space: 110, incrs: [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600] },
        { stroke: '#b8b8b8', grid: { stroke: '#222' }, ticks: { stroke: '#333' }, font: '15px sans-serif', size: 64 }
      ],
      series: [{}].concat(series.map(function (s) { return { stroke: s.color, width: 3, fill: s.fill, scale: s.scale || 'y', points: { show: false } }; }))
    };
    opts.axes[1].scale = series[0].scale || 'y';
    if (small) { opts.axes = [{ show: false }, { show: false }]; }
    var u = new uPlot(opts, [[]].concat(series.map(function () { return []; })), el);
    var c = { u: u, el: el, pick: series.map(function (s) { return s.pick; }) };
    charts.push(c);
    // The tile's text fills in after the chart is made: follow the container's size.
    if (window.ResizeObserver) new ResizeObserver(function () { c.u.setSize({ width: Math.max(10, el.clientWidth), height: Math.max(10, el.clientHeight) }); }).observe(el);
    return c;
  }
  function redraw() {
    var xs = samples.map(function (s) { return s.t / 1000; });
    charts.forEach(function (c) {
      var data = [xs].concat(c.pick.map(function (p) { return samples.map(p); }));
      c.u.setData(data);
    });
  }
  function resize() {
    charts.forEach(function (c) { c.u.setSize({ width: Math.max(10, c.el.clientWidth), height: Math.max(10, c.el.clientHeight) }); });
  }
  function show(s) {
    set('v-messagesPerMin', n(s.messagesPerMin));
    set('v-messagesTotal', n(s.messagesTotal) + ' since start');
    set('v-usersOnline', n(s.usersOnline));
    set('v-users', plural(s.users, 'user') + ' · ' + plural(s.devices, 'device'));
    set('v-fedIn', rate(s.fedTxnInPerMin));
    set('v-fedOut', rate(s.fedTxnOutPerMin));
    set('v-fedSub', 'queue ' + n(s.fedQueue) + ' · back-off ' + n(s.fedBackoff));
    set('v-rooms', n(s.rooms));
    set('v-syncWaiting', n(s.syncWaiting) + ' clients syncing');
    set('v-rss', mb(s.rssBytes));
    set('v-cpu', 'CPU ' + s.cpuPercent.toFixed(1) + ' % · heap ' + mb(s.heapBytes) + ' MB');
    var ts = $('tunnel-state');
    var state = !s.tunnelEnabled ? 'off' : s.tunnelUp ? 'up' : 'down';
    ts.className = state;
    set('tunnel-state', state.toUpperCase());
    set('v-tunnelSub', s.tunnelEnabled ? n(s.tunnelReconnects) + ' reconnects' : 'not configured');
    set('v-uptime', 'up ' + dur(s.uptimeSeconds));
    document.body.dataset.samples = String(Number(document.body.dataset.samples || '0') + 1);
  }
  function add(list) {
    list.forEach(function (s) { samples.push(s); });
    if (samples.length > maxPoints) samples.splice(0, samples.length - maxPoints);
    if (samples.length > 0) show(samples[samples.length - 1]);
    redraw();
  }
  var msg = function (s) { return s.messagesPerMin; };
  if (!small) {
    chart($('c-messages'), [{ color: '#ffd60a', fill: 'rgba(255,214,10,.15)', pick: msg }]);
    chart($('c-users'), [{ color: '#4cc9f0', fill: 'rgba(76,201,240,.15)', pick: function (s) { return s.usersOnline; } }]);
    chart($('c-fed'), [
      { color: '#2ee59d', pick: function (s) { return s.fedTxnInPerMin; } },
      { color: '#ff8fab', pick: function (s) { return s.fedTxnOutPerMin; } }
    ]);
    chart($('c-rooms'), [{ color: '#c77dff', pick: function (s) { return s.rooms; } }]);
    chart($('c-system'), [
      { color: '#f4a261', fill: 'rgba(244,162,97,.15)', scale: 'mb', pick: function (s) { return s.rssBytes / 1048576; } },
      { color: '#ffffff', scale: 'cpu', pick: function (s) { return s.cpuPercent; } }
    ], { mb: { auto: true }, cpu: { range: [0, 100] } });
  } else {
    chart($('spark'), [{ color: '#ffd60a', fill: 'rgba(255,214,10,.2)', pick: msg }]);
  }
  window.addEventListener('resize', resize);
  var url = 'stats/events';
  var token = new URLSearchParams(location.search).get('access_token');
  if (token) url += '?access_token=' + encodeURIComponent(token);
  var es = new EventSource(url);
  es.addEventListener('open', function () { $('live').className = 'on'; });
  es.addEventListener('error', function () { $('live').className = ''; });
  es.addEventListener('history', function (e) { samples = []; add(JSON.parse(e.data)); });
  es.addEventListener('sample', function (e) { $('live').className = 'on'; add([JSON.parse(e.data)]); });
})();
`;

/** The HTML of the stats page. */
export function statsPage(o: StatsPageOptions): string {
  const name = escapeHtml(o.serverName);
  const cfg = JSON.stringify({ small: o.small, intervalMs: o.intervalMs }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${name} · Myelin stats</title>
<link rel="stylesheet" href="stats/uPlot.min.css">
<style>${CSS}</style>
</head>
<body class="${o.small ? 'small' : 'large'}">
<header><h1><span id="live"></span>${name}</h1><div class="meta"><span id="v-uptime">…</span> · Myelin ${escapeHtml(o.version)}</div></header>
<main>
  <section class="tile" id="t-messages"><div class="label"><span class="long">Messages / min</span><span class="short">Msgs/min</span></div><div class="value" id="v-messagesPerMin">–</div><div class="sub" id="v-messagesTotal"></div><div class="chart" id="c-messages"></div></section>
  <section class="tile" id="t-users"><div class="label"><span class="long">Users online</span><span class="short">Online</span></div><div class="value" id="v-usersOnline">–</div><div class="sub" id="v-users"></div><div class="chart" id="c-users"></div></section>
  <section class="tile" id="t-fed"><div class="label"><span class="long">Federation txn / min</span><span class="short">Fed/min</span></div><div class="value fed"><span class="in">↓<span id="v-fedIn">–</span></span><span class="out">↑<span id="v-fedOut">–</span></span></div><div class="sub" id="v-fedSub"></div><div class="chart" id="c-fed"></div></section>
  <section class="tile" id="t-rooms"><div class="label"><span class="long">Rooms</span><span class="short">Rooms</span></div><div class="value" id="v-rooms">–</div><div class="sub" id="v-syncWaiting"></div><div class="chart" id="c-rooms"></div></section>
  <section class="tile" id="t-system"><div class="label"><span class="long">Memory</span><span class="short">RAM MB</span></div><div class="value"><span id="v-rss">–</span><small>MB</small></div><div class="sub" id="v-cpu"></div><div class="chart" id="c-system"></div></section>
  <section class="tile" id="t-tunnel"><div class="label"><span class="long">Tunnel</span><span class="short">Tunnel</span></div><div id="tunnel-state" class="off">–</div><div class="sub" id="v-tunnelSub"></div></section>
</main>
<div id="spark"></div>
<script type="application/json" id="cfg">${cfg}</script>
<script src="stats/uPlot.iife.min.js"></script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
