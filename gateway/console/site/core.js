// Shared pieces of the site views (parking, buildings, history, charts, scorecard, adoption):
// requests, words, small DOM helpers and the incident card with its whole timeline.
// Everything that comes from devices or people is set with textContent, never innerHTML.
// Names, not ids: places, spaces and people through the alarm page's own names (js/names.js).
import * as names from "../js/names.js";

// --- requests -------------------------------------------------------------------------------------
// The console signs in either with a bearer token kept in the tab (sessionStorage "egw-token") or
// with a device-session cookie; both are sent, whichever the page has. Writes carry X-Edge-Console
// (a cross-site page cannot add it).
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(code);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

function headers(extra) {
  const h = Object.assign({ "X-Edge-Console": "1" }, extra || {});
  const token = sessionStorage.getItem("egw-token");
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

export async function api(path, opts = {}) {
  const init = { headers: headers(opts.json !== undefined ? { "Content-Type": "application/json" } : {}) };
  init.credentials = "same-origin";
  init.cache = "no-store";
  if (opts.json !== undefined) {
    init.method = "POST";
    init.body = JSON.stringify(opts.json);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network");
  }
  if (r.ok) return opts.blob ? r.blob() : r.json();
  let code = "server_error";
  let detail = null;
  try {
    const body = await r.json();
    code = body.code || (r.status === 403 ? "forbidden" : r.status === 401 ? "unauthorized" : code);
    detail = body.detail;
  } catch (e) {
    /* not JSON */
  }
  throw new ApiError(r.status, code, detail);
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === "" || v === false) continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, String(one));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// Save a file the API answers with (a bearer token cannot ride on a plain link).
export async function download(path, name) {
  const blob = await api(path, { blob: true });
  const a = el("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// --- words ----------------------------------------------------------------------------------------
// The site views' catalog (i18n/site.<lang>.json) and the console's (i18n/<lang>.json: incident
// types, states, severities, event kinds), the latter winning where both have a word.
const words = { lang: "zh", site: {}, main: {} };
const langListeners = [];

export function lang() {
  return words.lang;
}

export async function loadWords(l) {
  const get = async (name) => {
    try {
      const r = await fetch(`i18n/${name}.json`, { cache: "no-cache" });
      return r.ok ? r.json() : {};
    } catch (e) {
      return {};
    }
  };
  const [site, main] = await Promise.all([get(`site.${l}`), get(l)]);
  Object.assign(words, { lang: l, site, main });
  for (const fn of langListeners) fn(l);
}

export function onLang(fn) {
  langListeners.push(fn);
}

// t("key") a phrase; t("parking_fire_lane", "type") a coded value's word; {n} placeholders.
export function t(key, group, vars) {
  let s;
  if (group) {
    s = (words.main[group] && words.main[group][key]) || (words.site[group] && words.site[group][key]) || key;
  } else {
    s = words.site[key] || words.main[key] || key;
  }
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replace(`{${k}}`, String(v));
  return s;
}

export function groupWords(group) {
  return Object.assign({}, words.site[group] || {}, words.main[group] || {});
}

export function fmtTime(ms, withDate = true) {
  if (!ms) return "";
  const opts = withDate
    ? { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false }
    : { hour: "2-digit", minute: "2-digit", hour12: false };
  return new Date(ms).toLocaleString(words.lang === "zh" ? "zh-CN" : "en-GB", opts);
}

export function fmtAge(ms) {
  const min = Math.max(0, Math.round((Date.now() - ms) / 60000));
  if (min < 1) return t("age_now");
  if (min < 60) return t("age_min", null, { n: min });
  if (min < 1440) return t("age_h", null, { n: Math.floor(min / 60) });
  return t("age_d", null, { n: Math.floor(min / 1440) });
}

export function errorText(e) {
  if (e && e.status === 403) return t("err_forbidden");
  if (e && e.status === 0) return t("err_network");
  return t("err_failed", null, { code: (e && e.code) || "?" });
}

// --- DOM ------------------------------------------------------------------------------------------
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

export function button(label, cls, onClick) {
  const b = el("button", cls, label);
  b.type = "button";
  if (onClick) b.addEventListener("click", onClick);
  return b;
}

// --- the incident card: what happened, where, and every step since ---------------------------------
let card = null;

export async function openIncident(id) {
  if (!card) {
    card = el("div", "site-card-back");
    card.setAttribute("role", "dialog");
    card.setAttribute("aria-modal", "true");
    card.addEventListener("click", (e) => {
      if (e.target === card) closeIncident();
    });
    document.body.append(card);
  }
  card.replaceChildren();
  const box = el("section", "site-card");
  box.dataset.incident = id;
  card.append(box);
  card.hidden = false;
  const close = button(t("close"), "site-close", closeIncident);
  box.append(close, el("p", "muted", t("loading")));
  close.focus();
  try {
    let page = await api(`/api/v1/history/incidents/${encodeURIComponent(id)}/timeline?limit=500`);
    const inc = page.incident;
    const events = page.events.slice();
    while (page.next_after !== null) {
      page = await api(`/api/v1/history/incidents/${encodeURIComponent(id)}/timeline?limit=500&after=${page.next_after}`);
      events.push(...page.events);
    }
    box.replaceChildren(close);
    box.classList.add(`sev-${inc.severity}`);
    // the alarm page acts on it (its #incident= deep link opens the incident's actions)
    const act = button(t("open_in_alarms"), "site-act", () => {
      closeIncident();
      const tab = document.querySelector(".site-tab[data-tab='alarms']");
      if (tab) tab.click();
      location.hash = `incident=${encodeURIComponent(id)}`;
    });
    box.append(el("h2", null, `${t(inc.type, "type")} · ${t(inc.severity, "sev")}`));
    const dl = el("dl", "site-fields");
    const where = names.place(inc);
    const rows = [
      ["f_state", t(inc.state, "state")],
      ["f_category", t(inc.category, "category")],
      ["f_place", inc.redacted ? t("personal_hidden") : where || "—"],
      ["f_first", fmtTime(inc.first_ms)],
      ["f_last", fmtTime(inc.last_ms)],
      ["f_count", inc.count],
      ["f_assignee", names.person(inc.assignee) || "—"],
    ];
    if (inc.personal && inc.personal.name) rows.push(["f_resident", `${inc.personal.name} ${inc.personal.room || ""}`]);
    for (const [k, v] of rows) dl.append(el("dt", null, t(k)), el("dd", null, v));
    box.append(dl, el("h3", null, t("timeline")));
    const ol = el("ol", "site-timeline");
    for (const ev of events) {
      const li = el("li");
      li.append(el("time", null, fmtTime(ev.ts_ms)), " ", el("b", null, t(ev.kind, "kind")));
      const d = ev.data || {};
      if (d.to) li.append(" → ", t(d.to, "state"));
      const who = ev.actor && ev.actor !== "rules" ? names.person(ev.actor) : null;
      if (who) li.append(" · ", who);
      for (const k of ["note", "what_done", "description", "reason"]) {
        if (typeof d[k] === "string" && d[k]) li.append(el("div", "site-note", d[k]));
      }
      if (typeof d.rating === "number") li.append(el("div", "site-note", "★".repeat(d.rating)));
      ol.append(li);
    }
    box.append(ol, act);
  } catch (e) {
    box.replaceChildren(close, el("p", "error", errorText(e)));
  }
}

export function closeIncident() {
  if (card) card.hidden = true;
}

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") closeIncident();
});
