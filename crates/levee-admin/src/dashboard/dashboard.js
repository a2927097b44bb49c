// Levee dashboard: renders the admin API's /api/events stream and drives the admin API.
// Plain modern JS, no dependencies, no build step. Every value from the server is written
// with textContent (never as HTML), so an endpoint key cannot inject markup.
//
// Stable hooks for tests: each breaker row has data-breaker="<key>" and, inside it,
// data-field="state"; data-field="level" holds the degradation level; data-field="stream"
// reads "live" while the event stream is connected.
"use strict";

const TOKEN_KEY = "levee.admin.token";
const FEED_MAX = 200;
const STATE_WORDS = {
  closed: "closed",
  open: "open",
  half_open: "half_open",
  forced_open: "forced_open",
  disabled: "disabled",
};
const OVERRIDES = [
  ["forced_open", "force open", "Reject every call to this endpoint (forced_open)"],
  ["disabled", "disable", "Permit every call, still record outcomes (disabled)"],
  ["observe", "observe", "Evaluate and report, never reject (observe mode)"],
  ["none", "clear", "Clear every override: back to the config's behaviour"],
];

const $ = (sel, root = document) => root.querySelector(sel);
const field = (name, root = document) => root.querySelector(`[data-field="${name}"]`);

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of [].concat(children)) {
    if (c !== null && c !== undefined) node.append(c);
  }
  return node;
}

function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

function fmtCount(n) {
  if (n === undefined || n === null) return "–";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n));
}

function fmtDuration(ms) {
  if (ms === undefined || ms === null || ms < 0) return "–";
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + String(s % 60).padStart(2, "0") + "s";
  const h = Math.floor(m / 60);
  if (h < 48) return h + "h " + String(m % 60).padStart(2, "0") + "m";
  return Math.floor(h / 24) + "d " + (h % 24) + "h";
}

function fmtClock(ms) {
  const d = new Date(ms);
  return d.toTimeString().slice(0, 8);
}

function fmtRate(rate) {
  return rate === null || rate === undefined ? "–" : rate.toFixed(rate < 10 ? 1 : 0) + "%";
}

// ---------------------------------------------------------------- messages

function message(kind, text) {
  const box = field("messages");
  const item = el("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : null }, [
    el("time", { text: fmtClock(Date.now()) }),
    el("span", { text }),
    el("button", { type: "button", class: "ghost", text: "dismiss", onclick: () => item.remove() }),
  ]);
  box.prepend(item);
  while (box.children.length > 5) box.lastElementChild.remove();
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
}

// ---------------------------------------------------------------- admin API calls

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

async function send(method, path, body, what) {
  const headers = { "content-type": "application/json" };
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: JSON.stringify(body) });
  } catch (e) {
    message("error", `${what}: the admin API cannot be reached (${e.message}).`);
    return null;
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch (_) {
    payload = null;
  }
  if (!response.ok) {
    let detail = payload && payload.detail ? payload.detail : `HTTP ${response.status}`;
    if (response.status === 401 && !t) detail = "Enter the admin token first. " + detail;
    message("error", `${what} failed (${response.status}): ${detail}`);
    return null;
  }
  message("notice", `${what}: done.`);
  return payload;
}

function setOverride(key, state) {
  return send("PUT", `api/breakers/${encodeURIComponent(key)}/override`, { state }, `${key}: ${state === "none" ? "clear" : state}`);
}

function setLevel(level) {
  return send("PUT", "api/degradation", { level }, `degradation level ${level}`);
}

function setToggle(name, state, percent) {
  const body = state === "percent" ? { state, percent: Number(percent) } : { state };
  return send("PUT", `api/toggles/${encodeURIComponent(name)}`, body, `toggle ${name} ${state}${state === "percent" ? " " + percent + "%" : ""}`);
}

// ---------------------------------------------------------------- rendering

let snapshot = null;
let snapshotReceivedAt = 0;
const feed = new Map(); // seq -> transition
const breakerRows = new Map(); // key -> {row, cells}

function pill(cls, text) {
  return el("span", { class: `pill ${cls}`, text });
}

