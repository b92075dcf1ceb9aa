// Names, not ids: buildings, units, grids, compounds, parking areas, staff and teams from
// /api/v1/site; devices from /api/v1/devices. An id without a name is shown as a neutral word.
import { t, label } from "./i18n.js";

export const names = {
  buildings: new Map(),
  units: new Map(), // "building/unit" -> name
  grids: new Map(),
  compounds: new Map(),
  spaces: new Map(), // space id -> {area: parking area name, kind}
  staff: new Map(), // staff id -> {name, role}
  teams: new Map(),
  devices: new Map(), // device id -> device row
};

export function loadSite(site) {
  for (const g of site.grids || []) names.grids.set(g.id, g.name);
  for (const c of site.compounds || []) {
    names.compounds.set(c.id, c.name);
    for (const b of c.buildings) {
      names.buildings.set(b.id, b.name);
      for (const u of b.units || []) names.units.set(`${b.id}/${u.id}`, u.name);
    }
  }
  for (const a of site.parking_areas || []) for (const s of a.spaces) names.spaces.set(s.id, { area: a.name, kind: s.kind });
  for (const m of site.staff || []) names.staff.set(m.id, m);
  for (const tm of site.teams || []) names.teams.set(tm.id, tm);
}

export function building(id) {
  return id ? names.buildings.get(id) || t("other_type") : "";
}

export function unit(b, u) {
  return u ? names.units.get(`${b}/${u}`) || t("other_type") : "";
}

// A staff id, a system actor ("rules", "tickets") or a team: always words.
export function person(id) {
  if (!id) return "";
  const m = names.staff.get(id);
  if (m) return m.name;
  if (label("actor", id) !== t("other_type")) return label("actor", id);
  return team(id);
}

export function team(id) {
  if (!id) return "";
  if (id.startsWith("grid:")) return `${names.grids.get(id.slice(5)) || ""} ${label("role", "grid_worker")}`.trim();
  const tm = names.teams.get(id);
  return tm ? tm.name : t("other_type");
}

export function device(id) {
  const d = names.devices.get(id);
  return d && d.name ? d.name : t("other_type");
}

// A parking space as a person says it: the area, the kind of space and its number
// ("和苑一区地面停车场 消防通道 1"), never the configured id.
export function space(id) {
  if (!id) return "";
  const sp = names.spaces.get(id);
  const tail = id.split("-").pop();
  const n = /^\d+$/.test(tail) ? ` ${tail}` : "";
  if (!sp) return t("other_type");
  return `${sp.area} ${label("space_kind", sp.kind || "normal")}${n}`;
}

// Where the incident is, as a person would say it.
export function place(inc) {
  const parts = [];
  const b = inc.building || (inc.location_released && inc.location_released.building);
  const u = inc.unit || (inc.location_released && inc.location_released.unit);
  if (b) parts.push(building(b));
  if (b && u) parts.push(unit(b, u));
  const rel = inc.location_released || inc.personal;
  if (rel && rel.floor) parts.push(t("floor_n", { n: rel.floor }));
  if (rel && rel.room) parts.push(rel.room);
  if (inc.space) parts.push(space(inc.space));
  if (!parts.length && inc.compound) parts.push(names.compounds.get(inc.compound) || "");
  if (!parts.length && inc.grid) parts.push(names.grids.get(inc.grid) || "");
  return parts.filter(Boolean).join(" · ");
}
