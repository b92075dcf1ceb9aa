// Parking: per area a lot plan drawn from the site config (spaces[].row/position, or polygons),
// every space coloured by its state now (free / occupied / unknown), fire lanes and no-parking
// spaces marked, a space with an open incident flashing and opening the incident on a click;
// counters per area and occupancy by hour (today against the 7 days before).
// Live: while on screen the plan asks for the next change (the gateway answers as soon as a space
// reading is stored, or after 0.9 s with whatever changed meanwhile: incidents, sensors offline).
import * as names from "../js/names.js";
import { api, button, el, errorText, fmtAge, fmtTime, openIncident, t } from "./core.js";
import { COLORS, lines } from "./chart.js";

const WAIT_MS = 900;
const MIN_GAP_MS = 250; // between two answers: a busy lot changes every moment
const CHART_MS = 300000;

export function mount(root) {
  const v = { root, areas: new Map(), timer: null, charts: [], chartTimer: null, data: null, alive: true };
  root.append(el("h2", null, t("tab_parking")));
  const status = el("p", "muted site-status");
  status.setAttribute("role", "status");
  root.append(status, legend());
  v.status = status;
  v.list = el("div", "lots");
  root.append(v.list);
  loop(v);
  v.chartTimer = setInterval(() => charts(v), CHART_MS);
  return {
    unmount() {
      v.alive = false;
      clearInterval(v.chartTimer);
      for (const c of v.charts) c.then((x) => x && x.destroy());
    },
    relabel() {
      v.root.replaceChildren();
      mountAgain(v);
    },
  };
}

function mountAgain(v) {
  v.root.append(el("h2", null, t("tab_parking")), v.status, legend(), v.list);
  v.list.replaceChildren();
  v.areas.clear();
  if (v.data) render(v, v.data);
}

function legend() {
  const box = el("div", "lot-legend");
  for (const [cls, key] of [
    ["st-free", "space_free"],
    ["st-occupied", "space_occupied"],
    ["st-unknown", "space_unknown"],
    ["kind-fire_lane", "kind_fire_lane"],
    ["kind-no_parking", "kind_no_parking"],
    ["has-incident", "space_incident"],
  ]) {
    const item = el("span", "lot-legend-item");
    item.append(el("span", `space-swatch ${cls}`), t(key));
    box.append(item);
  }
  return box;
}

async function loop(v) {
  while (v.alive) {
    const t0 = Date.now();
    const ok = await tick(v);
    const gap = ok ? MIN_GAP_MS : 3000; // after an error, not in a tight loop
    await new Promise((r) => setTimeout(r, Math.max(0, gap - (Date.now() - t0))));
    while (v.alive && document.hidden) await new Promise((r) => setTimeout(r, 1000));
  }
}

async function tick(v) {
  try {
    const seen = v.data ? `?seen=${v.data.version}&wait_ms=${WAIT_MS}` : "";
    const data = await api(`/api/v1/parking${seen}`);
    if (!v.alive) return true;
    v.data = data;
    render(v, data);
    v.status.textContent = t("updated_at", null, { time: fmtTime(data.ts_ms, false) });
    v.status.classList.remove("error");
    return true;
  } catch (e) {
    v.status.textContent = errorText(e);
    v.status.classList.add("error");
    return false;
  }
}

function render(v, data) {
  if (!data.areas.length) {
    v.list.replaceChildren(el("p", "muted", t("no_parking")));
    return;
  }
  for (const area of data.areas) {
    let a = v.areas.get(area.id);
    if (!a) {
      a = buildArea(v, area);
      v.areas.set(area.id, a);
      v.list.append(a.root);
    }
    update(a, area);
  }
}

function label(sp) {
  const tail = sp.id.split("-").pop();
  if (sp.kind === "fire_lane") return `${t("fire_short")}${/^\d+$/.test(tail) ? tail : ""}`;
  if (sp.kind === "no_parking") return t("nopark_short");
  if (sp.kind === "reserved") return `${t("reserved_short")}${/^\d+$/.test(tail) ? tail : ""}`;
  return tail;
}

function buildArea(v, area) {
  const root = el("section", "lot");
  root.dataset.area = area.id;
  const head = el("div", "lot-head");
  const title = el("h3", null, area.name);
  const comp = el("span", "muted", area.compound_name);
  const counts = el("div", "lot-counts");
  head.append(title, comp, counts);
  root.append(head);
  const spaces = new Map();
  const placed = area.spaces.filter((s) => s.row && s.position);
  const drawn = area.spaces.filter((s) => s.polygon);
  const rest = area.spaces.filter((s) => !(s.row && s.position) && !s.polygon);
  if (placed.length || rest.length) {
    const plan = el("div", "lot-plan");
    const rows = Math.max(0, ...placed.map((s) => s.row));
    const cols = Math.max(1, ...placed.map((s) => s.position), Math.min(rest.length, 12));
    plan.style.gridTemplateColumns = `repeat(${cols}, minmax(1.5rem, 1fr))`; // 12 fit a phone
    const put = (sp, row, col) => {
      const b = el("button", `space kind-${sp.kind}`, label(sp));
      b.type = "button";
      b.dataset.space = sp.id;
      b.style.gridRow = String(row);
      b.style.gridColumn = String(col);
      b.addEventListener("click", () => clickSpace(a, sp.id));
      plan.append(b);
      spaces.set(sp.id, b);
    };
    for (const sp of placed) put(sp, sp.row, sp.position);
    rest.forEach((sp, i) => put(sp, rows + 1 + Math.floor(i / cols), (i % cols) + 1));
    root.append(plan);
  }
  if (drawn.length) root.append(svgPlan(drawn, spaces, (id) => clickSpace(a, id)));
  const alarms = el("ul", "lot-alarms");
  const info = el("p", "lot-info muted");
  info.setAttribute("role", "status");
  const chartBox = el("div", "lot-chart");
  root.append(alarms, info, el("h4", null, t("occupancy_by_hour")), chartBox);
  const a = { root, counts, spaces, alarms, info, chartBox, area };
  v.charts.push(chart(a));
  return a;
}

