// History and search: every incident, open or closed, by time range, category, type, state,
// building, grid, compound, assignee, SLA missed and text in the notes; newest first, a page at a
// time; a click opens the incident with its whole timeline; the list as Excel or CSV.
import * as names from "../js/names.js";
import { api, button, download, el, errorText, fmtTime, groupWords, lang, openIncident, query, t } from "./core.js";

const DAY = 86400000;

export function mount(root, ctx) {
  // ctx.arg: a filter handed over by another view (the scorecard's "incidents behind this figure")
  const f = Object.assign({ range: ctx.arg && ctx.arg.from_ms ? "custom" : "30d" }, ctx.arg || {});
  const v = { root, f, cursor: null, site: null, alive: true };
  draw(v);
  return {
    unmount() {
      v.alive = false;
    },
    relabel() {
      draw(v);
    },
  };
}

async function draw(v) {
  v.root.replaceChildren(el("h2", null, t("tab_history")));
  if (!v.site) {
    try {
      v.site = await api("/api/v1/site");
    } catch (e) {
      v.site = { compounds: [], grids: [] };
    }
  }
  const form = el("form", "filters");
  form.setAttribute("role", "search");
  const field = (key, input) => {
    const l = el("label");
    l.append(t(key), input);
    form.append(l);
    return input;
  };
  const select = (name, options, value) => {
    const s = el("select");
    s.name = name;
    for (const [val, text] of options) {
      const o = el("option", null, text);
      o.value = val;
      if (String(value ?? "") === val) o.selected = true;
      s.append(o);
    }
    return s;
  };
  const any = [["", t("any")]];
  const q = el("input");
  q.name = "q";
  q.type = "search";
  q.maxLength = 100;
  q.value = v.f.q || "";
  q.placeholder = t("search_notes_hint");
  field("search_notes", q);
  field(
    "time_range",
    select(
      "range",
      [["today", t("range_today")], ["7d", t("range_7d")], ["30d", t("range_30d")], ["month", t("range_month")], ["last_month", t("range_last_month")], ["year", t("range_year")], ["all", t("range_all")], ["custom", t("range_custom")]],
      v.f.from_ms && !v.f.range ? "custom" : v.f.range,
    ),
  );
  const from = el("input");
  from.type = "date";
  from.name = "from";
  const to = el("input");
  to.type = "date";
  to.name = "to";
  if (v.f.from_ms) from.value = isoDay(v.f.from_ms);
  if (v.f.to_ms) to.value = isoDay(v.f.to_ms - 1);
  field("from_day", from);
  field("to_day", to);
  const cats = Object.entries(groupWords("category"));
  field("f_category", select("category", [...any, ...cats], v.f.category));
  const types = Object.entries(groupWords("type")).sort((a, b) => a[1].localeCompare(b[1], lang()));
  field("f_type", select("type", [...any, ...types], v.f.type));
  const states = Object.entries(groupWords("state"));
  field("f_state", select("state", [...any, ["open", t("state_open")], ["closed", t("state_closed")], ...states], v.f.state));
  const buildings = v.site.compounds.flatMap((c) => c.buildings.map((b) => [b.id, `${c.name} ${b.name}`]));
  field("f_building", select("building", [...any, ...buildings], v.f.building));
  field("f_compound", select("compound", [...any, ...v.site.compounds.map((c) => [c.id, c.name])], v.f.compound));
  if (v.f.compounds) {
    // several compounds handed over (a property company's, from the scorecard): kept until cleared
    const note = el("p", "muted hist-compounds");
    note.append(`${t("f_compound")}: ${v.f.compounds.map((c) => c.name).join("、")} `);
    note.append(
      button(t("clear"), "link", () => {
        delete v.f.compounds;
        note.remove();
        page(v, null);
      }),
    );
    form.append(note);
  }
  field("f_grid", select("grid", [...any, ...v.site.grids.map((g) => [g.id, g.name])], v.f.grid));
  // people by name (the site lists its staff to staff roles); a role that sees no staff list
  // filters by the other fields
  const staff = (v.site.staff || []).map((m) => [m.id, m.name]).sort((a, b) => a[1].localeCompare(b[1], lang()));
  if (staff.length) field("f_assignee", select("assignee", [...any, ...staff], v.f.assignee));
  field("sla", select("sla_missed", [...any, ["true", t("sla_missed_yes")], ["false", t("sla_missed_no")]], v.f.sla_missed));
  const actions = el("div", "hist-actions");
  const go = el("button", "act", t("search"));
  go.type = "submit";
  const xlsx = button(t("export_xlsx"), null, () => exportList(v, "xlsx"));
  const csv = button(t("export_csv"), null, () => exportList(v, "csv"));
  actions.append(go, xlsx, csv);
  form.append(actions);
  v.form = form;
  v.total = el("p", "muted site-status");
  v.total.setAttribute("role", "status");
  v.list = el("ul", "hist-list");
  v.more = button(t("more"), null, () => page(v, v.cursor));
  v.more.hidden = true;
  v.root.append(form, v.total, v.list, v.more);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    page(v, null);
  });
  page(v, null);
}

