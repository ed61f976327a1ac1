// The dashboard's script: polls /api/status, /api/history and /api/events
// every two seconds and draws, per service, its figures, uPlot charts of
// the last 15 minutes (scale events as markers on the replica chart), its
// replicas, its last error and (with invoke on) a form to try it. Every chart
// says in data-points how many points it holds, so a test can read that
// from the DOM. No build step: plain ES2017 over uPlot's IIFE build.
"use strict";

const POLL_MS = 2000;
const KEEP_S = 15 * 60;
const state = { services: new Map(), lastSeq: 0, events: [] };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

async function getJSON(url, options) {
  const r = await fetch(url, Object.assign({ credentials: "same-origin" }, options));
  if (r.status === 401) throw new Error("this dashboard asks for a token: open /?token=TOKEN");
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || r.statusText);
  return body;
}

const fmtSeconds = (s) => s >= 1 ? s.toFixed(2) + "s" : (s * 1000).toFixed(1) + "ms";
const fmtRate = (r) => r.toFixed(r < 10 ? 2 : 0) + "/s";
const fmtAge = (s) => s < 120 ? s + "s" : s < 7200 ? Math.floor(s / 60) + "m" : Math.floor(s / 3600) + "h";

// Vertical lines at the service's scale events, green up, orange down.
function eventMarkers(svc) {
  return {
    hooks: {
      draw: [(u) => {
        const ctx = u.ctx;
        ctx.save();
        ctx.lineWidth = 2;
        for (const e of state.events) {
          if (e.service !== svc.name) continue;
          const x = u.valToPos(e.time_ms / 1000, "x", true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.strokeStyle = e.direction === "up" ? "#2e7d32" : "#ef6c00";
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
        }
        ctx.restore();
      }],
    },
  };
}

// The charts: name, title, series (history column, label, colour).
const CHARTS = [
  { id: "replicas", title: "Replicas (scale events as markers)", markers: true, series: [
    ["desired", "desired", "#1565c0"], ["ready", "ready", "#2e7d32"],
    ["starting", "starting", "#f9a825"], ["draining", "draining", "#8e24aa"],
    ["min", "min", "#9e9e9e"], ["max", "max", "#616161"]] },
  { id: "queue", title: "Queue length and in flight", series: [
    ["queue_length", "queue", "#c62828"], ["in_flight", "in flight", "#1565c0"]] },
  { id: "wait", title: "wait_time (s) against the thresholds", series: [
    ["wait_p50", "p50", "#1565c0"], ["wait_p95", "p95", "#c62828"],
    ["@above", "scale up above", "#ef6c00"], ["@below", "scale down below", "#2e7d32"]] },
  { id: "rates", title: "Requests and errors per second", series: [
    ["request_rate", "requests/s", "#1565c0"], ["error_rate", "errors/s", "#c62828"]] },
];

function chartWidth(box) {
  return Math.max(240, Math.floor(box.getBoundingClientRect().width || 300));
}

function makeChart(svc, spec, box) {
  const opts = {
    width: chartWidth(box), height: 160,
    series: [{}].concat(spec.series.map(([, label, stroke]) => ({ label, stroke, width: 1.5 }))),
    axes: [{}, { size: 45 }],
    legend: { live: false },
    plugins: spec.markers ? [eventMarkers(svc)] : [],
  };
  return new uPlot(opts, chartData(svc, spec), box);
}

function chartData(svc, spec) {
  const h = svc.history;
  const th = svc.thresholds || {};
  return [h.time_ms.map((t) => t / 1000)].concat(spec.series.map(([col]) => {
    if (col === "@above") return h.time_ms.map(() => th.wait_time_above);
    if (col === "@below") return h.time_ms.map(() => th.wait_time_below);
    return h[col];
  }));
}

function emptyHistory() {
  const h = { time_ms: [] };
  for (const c of CHARTS) for (const [col] of c.series) if (col[0] !== "@") h[col] = [];
  return h;
}

function addService(name, invoke) {
  const svc = { name, history: emptyHistory(), since: 0, charts: {} };
  const section = el("section", { class: "service", "data-service": name });
  svc.figures = el("div", { class: "figures" });
  const charts = el("div", { class: "charts" });
  for (const spec of CHARTS) {
    const box = el("div", { class: "chart", "data-chart": spec.id, "data-points": "0" });
    charts.append(el("div", {}, el("div", { class: "title" }, spec.title), box));
    svc.charts[spec.id] = { spec, box, plot: null };
  }
  svc.replicas = el("tbody");
  svc.errors = el("div", { class: "errors" });
  svc.eventList = el("ul", { class: "events" });
  section.append(el("h2", {}, name), svc.figures, charts,
    el("h3", {}, "Replicas"),
    el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, ...["address", "node", "state", "age", "in flight"].map((t) => el("th", {}, t)))),
      svc.replicas)),
    svc.errors, el("h3", {}, "Scale events"), svc.eventList);
  if (invoke) section.append(el("h3", {}, "Invoke"), invokeForm(name));
  document.getElementById("services").append(section);
  svc.section = section;
  state.services.set(name, svc);
  return svc;
}

