"use strict";
// NovaPulse dashboard: polls the slow-changing state, receives the thought feed pushed over
// Server-Sent Events, and sends control calls with the session's CSRF token.

const REFRESH_MS = 2000;
const EQUITY_REFRESH_MS = 5000;
const MAX_THOUGHTS = 200;

const $ = (id) => document.getElementById(id);

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)np_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (options.method && options.method !== "GET") {
    headers["X-CSRF-Token"] = csrfToken();
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, Object.assign({}, options, {
    headers, credentials: "same-origin",
  }));
  if (response.status === 401 || response.status === 303) {
    window.location.assign("/login");
    throw new Error("signed out");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.json();
}

function fmt(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString(undefined, {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
}

function fmtPrice(value) {
  if (value === null || value === undefined) return "–";
  return Number(value).toPrecision(6);
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function setBadge(el, text, tone) {
  el.textContent = text;
  el.className = `badge ${tone || ""}`;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function renderStatus(s) {
  setBadge($("mode"), `mode ${s.mode}`, s.mode === "live" ? "danger" : "info");
  setBadge($("trading-state"), s.paused ? "paused" : "trading", s.paused ? "warn" : "ok");
  setBadge($("feed-state"), s.ws_connected ? "feed connected" : "feed down",
    s.ws_connected ? "ok" : "danger");
  setBadge($("db-state"), s.db_ok ? "db ok" : "db error", s.db_ok ? "ok" : "danger");
  $("pause-banner").hidden = !s.paused;
  $("paused-by").textContent = s.paused_by || "";
  $("pause-reason").textContent = s.pause_reason || "";
  $("equity").textContent = fmt(s.equity);
  $("bankroll").textContent = fmt(s.bankroll);
  const pnl = $("daily-pnl");
  pnl.textContent = fmt(s.daily_pnl, 4);
  pnl.className = `value ${s.daily_pnl < 0 ? "neg" : s.daily_pnl > 0 ? "pos" : ""}`;
  $("open-positions").textContent = String(s.open_positions);
  $("uptime").textContent = fmtDuration(s.uptime_s);
  $("pause-button").disabled = s.paused;
  $("resume-button").disabled = !s.paused;
  const feed = $("feed").querySelector("tbody");
  feed.replaceChildren();
  for (const [pair, age] of Object.entries(s.feed || {})) {
    const row = document.createElement("tr");
    cell(row, pair);
    cell(row, age === null ? "no data" : fmtDuration(age), age !== null && age > 60 ? "neg" : "");
    feed.appendChild(row);
  }
}

function renderPositions(rows) {
  const body = $("positions").querySelector("tbody");
  body.replaceChildren();
  for (const p of rows) {
    const row = document.createElement("tr");
    row.dataset.pair = p.pair;
    cell(row, p.pair);
    cell(row, fmt(p.quantity, 4));
    cell(row, fmtPrice(p.entry_price));
    cell(row, fmtPrice(p.last_price));
    cell(row, fmtPrice(p.trailing_stop || p.stop_loss));
    cell(row, fmtPrice(p.take_profit));
    cell(row, fmt(p.unrealized_pnl, 4), p.unrealized_pnl < 0 ? "neg" : "pos");
    cell(row, p.strategy);
    body.appendChild(row);
  }
  $("no-positions").hidden = rows.length > 0;
}

function renderStrategies(rows) {
  const body = $("strategies").querySelector("tbody");
  body.replaceChildren();
  for (const s of rows) {
    const row = document.createElement("tr");
    cell(row, s.name);
    cell(row, fmt(s.weight));
    cell(row, String(s.trades));
    cell(row, `${fmt(s.win_rate * 100, 0)}%`);
    cell(row, fmt(s.profit_factor));
    let state = "active";
    if (s.runtime_disabled) state = "guardrail off";
    if (s.manually_disabled) state = "off (manual)";
    cell(row, state, s.enabled ? "pos" : "neg");
    const action = document.createElement("td");
    const button = document.createElement("button");
    button.className = "small-btn";
    button.textContent = s.manually_disabled ? "Enable" : "Disable";
    button.addEventListener("click", () => control(
      `/api/v1/strategies/${encodeURIComponent(s.name)}/${s.manually_disabled ? "enable" : "disable"}`,
      null, `${s.name} ${s.manually_disabled ? "enabled" : "disabled"}`));
    action.appendChild(button);
    row.appendChild(action);
    body.appendChild(row);
  }
}

function drawEquity(points) {
  const canvas = $("equity-chart");
  const width = canvas.clientWidth || 600;
  const height = canvas.height;
  canvas.width = width;
  canvas.dataset.points = String(points.length);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#8b98a9";
  if (points.length < 2) {
    ctx.fillText("Collecting equity samples…", 12, height / 2);
    return;
  }
  const values = points.map((p) => p[1]);
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
  const pad = 28;
  const x = (i) => pad + (i / (points.length - 1)) * (width - pad - 8);
  const y = (v) => 8 + (1 - (v - lo) / (hi - lo)) * (height - 16 - 16);
  ctx.strokeStyle = "#2b3645";
  ctx.beginPath();
  ctx.moveTo(pad, y(values[0]));
  ctx.lineTo(width - 8, y(values[0]));
  ctx.stroke();
  ctx.strokeStyle = values[values.length - 1] >= values[0] ? "#35c47c" : "#ef5f5f";
  ctx.lineWidth = 2;
  ctx.beginPath();
  values.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
  ctx.stroke();
  ctx.fillStyle = "#8b98a9";
  ctx.fillText(fmt(hi), 2, 14);
  ctx.fillText(fmt(lo), 2, height - 18);
}

function addThought(t) {
  const list = $("thoughts");
  const item = document.createElement("li");
  item.className = `thought ${t.kind}`;
  const when = document.createElement("time");
  when.textContent = new Date(t.ts * 1000).toISOString().replace("T", " ").slice(0, 19);
  const kind = document.createElement("span");
  kind.className = "kind";
  kind.textContent = t.kind;
  const text = document.createElement("span");
  text.className = "message";
  text.textContent = (t.pair ? `[${t.pair}] ` : "") + t.message;
  item.append(when, kind, text);
  list.prepend(item);
  while (list.children.length > MAX_THOUGHTS) list.lastChild.remove();
}

function openThoughtStream() {
  const source = new EventSource("/api/v1/thoughts/stream", { withCredentials: true });
  source.onopen = () => setBadge($("stream-state"), "live", "ok small");
  source.onmessage = (event) => {
    try { addThought(JSON.parse(event.data)); } catch (_) { /* ignore a bad event */ }
  };
  source.onerror = () => setBadge($("stream-state"), "reconnecting…", "warn small");
}

async function refresh() {
  try {
    const [status, positions, strategies] = await Promise.all([
      api("/api/v1/status"), api("/api/v1/positions"), api("/api/v1/strategies"),
    ]);
    renderStatus(status);
    renderPositions(positions.positions);
    renderStrategies(strategies.strategies);
    $("connection-banner").hidden = true;
  } catch (err) {
    $("connection-banner").hidden = false;
  }
}

async function refreshEquity() {
  try {
    drawEquity((await api("/api/v1/equity")).points);
  } catch (_) { /* the banner already says contact is lost */ }
}

async function control(path, body, doneText) {
  const result = $("control-result");
  try {
    await api(path, { method: "POST", body: body ? JSON.stringify(body) : undefined });
    result.textContent = doneText;
    result.className = "ok";
  } catch (err) {
    result.textContent = `Failed: ${err.message}`;
    result.className = "error";
  }
  refresh();
}

function confirmAction(title, text, askReason) {
  return new Promise((resolve) => {
    const dialog = $("confirm-dialog");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("reason-label").hidden = !askReason;
    $("reason-input").hidden = !askReason;
    $("reason-input").value = "";
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" ? { reason: $("reason-input").value.trim() } : null);
    }, { once: true });
    dialog.showModal();
  });
}

$("pause-button").addEventListener("click", async () => {
  const answer = await confirmAction("Pause trading?",
    "No new positions will be opened until trading is resumed.", true);
  if (answer) {
    await control("/api/v1/control/pause",
      { reason: answer.reason || "paused from the dashboard" }, "Trading paused.");
  }
});

$("resume-button").addEventListener("click", async () => {
  const answer = await confirmAction("Resume trading?",
    "The bot will open new positions again when its strategies and risk gates allow.", false);
  if (answer) await control("/api/v1/control/resume", null, "Trading resumed.");
});

$("close-all-button").addEventListener("click", async () => {
  const answer = await confirmAction("Close ALL positions?",
    "Every open position is sold at market now. This cannot be undone.", false);
  if (answer) await control("/api/v1/control/close_all", null, "Close-all sent.");
});

async function loadRecentThoughts() {
  try {
    const recent = await api("/api/v1/thoughts?limit=50");
    recent.thoughts.forEach(addThought);
  } catch (_) { /* the stream fills in */ }
}

refresh();
refreshEquity();
loadRecentThoughts().then(openThoughtStream);
setInterval(refresh, REFRESH_MS);
setInterval(refreshEquity, EQUITY_REFRESH_MS);
