// The open-incident list (most severe first, then oldest), the detail with its elder-care card,
// and the device overview. Everything from devices or people is set as text, never as HTML.
import { $, el, fmtTime, label, t } from "./i18n.js";
import { alarm } from "./alarm.js";
import { building, device, names, person, place, team, unit } from "./names.js";

const SEV_RANK = { critical: 0, major: 1, minor: 2, warning: 3 };

export function renderList(incidents, selected, live) {
  const list = [...incidents.values()].sort(
    (a, b) => (SEV_RANK[a.severity] ?? 9) - (SEV_RANK[b.severity] ?? 9) || a.first_ms - b.first_ms,
  );
  $("incidents").replaceChildren(
    ...list.map((inc) => {
      const li = el("li", `incident sev-${inc.severity}`);
      li.dataset.id = inc.id;
      li.dataset.state = inc.state;
      li.dataset.type = inc.type;
      li.tabIndex = 0;
      if (inc.id === selected) li.classList.add("selected");
      if (alarm.unacked.has(inc.id)) li.classList.add("ringing");
      li.append(
        el("span", "sev", label("sev", inc.severity)),
        el("span", "what", label("type", inc.type)),
        el("span", "state", label("state", inc.state)),
        el("span", "meta", [place(inc), fmtTime(inc.first_ms), inc.count > 1 ? `×${inc.count}` : ""].filter(Boolean).join(" · ")),
      );
      if (inc.assignee) li.append(el("span", "assignee", person(inc.assignee)));
      return li;
    }),
  );
  // Never claim "no alarms" when the page cannot know (signed out, disconnected).
  $("count").textContent = live ? String(list.length) : "?";
  const empty = $("empty");
  empty.hidden = live && list.length > 0;
  empty.textContent = live ? t("no_incidents") : t("alarms_unknown");
  empty.classList.toggle("error", !live);
}

export function renderDetail(inc) {
  const d = $("detail");
  d.hidden = false;
  d.dataset.id = inc.id;
  d.dataset.state = inc.state;
  $("detail-title").textContent = `${label("type", inc.type)} · ${label("sev", inc.severity)}`;
  $("detail-place").textContent = place(inc);
  const rows = [
    ["f_state", label("state", inc.state)],
    ["f_category", label("category", inc.category)],
    ["f_place", place(inc)],
    ["f_first", fmtTime(inc.first_ms)],
    ["f_last", inc.count > 1 ? fmtTime(inc.last_ms) : ""],
    ["f_count", inc.count > 1 ? String(inc.count) : ""],
    ["f_assignee", person(inc.assignee)],
    ["f_team", team(inc.team)],
    ["f_summons", (inc.summons || []).map((s) => label("department", s.department)).join("、")],
    ["f_devices", (inc.devices || []).map(device).join("、")],
  ];
  if (inc.redacted && !inc.location_released) rows.push(["f_resident", t("personal_hidden")]);
  $("detail-fields").replaceChildren(...rows.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", null, t(k)), el("dd", null, v)]));
  renderCare(inc.personal);
}

function tel(number, text) {
  const a = el("a", "tel", `${text || number}`);
  a.href = `tel:${String(number).replace(/[^0-9+]/g, "")}`;
  return a;
}

// The elder-care card: only present when the gateway released personal data to this role.
function renderCare(p) {
  const box = $("care");
  if (!p || !p.name) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const dl = $("care-fields");
  const add = (key, ...nodes) => {
    if (nodes.length) dl.append(el("dt", null, t(key)), Object.assign(el("dd"), {}));
    dl.lastChild.append(...nodes);
  };
  dl.replaceChildren();
  add("f_name", el("strong", null, p.name));
  const home = [building(p.building), unit(p.building, p.unit), p.floor ? t("floor_n", { n: p.floor }) : "", p.room]
    .filter(Boolean)
    .join(" · ");
  if (home) add("f_flat", el("span", null, home));
  if (p.phone) add("f_phone", tel(p.phone, `${t("call")} ${p.phone}`));
  for (const c of p.emergency_contacts || []) {
    add("f_contacts", el("span", null, `${c.name}${c.relation ? `（${c.relation}）` : ""} `), tel(c.phone, `${t("call")} ${c.phone}`));
  }
  if ((p.flags || []).length) add("f_flags", el("span", null, p.flags.map((f) => label("flag", f)).join("、")));
  if (p.care_notes) add("f_care_notes", el("span", "care-notes", p.care_notes));
  const devs = p.home_devices || [];
  const lastAct = devs.map((d) => d.last_activity_ms || 0).reduce((a, b) => Math.max(a, b), 0);
  if (lastAct) add("last_activity", el("strong", null, fmtTime(lastAct)));
  for (const dev of devs) {
    const parts = [];
    const v = dev.values || {};
    if (typeof v.presence === "boolean") parts.push(v.presence ? t("presence_yes") : t("presence_no"));
    if (dev.online === false) parts.push(t("offline_dev"));
    else if (dev.last_seen_ms) parts.push(`${t("last_seen")} ${fmtTime(dev.last_seen_ms)}`);
    add("f_home_devices", el("span", null, `${label("dtype", dev.type)}：${parts.join("，") || t("unknown")}`));
  }
}

export function renderDevices() {
  const byBuilding = new Map();
  for (const d of names.devices.values()) {
    const key = d.building || (d.parking_space && `space:${d.parking_space}`) || "-";
    if (!byBuilding.has(key)) byBuilding.set(key, []);
    byBuilding.get(key).push(d);
  }
  const title = (key) =>
    key.startsWith("space:") ? names.spaces.get(key.slice(6)) || t("other_type") : key === "-" ? t("no_place") : building(key);
  const groups = new Map();
  for (const [key, devs] of byBuilding) {
    const tt = title(key);
    groups.set(tt, [...(groups.get(tt) || []), ...devs]);
  }
  $("buildings").replaceChildren(
    ...[...groups.entries()].sort().map(([name, devs]) => {
      const box = el("div", "building");
      const on = devs.filter((d) => d.online === true).length;
      const off = devs.filter((d) => d.online === false).length;
      box.append(el("h3", null, name), el("div", "muted", `${t("online")} ${on} · ${t("offline_dev")} ${off} · ${t("unknown")} ${devs.length - on - off}`));
      const ul = el("ul");
      for (const d of devs.sort((x, y) => (x.online === false ? -1 : 0) - (y.online === false ? -1 : 0)).slice(0, 50)) {
        const li = el("li", "device");
        li.dataset.id = d.id;
        li.append(el("span", `dot ${d.online === true ? "on" : d.online === false ? "off" : ""}`), el("span", "name", d.name || t("other_type")));
        if (d.battery != null) li.append(el("span", "muted", ` ${d.battery}%`));
        ul.append(li);
      }
      box.append(ul);
      return box;
    }),
  );
}
