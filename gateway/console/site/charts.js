// Charts where people would rather look than read: incidents per day by category, SLA misses per
// day, time to accept / resolve per team (median and p90), open incidents by age.
import { api, el, errorText, lang, t } from "./core.js";
import { COLORS, lines, overlayBars, stackedBars } from "./chart.js";

const CATS = ["parking", "security", "eldercare", "device_health"];

export function mount(root) {
  const v = { root, charts: [], data: null, days: 30 };
  draw(v);
  return {
    unmount() {
      destroy(v);
    },
    relabel() {
      draw(v);
    },
  };
}

function destroy(v) {
  for (const c of v.charts) Promise.resolve(c).then((x) => x && x.destroy());
  v.charts = [];
}

async function draw(v) {
  destroy(v);
  v.root.replaceChildren(el("h2", null, t("tab_charts")));
  const pick = el("select");
  for (const d of [7, 30, 90]) {
    const o = el("option", null, t("last_n_days", null, { n: d }));
    o.value = String(d);
    if (d === v.days) o.selected = true;
    pick.append(o);
  }
  pick.addEventListener("change", () => {
    v.days = Number(pick.value);
    v.data = null;
    draw(v);
  });
  const status = el("p", "muted site-status");
  v.root.append(pick, status);
  try {
    v.data = v.data || (await api(`/api/v1/stats/incidents?days=${v.days}`));
  } catch (e) {
    status.textContent = errorText(e);
    return;
  }
  const d = v.data;
  const grid = el("div", "charts");
  v.root.append(grid);
  const box = (key, note) => {
    const b = el("section", "chart-box");
    b.dataset.chart = key;
    b.append(el("h3", null, t(key)));
    if (note) b.append(el("p", "muted", note));
    const c = el("div");
    b.append(c);
    grid.append(b);
    return c;
  };
  const md = new Intl.DateTimeFormat(lang() === "zh" ? "zh-CN" : "en-GB", { month: "numeric", day: "numeric" });
  const day = (i) => (d.day_starts_ms[i] ? md.format(new Date(d.day_starts_ms[i])) : "");
  const total = CATS.reduce((s, c) => s + d.per_day[c].reduce((a, b) => a + b, 0), 0);
  v.charts.push(
    stackedBars(box("chart_per_day", t("n_incidents", null, { n: total })), {
      xLabel: day,
      yLabel: t("count"),
      series: CATS.map((c) => ({ label: t(c, "category"), values: d.per_day[c], color: COLORS[c] })),
    }),
  );
  const missed = d.sla_missed_per_day.reduce((a, b) => a + b, 0);
  v.charts.push(
    lines(box("chart_sla", t("n_missed", null, { n: missed })), {
      xLabel: day,
      yLabel: t("count"),
      series: [{ label: t("sla_missed_yes"), values: d.sla_missed_per_day, color: COLORS.missed }],
    }),
  );
  const teams = d.teams.slice(0, 8);
  const min = (s) => (s === null ? null : Math.round(s / 6) / 10);
  const timed = teams.some((x) => x.accept_p50_s !== null || x.resolve_p50_s !== null);
  if (!timed) box("chart_accept", t("no_times_yet"));
  else {
    v.charts.push(
      overlayBars(box("chart_accept"), {
        labels: teams.map((x) => x.name),
        yLabel: t("minutes"),
        series: [
          { label: "p90", values: teams.map((x) => min(x.accept_p90_s)), color: COLORS.p90 },
          { label: t("median"), values: teams.map((x) => min(x.accept_p50_s)), color: COLORS.p50 },
        ],
      }),
      overlayBars(box("chart_resolve"), {
        labels: teams.map((x) => x.name),
        yLabel: t("minutes"),
        series: [
          { label: "p90", values: teams.map((x) => min(x.resolve_p90_s)), color: COLORS.p90 },
          { label: t("median"), values: teams.map((x) => min(x.resolve_p50_s)), color: COLORS.p50 },
        ],
      }),
    );
  }
  const ages = [t("age_lt1h"), t("age_1_4h"), t("age_4_24h"), t("age_1_7d"), t("age_gt7d")];
  const open = CATS.reduce((s, c) => s + d.open_by_age.counts[c].reduce((a, b) => a + b, 0), 0);
  v.charts.push(
    stackedBars(box("chart_open_age", t("n_open", null, { n: open })), {
      xLabel: (i) => ages[i] || "",
      yLabel: t("count"),
      series: CATS.map((c) => ({ label: t(c, "category"), values: d.open_by_age.counts[c], color: COLORS[c] })),
    }),
  );
}
