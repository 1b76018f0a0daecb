// The console page: polls /api/status every 2 s while visible and draws it; the chart of the last
// hour (/api/history) has its own slow cadence, never tied to a status poll. Everything from the
// server goes into the page as text (textContent), never as HTML.
"use strict";

const POLL_MS = 2000;
const HISTORY_MS = 20000;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const view = { athlete: "", state: "", node: "", page: 1 };
let timer = null;
let historyTimer = null;
let busy = false;
let fleet = false;

const GROUPS = [
  { key: "moving", title: "Uploading now", states: ["uploading", "reserved"] },
  { key: "failed", title: "Failed: needs a person", states: ["failed"] },
  { key: "waiting", title: "Waiting", states: ["queued", "pending"] },
  { key: "done", title: "Recently uploaded", states: ["done"] },
  { key: "skipped", title: "Not uploaded (skipped)", states: ["skipped"] },
];
const CARDS = [
  { key: "moving", label: "Uploading", states: ["uploading", "reserved"] },
  { key: "waiting", label: "Waiting", states: ["pending", "queued"] },
  { key: "failed", label: "Failed", states: ["failed"] },
  { key: "done", label: "Uploaded", states: ["done"] },
  { key: "skipped", label: "Skipped", states: ["skipped"] },
];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function bytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
}

function duration(s) {
  if (s < 90) return `${Math.max(1, Math.round(s))} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function clock(ts) {
  const d = new Date(ts * 1000);
  const today = new Date().toDateString() === d.toDateString();
  const t = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return today ? t : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${t}`;
}

async function post(url) {
  const res = await fetch(url, { method: "POST", headers: { "X-CSRF-Token": csrf },
    credentials: "same-origin" });
  let body = {};
  try { body = await res.json(); } catch (e) { /* plain text error */ }
  if (!res.ok) throw new Error(body.error || `the service answered ${res.status}`);
  return body;
}

function query() {
  const q = new URLSearchParams({ page: String(view.page), per_page: "50" });
  for (const k of ["athlete", "state", "node"]) if (view[k]) q.set(k, view[k]);
  return q.toString();
}

async function refresh() {
  clearTimeout(timer);
  if (busy) return;
  busy = true;
  try {
    const res = await fetch(`/api/status?${query()}`, { credentials: "same-origin" });
    if (res.status === 401) { window.location.assign("/login"); return; }
    if (!res.ok) throw new Error(String(res.status));
    render(await res.json());
    document.getElementById("offline").hidden = true;
  } catch (e) {
    const offline = document.getElementById("offline");
    // The words only once a poll failed: before the script runs, the page says "Loading…".
    offline.textContent = "The console cannot reach the upload service. It may be restarting; "
      + "this page keeps trying.";
    offline.hidden = false;
  } finally {
    busy = false;
    if (!document.hidden) timer = setTimeout(refresh, POLL_MS);
  }
}

async function loadHistory() {
  clearTimeout(historyTimer);
  try {
    const res = await fetch("/api/history", { credentials: "same-origin" });
    if (res.ok) drawChart(await res.json());
  } catch (e) { /* the next round tries again */ }
  if (!document.hidden) historyTimer = setTimeout(loadHistory, HISTORY_MS);
}

function isPaused(doc) {
  if (typeof doc.paused === "boolean") return doc.paused;
  if (doc.paused && typeof doc.paused === "object") return !!doc.paused.paused;
  return !!(doc.notices && doc.notices.paused);
}