function invokeForm(name) {
  const method = el("select", { name: "method" }, ...["GET", "POST", "PUT", "DELETE", "HEAD"].map((m) => el("option", {}, m)));
  const path = el("input", { name: "path", value: "/", "aria-label": "path" });
  const body = el("textarea", { name: "body", placeholder: "body (optional)", "aria-label": "body" });
  const send = el("button", { type: "submit" }, "Send");
  const answer = el("pre", { class: "answer", "data-status": "" });
  const form = el("form", { class: "invoke", "data-service": name }, method, path, send, body);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    send.disabled = true;
    answer.textContent = "…";
    try {
      const a = await getJSON("/api/invoke/" + encodeURIComponent(name), {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ method: method.value, path: path.value, body: body.value }),
      });
      const head = a.status ? `${a.status} in ${a.took_ms.toFixed(1)} ms` : `no answer after ${a.took_ms.toFixed(1)} ms: ${a.error}`;
      const headers = a.headers.map(([k, v]) => `${k}: ${v}`).join("\n");
      answer.textContent = `${head}\n${headers}\n\n${a.body}${a.truncated ? "\n… (cut at 64 KiB)" : ""}`;
      answer.dataset.status = String(a.status);
    } catch (e) {
      answer.textContent = "failed: " + e.message;
      answer.dataset.status = "error";
    }
    send.disabled = false;
  });
  return el("div", {}, form, answer);
}

function renderFigures(svc, s) {
  const w = s.wait_time || {};
  const th = s.thresholds || {};
  const above = th.wait_time_above !== undefined && w[th.stat] > th.wait_time_above;
  const items = [
    ["replicas", `${s.ready} ready · ${s.starting} starting · ${s.draining} draining · ${s.desired} desired (${s.min}..${s.max})`],
    ["queue", String(s.queue_length)], ["in flight", String(s.in_flight)],
    ["wait p50/p95", `${fmtSeconds(w.p50 || 0)} / ${fmtSeconds(w.p95 || 0)}` +
      (th.wait_time_above !== undefined ? ` (up > ${fmtSeconds(th.wait_time_above)}, down < ${fmtSeconds(th.wait_time_below)} on ${th.stat})` : "")],
    ["autoscale", s.autoscale ? (s.hold_left_seconds ? `held ${s.hold_left_seconds}s` : "on") : "off"],
  ];
  const h = svc.history, n = h.time_ms.length;
  if (n) items.push(["requests", fmtRate(h.request_rate[n - 1])], ["errors", fmtRate(h.error_rate[n - 1])]);
  svc.figures.replaceChildren(...items.map(([k, v]) => {
    const b = el("b", {}, v);
    if (k === "wait p50/p95" && above) b.className = "over";
    return el("span", {}, k + ": ", b);
  }));
  svc.replicas.replaceChildren(...(s.containers || []).map((c) => el("tr", { "data-replica": c.id },
    ...[c.address, c.node || "–", c.state + (c.outdated ? " (outdated)" : ""), fmtAge(c.age_seconds), String(c.in_flight)]
      .map((t) => el("td", {}, t)))));
  svc.errors.replaceChildren();
  if (s.last_error || s.consecutive_failures)
    svc.errors.append(el("h3", {}, "Last error"), el("div", { class: "error" },
      `${s.consecutive_failures} failure(s) in a row: ${s.last_error || "–"}`));
}

function renderEvents(svc) {
  const mine = state.events.filter((e) => e.service === svc.name).slice(-10).reverse();
  svc.eventList.replaceChildren(...(mine.length ? mine.map((e) => el("li", {},
    `${new Date(e.time_ms).toLocaleTimeString()} ${e.from} → ${e.to} ${e.reason}: ${e.detail}`))
    : [el("li", { class: "muted" }, "none in memory")]));
}

function appendHistory(svc, got) {
  const h = svc.history;
  for (const col of Object.keys(h)) if (got[col]) h[col].push(...got[col]);
  const n = h.time_ms.length;
  if (n) svc.since = h.time_ms[n - 1];
  const cut = h.time_ms.findIndex((t) => t > svc.since - KEEP_S * 1000);
  if (cut > 0) for (const col of Object.keys(h)) h[col].splice(0, cut);
}

function drawCharts(svc) {
  for (const c of Object.values(svc.charts)) {
    if (!c.plot) c.plot = makeChart(svc, c.spec, c.box);
    else c.plot.setData(chartData(svc, c.spec));
    c.box.dataset.points = String(svc.history.time_ms.length);
  }
}

async function poll() {
  const problem = document.getElementById("problem");
  try {
    const status = await getJSON("/api/status");
    document.getElementById("daemon").textContent = `v${status.version} · Docker ${status.docker_host}`;
    const got = await getJSON("/api/events?after=" + state.lastSeq);
    const events = Array.isArray(got) ? got : got.events;
    for (const e of events) {
      if (e.time_ms === undefined) e.time_ms = Date.parse(e.time);
      state.events.push(e);
      state.lastSeq = Math.max(state.lastSeq, e.seq);
    }
    state.events = state.events.slice(-1000);
    for (const s of status.services) {
      const svc = state.services.get(s.name) || addService(s.name, status.dashboard.invoke);
      svc.thresholds = s.thresholds;
      appendHistory(svc, await getJSON(`/api/history?service=${encodeURIComponent(s.name)}&since=${svc.since}`));
      renderFigures(svc, s);
      renderEvents(svc);
      drawCharts(svc);
    }
    const names = new Set(status.services.map((s) => s.name));
    for (const [name, svc] of state.services)
      if (!names.has(name)) { svc.section.remove(); state.services.delete(name); }
    document.getElementById("updated").textContent = "updated " + new Date(status.dashboard.time_ms).toLocaleTimeString();
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
    problem.hidden = true;
  } catch (e) {
    problem.textContent = "Cannot read the daemon: " + e.message;
    problem.hidden = false;
  }
  setTimeout(poll, POLL_MS);
}

window.addEventListener("resize", () => {
  for (const svc of state.services.values())
    for (const c of Object.values(svc.charts))
      if (c.plot) c.plot.setSize({ width: chartWidth(c.box), height: 160 });
});

poll();
