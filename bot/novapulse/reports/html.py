"""The backtest report: one self-contained HTML file (no CDN, no network), readable offline.

Tables are rendered here; the charts (equity with drawdown underneath, each pair's price with
its trades marked) are drawn by the dashboard's own `charts.js`, inlined, from data embedded
as JSON. Long series are thinned to what a screen can show.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from novapulse.config import Config

if TYPE_CHECKING:
    from novapulse.backtest import BacktestRun

MAX_POINTS = 2_000
# The dashboard's chart code, read as a file: importing the package `novapulse.api` would load
# the whole web stack for a report.
CHARTS_JS = Path(__file__).resolve().parent.parent / "api" / "static" / "charts.js"


def thin(points: Sequence[tuple[float, float]], limit: int = MAX_POINTS) -> list[list[float]]:
    """At most about `limit` points, keeping each bucket's extremes and the last point."""
    if len(points) <= limit:
        return [[t, v] for t, v in points]
    bucket = -(-len(points) // (limit // 2))
    out: list[list[float]] = []
    for i in range(0, len(points), bucket):
        chunk = points[i:i + bucket]
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        for t, v in sorted({lo, hi}):
            out.append([t, v])
    if out[-1][0] != points[-1][0]:
        out.append([points[-1][0], points[-1][1]])
    return out


def _esc(value: object) -> str:
    return html.escape(str(value))


def _utc(ts: float | None) -> str:
    return "—" if ts is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _pf(value: object, trades: object) -> str:
    if value is None:
        return "∞ (no losses)" if isinstance(trades, int) and trades > 0 else "—"
    return f"{float(str(value)):.2f}"


def _money(value: object, currency: str) -> str:
    return "—" if value is None else f"{float(str(value)):+.6g} {_esc(currency)}"


def _pct(value: object, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{float(str(value)):+.2f} %" if signed else f"{float(str(value)):.2f} %"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], table_id: str) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    if not rows:
        body = f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>'
    return (f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _duration(seconds: object) -> str:
    from novapulse.backtest import format_duration

    return format_duration(None if seconds is None else float(str(seconds)))


def _kpis(s: dict[str, Any], cur: str) -> str:
    items = [
        ("Total return", _pct(s["total_return_pct"], True)),
        ("Buy and hold", _pct(s["buy_and_hold_pct"], True)),
        ("Final equity", f"{s['final_equity']:,.6g} {_esc(cur)}"),
        ("Trades", f"{s['trades']} ({s['open_positions']} open)"),
        ("Win rate", f"{100 * s['win_rate']:.1f} %"),
        ("Profit factor", _pf(s["profit_factor"], s["trades"])),
        ("Max drawdown", _pct(s["max_drawdown_pct"])),
        ("Sharpe / Sortino", f"{_num(s['sharpe'])} / {_num(s['sortino'])}"),
        ("Exposure", _pct(s["exposure_pct"])),
        ("Avg trade", _duration(s["avg_trade_duration_s"])),
        ("Time paused", _pct(s["paused_pct"])),
    ]
    return "".join(f'<div class="kpi"><span>{_esc(k)}</span><b>{v}</b></div>' for k, v in items)


def _num(value: object) -> str:
    return "—" if value is None else f"{float(str(value)):.2f}"


def _data(run: BacktestRun) -> dict[str, Any]:
    trades = [*run.trades, *run.open_trades]
    by_pair: dict[str, list[dict[str, Any]]] = {}
    for t in trades:
        by_pair.setdefault(t.pair, []).append({
            "entry_time": t.entry_time, "entry_price": t.entry_price, "exit_time": t.exit_time,
            "exit_price": t.exit_price, "pnl": t.pnl})
    return {
        "currency": run.summary.account_currency,
        "equity": thin(run.equity),
        "prices": {pair: thin(points) for pair, points in run.prices.items()},
        "trades": by_pair,
    }


def render(run: BacktestRun, config: Config) -> str:
    s = run.summary.as_dict()
    cur = run.summary.account_currency
    pairs_rows = [[_esc(r["pair"]), str(r["trades"]), f"{100 * float(str(r['win_rate'])):.0f} %",
                   _money(r["pnl"], cur), _pf(r["profit_factor"], r["trades"]),
                   _pct(r["buy_and_hold_pct"], True), _pct(r["exposure_pct"])]
                  for r in run.summary.per_pair]
    strat_rows = [[_esc(r["name"]), f"{float(str(r['weight'])):.2f}", str(r["trades"]),
                   f"{100 * float(str(r['win_rate'])):.0f} %", _money(r["pnl"], cur),
                   _pf(r["profit_factor"], r["trades"]),
                   "guardrail off" if r["runtime_disabled"] else "active"]
                  for r in run.summary.per_strategy]
    pause_rows = [[_esc(_utc(p.since)), _esc(_duration(p.duration_s)), _esc(p.by),
                   _esc(p.reason), _esc(p.lifted_by or "still paused at the end")]
                  for p in run.pauses]
    exit_rows = [[_esc(reason), str(count)] for reason, count in run.summary.exit_reasons.items()]
    blocked_rows = [[_esc(gate), str(count)] for gate, count in run.summary.blocked_signals.items()]
    trade_rows = [[_esc(t.pair), _esc(_utc(t.entry_time)), _esc(_utc(t.exit_time)),
                   f"{t.entry_price:.8g}", "—" if t.exit_price is None else f"{t.exit_price:.8g}",
                   _money(t.pnl, cur), _esc(t.strategy.replace(",", ", ")),
                   _esc(t.notes.rpartition("exit: ")[2] if t.exit_time else "open")]
                  for t in [*run.trades, *run.open_trades]]
    resume = ("never (a human must review)" if run.summary.resume_after_s is None
              else _duration(run.summary.resume_after_s))
    charts = "".join(
        f'<figure><canvas class="price-chart" data-pair="{_esc(p)}" '
        f'aria-label="{_esc(p)} price with trades"></canvas></figure>' for p in run.prices)
    data = json.dumps(_data(run), separators=(",", ":")).replace("</", "<\\/")
    charts_js = CHARTS_JS.read_text(encoding="utf-8")
    title = f"NovaPulse backtest — {', '.join(run.summary.pairs)}"
    return _TEMPLATE.format(
        title=_esc(title), css=_CSS,
        span=_esc(f"{_utc(run.summary.start)} → {_utc(run.summary.end)}"),
        candles=run.summary.candles, kpis=_kpis(s, cur), resume=_esc(resume),
        bankroll=_esc(f"{config.trading.starting_bankroll:,.6g} {cur}"),
        fee=_esc(f"{config.trading.fee_rate * 100:.2f} %"),
        slippage=_esc(f"{config.trading.slippage_bps:g} bps"),
        pairs=_table(["Pair", "Trades", "Win rate", f"PnL ({cur})", "Profit factor",
                      "Buy and hold", "Exposure"], pairs_rows, "pairs"),
        strategies=_table(["Strategy", "Weight", "Trades", "Win rate", f"PnL ({cur})",
                           "Profit factor", "State"], strat_rows, "strategies"),
        pauses=_table(["Since", "Lasted", "By", "Reason", "Ended"], pause_rows, "pauses"),
        exits=_table(["Exit reason", "Trades"], exit_rows, "exits"),
        blocked=_table(["Gate", "Entries it blocked"], blocked_rows, "blocked"),
        trades=_table(["Pair", "Entry", "Exit", "Entry price", "Exit price", f"PnL ({cur})",
                       "Strategies", "Exit reason"], trade_rows, "trades"),
        charts=charts, data=data, charts_js=charts_js,
    )


def write_report(run: BacktestRun, config: Config, directory: Path) -> Path:
    """Writes DIR/index.html; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "index.html"
    path.write_text(render(run, config), encoding="utf-8")
    return path


_CSS = """
:root { --bg:#0f141b; --card:#171e28; --line:#2b3645; --text:#e3e9f1; --muted:#8b98a9; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text); font:14px system-ui, sans-serif; }
header, main { max-width: 1280px; margin: 0 auto; padding: 12px 16px; }
h1 { font-size: 20px; margin: 8px 0 4px; } h2 { font-size: 15px; color: var(--muted); }
.muted { color: var(--muted); }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:12px 14px; margin-bottom:14px; min-width:0; }
.kpis { display:grid; grid-template-columns:repeat(auto-fill, minmax(150px, 1fr)); gap:10px; }
.kpi span { display:block; color:var(--muted); font-size:12px; }
.kpi b { font-size:17px; font-weight:600; font-variant-numeric:tabular-nums; }
.cols { display:grid; grid-template-columns:repeat(auto-fit, minmax(320px, 1fr)); gap:14px; }
.scroll { overflow-x:auto; max-width:100%; }
table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:4px 6px; border-bottom:1px solid var(--line);
  white-space:nowrap; }
th { color:var(--muted); font-weight:500; font-size:12px; }
canvas { width:100%; display:block; }
figure { margin:0 0 10px; }
#trades-card .scroll { max-height: 420px; overflow-y: auto; }
"""

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p class="muted">{span} · {candles} candles · bankroll {bankroll} · fee {fee} ·
slippage {slippage} · risk-rule pauses lifted after {resume} (backtest only)</p>
</header>
<main>
<section class="card kpis" id="kpis">{kpis}</section>
<section class="card"><h2>Equity and drawdown</h2>
<canvas id="equity-chart" aria-label="Equity curve with drawdown"></canvas></section>
<section class="card"><h2>Trades on price</h2>
<p class="muted">▲ entry · ▼ exit (red: a losing trade)</p>{charts}</section>
<div class="cols">
<section class="card"><h2>Per pair</h2>{pairs}</section>
<section class="card"><h2>Per strategy</h2>{strategies}</section>
</div>
<div class="cols">
<section class="card"><h2>Why trades closed</h2>{exits}</section>
<section class="card"><h2>Entries blocked by a risk gate</h2>{blocked}</section>
</div>
<section class="card"><h2>Pauses</h2>{pauses}</section>
<section class="card" id="trades-card"><h2>Trades</h2>{trades}</section>
</main>
<script type="application/json" id="report-data">{data}</script>
<script>{charts_js}</script>
<script>
"use strict";
(function () {{
  const data = JSON.parse(document.getElementById("report-data").textContent);
  function draw() {{
    NPCharts.equity(document.getElementById("equity-chart"), data.equity,
      {{ currency: data.currency, height: 300 }});
    for (const canvas of document.querySelectorAll(".price-chart")) {{
      const pair = canvas.dataset.pair;
      NPCharts.price(canvas, data.prices[pair] || [], data.trades[pair] || [],
        {{ title: pair, unit: pair.split("/")[1] }});
    }}
  }}
  draw();
  let pending = null;
  window.addEventListener("resize", () => {{
    clearTimeout(pending);
    pending = setTimeout(draw, 150);
  }});
}})();
</script>
</body>
</html>
"""
