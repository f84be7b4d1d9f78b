// The gatehouse dashboard: plain browser JavaScript, no build step, served from the package.
// Every value from the server reaches the page through textContent, never as HTML: names in
// logs and rules come from the network and may hold markup.

const $ = (sel) => document.querySelector(sel);
const session = { csrf: "", passwordSet: false };
let live; // the open EventSource, one at a time
let charts; // { traffic, cache, rows }

/** Creates an element with text children (strings) or elements. */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body.error ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") headers["x-csrf-token"] = session.csrf;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401 && path !== "/api/login") showLogin();
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

const fmt = {
  int: (n) => Math.round(n).toLocaleString("en"),
  rate: (n) => (n >= 100 ? Math.round(n).toLocaleString("en") : n.toFixed(1)),
  pct: (x) => `${(x * 100).toFixed(1)} %`,
  bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
  },
  time: (ms) => new Date(ms).toLocaleTimeString("en-GB"),
  when: (ms) => (ms ? new Date(ms).toLocaleString("en-GB") : "never"),
};

function notice(text) {
  const n = $("#notice");
  n.textContent = text;
  n.hidden = !text;
}

function fill(table, rows) {
  const body = table.querySelector("tbody");
  body.replaceChildren(...rows);
}

// ---- pages

const PAGES = ["login", "dashboard", "logs", "rules", "cache"];

function show(page) {
  for (const p of PAGES) $(`#page-${p}`).hidden = p !== page;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  live?.close();
  live = undefined;
  $("#connection").textContent = "";
}

function showLogin() {
  $("#nav").hidden = true;
  $("#logout").hidden = true;
  show("login");
  $("#login-password").focus();
}

async function route() {
  const page = location.hash.slice(1) || "dashboard";
  if (!session.csrf) {
    const s = await api("GET", "/api/session");
    session.passwordSet = s.passwordSet;
    if (!s.authenticated) return showLogin();
    session.csrf = s.csrf ?? "";
  }
  $("#nav").hidden = false;
  $("#logout").hidden = !session.passwordSet;
  const open = { dashboard: openDashboard, logs: openLogs, rules: openRules, cache: openCache }[page] ?? openDashboard;
  show(PAGES.includes(page) ? page : "dashboard");
  await open();
}

function stream(path, handlers) {
  live?.close();
  live = new EventSource(path);
  live.onopen = () => {
    $("#connection").textContent = "live";
  };
  live.onerror = () => {
    $("#connection").textContent = "reconnecting…";
  };
  for (const [event, fn] of Object.entries(handlers)) live.addEventListener(event, (m) => fn(JSON.parse(m.data)));
}

// ---- dashboard

const F = {
  requests: 1,
  hits: 2,
  misses: 3,
  bytes: 4,
  savedBytes: 5,
  blockedRequests: 6,
  queries: 7,
  cachedQueries: 8,
  blockedQueries: 9,
};

/** Charts show 10-minute steps: per-minute ratios of a small office are mostly noise. */
const STEP_MS = 600_000;

function chartData(minutes) {
  const rows = [];
  for (const r of minutes) {
    const start = r[0] - (r[0] % STEP_MS);
    const last = rows[rows.length - 1];
    if (last && last[0] === start) for (let i = 1; i < r.length; i++) last[i] += r[i];
    else rows.push([start, ...r.slice(1)]);
  }
  const x = [];
  const requests = [];
  const queries = [];
  const blocked = [];
  const ratio = [];
  for (const r of rows) {
    x.push(r[0] / 1000);
    requests.push(r[F.requests]);
    queries.push(r[F.queries]);
    blocked.push(r[F.blockedRequests] + r[F.blockedQueries]);
    const lookups = r[F.hits] + r[F.misses];
    ratio.push(lookups === 0 ? null : (100 * r[F.hits]) / lookups);
  }
  return { traffic: [x, requests, queries, blocked], cache: [x, ratio] };
}

function makeCharts(rows) {
  const width = (id) => Math.max(300, $(id).clientWidth || 500);
  const data = chartData(rows);
  const opts = (id, series) => ({
    width: width(id),
    height: 220,
    series: [{}, ...series],
    scales: { x: { time: true } },
    axes: [{}, { size: 60 }],
  });
  $("#chart-traffic").replaceChildren();
  $("#chart-cache").replaceChildren();
  charts = {
    rows,
    traffic: new uPlot(
      opts("#chart-traffic", [
        { label: "requests", stroke: "#1f6feb" },
        { label: "queries", stroke: "#8250df" },
        { label: "blocked", stroke: "#c62828" },
      ]),
      data.traffic,
      $("#chart-traffic"),
    ),
    cache: new uPlot(opts("#chart-cache", [{ label: "hit %", stroke: "#2e7d32" }]), data.cache, $("#chart-cache")),
  };
}