function isoDay(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

function params(v) {
  const fd = new FormData(v.form);
  const p = {};
  for (const k of ["q", "category", "type", "state", "building", "compound", "grid", "assignee", "sla_missed"]) {
    const val = (fd.get(k) || "").toString().trim();
    if (val) p[k] = val;
  }
  if (!p.compound && v.f.compounds) p.compound = v.f.compounds.map((c) => c.id);
  const now = new Date();
  const midnight = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  const range = fd.get("range");
  if (range === "today") p.from_ms = midnight;
  else if (range === "7d") p.from_ms = midnight - 6 * DAY;
  else if (range === "30d") p.from_ms = midnight - 29 * DAY;
  else if (range === "month") p.from_ms = new Date(now.getFullYear(), now.getMonth(), 1).getTime();
  else if (range === "last_month") {
    p.from_ms = new Date(now.getFullYear(), now.getMonth() - 1, 1).getTime();
    p.to_ms = new Date(now.getFullYear(), now.getMonth(), 1).getTime();
  } else if (range === "year") p.from_ms = new Date(now.getFullYear(), 0, 1).getTime();
  else if (range === "custom") {
    const from = fd.get("from");
    const to = fd.get("to");
    if (from) p.from_ms = new Date(`${from}T00:00:00`).getTime();
    if (to) p.to_ms = new Date(`${to}T00:00:00`).getTime() + DAY;
  }
  return p;
}

async function page(v, cursor) {
  const p = params(v);
  const first = !cursor;
  try {
    const r = await api(`/api/v1/history/incidents${query(Object.assign({}, p, { cursor, limit: 50, total: first }))}`);
    if (!v.alive) return;
    if (first) {
      v.list.replaceChildren();
      v.total.textContent = t("n_found", null, { n: r.total });
      v.total.dataset.total = String(r.total);
    }
    for (const inc of r.items) v.list.append(row(inc));
    v.cursor = r.next_cursor;
    v.more.hidden = r.next_cursor === null;
  } catch (e) {
    v.total.textContent = errorText(e);
  }
}

function row(inc) {
  const li = el("li", `hist-item sev-${inc.severity}`);
  li.dataset.incident = inc.id;
  li.tabIndex = 0;
  const place = inc.redacted ? t("personal_hidden") : names.place(inc);
  li.append(
    el("time", null, fmtTime(inc.first_ms)),
    el("b", null, `${t(inc.type, "type")}`),
    el("span", `state-${inc.state}`, t(inc.state, "state")),
    el("span", "meta", [t(inc.category, "category"), place, names.person(inc.assignee)].filter(Boolean).join(" · ")),
  );
  if (inc.match) li.append(el("span", "match", inc.match));
  const open = () => openIncident(inc.id);
  li.addEventListener("click", open);
  li.addEventListener("keydown", (e) => {
    if (e.key === "Enter") open();
  });
  return li;
}

async function exportList(v, fmt) {
  const p = Object.assign(params(v), { lang: lang() });
  try {
    await download(`/api/v1/reports/incidents.${fmt}${query(p)}`, `incidents.${fmt}`);
  } catch (e) {
    v.total.textContent = e.status === 422 ? t("export_too_big") : errorText(e);
  }
}
