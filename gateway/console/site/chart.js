// Charts with uPlot (vendor/uplot, MIT, 51 KB minified: see vendor/uplot/VERSION and the README),
// loaded the first time a chart is drawn so the alarm page itself never pays for it.
import { el } from "./core.js";

let loading = null;

export function uplot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const css = el("link");
      css.rel = "stylesheet";
      css.href = "vendor/uplot/uPlot.min.css";
      document.head.append(css);
      const s = el("script");
      s.src = "vendor/uplot/uPlot.iife.min.js";
      s.onload = () => resolve(window.uPlot);
      s.onerror = () => reject(new Error("uPlot did not load"));
      document.head.append(s);
    });
  }
  return loading;
}

export const COLORS = {
  parking: "#1565c0",
  security: "#6a1b9a",
  eldercare: "#c62828",
  device_health: "#607d8b",
  today: "#1565c0",
  mean: "#9e9e9e",
  p50: "#2e7d32",
  p90: "#ef6c00",
  missed: "#c62828",
};

function width(box) {
  return Math.max(260, Math.min(box.clientWidth || 600, 900));
}

// A chart that follows its box's width (phones turn, panels open).
async function draw(box, opts, data) {
  const U = await uplot();
  box.replaceChildren();
  const u = new U(Object.assign({ width: width(box), height: opts.height || 220 }, opts), data, box);
  const ro = new ResizeObserver(() => u.setSize({ width: width(box), height: opts.height || 220 }));
  ro.observe(box);
  return { destroy: () => (ro.disconnect(), u.destroy()) };
}

// Lines over x = 0..n-1 labelled by xLabel(i); series: [{label, values, color, dash}].
export function lines(box, { xLabel, series, yLabel, yMax, height }) {
  const n = series[0].values.length;
  const x = Array.from({ length: n }, (_, i) => i);
  return draw(
    box,
    {
      height,
      scales: { x: { time: false }, y: { range: [0, yMax || null] } },
      axes: [{ values: (u, ticks) => ticks.map((i) => xLabel(i)) }, { label: yLabel, size: 50 }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, dash: s.dash, spanGaps: false }))],
      legend: { live: false },
    },
    [x, ...series.map((s) => s.values)],
  );
}

// Stacked bars over x = 0..n-1: series drawn tallest (cumulative) first, each on top of the last.
export async function stackedBars(box, { xLabel, series, yLabel, height }) {
  const U = await uplot();
  const n = series[0].values.length;
  const x = Array.from({ length: n }, (_, i) => i);
  const cum = [];
  let run = new Array(n).fill(0);
  for (const s of series) {
    run = run.map((v, i) => v + (s.values[i] || 0));
    cum.push(run.slice());
  }
  const bars = U.paths.bars({ size: [0.7, 40] });
  const order = series.map((s, i) => i).reverse();
  return draw(
    box,
    {
      height,
      scales: { x: { time: false, range: [-0.5, n - 0.5] }, y: { range: [0, null] } },
      axes: [{ values: (u, ticks) => ticks.map((i) => xLabel(i)) }, { label: yLabel, size: 50 }],
      series: [{}, ...order.map((i) => ({ label: series[i].label, fill: series[i].color, stroke: series[i].color, paths: bars, points: { show: false } }))],
      legend: { live: false },
    },
    [x, ...order.map((i) => cum[i])],
  );
}

// Bars per label with a second, smaller figure drawn in front (median inside p90): series are
// drawn in order, so the larger one comes first. Labels are numbered under the axis (names are
// long on a phone) and listed below the chart.
export async function overlayBars(box, { labels, series, yLabel, height }) {
  const U = await uplot();
  const n = labels.length;
  const x = Array.from({ length: n }, (_, i) => i);
  const bars = U.paths.bars({ size: [0.6, 60] });
  const chart = el("div");
  const key = el("ol", "chart-key");
  for (const l of labels) key.append(el("li", null, l));
  box.replaceChildren(chart, key);
  return draw(
    chart,
    {
      height,
      scales: { x: { time: false, range: [-0.5, n - 0.5] }, y: { range: [0, null] } },
      axes: [{ values: (u, ticks) => ticks.map((i) => (Number.isInteger(i) && i >= 0 && i < n ? String(i + 1) : "")) }, { label: yLabel, size: 50 }],
      series: [{}, ...series.map((s) => ({ label: s.label, fill: s.color, stroke: s.color, paths: bars, points: { show: false } }))],
      legend: { live: false },
    },
    [x, ...series.map((s) => s.values)],
  );
}