function updateCharts(minute) {
  if (!charts) return;
  const rows = charts.rows;
  if (rows.length > 0 && rows[rows.length - 1][0] === minute[0]) rows[rows.length - 1] = minute;
  else rows.push(minute);
  while (rows.length > 0 && rows[0][0] < minute[0] - 86_400_000) rows.shift();
  const data = chartData(rows);
  charts.traffic.setData(data.traffic);
  charts.cache.setData(data.cache);
}

function topRows(list, withNote) {
  if (list.length === 0) return [el("tr", {}, el("td", { class: "muted" }, "nothing yet"))];
  return list.map((t) =>
    el(
      "tr",
      {},
      el("td", {}, t.key),
      el("td", { class: "num" }, fmt.int(t.count)),
      ...(withNote ? [el("td", { class: "rule" }, t.note ?? "")] : []),
    ),
  );
}

function renderOverview(o) {
  $("#stat-rps").textContent = fmt.rate(o.rates.requestsPerSecond);
  $("#stat-qps").textContent = fmt.rate(o.rates.queriesPerSecond);
  $("#stat-hit").textContent = fmt.pct(o.hitRatio);
  $("#stat-saved").textContent = fmt.bytes(o.day.savedBytes);
  $("#stat-blocked").textContent = fmt.pct(o.blockedShare);
  $("#stat-requests").textContent = fmt.int(o.day.requests);
  $("#stat-queries").textContent = fmt.int(o.day.queries);
  $("#stat-rules").textContent = `${fmt.int(o.rules.entries)}${o.rules.errors ? ` (${o.rules.errors} errors)` : ""}`;
  fill($("#top-sites"), topRows(o.top.sites));
  fill($("#top-domains"), topRows(o.top.domains));
  fill($("#top-blocked"), topRows(o.top.blocked, true));
  fill($("#top-clients"), topRows(o.top.clients));
  fill(
    $("#upstreams"),
    o.upstreams.length === 0
      ? [el("tr", {}, el("td", { class: "muted" }, "no upstream DNS servers"))]
      : o.upstreams.map((u) =>
          el(
            "tr",
            {},
            el("td", {}, u.server),
            el("td", { class: `state-${u.state}` }, u.state),
            el("td", { class: "num" }, u.latencyMs === undefined ? "–" : `${u.latencyMs} ms`),
            el("td", { class: "num" }, fmt.int(u.answers)),
            el("td", { class: "num" }, fmt.int(u.failures)),
          ),
        ),
  );
  const since = (t) => new Date(t).toLocaleString();
  const backends = o.fronts.flatMap((f) => f.backends.map((b) => ({ front: f.front, ...b })));
  fill(
    $("#fronts"),
    backends.length === 0
      ? [el("tr", {}, el("td", { class: "muted" }, "no fronts configured"))]
      : backends.map((b) =>
          el(
            "tr",
            {},
            el("td", {}, b.front),
            el("td", {}, b.backend),
            el("td", { class: b.up ? "state-up" : "state-failing" }, b.up ? "up" : "down"),
            el("td", {}, since(b.since)),
            el("td", { class: "muted" }, b.lastError ?? ""),
          ),
        ),
  );
  const ca = o.tls.ca;
  $("#tls-ca").replaceChildren(
    ...(ca
      ? [
          `Office CA ${ca.subject}, valid until ${ca.notAfter.slice(0, 10)}, SHA-256 ${ca.sha256}. Browsers install it from `,
          el("code", {}, "http://<proxy>:3128/ca"),
          ".",
        ]
      : ["No office CA: HTTPS passes through undecrypted (", el("code", {}, "npx gatehouse ca init"), " makes one)."]),
  );
  fill(
    $("#passthrough"),
    o.tls.passThrough.length === 0
      ? [el("tr", {}, el("td", { class: "muted" }, "no client has refused the office certificate lately"))]
      : o.tls.passThrough.map((p) => el("tr", {}, el("td", {}, p.client), el("td", {}, p.host), el("td", {}, since(p.since)))),
  );
  updateCharts(o.minute);
}