function render(doc) {
  const counts = doc.counts || {};
  const sum = (states) => states.reduce((a, s) => a + (counts[s] || 0), 0);
  const paused = isPaused(doc);
  fleet = nodeNames(doc.nodes).length > 1;
  renderBanners(doc, paused);
  renderSummary(sum, paused, doc);
  renderCards(doc.filtered_counts || counts);
  renderFilters(doc);
  renderNodes(doc.nodes);
  renderLists(doc.jobs || [], counts);
  renderPager(doc);
  const btn = document.getElementById("pause");
  btn.textContent = paused ? "Resume uploads" : "Pause uploads";
  btn.dataset.paused = paused ? "1" : "";
  btn.classList.toggle("primary", paused);
  document.getElementById("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

function renderSummary(sum, paused, doc) {
  const moving = sum(["uploading", "reserved"]);
  const failed = sum(["failed"]);
  const waiting = sum(["pending", "queued"]);
  const parts = [];
  if (paused) parts.push("Uploads are paused");
  else if (moving) parts.push(`Uploading ${moving} file${moving === 1 ? "" : "s"}`);
  else if (waiting) parts.push(`${waiting} file${waiting === 1 ? "" : "s"} waiting`);
  else parts.push("All caught up");
  if (failed) parts.push(`${failed} need${failed === 1 ? "s" : ""} attention`);
  if (doc.hold && !paused) parts.push(doc.hold);
  if (doc.freed) parts.push(doc.freed);
  document.getElementById("summary").textContent = parts.join(" · ");
}

function renderBanners(doc, paused) {
  const box = document.getElementById("banners");
  const items = [];
  for (const [name, n] of Object.entries(doc.notices || {})) {
    const msg = (n && n.message) || String(n);
    const warnOnly = name === "paused" || name === "hours" || name === "schedule";
    const b = el("div", { class: `banner ${warnOnly ? "warn" : "bad"}`, role: "alert",
      "data-notice": name }, el("strong", { text: name === "paused" ? "Paused" : "Attention" }),
    msg);
    if (name === "paused") {
      b.append(el("button", { type: "button", class: "btn small", text: "Resume uploads",
        onclick: () => act("/api/resume") }));
    }
    items.push(b);
  }
  if (paused && !(doc.notices || {}).paused) {
    items.push(el("div", { class: "banner warn", role: "alert", "data-notice": "paused" },
      el("strong", { text: "Paused" }), "Uploads are paused by an operator."));
  }
  box.replaceChildren(...items);
}

function renderCards(counts) {
  const box = document.getElementById("counts");
  const selected = view.state;
  box.replaceChildren(...CARDS.map((c) => {
    const n = c.states.reduce((a, s) => a + (counts[s] || 0), 0);
    return el("button", { type: "button",
      class: `card ${c.key}${n ? " some" : ""}${selected === c.key ? " selected" : ""}`,
      "aria-pressed": selected === c.key ? "true" : "false",
      onclick: () => setView({ state: selected === c.key ? "" : c.key }) },
    el("span", { class: "n", text: n.toLocaleString() }), el("span", { class: "label",
      text: c.label }));
  }));
}

function renderFilters(doc) {
  const sel = document.getElementById("athlete");
  const want = ["", ...(doc.athletes || []).map((a) => a.folder)];
  const have = Array.from(sel.options).map((o) => o.value);
  if (want.join("\n") !== have.join("\n")) {
    sel.replaceChildren(el("option", { value: "", text: "All athletes" }),
      ...(doc.athletes || []).map((a) => el("option", { value: a.folder, text: a.folder })));
  }
  sel.value = view.athlete;
  document.getElementById("state").value =
    ["moving", "waiting", "failed", "done", "skipped"].includes(view.state) ? view.state : "";
  const names = doc.node_names || nodeNames(doc.nodes);
  const nodeBox = document.getElementById("node-filter");
  nodeBox.hidden = names.length < 2;
  const nodeSel = document.getElementById("node");
  if (nodeSel.options.length !== names.length + 1) {
    nodeSel.replaceChildren(el("option", { value: "", text: "All workstations" }),
      ...names.map((n) => el("option", { value: n, text: n })));
  }
  nodeSel.value = view.node;
}

function nodeNames(nodes) {
  if (!nodes) return [];
  if (Array.isArray(nodes)) return nodes.map((n) => n.name || n.node || String(n));
  return Object.keys(nodes);
}

function renderNodes(nodes) {
  const box = document.getElementById("nodes");
  if (!nodes || (Array.isArray(nodes) ? nodes.length : Object.keys(nodes).length) < 2) {
    box.replaceChildren();
    return;
  }
  const list = Array.isArray(nodes) ? nodes
    : Object.entries(nodes).map(([name, info]) => ({ name, ...(info || {}) }));
  box.className = "nodes";
  box.replaceChildren(...list.map((n) => {
    const alive = n.alive !== undefined ? n.alive : n.live;
    return el("span", { class: `tag${alive === false ? " off" : ""}`,
      text: `${n.name || n.node}${alive === false ? " (not responding)" : ""}` });
  }));
}

function renderLists(jobs, counts) {
  const box = document.getElementById("lists");
  const groups = [];
  for (const g of GROUPS) {
    const rows = jobs.filter((j) => g.states.includes(j.state));
    if (!rows.length) continue;
    const head = el("div", { class: "group-head" }, el("h3", { text: g.title }));
    if (g.key === "failed") {
      head.append(el("button", { type: "button", class: "btn small", text: "Retry all failed",
        onclick: (e) => act("/api/retry-failed", e.target) }));
    }
    groups.push(el("section", { class: `group ${g.key}`, "data-group": g.key }, head,
      el("ul", { class: "rows" }, ...rows.map((j) => row(g.key, j)))));
  }
  if (!groups.length) {
    const any = Object.values(counts).some((n) => n > 0);
    groups.push(el("p", { class: "empty", text: any ? "No files match this filter."
      : "No files seen yet. Drop .mov files into an athlete's folder and they appear here." }));
  }
  box.replaceChildren(...groups);
}

function who(j) {
  const bits = [];
  if (j.athlete) bits.push(`Athlete ${j.athlete}`);
  if (j.node && fleet) bits.push(`on ${j.node}`);
  return bits;
}

function row(group, j) {
  const name = j.file || (j.path || "").split("/").pop();
  const li = el("li", { class: "row", "data-job": String(j.id) });
  const main = el("div", {}, el("div", { class: "file", text: name, title: j.path }));
  const meta = who(j);
  const side = el("div", { class: "side" });
  if (group === "moving") {
    if (j.state === "reserved") side.textContent = "starting…";
    else {
      const parts = [`${(j.percent || 0).toFixed(0)}%`];
      if (j.rate_bytes_per_s) parts.push(`${bytes(j.rate_bytes_per_s)}/s`);
      if (j.eta_seconds !== undefined) parts.push(`about ${duration(j.eta_seconds)} left`);
      side.textContent = parts.join(" · ");
    }
    meta.push(`${bytes(j.bytes_sent || 0)} of ${bytes(j.size)}`);
  } else if (group === "done") {
    side.textContent = j.finished_at ? clock(j.finished_at) : "";
  } else if (group === "failed" && (!j.coach || j.coach.retry)) {
    // Only where pressing it can help (web/words.py): a cut-off recording stays cut off.
    side.append(el("button", { type: "button", class: "btn small", text: "Retry",
      "aria-label": `Retry ${name}`, onclick: (e) => act(`/api/jobs/${j.id}/retry`, e.target) }));
  } else if (group === "waiting" && j.next_attempt_at) {
    side.textContent = `next try ${clock(j.next_attempt_at)}`;
  }
  if (meta.length) main.append(el("div", { class: "meta", text: meta.join(" · ") }));
  if (group === "done" && (j.session_id || j.session_group_id)) main.append(ids(j));
  li.append(main, side);
  if (group === "moving") {
    const bar = el("span");
    bar.style.width = `${Math.min(100, j.percent || 0)}%`;
    li.append(el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0",
      "aria-valuemax": "100", "aria-valuenow": String(Math.round(j.percent || 0)),
      "aria-label": `${name} upload progress` }, bar));
  }
  // The coach's words (the backend's mapping); `status` keeps the admin's.
  const reason = j.coach ? j.coach.reason : null;
  if (reason && group !== "done" && group !== "moving") {
    li.append(el("div", { class: "reason", text: reason }));
  }
  if (group === "done" && j.analysis_words) li.append(analysisLine(j));
  return li;
}