function svgPlan(drawn, spaces, onClick) {
  const NS = "http://www.w3.org/2000/svg";
  const xs = drawn.flatMap((s) => s.polygon.map((p) => p[0]));
  const ys = drawn.flatMap((s) => s.polygon.map((p) => p[1]));
  const [x0, y0] = [Math.min(...xs), Math.min(...ys)];
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `${x0} ${y0} ${Math.max(...xs) - x0 || 1} ${Math.max(...ys) - y0 || 1}`);
  svg.setAttribute("class", "lot-svg");
  for (const sp of drawn) {
    const g = document.createElementNS(NS, "polygon");
    g.setAttribute("points", sp.polygon.map((p) => p.join(",")).join(" "));
    g.setAttribute("class", `space kind-${sp.kind}`);
    g.dataset.space = sp.id;
    g.setAttribute("tabindex", "0");
    g.addEventListener("click", () => onClick(sp.id));
    svg.append(g);
    spaces.set(sp.id, g);
  }
  return svg;
}

function update(a, area) {
  a.area = area;
  const c = area.counts;
  a.counts.replaceChildren(
    el("b", "count-free", String(c.free)),
    ` ${t("free_of", null, { total: c.total })} · ${t("space_occupied")} ${c.occupied}`,
    c.unknown ? ` · ${t("space_unknown")} ${c.unknown}` : "",
  );
  a.counts.dataset.free = String(c.free);
  const alarms = [];
  for (const sp of area.spaces) {
    const node = a.spaces.get(sp.id);
    if (!node) continue;
    if (node.dataset.state !== sp.state) {
      node.dataset.state = sp.state;
      node.classList.remove("st-free", "st-occupied", "st-unknown");
      node.classList.add(`st-${sp.state}`);
    }
    const inc = sp.incident;
    node.classList.toggle("has-incident", Boolean(inc));
    node.dataset.incident = inc ? inc.id : "";
    const tip = `${names.space(sp.id)} · ${t(`space_${sp.state}`)}${sp.why ? ` (${t(`why_${sp.why}`)})` : ""}${inc ? ` · ${t(inc.type, "type")}` : ""}`;
    if (node.getAttribute("aria-label") !== tip) node.setAttribute("aria-label", tip);
    if (inc) alarms.push([sp, inc]);
  }
  const key = alarms.map(([sp, inc]) => `${sp.id}:${inc.id}:${inc.state}`).join(",");
  if (a.alarms.dataset.key !== key) {
    a.alarms.dataset.key = key;
    a.alarms.replaceChildren(
      ...alarms.map(([sp, inc]) => {
        const li = el("li", `lot-alarm sev-${inc.severity}`);
        const b = button(`${t(inc.type, "type")} · ${names.space(sp.id)} · ${fmtAge(inc.first_ms)}`, "link", () => openIncident(inc.id));
        b.dataset.incident = inc.id;
        li.append(b, el("span", "muted", ` ${t(inc.state, "state")}`));
        return li;
      }),
    );
  }
}

function clickSpace(a, id) {
  const sp = a.area.spaces.find((s) => s.id === id);
  if (!sp) return;
  if (sp.incident) {
    openIncident(sp.incident.id);
    return;
  }
  const since = sp.ts_ms ? ` · ${t("last_report")} ${fmtTime(sp.ts_ms)}` : "";
  const why = sp.why ? ` (${t(`why_${sp.why}`)})` : "";
  a.info.textContent = `${names.space(sp.id)} · ${t(`space_${sp.state}`)}${why}${since}`;
}

async function chart(a) {
  try {
    const h = await api(`/api/v1/parking/${encodeURIComponent(a.area.id)}/hourly`);
    return await lines(a.chartBox, {
      xLabel: (i) => `${i}${t("hour_suffix")}`,
      yLabel: t("occupied_pct"),
      yMax: 100,
      height: 180,
      series: [
        { label: t("today"), values: h.today, color: COLORS.today },
        {
          label: h.days ? t("mean_days", null, { n: h.days }) : t("mean_none"),
          values: h.mean_days,
          color: COLORS.mean,
          dash: [6, 4],
        },
      ],
    });
  } catch (e) {
    a.chartBox.textContent = errorText(e);
    return null;
  }
}

function charts(v) {
  for (const c of v.charts) c.then((x) => x && x.destroy());
  v.charts = [...v.areas.values()].map((a) => chart(a));
}
