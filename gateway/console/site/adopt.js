// Adoption (installers): the devices seen on the broker but not in the site file, with what they
// last sent; adopt one into a building/unit or a parking space with a type. The gateway writes the
// site file (comments kept, validated first) and reloads without losing a message.
import { api, button, el, errorText, fmtTime, t } from "./core.js";

// A first guess at the type from what the device says (the installer can change it).
const GUESS = [
  ["vehicle_present", "parking_sensor"],
  ["smoke", "smoke_detector"],
  ["gas", "gas_detector"],
  ["water_leak", "water_leak"],
  ["contact", "door_contact"],
  ["sos", "sos_button"],
  ["fall", "fall_radar"],
  ["presence", "presence_sensor"],
  ["occupancy", "motion_sensor"],
  ["heart_rate", "wearable"],
];

export function mount(root) {
  const v = { root, site: null, data: null };
  draw(v);
  return { relabel: () => draw(v) };
}

async function draw(v) {
  v.root.replaceChildren(el("h2", null, t("tab_adopt")), el("p", "muted", t("adopt_help")));
  const status = el("p", "muted site-status");
  status.setAttribute("role", "status");
  const list = el("div");
  v.root.append(button(t("refresh"), null, () => draw(v)), status, list);
  try {
    v.site = await api("/api/v1/site");
    v.data = await api("/api/v1/adopt/candidates");
  } catch (e) {
    status.textContent = errorText(e);
    return;
  }
  if (!v.data.can_adopt) status.textContent = t("adopt_cli_only");
  status.textContent = status.textContent || t("n_candidates", null, { n: v.data.items.length });
  for (const c of v.data.items) list.append(candidate(v, c));
}

function guess(sample, types) {
  const keys = Object.keys(sample || {});
  for (const [k, type] of GUESS) if (keys.includes(k) && types.includes(type)) return type;
  return "";
}

function candidate(v, c) {
  const box = el("article", "cand");
  box.dataset.address = c.address;
  box.append(
    el("b", null, `${c.driver} · ${c.address}`),
    el("div", "muted", t("seen_n", null, { n: c.count, first: fmtTime(c.first_seen_ms), last: fmtTime(c.last_seen_ms) })),
    el("div", "muted", c.last_topic),
    el("pre", null, JSON.stringify(c.sample, null, 1)),
  );
  const open = button(t("adopt"), "act", () => {
    open.hidden = true;
    box.append(form(v, c, box));
  });
  box.append(open);
  return box;
}

function form(v, c, box) {
  const f = el("form", "adopt-form");
  const types = v.data.types.map((x) => x.type);
  const input = (name, value) => {
    const i = el("input");
    i.name = name;
    i.value = value || "";
    return i;
  };
  const select = (name, options, value) => {
    const s = el("select");
    s.name = name;
    for (const [val, text] of options) {
      const o = el("option", null, text);
      o.value = val;
      if (val === value) o.selected = true;
      s.append(o);
    }
    return s;
  };
  const field = (key, node) => {
    const l = el("label");
    l.append(t(key), node);
    f.append(l);
    return node;
  };
  const type = guess(c.sample, types);
  const suffix = String(c.address).replace(/[^a-z0-9]/gi, "").slice(-6).toLowerCase();
  field("new_id", input("id", `${(type || "dev").replace(/_/g, "-")}-${suffix}`)).required = true;
  field("f_type", select("type", [["", t("choose")], ...types.map((x) => [x, `${t(x, "dtype")} (${x})`])], type)).required = true;
  field("f_name", input("name", ""));
  const buildings = v.site.compounds.flatMap((co) => co.buildings.map((b) => [b.id, `${co.name} ${b.name}`, b]));
  const bsel = field("f_building", select("building", [["", "—"], ...buildings.map(([id, name]) => [id, name])], ""));
  const usel = field("f_unit", select("unit", [["", "—"]], ""));
  bsel.addEventListener("change", () => {
    const b = buildings.find((x) => x[0] === bsel.value);
    usel.replaceChildren(...[["", "—"], ...(b ? b[2].units.map((u) => [u.id, u.name]) : [])].map(([val, text]) => {
      const o = el("option", null, text);
      o.value = val;
      return o;
    }));
  });
  const floor = field("floor", input("floor", ""));
  floor.type = "number";
  const spaces = v.site.parking_areas.flatMap((a) => a.spaces.map((s) => [s.id, `${a.name} ${s.id}`]));
  field("f_space", select("parking_space", [["", "—"], ...spaces], ""));
  field("f_area", input("area", ""));
  const msg = el("div", "site-status");
  msg.setAttribute("role", "status");
  const go = el("button", "act", t("adopt_now"));
  go.type = "submit";
  f.append(go, msg);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    const d = new FormData(f);
    const loc = {};
    for (const k of ["building", "unit", "parking_space", "area"]) if (d.get(k)) loc[k] = d.get(k);
    if (d.get("floor")) loc.floor = Number(d.get("floor"));
    go.disabled = true;
    msg.textContent = t("adopting");
    msg.classList.remove("error");
    try {
      const r = await api("/api/v1/adopt", {
        json: { driver: c.driver, address: c.address, id: d.get("id"), type: d.get("type"), name: d.get("name") || "", location: loc },
      });
      box.dataset.adopted = r.device;
      box.replaceChildren(el("b", null, t("adopted", null, { id: r.device })), el("pre", null, r.stanza));
    } catch (err) {
      go.disabled = false;
      msg.classList.add("error");
      const detail = err.detail;
      const text = typeof detail === "string" ? detail : detail && detail.message ? detail.message : errorText(err);
      msg.replaceChildren(el("div", null, t("adopt_refused")), el("pre", null, text));
    }
  });
  return f;
}
