// Alarm console of the Community Edge Gateway (docs/console.md). No inline scripts (CSP
// script-src 'self'); everything from devices or people is set as text.
//
// Sign-in: a one-time link (#signin=<token>, a fragment no server or log sees) or a token creates
// a device session (HttpOnly cookie) — nothing secret is kept by the page. Deep links
// (#incident=<id>, from a WeCom/SMS message) open that incident, after signing in if needed.
import { api, onUnauthorized } from "./api.js";
import { setupAdmin, wireAdmin } from "./admin.js";
import { acknowledge, alarm, askNotifications, consider, mute, notifyButton, reset, testSound, unlock, unmute, update } from "./alarm.js";
import { closeForm, renderActions, setOnDone } from "./actions.js";
import { $, i18n, label, loadLang, t } from "./i18n.js";
import { loadSite, names, place } from "./names.js";
import * as stream from "./stream.js";
import { renderTimeline } from "./timeline.js";
import { renderDetail, renderDevices, renderList } from "./view.js";

const OPEN = new Set(["new", "dispatched", "accepted", "in_progress", "reopened"]);
const PENDING = "egw-open-incident"; // a deep link waiting for the sign-in to finish
const state = { me: null, incidents: new Map(), selected: null };

function live() {
  return stream.connection().state === "live";
}

function redrawList() {
  renderList(state.incidents, state.selected, live());
}

// --- sign-in --------------------------------------------------------------------------------
function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  return { signin: h.get("signin"), incident: h.get("incident") };
}

function clearHash() {
  history.replaceState(null, "", location.pathname + location.search);
}

async function signInWith(body, headers) {
  $("signin-error").textContent = "";
  $("signin-status").hidden = false;
  $("signin-status").textContent = t("signing_in");
  try {
    await api("/api/v1/session", { json: body, headers, signin: true });
    await start();
  } catch (e) {
    $("signin-status").hidden = true;
    $("signin-error").textContent = label("error", e.code === "unauthorized" && headers ? "bad_token" : e.code);
  }
}

async function start() {
  let me;
  try {
    me = await api("/api/v1/me", { signin: true });
  } catch (e) {
    showSignIn();
    return false;
  }
  state.me = me;
  $("gateway-name").textContent = me.gateway_name || "";
  showWho();
  $("signin").hidden = true;
  $("signin-status").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  document.body.dataset.state = "signed-in";
  notifyButton();
  await loadSiteNames();
  await loadIncidents();
  loadDevices();
  setupAdmin(me);
  showWho();
  stream.start({ event: onEvent, state: onConnState, unauthorized: signedOut });
  const pending = sessionStorage.getItem(PENDING);
  if (pending) {
    sessionStorage.removeItem(PENDING);
    openIncident(pending);
  }
  return true;
}

// Who is signed in: the person's name (once the site's names are loaded) and the role, in the
// page's language (redrawn when the language changes).
function showWho() {
  const me = state.me;
  if (!me) return;
  $("who").textContent = `${names.staff.get(me.name)?.name || ""} · ${label("role", me.role)}`.replace(/^ · /, "");
}

function showSignIn() {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signout").hidden = true;
  $("alarm-bar").hidden = true;
  document.body.dataset.state = "signed-out";
}

function signedOut(code) {
  stream.stop();
  reset();
  state.incidents.clear();
  state.selected = null;
  showSignIn();
  if (code) $("signin-error").textContent = label("error", code);
}

async function signOut() {
  try {
    await api("/api/v1/session/signout", { json: {} });
  } catch (e) {
    /* signed out locally anyway */
  }
  signedOut(null);
}

// --- data -----------------------------------------------------------------------------------
async function loadSiteNames() {
  try {
    loadSite(await api("/api/v1/site"));
  } catch (e) {
    /* names fall back to neutral words */
  }
}

async function loadIncidents() {
  const page = await api("/api/v1/incidents?state=open&limit=500");
  state.incidents.clear();
  for (const inc of page.items) {
    state.incidents.set(inc.id, inc);
    consider(inc, "load");
  }
  redrawList();
}

async function loadDevices() {
  try {
    for (const d of await api("/api/v1/devices")) names.devices.set(d.id, d);
    renderDevices();
  } catch (e) {
    $("buildings").replaceChildren();
    $("buildings").append(Object.assign(document.createElement("p"), { className: "muted", textContent: t("no_devices") }));
  }
}