function meter(node, value, threshold, label) {
  // value and threshold are percents; the mark shows the threshold.
  node.replaceChildren();
  const track = el("div", { class: "track" });
  const fill = el("div", { class: "fill" });
  const v = value === null || value === undefined ? 0 : Math.min(100, value);
  fill.style.width = v + "%";
  if (threshold !== null && threshold !== undefined) {
    if (value !== null && value >= threshold) fill.classList.add("bad");
    else if (value !== null && value >= threshold * 0.6) fill.classList.add("warn");
    const mark = el("div", { class: "mark", title: `threshold ${threshold}%` });
    mark.style.left = `calc(${Math.min(100, threshold)}% - 1px)`;
    track.append(fill, mark);
  } else {
    track.append(fill);
  }
  node.append(track, el("span", { class: "val", text: label }));
}

function breakerRow(key) {
  let entry = breakerRows.get(key);
  if (entry) return entry;
  const cells = {
    key: el("td", { class: "key", text: key }),
    state: el("td"),
    localFleet: el("td", { class: "small" }),
    mode: el("td"),
    failure: el("td", {}, el("div", { class: "meter" })),
    slow: el("td", {}, el("div", { class: "meter" })),
    calls: el("td", { class: "num" }),
    consecutive: el("td", { class: "num" }),
    since: el("td", { class: "num" }),
    probes: el("td", { class: "small muted" }),
    actions: el("td"),
  };
  const stateText = el("span", { class: "pill", dataset: { field: "state" } });
  cells.state.append(stateText);
  const actions = el("div", { class: "actions" });
  for (const [value, label, title] of OVERRIDES) {
    actions.append(
      el("button", {
        type: "button",
        class: value === "forced_open" ? "danger" : null,
        title,
        text: label,
        dataset: { action: value === "none" ? "clear" : value },
        onclick: () => setOverride(key, value),
      }),
    );
  }
  cells.actions.append(actions);
  const row = el("tr", { dataset: { breaker: key } }, Object.values(cells));
  entry = { row, cells, stateText };
  breakerRows.set(key, entry);
  return entry;
}

function renderBreakers(s) {
  const body = field("breakers");
  const seen = new Set();
  let open = 0;
  let halfOpen = 0;
  let forced = 0;
  for (const b of s.breakers) {
    seen.add(b.key);
    const { row, cells, stateText } = breakerRow(b.key);
    const state = STATE_WORDS[b.state] || b.state;
    if (stateText.textContent !== state) {
      setText(stateText, state);
      stateText.className = `pill ${state}`;
    }
    if (state === "open") open++;
    if (state === "half_open") halfOpen++;
    if (state === "forced_open") forced++;
    setText(cells.localFleet, `${b.local_state} / ${b.fleet_state || "–"}`);
    cells.localFleet.title = "local breaker / fleet breaker (from the registry)";
    const mode = b.mode === "observe" ? "observe" : "enforce";
    const modeKey = mode + (b.configured_mode && b.configured_mode !== b.mode ? "*" : "");
    if (cells.mode.dataset.v !== modeKey) {
      cells.mode.dataset.v = modeKey;
      cells.mode.replaceChildren(pill(mode === "observe" ? "observe" : "", mode));
      if (modeKey.endsWith("*")) cells.mode.title = `the config says ${b.configured_mode}; an operator changed it`;
    }
    const w = b.window;
    meter(cells.failure.firstChild, w.failure_rate, b.failure_rate_threshold, `${fmtRate(w.failure_rate)} / ${b.failure_rate_threshold ?? "–"}%`);
    meter(cells.slow.firstChild, w.slow_call_rate, b.slow_call_rate_threshold, `${fmtRate(w.slow_call_rate)} / ${b.slow_call_rate_threshold ?? "–"}%`);
    setText(cells.calls, `${w.counted}${b.minimum_calls !== null ? " / " + b.minimum_calls : ""}`);
    cells.calls.title = "counted calls in the window / minimum_calls";
    setText(cells.consecutive, `${b.consecutive_failures}${b.consecutive_failures_threshold ? " / " + b.consecutive_failures_threshold : ""}`);
    cells.since.dataset.since = b.state_since_unix_ms ?? "";
    cells.since.dataset.openRemaining = b.open_remaining_ms ?? "";
    const probes = state === "half_open" ? `${b.probes_reported}/${b.probes_admitted} reported` : "";
    setText(cells.probes, probes);
    if (!row.isConnected) body.append(row);
  }
  for (const [key, entry] of breakerRows) {
    if (!seen.has(key)) {
      entry.row.remove();
      breakerRows.delete(key);
    }
  }
  // Keep rows in key order.
  const ordered = [...s.breakers].map((b) => breakerRows.get(b.key).row);
  ordered.forEach((row, i) => {
    if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null);
  });
  field("breakers-empty").hidden = s.breakers.length > 0;
  setText(field("breakers-summary"), `${open + forced} open`);
  setText(field("breakers-detail"), `${s.breakers.length} total · ${halfOpen} half-open · ${forced} forced open`);
}