async function openDashboard() {
  const history = await api("GET", "/api/history");
  makeCharts(history.rows);
  stream("/api/events", { overview: renderOverview });
}

// ---- logs

function logQuery() {
  const form = new FormData($("#log-search"));
  const q = new URLSearchParams();
  for (const [k, v] of form) if (typeof v === "string" && v.trim()) q.set(k, v.trim());
  return q;
}

/** The URL a line's next request would be for, so the explanation matches what the proxy will do. */
function targetOf(line) {
  if (line.kind === "dns") return line.name;
  const [method, url] = line.request.split(" ");
  return method === "CONNECT" ? `https://${url}/` : url;
}

async function decide(line, action) {
  const box = $("#decision");
  box.hidden = false;
  box.textContent = `${action === "allow" ? "Allowing" : "Blocking"} ${line.name}…`;
  try {
    const r = await api("POST", "/api/decide", { name: line.name, action, target: targetOf(line), client: line.client });
    const e = r.explanation;
    const d = e.decidedBy;
    const by = d?.rule ? `${d.rule.file}:${d.rule.line}: ${d.rule.text}` : (d?.reason ?? "no rule matched");
    box.textContent = `${r.file}:${r.line}: ${r.name}\nNow in force for ${e.target}${e.client ? ` from ${e.client}` : ""}: ${e.verdict} (${by})`;
  } catch (err) {
    box.textContent = `Not changed: ${err.message}`;
  }
}

function logRow(line) {
  // A front's session names the front, not a site a rule could allow or block.
  const button =
    line.kind === "session"
      ? ""
      : line.blocked
        ? el("button", { type: "button", onclick: () => decide(line, "allow") }, "Allow this name")
        : el("button", { type: "button", onclick: () => decide(line, "block") }, "Block this name");
  return el(
    "tr",
    { class: line.blocked ? "blocked" : "" },
    el("td", {}, fmt.time(line.time)),
    el("td", {}, line.client),
    el("td", {}, line.kind === "dns" ? `${line.request} ${line.name}` : line.request),
    el("td", { class: "result" }, `${line.result} ${line.status}`),
    el("td", { class: "rule" }, line.rule ? `${line.rule}: ${line.ruleText ?? ""}` : ""),
    el("td", {}, button && /[a-z]/i.test(line.name) && !line.name.includes(":") && line.result !== "NONE_NONE" ? button : ""),
  );
}

async function openLogs() {
  const q = logQuery();
  const r = await api("GET", `/api/logs?${q}`);
  const body = $("#log-lines tbody");
  body.replaceChildren(...r.lines.map(logRow));
  if (!$("#log-live").checked) return;
  stream(`/api/logs/stream?${q}`, {
    lines(lines) {
      for (const l of lines) body.prepend(logRow(l));
      while (body.children.length > 500) body.lastElementChild.remove();
    },
  });
}

// ---- rules

let editing; // { path, version }

function errorItems(errors) {
  return errors.map((e) => el("li", {}, e.text ?? `${e.file}:${e.line}: ${e.message}`));
}

async function openRules() {
  const r = await api("GET", "/api/rules");
  $("#rules-dir").textContent = r.rulesDir;
  fill(
    $("#rule-files"),
    r.files.map((f) =>
      el(
        "tr",
        {},
        el("td", {}, f.path),
        el("td", {}, f.kind),
        el("td", { class: "num" }, f.entries ?? "–"),
        el("td", { class: `num${f.errors ? " error" : ""}` }, f.errors),
        el("td", {}, fmt.when(f.changed)),
        el("td", {}, f.editable ? el("button", { type: "button", onclick: () => editRule(f.path) }, "Edit") : ""),
      ),
    ),
  );
  $("#rule-errors").replaceChildren(...errorItems(r.errors));
  fill(
    $("#remote-lists"),
    r.remote.length === 0
      ? [el("tr", {}, el("td", { class: "muted" }, "no remote lists in the config (lists:)"))]
      : r.remote.map((l) =>
          el(
            "tr",
            {},
            el("td", {}, l.url),
            el("td", {}, l.type),
            el("td", { class: "num" }, l.entries ?? "–"),
            el("td", {}, fmt.when(l.lastFetch)),
            el("td", {}, l.status),
            el("td", {}, el("button", { type: "button", onclick: (ev) => refreshList(ev.target, l.url) }, "Refresh")),
          ),
        ),
  );
}