// Uplift's processing of an uploaded capture (issue 32): "analysing…", "analysed · 240 fps",
// or the failure in words, which stands out like a failed upload.
function analysisLine(j) {
  const failed = Boolean(j.analysis_failed);
  const words = failed ? `Uploaded, not analysed: ${j.analysis_words}` : j.analysis_words;
  return el("div", { class: failed ? "analysis bad" : "analysis", "data-analysis":
    (j.analysis && j.analysis.status) || "", text: words });
}

function ids(j) {
  // Uplift's ids, for whoever looks the upload up there: a click away, not in every row.
  const lines = [];
  if (j.session_id) lines.push(`Session ${j.session_id}`);
  if (j.session_group_id) lines.push(`Session group ${j.session_group_id}`);
  return el("details", { class: "ids" }, el("summary", { text: "Uplift ids" }),
    ...lines.map((t) => el("div", { class: "meta", text: t })));
}

function renderPager(doc) {
  const box = document.getElementById("pager");
  const pages = doc.pages || 1;
  if (pages <= 1) { box.replaceChildren(); return; }
  box.replaceChildren(
    el("button", { type: "button", class: "btn small", text: "← Newer", disabled: view.page <= 1,
      onclick: () => setView({ page: view.page - 1 }, true) }),
    el("span", { text: `Page ${view.page} of ${pages} · ${(doc.total || 0).toLocaleString()} files` }),
    el("button", { type: "button", class: "btn small", text: "Older →",
      disabled: view.page >= pages, onclick: () => setView({ page: view.page + 1 }, true) }));
}