function tickClocks() {
  const now = Date.now();
  for (const { cells } of breakerRows.values()) {
    const since = Number(cells.since.dataset.since);
    const remaining = cells.since.dataset.openRemaining;
    let text = since ? fmtDuration(now - since) : "–";
    if (remaining !== "" && remaining !== undefined) {
      const left = Number(remaining) - (now - snapshotReceivedAt);
      text += left > 0 ? ` · probe in ${fmtDuration(left + 999)}` : " · probe due";
    }
    setText(cells.since, text);
  }
  if (snapshot) setText(field("updated"), `state as of ${fmtClock(snapshot.at_unix_ms)}`);
}

function renderFeed() {
  const list = field("transitions");
  const items = [...feed.values()].sort((a, b) => b.seq - a.seq).slice(0, FEED_MAX);
  const have = new Set([...list.children].map((li) => li.dataset.seq));
  const want = new Set(items.map((t) => String(t.seq)));
  for (const li of [...list.children]) if (!want.has(li.dataset.seq)) li.remove();
  items.forEach((t, i) => {
    if (have.has(String(t.seq))) return;
    const li = el("li", { dataset: { seq: String(t.seq) }, title: new Date(t.at_unix_ms).toISOString() }, [
      el("span", { class: "muted", text: fmtClock(t.at_unix_ms) }),
      el("span", { class: "key", text: t.key }),
      el("span", {}, [pill(t.from, t.from), el("span", { class: "arrow", text: " → " }), pill(t.to, t.to)]),
      el("span", { class: "reason", text: t.reason }),
    ]);
    list.insertBefore(li, list.children[i] || null);
  });
  field("transitions-empty").hidden = items.length > 0;
}

function addTransition(t, live) {
  if (feed.has(t.seq)) return;
  feed.set(t.seq, t);
  if (feed.size > FEED_MAX) {
    const oldest = Math.min(...feed.keys());
    feed.delete(oldest);
  }
  if (live) {
    const entry = breakerRows.get(t.key);
    if (entry) {
      entry.row.classList.remove("flash");
      void entry.row.offsetWidth;
      entry.row.classList.add("flash");
    }
  }
}

function series(s, name) {
  return (s.counters && s.counters[name]) || [];
}

function sum(list) {
  return list.reduce((a, x) => a + x.value, 0);
}

