// Buildings: per compound, each building in one line with its device health as counts (online,
// offline, battery low) and its open incidents; a click opens the building: a floor x unit table
// showing where each open incident is, and the building's devices a page at a time.
import { api, button, el, errorText, fmtAge, fmtTime, openIncident, query, t } from "./core.js";

const REFRESH_MS = 15000;

export function mount(root) {
  const v = { root, data: null, open: null, timer: null, alive: true };
  draw(v);
  load(v);
  v.timer = setInterval(() => {
    if (!document.hidden) load(v);
  }, REFRESH_MS);
  return {
    unmount() {
      v.alive = false;
      clearInterval(v.timer);
    },
    relabel() {
      draw(v);
      if (v.data) render(v);
    },
  };
}

function draw(v) {
  v.root.replaceChildren(el("h2", null, t("tab_buildings")));
  v.status = el("p", "muted site-status");
  v.status.setAttribute("role", "status");
  v.body = el("div");
  v.root.append(v.status, v.body);
}

async function load(v) {
  try {
    v.data = await api("/api/v1/buildings");
    if (!v.alive) return;
    v.status.textContent = "";
    render(v);
  } catch (e) {
    v.status.textContent = errorText(e);
  }
}

function chips(b) {
  const h = b.health;
  const box = el("div", "chips");
  if (b.incidents.length) box.append(el("span", "chip inc", t("n_incidents", null, { n: b.incidents.length })));
  if (b.hidden_incidents) box.append(el("span", "chip inc", t("n_care_incidents", null, { n: b.hidden_incidents })));
  box.append(el("span", "chip on", `${t("online")} ${h.online}`));
  if (h.offline) box.append(el("span", "chip off", `${t("offline_dev")} ${h.offline}`));
  if (h.battery_low) box.append(el("span", "chip low", `${t("battery_low_n")} ${h.battery_low}`));
  if (h.unknown) box.append(el("span", "chip", `${t("never_heard")} ${h.unknown}`));
  return box;
}

function render(v) {
  v.body.replaceChildren();
  for (const c of v.data.compounds) {
    const sec = el("section", "compound");
    const n = c.buildings.reduce((s, b) => s + b.incidents.length + b.hidden_incidents, 0);
    const off = c.buildings.reduce((s, b) => s + b.health.offline, 0);
    sec.append(el("h3", null, `${c.name} · ${t("n_buildings", null, { n: c.buildings.length })}`));
    sec.append(el("p", "muted", `${t("n_incidents", null, { n })} · ${t("offline_dev")} ${off}`));
    const list = el("div", "bld-list");
    for (const b of c.buildings) {
      const card = el("button", `bld${b.incidents.length || b.hidden_incidents ? " has-incidents" : ""}`);
      card.type = "button";
      card.dataset.building = b.id;
      card.setAttribute("aria-expanded", String(v.open === b.id));
      card.append(el("div", "bld-name", b.name), chips(b));
      card.addEventListener("click", () => {
        v.open = v.open === b.id ? null : b.id;
        render(v);
      });
      list.append(card);
      if (v.open === b.id) list.append(detail(b));
    }
    sec.append(list);
    v.body.append(sec);
  }
}

function detail(b) {
  const box = el("div", "bld-open");
  box.dataset.building = b.id;
  box.append(el("h4", null, `${b.name} · ${t("n_floors", null, { n: b.floors })}`));
  if (b.incidents.length) box.append(floorTable(b));
  else box.append(el("p", "muted", t("no_open_incidents")));
  if (b.hidden_incidents) box.append(el("p", "muted", t("care_hidden", null, { n: b.hidden_incidents })));
  box.append(devices(b));
  return box;
}

// Floors top down, a column per unit: only the floors with an incident, and the ones between
// kept as a gap row, so a 30-floor building stays a few lines tall.
function floorTable(b) {
  const units = b.units.length ? b.units : [{ id: null, name: "—" }];
  const table = el("table", "floors");
  const head = el("tr");
  head.append(el("th", null, t("floor")));
  for (const u of units) head.append(el("th", null, u.name));
  table.append(head);
  const byFloor = new Map();
  for (const inc of b.incidents) {
    const f = inc.floor === null || inc.floor === undefined ? "?" : inc.floor;
    if (!byFloor.has(f)) byFloor.set(f, []);
    byFloor.get(f).push(inc);
  }
  const floors = [...byFloor.keys()].filter((f) => f !== "?").sort((x, y) => y - x);
  if (byFloor.has("?")) floors.push("?");
  for (const f of floors) {
    const tr = el("tr");
    tr.append(el("th", null, f === "?" ? t("floor_unknown") : t("floor_n", null, { n: f })));
    for (const u of units) {
      const here = byFloor.get(f).filter((i) => (u.id === null ? true : i.unit === u.id || (!i.unit && u === units[0])));
      const td = el("td", here.length ? "hit" : "");
      for (const inc of here) {
        const bt = button(`${t(inc.type, "type")} ${fmtAge(inc.first_ms)}`, `sev-${inc.severity}`, () => openIncident(inc.id));
        bt.dataset.incident = inc.id;
        td.append(bt);
      }
      tr.append(td);
    }
    table.append(tr);
  }
  return table;
}

function devices(b) {
  const box = el("div");
  const bar = el("div", "hist-actions");
  const sel = el("select");
  for (const [value, key] of [["", "all_devices"], ["offline", "offline_dev"], ["battery", "battery_low_n"], ["unknown", "never_heard"]]) {
    const o = el("option", null, t(key));
    o.value = value;
    sel.append(o);
  }
  const show = button(t("show_devices"), null, () => page(null));
  bar.append(el("span", null, t("devices_of_building")), sel, show);
  const table = el("table", "dev-table");
  const more = button(t("more"), null, () => page(box.dataset.cursor));
  more.hidden = true;
  const total = el("p", "muted");
  box.append(bar, total, table, more);
  async function page(cursor) {
    const f = sel.value;
    const params = {
      building: b.id,
      limit: 50,
      cursor,
      state: f === "offline" ? "offline" : f === "unknown" ? "unknown" : null,
      battery_low: f === "battery" ? "true" : null,
    };
    try {
      const r = await api(`/api/v1/devices/page${query(params)}`);
      if (!cursor) table.replaceChildren();
      total.textContent = t("n_devices", null, { n: r.total });
      for (const d of r.items) {
        const tr = el("tr");
        const st = d.online === null ? t("never_heard") : d.online ? t("online") : t("offline_dev");
        tr.append(
          el("td", null, d.name),
          el("td", null, t(d.type, "dtype")),
          el("td", d.online === false ? "error" : "", st),
          el("td", null, d.battery === null || d.battery === undefined ? "" : `${Math.round(d.battery)}%`),
          el("td", "muted", d.last_seen_ms ? fmtTime(d.last_seen_ms) : ""),
        );
        table.append(tr);
      }
      box.dataset.cursor = r.next_cursor || "";
      more.hidden = !r.next_cursor;
    } catch (e) {
      total.textContent = errorText(e);
    }
  }
  return box;
}
