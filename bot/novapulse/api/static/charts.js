"use strict";
// NovaPulse charts on <canvas>, no libraries: shared by the dashboard and the backtest report
// (which inlines this file). Time axes are UTC. Every chart sets data-points on its canvas.

const NPCharts = (() => {
  const COLORS = {
    grid: "#2b3645", text: "#8b98a9", up: "#35c47c", down: "#ef5f5f", line: "#5aa9e6",
    dd: "rgba(239, 95, 95, 0.35)", entry: "#35c47c", exit: "#e9b44c", loss: "#ef5f5f",
  };
  const PAD = { left: 64, right: 10, top: 10, bottom: 22 };

  function fmtValue(v, digits) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "–";
    const abs = Math.abs(v);
    if (digits !== undefined) return v.toFixed(digits);
    if (abs >= 1000) return v.toLocaleString(undefined, { maximumFractionDigits: 0 });
    if (abs >= 1) return v.toFixed(2);
    return v.toPrecision(4);
  }

  function setup(canvas, height) {
    const width = Math.max(canvas.clientWidth || canvas.parentElement.clientWidth || 600, 200);
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";
    return { ctx, width, height };
  }

  // Tick spacing for a time span: a round number of minutes, hours or days.
  const STEPS = [5, 10, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400,
    7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 365 * 86400];

  function timeTicks(t0, t1, maxTicks) {
    const span = Math.max(t1 - t0, 1);
    const step = STEPS.find((s) => span / s <= maxTicks) || STEPS[STEPS.length - 1];
    const ticks = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
    return { ticks, step };
  }

  function timeLabel(t, step) {
    const iso = new Date(t * 1000).toISOString();
    if (step >= 86400) return iso.slice(0, 10);
    if (step < 60) return iso.slice(11, 19);
    const day = iso.slice(5, 10);
    const hm = iso.slice(11, 16);
    return hm === "00:00" ? day : `${day} ${hm}`;
  }

  function frame(ctx, box, t0, t1, lo, hi, unit, yDigits) {
    ctx.strokeStyle = COLORS.grid;
    ctx.fillStyle = COLORS.text;
    ctx.lineWidth = 1;
    const y = (v) => box.top + (1 - (v - lo) / (hi - lo)) * box.h;
    for (let i = 0; i <= 3; i += 1) {
      const v = lo + ((hi - lo) * i) / 3;
      ctx.beginPath();
      ctx.moveTo(box.left, Math.round(y(v)) + 0.5);
      ctx.lineTo(box.left + box.w, Math.round(y(v)) + 0.5);
      ctx.stroke();
      ctx.fillText(fmtValue(v, yDigits), 2, y(v) + 4);
    }
    if (unit) ctx.fillText(unit, 2, box.top + box.h + 16);
    return y;
  }

  function timeAxis(ctx, box, t0, t1) {
    const { ticks, step } = timeTicks(t0, t1, Math.max(2, Math.floor(box.w / 110)));
    const x = (t) => box.left + ((t - t0) / Math.max(t1 - t0, 1)) * box.w;
    ctx.fillStyle = COLORS.text;
    ctx.textAlign = "center";
    for (const t of ticks) {
      ctx.fillText(timeLabel(t, step), x(t), box.top + box.h + 15);
    }
    ctx.textAlign = "left";
    return x;
  }

  function bounds(values, padFrac) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
    if (hi - lo < 1e-12) { const d = Math.abs(hi) * 0.01 || 1; hi += d; lo -= d; }
    const pad = (hi - lo) * (padFrac || 0.05);
    return [lo - pad, hi + pad];
  }

  function polyline(ctx, points, x, y, color, width) {
    ctx.strokeStyle = color;
    ctx.lineWidth = width || 1.5;
    ctx.beginPath();
    points.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p[0]), y(p[1])) : ctx.lineTo(x(p[0]), y(p[1]))));
    ctx.stroke();
  }

  function empty(canvas, ctx, width, height, text) {
    canvas.dataset.points = "0";
    ctx.fillStyle = COLORS.text;
    ctx.fillText(text, 12, height / 2);
  }

  // Equity over time, and the drawdown below its running peak underneath (in %).
  function equity(canvas, points, opts = {}) {
    const height = opts.height || 260;
    const { ctx, width } = setup(canvas, height);
    canvas.dataset.points = String(points.length);
    if (points.length < 2) {
      empty(canvas, ctx, width, height, opts.emptyText || "Collecting equity samples…");
      return;
    }
    const t0 = points[0][0];
    const t1 = points[points.length - 1][0];
    const withDd = opts.drawdown !== false;
    const ddH = withDd ? Math.round((height - PAD.top - PAD.bottom) * 0.28) : 0;
    const top = { left: PAD.left, top: PAD.top, w: width - PAD.left - PAD.right,
      h: height - PAD.top - PAD.bottom - ddH - (withDd ? 8 : 0) };
    const [lo, hi] = bounds(points.map((p) => p[1]));
    const y = frame(ctx, top, t0, t1, lo, hi, "", undefined);
    const x = (t) => top.left + ((t - t0) / Math.max(t1 - t0, 1)) * top.w;
    const last = points[points.length - 1][1];
    polyline(ctx, points, x, y, last >= points[0][1] ? COLORS.up : COLORS.down, 2);
    if (opts.currency) {
      ctx.fillStyle = COLORS.text;
      ctx.fillText(`equity (${opts.currency})`, top.left + 6, top.top + 12);
    }
    if (withDd) {
      let peak = -Infinity;
      const dd = points.map((p) => { peak = Math.max(peak, p[1]); return [p[0], peak > 0 ? (100 * (p[1] - peak)) / peak : 0]; });
      const minDd = Math.min(-0.01, ...dd.map((p) => p[1]));
      const box = { left: PAD.left, top: top.top + top.h + 8, w: top.w, h: ddH };
      const yd = (v) => box.top + (v / minDd) * box.h;
      ctx.fillStyle = COLORS.dd;
      ctx.beginPath();
      ctx.moveTo(x(dd[0][0]), box.top);
      dd.forEach((p) => ctx.lineTo(x(p[0]), yd(p[1])));
      ctx.lineTo(x(dd[dd.length - 1][0]), box.top);
      ctx.closePath();
      ctx.fill();
      ctx.fillStyle = COLORS.text;
      ctx.fillText("0%", 2, box.top + 9);
      ctx.fillText(`${minDd.toFixed(1)}%`, 2, box.top + box.h);
      ctx.fillText("drawdown", box.left + 6, box.top + 12);
      timeAxis(ctx, { left: box.left, top: box.top, w: box.w, h: box.h }, t0, t1);
    } else {
      timeAxis(ctx, top, t0, t1);
    }
  }

  // A pair's price with its trades: ▲ entries, ▼ exits (red when the trade lost).
  function price(canvas, points, trades, opts = {}) {
    const height = opts.height || 220;
    const { ctx, width } = setup(canvas, height);
    canvas.dataset.points = String(points.length);
    canvas.dataset.markers = "0";
    if (points.length < 2) {
      empty(canvas, ctx, width, height, opts.emptyText || "No prices yet");
      return;
    }
    const t0 = points[0][0];
    const t1 = points[points.length - 1][0];
    const box = { left: PAD.left, top: PAD.top, w: width - PAD.left - PAD.right,
      h: height - PAD.top - PAD.bottom };
    const [lo, hi] = bounds(points.map((p) => p[1]));
    const y = frame(ctx, box, t0, t1, lo, hi, opts.unit || "", undefined);
    const x = timeAxis(ctx, box, t0, t1);
    polyline(ctx, points, x, y, COLORS.line, 1.2);
    let markers = 0;
    const tri = (px, py, up, color) => {
      ctx.fillStyle = color;
      ctx.beginPath();
      const s = 5;
      if (up) { ctx.moveTo(px, py + 2); ctx.lineTo(px - s, py + 2 + 2 * s); ctx.lineTo(px + s, py + 2 + 2 * s); }
      else { ctx.moveTo(px, py - 2); ctx.lineTo(px - s, py - 2 - 2 * s); ctx.lineTo(px + s, py - 2 - 2 * s); }
      ctx.closePath();
      ctx.fill();
      markers += 1;
    };
    for (const t of trades || []) {
      if (t.entry_time >= t0 && t.entry_time <= t1) tri(x(t.entry_time), y(t.entry_price), true, COLORS.entry);
      if (t.exit_time !== null && t.exit_time !== undefined && t.exit_time >= t0 && t.exit_time <= t1) {
        tri(x(t.exit_time), y(t.exit_price), false, t.pnl < 0 ? COLORS.loss : COLORS.exit);
      }
    }
    canvas.dataset.markers = String(markers);
    if (opts.title) {
      ctx.fillStyle = COLORS.text;
      ctx.fillText(opts.title, box.left + 6, box.top + 12);
    }
  }

  return { equity, price, fmtValue };
})();

if (typeof window !== "undefined") window.NPCharts = NPCharts;
