"use strict";
// NovaPulse dashboard: polls the slow-changing state, receives the thought feed pushed over
// Server-Sent Events, and sends control calls with the session's CSRF token.

const REFRESH_MS = 2000;
const CHART_REFRESH_MS = 5000;
const MAX_THOUGHTS = 200;
const CLOSED_TRADES = 100;

// Who holds a pause, in words a trader reads (status.paused_by is the API's name).
const PAUSED_BY = {
  manual: "an admin (manual pause)",
  risk_rule: "a risk rule",
  circuit_breaker: "the feed's circuit breaker",
  operator: "the Kubernetes operator",
};

let currency = "";
let latest = { positions: [], closed: [] };

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

// An amount of money: always with the account currency.
function money(value, digits = 2) {
  const text = fmt(value, digits);
  return text === "–" || !currency ? text : `${text} ${currency}`;
}

function signedMoney(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return (value > 0 ? "+" : "") + money(value, digits);
}

function fmtTime(ts) {
  if (ts === null || ts === undefined) return "–";
  return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 16);
}

// Profit factor: undefined without a losing trade — ∞ when there were wins, else —.
function fmtProfitFactor(pf, trades, wins) {
  if (pf !== null && pf !== undefined) return fmt(pf);
  return trades > 0 && wins === trades ? "∞" : "—";
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
  currency = s.account_currency || currency;
  $("equity-unit").textContent = currency ? `(${currency})` : "";
  $("closed-pnl-head").textContent = currency ? `PnL (${currency})` : "PnL";
  setBadge($("mode"), `mode ${s.mode}`, s.mode === "live" ? "danger" : "info");
  setBadge($("trading-state"), s.paused ? "paused" : "trading", s.paused ? "warn" : "ok");
  setBadge($("feed-state"), s.ws_connected ? "feed connected" : "feed down",
    s.ws_connected ? "ok" : "danger");
  setBadge($("db-state"), s.db_ok ? "db ok" : "db error", s.db_ok ? "ok" : "danger");
  $("pause-banner").hidden = !s.paused;
  $("paused-by").textContent = PAUSED_BY[s.paused_by] || s.paused_by || "";
  $("pause-reason").textContent = s.pause_reason || "";
  $("equity").textContent = money(s.equity);
  $("bankroll").textContent = money(s.bankroll);
  const pnl = $("daily-pnl");
  pnl.textContent = signedMoney(s.daily_pnl);
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
    cell(row, signedMoney(p.unrealized_pnl), p.unrealized_pnl < 0 ? "neg" : "pos");
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
    const weight = cell(row, fmt(s.weight));
    if (s.weight_reason) weight.title = s.weight_reason;  // why the tuner set it
    cell(row, String(s.trades));
    cell(row, s.trades ? `${fmt(s.win_rate * 100, 0)}%` : "—");
    cell(row, fmtProfitFactor(s.profit_factor, s.trades, s.wins));
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
  NPCharts.equity($("equity-chart"), points, { currency, height: 220 });
}

function tradeMarkers(pair) {
  const rows = latest.closed.filter((t) => t.pair === pair);
  for (const p of latest.positions) {
    if (p.pair === pair) rows.push(Object.assign({}, p, { exit_time: null }));
  }
  return rows;
}

function drawPrices(series) {
  const box = $("price-charts");
  for (const [pair, points] of Object.entries(series)) {
    let canvas = box.querySelector(`canvas[data-pair="${CSS.escape(pair)}"]`);
    if (!canvas) {
      canvas = document.createElement("canvas");
      canvas.className = "price-chart";
      canvas.dataset.pair = pair;
      canvas.setAttribute("aria-label", `${pair} price with trades`);
      box.appendChild(canvas);
    }
    NPCharts.price(canvas, points, tradeMarkers(pair),
      { title: pair, unit: pair.split("/")[1] || "", height: 200 });
  }
}

function renderClosedTrades(rows) {
  const body = $("closed-trades").querySelector("tbody");
  body.replaceChildren();
  for (const t of rows) {
    const row = document.createElement("tr");
    cell(row, t.pair);
    cell(row, fmtTime(t.entry_time));
    cell(row, fmtTime(t.exit_time));
    cell(row, t.exit_time ? fmtDuration(t.exit_time - t.entry_time) : "–");
    cell(row, fmtPrice(t.entry_price));
    cell(row, fmtPrice(t.exit_price));
    cell(row, fmt(t.quantity, 4));
    cell(row, signedMoney(t.pnl), t.pnl < 0 ? "neg" : "pos");
    const reason = (t.notes || "").split("exit: ").pop();
    cell(row, (t.notes || "").includes("exit: ") ? reason : "–");
    cell(row, (t.strategy || "").split(",").join(", "));
    body.appendChild(row);
  }
  $("no-closed-trades").hidden = rows.length > 0;
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
    latest.positions = positions.positions;
    renderStrategies(strategies.strategies);
    $("connection-banner").hidden = true;
  } catch (err) {
    $("connection-banner").hidden = false;
  }
}

async function refreshCharts() {
  try {
    const [equity, prices, closed] = await Promise.all([
      api("/api/v1/equity"), api("/api/v1/prices"),
      api(`/api/v1/trades?status=closed&limit=${CLOSED_TRADES}`),
    ]);
    latest.closed = closed.trades;
    renderClosedTrades(closed.trades);
    drawEquity(equity.points);
    drawPrices(prices.pairs);
  } catch (_) { /* the banner already says contact is lost */ }
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(refreshCharts, 200);
});

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

refresh().then(refreshCharts);
loadRecentThoughts().then(openThoughtStream);
setInterval(refresh, REFRESH_MS);
setInterval(refreshCharts, CHART_REFRESH_MS);