function renderBulkheads(s) {
  const body = field("bulkheads");
  const rejections = series(s, "levee_bulkhead_rejections_total");
  const rows = s.bulkheads.map((b) => {
    const mine = rejections.filter((r) => r.labels.partition === b.partition);
    const byClass = (c) => sum(mine.filter((r) => r.labels.criticality === c));
    const reasons = {};
    for (const r of mine) reasons[r.labels.reason] = (reasons[r.labels.reason] || 0) + r.value;
    const reasonText = Object.entries(reasons).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${fmtCount(v)}`).join(" · ") || "–";
    const m = el("div", { class: "meter" });
    const pct = b.limit > 0 ? (b.in_flight * 100) / b.limit : 0;
    meter(m, pct, 100, `${b.in_flight} / ${b.limit}${b.algorithm ? " (" + b.algorithm + ")" : ""}`);
    return el("tr", { dataset: { bulkhead: b.partition } }, [
      el("td", { class: "key", text: b.partition }),
      el("td", {}, m),
      el("td", { class: "num", text: `${b.queue_depth} / ${b.max_queue}` }),
      el("td", { class: "num", text: fmtCount(byClass("critical")) }),
      el("td", { class: "num", text: fmtCount(byClass("standard")) }),
      el("td", { class: "num", text: fmtCount(byClass("sheddable")) }),
      el("td", { class: "small muted wrap", text: reasonText }),
    ]);
  });
  body.replaceChildren(...rows);
  field("bulkheads-empty").hidden = s.bulkheads.length > 0;
}

function counterBlock(title, list, labelKeys) {
  const rows = list
    .filter((x) => x.value > 0)
    .sort((a, b) => b.value - a.value)
    .map((x) =>
      el("tr", {}, [
        el("td", { text: labelKeys.map((k) => x.labels[k] ?? "").join(" · ") }),
        el("td", { class: "num", text: fmtCount(x.value) }),
      ]),
    );
  if (rows.length === 0) rows.push(el("tr", {}, [el("td", { class: "muted", text: "none" }), el("td")]));
  return el("div", { class: "counter" }, [el("h3", { text: title }), el("table", {}, el("tbody", {}, rows))]);
}

function renderCounters(s) {
  const retries = series(s, "levee_retries_total");
  const exhausted = series(s, "levee_retry_budget_exhausted_total");
  const fallbacks = series(s, "levee_fallbacks_total");
  const limited = series(s, "levee_rate_limited_total");
  const faults = series(s, "levee_faults_injected_total");
  const blocks = [
    counterBlock("retries by endpoint · reason", retries, ["endpoint", "reason"]),
    counterBlock("retry budget exhausted", exhausted, ["endpoint"]),
    counterBlock("fallbacks by route · kind", fallbacks, ["route", "kind"]),
    counterBlock("rate limited by route", limited, ["route"]),
  ];
  if (s.counters && s.counters.levee_faults_injected_total) {
    blocks.push(counterBlock("injected faults by route · kind", faults, ["route", "kind"]));
  }
  field("counters").replaceChildren(...blocks);
  setText(field("retries-total"), fmtCount(sum(retries)));
  setText(field("retries-detail"), `budget exhausted ${fmtCount(sum(exhausted))}`);
  setText(field("fallbacks-total"), fmtCount(sum(fallbacks)));
  const stale = sum(fallbacks.filter((f) => f.labels.kind === "stale"));
  setText(field("fallbacks-detail"), `stale ${fmtCount(stale)} · static ${fmtCount(sum(fallbacks) - stale)}`);
  setText(field("rate-limited-total"), fmtCount(sum(limited)));
  setText(field("faults-detail"), s.counters && s.counters.levee_faults_injected_total ? `faults injected ${fmtCount(sum(faults))}` : "");
}

function renderLevel(s) {
  const levelNode = field("level");
  setText(levelNode, String(s.degradation_level));
  levelNode.className = `big lvl${s.degradation_level}`;
  let detail = s.degradation_level === 0 ? "normal" : s.degradation_level === 3 ? "critical traffic only" : "shedding";
  const d = s.fleet && s.fleet.degradation;
  if (d) {
    detail += ` · operator ${d.operator_level}`;
    if (d.source === "rule" && d.rule) detail += ` · raised by rule ${d.rule}`;
  } else if (!s.registry) {
    detail += " · no registry";
  }
  setText(field("level-detail"), detail);
  const operatorLevel = d ? d.operator_level : null;
  for (const b of document.querySelectorAll("[data-level]")) {
    b.classList.toggle("active", Number(b.dataset.level) === operatorLevel);
    b.disabled = !s.registry;
  }
}

function renderToggles(s) {
  const body = field("toggles");
  const toggles = (s.fleet && s.fleet.toggles) || {};
  const names = Object.keys(toggles).sort();
  const rows = names.map((name) => {
    const t = toggles[name];
    const label = t.state === "percent" ? `${t.percent}%` : t.state;
    const percent = el("input", { type: "number", min: "0", max: "100", value: String(t.state === "percent" ? t.percent : 50), class: "narrow", "aria-label": `${name} percent` });
    return el("tr", { dataset: { toggle: name } }, [
      el("td", { class: "key", text: name }),
      el("td", {}, pill(t.state === "on" ? "closed" : t.state === "off" ? "" : "half_open", label)),
      el("td", { class: "num", text: String(t.version) }),
      el("td", {}, el("div", { class: "actions" }, [
        el("button", { type: "button", text: "on", onclick: () => setToggle(name, "on") }),
        el("button", { type: "button", text: "off", onclick: () => setToggle(name, "off") }),
        percent,
        el("button", { type: "button", text: "set %", onclick: () => setToggle(name, "percent", percent.value) }),
      ])),
    ]);
  });
  // Do not rebuild while the operator is typing a percentage.
  if (body.contains(document.activeElement)) return;
  body.replaceChildren(...rows);
  field("toggles-empty").hidden = names.length > 0;
  setText(field("toggles-empty"), s.registry ? "No toggles." : "No registry: toggles need one.");
}

// Breakers the registry holds that this instance does not run: the storefront's, in Go.
function renderFleetBreakers(s) {
  const local = new Set(s.breakers.map((b) => b.key));
  const fleet = (s.fleet && s.fleet.breakers) || {};
  const keys = Object.keys(fleet).filter((k) => !local.has(k)).sort();
  const rows = keys.map((key) => {
    const b = fleet[key];
    const t = b.last_transition;
    const openFor = b.open_until_unix_ms ? fmtDuration(Math.max(0, b.open_until_unix_ms - s.at_unix_ms)) : "–";
    return el("tr", { dataset: { fleetBreaker: key } }, [
      el("td", { class: "key", text: key }),
      el("td", {}, el("span", { class: `pill ${b.state}`, dataset: { field: "state" }, text: b.state })),
      el("td", { class: "num", text: fmtCount(b.counted) }),
      el("td", { class: "num", text: fmtCount(b.failures) }),
      el("td", { text: t ? `${fmtClock(t.at_unix_ms)} ${t.from} → ${t.to} (${t.reason})` : "–" }),
      el("td", { class: "num", text: openFor }),
    ]);
  });
  field("fleet-breakers").replaceChildren(...rows);
  field("fleet-breakers-empty").hidden = keys.length > 0;
}

function renderHeader(s) {
  setText(field("service"), s.service);
  const status = field("status");
  setText(status, s.status.replace("_", " "));
  status.className = `pill ${s.status}`;
  status.title = s.not_ready_reason || "The /health verdict";
  let registry = "none";
  if (s.registry) {
    registry = `${s.registry.mode} · ${s.registry.connected ? "connected" : s.registry.stale ? "unreachable, stale" : "unreachable"}`;
  }
  setText(field("registry"), registry);
  const tokenInput = $("[data-control=token]");
  tokenInput.placeholder = s.mutations_enabled ? "needed for changes" : "changes are off (no admin token set)";
}

function render(s) {
  snapshot = s;
  snapshotReceivedAt = Date.now();
  for (const t of s.transitions || []) addTransition(t, false);
  renderHeader(s);
  renderLevel(s);
  renderBreakers(s);
  renderFleetBreakers(s);
  renderBulkheads(s);
  renderCounters(s);
  renderToggles(s);
  renderFeed();
  tickClocks();
}

// ---------------------------------------------------------------- stream

let source = null;
let retryDelay = 1000;

function streamStatus(text, cls) {
  setText(field("stream"), text);
  const dot = field("stream-dot");
  dot.className = `dot ${cls || ""}`;
}

function connect() {
  if (source) source.close();
  streamStatus("connecting");
  source = new EventSource("api/events");
  source.addEventListener("open", () => {
    retryDelay = 1000;
  });
  source.addEventListener("snapshot", (e) => {
    // Live once the first snapshot is in: the page shows real state from then on.
    streamStatus("live", "live");
    try {
      render(JSON.parse(e.data));
    } catch (err) {
      message("error", `The dashboard could not show a snapshot: ${err.message}`);
    }
  });
  source.addEventListener("transition", (e) => {
    try {
      addTransition(JSON.parse(e.data), true);
      renderFeed();
    } catch (err) {
      message("error", `The dashboard could not show a transition: ${err.message}`);
    }
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      // The server refused the stream (503: draining, or too many dashboards): retry later.
      streamStatus(`disconnected, retrying in ${Math.round(retryDelay / 1000)}s`, "down");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    } else {
      streamStatus("reconnecting", "down");
    }
  });
}

// ---------------------------------------------------------------- wiring

function init() {
  const tokenInput = $("[data-control=token]");
  tokenInput.value = token();
  tokenInput.addEventListener("input", () => {
    const v = tokenInput.value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    else sessionStorage.removeItem(TOKEN_KEY);
  });
  $("[data-control=token-form]").addEventListener("submit", (e) => e.preventDefault());
  $("[data-control=forget-token]").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    tokenInput.value = "";
    message("notice", "Admin token forgotten");
  });
  for (const b of document.querySelectorAll("[data-level]")) {
    b.addEventListener("click", () => setLevel(Number(b.dataset.level)));
  }
  const form = $("[data-control=add-toggle]");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    setToggle(String(data.get("name")).trim(), String(data.get("state")), data.get("percent"));
  });
  setInterval(tickClocks, 1000);
  connect();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