function drawChart(h) {
  const box = document.getElementById("chart");
  const NS = "http://www.w3.org/2000/svg";
  const rate = h.bytes_per_s || [], files = h.files || [];
  const n = Math.max(rate.length, 1);
  const maxRate = Math.max(...rate, 1);
  const maxFiles = Math.max(...files, 1);
  // The axis labels decide the margins, so "2744 files" or "112.5 MB/s" is never cut off.
  const rateLabel = `${bytes(maxRate)}/s`;
  const filesLabel = `${maxFiles} file${maxFiles === 1 ? "" : "s"}`;
  const W = 720, H = 150, T = 10, B = 22, CHAR = 7.5;
  const L = Math.max(62, 12 + CHAR * rateLabel.length);
  const R = Math.max(46, 12 + CHAR * filesLabel.length);
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const total = files.reduce((a, b) => a + b, 0);
  svg.setAttribute("aria-label", `Last hour: ${total} files uploaded, peak ${bytes(maxRate)}/s`);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  const plotW = W - L - R, plotH = H - T - B, bw = plotW / n;
  for (const f of [0, 0.5, 1]) {
    const y = T + plotH * (1 - f);
    add("line", { class: "grid", x1: L, x2: W - R, y1: y, y2: y });
  }
  if (!total && maxRate <= 1) {
    add("text", { x: L + plotW / 2, y: T + plotH / 4 + 4, "text-anchor": "middle" },
      "No uploads in the last hour");
  } else {
    add("text", { x: L - 6, y: T + 4, "text-anchor": "end" }, rateLabel);
    add("text", { x: L - 6, y: T + plotH + 4, "text-anchor": "end" }, "0");
    add("text", { x: W - R + 6, y: T + 4 }, filesLabel);
  }
  rate.forEach((v, i) => {
    const hgt = plotH * (v / maxRate);
    if (hgt > 0) add("rect", { class: "bar", x: L + i * bw + 1, y: T + plotH - hgt,
      width: Math.max(bw - 2, 1), height: hgt, rx: 1.5 });
  });
  files.forEach((v, i) => {
    if (v > 0) add("circle", { class: "dot", cx: L + i * bw + bw / 2,
      cy: T + plotH * (1 - v / maxFiles), r: 3 });
  });
  add("text", { x: L, y: H - 4 }, "60 min ago");
  add("text", { x: W - R, y: H - 4, "text-anchor": "end" }, "now");
  box.replaceChildren(svg);
}

async function act(url, button) {
  if (button) button.disabled = true;
  try {
    await post(url);
  } catch (e) {
    window.alert(`That did not work: ${e.message}`);
  } finally {
    if (button) button.disabled = false;
    refresh();
  }
}

function setView(change, keepPage) {
  Object.assign(view, change);
  if (!keepPage) view.page = 1;
  const q = new URLSearchParams();
  for (const k of ["athlete", "state", "node"]) if (view[k]) q.set(k, view[k]);
  if (view.page > 1) q.set("page", String(view.page));
  history.replaceState(null, "", q.toString() ? `?${q}` : window.location.pathname);
  refresh();
}

function init() {
  const q = new URLSearchParams(window.location.search);
  view.athlete = q.get("athlete") || "";
  view.state = q.get("state") || "";
  view.node = q.get("node") || "";
  view.page = Math.max(1, parseInt(q.get("page") || "1", 10) || 1);
  document.getElementById("athlete").addEventListener("change",
    (e) => setView({ athlete: e.target.value }));
  document.getElementById("state").addEventListener("change",
    (e) => setView({ state: e.target.value }));
  document.getElementById("node").addEventListener("change",
    (e) => setView({ node: e.target.value }));
  document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
  document.getElementById("pause").addEventListener("click", (e) =>
    act(e.target.dataset.paused ? "/api/resume" : "/api/pause", e.target));
  const logout = document.getElementById("logout");
  if (logout) logout.addEventListener("click", async () => {
    try { await post("/logout"); } catch (e) { /* redirected anyway */ }
    window.location.assign("/login");
  });
  // Nobody looking, no polling: a hidden tab stops; it catches up the moment it is shown.
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) { refresh(); loadHistory(); }
  });
  refresh();
  loadHistory();
}

init();
