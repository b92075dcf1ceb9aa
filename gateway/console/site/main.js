// The site views' tab bar, next to the alarm console (index.html loads this module and site.css;
// nothing else of the console is touched). "Alarms" is the console's own page; every other tab is
// one module of this folder, loaded the first time it is opened. The bar shows once the console
// has signed in (body[data-state="signed-in"]) and follows its language (<html lang>).
// Deep link: #view=<tab> (e.g. #view=parking).
import { api, el, lang, loadWords, onLang, t } from "./core.js";

const STAFF = ["installer", "property_staff", "eldercare_worker", "grid_worker", "community_office", "street_office"];
const TABS = [
  { id: "alarms" },
  { id: "parking", load: () => import("./parking.js"), roles: STAFF },
  { id: "buildings", load: () => import("./buildings.js"), roles: STAFF },
  { id: "history", load: () => import("./history.js") },
  { id: "charts", load: () => import("./charts.js") },
  {
    id: "scorecard",
    load: () => import("./scorecard.js"),
    roles: ["installer", "property_staff", "community_office", "street_office", "central_platform"],
  },
  { id: "adopt", load: () => import("./adopt.js"), roles: ["installer"] },
];

const state = { me: null, current: "alarms", view: null, nav: null, host: null };

function pageLang() {
  return (document.documentElement.lang || "zh").startsWith("en") ? "en" : "zh";
}

function build() {
  const nav = el("nav", "site-nav");
  nav.id = "site-nav";
  nav.setAttribute("aria-label", "views");
  nav.hidden = true;
  const host = el("div", "site-host");
  host.id = "site-view";
  const header = document.querySelector("header");
  header.after(nav, host);
  state.nav = nav;
  state.host = host;
}

function renderNav() {
  const nav = state.nav;
  nav.replaceChildren();
  const role = state.me && state.me.role;
  for (const tab of TABS) {
    if (tab.roles && !tab.roles.includes(role)) continue;
    const b = el("button", "site-tab", t(`tab_${tab.id}`));
    b.type = "button";
    b.dataset.tab = tab.id;
    if (tab.id === state.current) b.setAttribute("aria-current", "page");
    b.addEventListener("click", () => show(tab.id));
    nav.append(b);
  }
}

export async function show(id, arg) {
  const tab = TABS.find((x) => x.id === id) || TABS[0];
  if (state.view && state.view.unmount) state.view.unmount();
  state.view = null;
  state.current = tab.id;
  document.body.dataset.siteView = tab.id;
  state.host.replaceChildren();
  renderNav();
  if (location.hash !== `#view=${tab.id}` && (tab.id !== "alarms" || location.hash.startsWith("#view="))) {
    history.replaceState(null, "", tab.id === "alarms" ? location.pathname : `#view=${tab.id}`);
  }
  if (!tab.load) return;
  const mod = await tab.load();
  if (state.current !== tab.id) return; // another tab was chosen meanwhile
  const root = el("section", "panel site-view");
  root.dataset.view = tab.id;
  state.host.append(root);
  state.view = mod.mount(root, { me: state.me, show, arg });
}

async function signedIn() {
  try {
    state.me = await api("/api/v1/me");
  } catch (e) {
    return;
  }
  await loadWords(pageLang());
  state.nav.hidden = false;
  const m = location.hash.match(/^#view=([a-z]+)/);
  await show(m ? m[1] : "alarms");
}

function signedOut() {
  if (state.view && state.view.unmount) state.view.unmount();
  state.view = null;
  state.me = null;
  state.nav.hidden = true;
  state.host.replaceChildren();
  delete document.body.dataset.siteView;
}

function watch() {
  let was = null;
  const check = () => {
    const now = document.body.dataset.state === "signed-in";
    if (now === was) return;
    was = now;
    if (now) signedIn();
    else signedOut();
  };
  new MutationObserver(check).observe(document.body, { attributes: true, attributeFilter: ["data-state"] });
  new MutationObserver(() => {
    if (state.me && pageLang() !== lang()) loadWords(pageLang());
  }).observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
  onLang(() => {
    if (!state.me) return;
    renderNav();
    if (state.view && state.view.relabel) state.view.relabel();
  });
  window.addEventListener("hashchange", () => {
    const m = location.hash.match(/^#view=([a-z]+)/);
    if (m && state.me && m[1] !== state.current) show(m[1]);
  });
  check();
}

build();
watch();