function onEvent(kind, data) {
  if (kind === "incident" && data.incident) {
    const inc = data.incident;
    if (OPEN.has(inc.state)) state.incidents.set(inc.id, inc);
    else state.incidents.delete(inc.id);
    consider(inc, data.kind);
    redrawList();
    if (state.selected === inc.id) showDetail(inc.id);
  } else if (kind === "devices") {
    for (const ch of data.changes || []) {
      const d = names.devices.get(ch.device_id);
      if (d) d.online = ch.online;
    }
    renderDevices();
  } else if (kind === "reset") {
    loadIncidents();
  }
}

function onConnState() {
  redrawList();
}

// --- detail ---------------------------------------------------------------------------------
async function showDetail(id) {
  state.selected = id;
  document.body.dataset.view = "detail";
  for (const li of document.querySelectorAll(".incident")) li.classList.toggle("selected", li.dataset.id === id);
  let inc;
  try {
    inc = await api(`/api/v1/incidents/${encodeURIComponent(id)}`);
  } catch (e) {
    if (state.selected !== id) return;
    $("detail").hidden = false;
    $("detail").dataset.id = id;
    $("detail").dataset.state = "error";
    $("detail-title").textContent = label("error", e.code);
    for (const box of ["detail-fields", "care-fields", "action-buttons", "timeline"]) $(box).replaceChildren();
    $("detail-place").textContent = "";
    $("care").hidden = true;
    return;
  }
  if (state.selected !== id) return;
  renderDetail(inc);
  renderActions(inc);
  renderTimeline($("timeline"), inc.timeline || []);
  if (!location.hash.includes(id)) history.replaceState(null, "", `#incident=${encodeURIComponent(id)}`);
}

function closeDetail() {
  state.selected = null;
  document.body.dataset.view = "list";
  $("detail").hidden = true;
  closeForm();
  clearHash();
  redrawList();
}

function openIncident(id) {
  showDetail(id);
}

setOnDone((inc) => {
  if (inc) {
    if (OPEN.has(inc.state)) state.incidents.set(inc.id, inc);
    else state.incidents.delete(inc.id);
    consider(inc, "action");
    redrawList();
  }
  if (state.selected) showDetail(state.selected);
});

// The switch names the other language in that language (it said "English" on the English page).
function langButton() {
  $("lang").textContent = i18n.lang === "zh" ? "English" : "中文";
}

// --- wiring ---------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", async () => {
  const stored = localStorage.getItem("egw-lang");
  await loadLang(stored === "en" ? "en" : "zh");
  langButton();
  alarm.baseTitle = t("title");
  alarm.describe = (inc) => place(inc);
  alarm.open = openIncident;
  update();
  stream.refreshLabel();
  onUnauthorized(signedOut);
  wireAdmin();
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    unlock(); // inside the user's gesture: the browser allows the alarm sound from now on
    askNotifications();
    signInWith({}, { Authorization: `Bearer ${$("token").value.trim()}` });
  });
  $("lang").addEventListener("click", async () => {
    const next = i18n.lang === "zh" ? "en" : "zh";
    localStorage.setItem("egw-lang", next);
    await loadLang(next);
    langButton();
    alarm.baseTitle = t("title");
    update();
    stream.refreshLabel();
    showWho();
    redrawList();
    renderDevices();
    if (state.selected) showDetail(state.selected);
  });
  $("signout").addEventListener("click", signOut);
  $("ack").addEventListener("click", acknowledge);
  $("mute").addEventListener("click", () => mute(Number($("mute-min").value)));
  $("unmute").addEventListener("click", unmute);
  $("test-sound").addEventListener("click", testSound);
  $("notify-on").addEventListener("click", askNotifications);
  $("back").addEventListener("click", closeDetail);
  $("incidents").addEventListener("click", (e) => {
    const li = e.target.closest(".incident");
    if (li) showDetail(li.dataset.id);
  });
  // Any tap unlocks the sound after a reload (the session survived, the audio permission did not).
  document.addEventListener("click", () => document.body.dataset.unlocked || ((document.body.dataset.unlocked = "1"), unlock()), true);
  for (const opt of $("mute-min").options) opt.textContent = t("mute_min", { n: opt.value });
  window.addEventListener("hashchange", () => {
    const h = readHash();
    if (h.signin) {
      clearHash();
      unlock();
      signInWith({ link: h.signin }, undefined);
    } else if (h.incident && state.me) openIncident(h.incident);
    else if (h.incident) sessionStorage.setItem(PENDING, h.incident);
  });

  const h = readHash();
  if (h.incident) sessionStorage.setItem(PENDING, h.incident);
  if (h.signin) {
    clearHash();
    if (h.incident) history.replaceState(null, "", `#incident=${encodeURIComponent(h.incident)}`);
    await signInWith({ link: h.signin }, undefined);
    return;
  }
  await start();
});