async function refreshList(button, url) {
  button.disabled = true;
  button.textContent = "Downloading…";
  try {
    await api("POST", "/api/lists/refresh", { url });
  } catch (err) {
    notice(err.message);
  }
  await openRules();
}

async function editRule(path) {
  const f = await api("GET", `/api/rules/file?path=${encodeURIComponent(path)}`);
  editing = { path: f.path, version: f.version };
  $("#rule-editor").hidden = false;
  $("#rule-editor-path").textContent = f.path;
  $("#rule-text").value = f.text;
  $("#rule-status").textContent = f.exists ? "" : "new file";
  $("#rule-editor-errors").replaceChildren(...errorItems(f.errors));
}

async function saveRule() {
  const status = $("#rule-status");
  status.textContent = "checking…";
  $("#rule-editor-errors").replaceChildren();
  try {
    const r = await api("PUT", "/api/rules/file", { path: editing.path, text: $("#rule-text").value, version: editing.version });
    editing.version = r.version;
    status.textContent = `saved; ${r.entries ?? 0} entries in force`;
    await openRules();
    $("#rule-editor").hidden = false;
  } catch (err) {
    status.textContent = err.message;
    $("#rule-editor-errors").replaceChildren(...errorItems(err.body?.errors ?? []));
  }
}

async function explainForm(ev) {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const q = new URLSearchParams({ target: form.get("target").trim() });
  const client = form.get("client").trim();
  if (client) q.set("client", client);
  const out = $("#explain-result");
  try {
    const e = await api("GET", `/api/explain?${q}`);
    const d = e.decidedBy;
    const lines = [`${e.target}: ${e.verdict}${e.status ? ` (${e.status})` : ""}`, `client: ${e.client ?? "not given"}`];
    lines.push(
      d
        ? `decided by ${d.stage}: ${d.rule ? `${d.rule.file}:${d.rule.line}: ${d.rule.text}` : d.reason}`
        : "decided by the default: no rule matched",
    );
    for (const o of e.lost) lines.push(`also matched: ${o.label}: ${o.rule.file}:${o.rule.line}: ${o.rule.text}`);
    for (const n of e.notes) lines.push(`note: ${n}`);
    out.textContent = lines.join("\n");
  } catch (err) {
    out.textContent = err.message;
  }
}

// ---- cache

async function openCache() {
  const s = await api("GET", "/api/cache/stats");
  const rows = [
    ["Entries in memory", fmt.int(s.entries)],
    ["Bytes in memory", fmt.bytes(s.bytes)],
    ["Entries on disk", fmt.int(s.diskEntries)],
    ["Bytes on disk", fmt.bytes(s.diskBytes)],
    ["Hits", fmt.int(s.hits)],
    ["Misses", fmt.int(s.misses)],
    ["Hit ratio", fmt.pct(s.hitRatio)],
  ];
  $("#cache-stats").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

async function purgeForm(ev) {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const by = form.get("by") === "prefix" ? "prefix" : "url";
  const out = $("#purge-result");
  try {
    const r = await api("POST", `/api/cache/purge?${by}=${encodeURIComponent(form.get("value").trim())}`);
    out.textContent =
      by === "url"
        ? `${r.url}: ${r.purged} stored response(s) removed`
        : `${r.urls} URL(s) starting with ${r.prefix}: ${r.purged} stored response(s) removed`;
    await openCache();
  } catch (err) {
    out.textContent = err.message;
  }
}

// ---- wiring

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try {
    const r = await api("POST", "/api/login", { password: $("#login-password").value });
    session.csrf = r.csrf;
    $("#login-password").value = "";
    await route();
  } catch (err) {
    $("#login-error").textContent = err.message;
  }
});
$("#logout").addEventListener("click", async () => {
  await api("POST", "/api/logout").catch(() => {});
  session.csrf = "";
  showLogin();
});
$("#log-search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  openLogs();
});
$("#log-live").addEventListener("change", () => openLogs());
$("#rule-save").addEventListener("click", saveRule);
$("#rule-close").addEventListener("click", () => {
  $("#rule-editor").hidden = true;
});
$("#rule-new").addEventListener("submit", (ev) => {
  ev.preventDefault();
  editRule(new FormData(ev.target).get("path").trim()).catch((err) => notice(err.message));
});
$("#explain-form").addEventListener("submit", explainForm);
$("#purge-form").addEventListener("submit", purgeForm);
window.addEventListener("hashchange", () => route().catch((err) => notice(err.message)));
window.addEventListener("load", () => route().catch((err) => notice(err.message)));
