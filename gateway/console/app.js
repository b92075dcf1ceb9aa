// Alarm console of the Community Edge Gateway (docs/api.md "Console").
// No inline scripts (CSP script-src 'self'); everything that comes from devices or people is set
// with textContent, never innerHTML. Live updates: GET /api/v1/stream read with fetch() (so the
// token travels in the Authorization header, not in the URL), resumed with Last-Event-ID.
"use strict";

(() => {
  const SEV_RANK = { critical: 0, major: 1, minor: 2, warning: 3 };
  const OPEN = new Set(["new", "dispatched", "accepted", "in_progress", "reopened"]);
  const $ = (id) => document.getElementById(id);
  const state = {
    token: null,
    me: null,
    lang: "zh",
    dict: {},
    incidents: new Map(),
    devices: new Map(),
    buildings: new Map(),
    selected: null,
    lastEventId: null,
    audio: null,
    stream: null,
    alarms: 0,
  };

  // --- i18n -----------------------------------------------------------------------------------
  async function loadLang(lang) {
    const r = await fetch(`i18n/${lang}.json`, { cache: "no-cache" });
    state.dict = await r.json();
    state.lang = lang;
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
    $("lang").textContent = t("lang_other");
    renderIncidents();
    renderDevices();
    if (state.selected) showDetail(state.selected);
  }
  function t(key, group) {
    if (group) return (state.dict[group] && state.dict[group][key]) || key;
    return state.dict[key] || key;
  }
  function fmtTime(ms) {
    if (!ms) return "";
    return new Date(ms).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // --- sound (WebAudio; unlocked by the sign-in click) -----------------------------------------
  function unlockAudio() {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return;
    if (!state.audio) state.audio = new AC();
    state.audio.resume().then(() => {
      document.body.dataset.audio = state.audio.state;
      beep(0.001, 0.05); // a silent blip inside the gesture keeps mobile browsers unlocked
    });
  }
  function beep(volume, seconds, freq) {
    const ctx = state.audio;
    if (!ctx || ctx.state !== "running") return false;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = freq || 880;
    gain.gain.value = volume;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + seconds);
    return true;
  }
  function alarm(sev) {
    const n = sev === "critical" ? 3 : sev === "major" ? 2 : 1;
    let played = false;
    for (let i = 0; i < n; i++) {
      setTimeout(() => beep(0.2, 0.25, i % 2 ? 660 : 880), i * 400);
      played = true;
    }
    if (played && state.audio && state.audio.state === "running") {
      state.alarms += 1;
      document.body.dataset.alarms = String(state.alarms);
    }
    document.body.classList.remove("alarm");
    void document.body.offsetWidth;
    document.body.classList.add("alarm");
    if (navigator.vibrate) navigator.vibrate([300, 150, 300]);
  }

  // --- API ------------------------------------------------------------------------------------
  async function api(path, opts = {}) {
    const headers = Object.assign({ Authorization: `Bearer ${state.token}` }, opts.headers || {});
    if (opts.body) headers["Content-Type"] = "application/json";
    const r = await fetch(path, Object.assign({}, opts, { headers }));
    if (r.status === 401) {
      signOut();
      throw new Error("unauthorized");
    }
    return r;
  }

  async function signIn(token) {
    state.token = token;
    const r = await fetch("/api/v1/me", { headers: { Authorization: `Bearer ${token}` } });
    if (!r.ok) {
      state.token = null;
      $("signin-error").textContent = r.status === 429 ? t("too_many") : t("bad_token");
      return false;
    }
    state.me = await r.json();
    sessionStorage.setItem("egw-token", token);
    $("gateway-name").textContent = state.me.gateway_name || state.me.gateway;
    $("signin").hidden = true;
    $("app").hidden = false;
    $("signout").hidden = false;
    document.body.dataset.state = "signed-in";
    await Promise.all([loadSite(), loadIncidents(), loadDevices()]);
    startStream();
    return true;
  }
  function signOut() {
    sessionStorage.removeItem("egw-token");
    state.token = null;
    if (state.stream) state.stream.abort();
    state.incidents.clear();
    $("app").hidden = true;
    $("signin").hidden = false;
    $("signout").hidden = true;
    document.body.dataset.state = "signed-out";
  }

  async function loadSite() {
    const r = await api("/api/v1/site");
    if (!r.ok) return;
    const site = await r.json();
    for (const c of site.compounds) for (const b of c.buildings) state.buildings.set(b.id, b.name);
  }
  async function loadIncidents() {
    const r = await api("/api/v1/incidents?state=open&limit=500");
    if (!r.ok) return;
    const page = await r.json();
    for (const inc of page.items) state.incidents.set(inc.id, inc);
    renderIncidents();
  }
  async function loadDevices() {
    const r = await api("/api/v1/devices");
    if (r.status === 403) {
      $("buildings").replaceChildren(el("p", "muted", t("no_devices")));
      return;
    }
    if (!r.ok) return;
    for (const d of await r.json()) state.devices.set(d.id, d);
    renderDevices();
  }

  // --- live stream ----------------------------------------------------------------------------
  async function startStream() {
    let backoff = 500;
    while (state.token) {
      const ctl = new AbortController();
      state.stream = ctl;
      try {
        const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
        if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
        const r = await fetch("/api/v1/stream", { headers, signal: ctl.signal, cache: "no-store" });
        if (r.status === 401) return signOut();
        if (!r.ok || !r.body) throw new Error(`stream ${r.status}`);
        setLive(true);
        backoff = 500;
        await readEvents(r.body.getReader());
      } catch (e) {
        if (!state.token) return;
      }
      setLive(false);
      await new Promise((res) => setTimeout(res, backoff));
      backoff = Math.min(backoff * 2, 10000);
    }
  }
  function setLive(on) {
    const c = $("conn");
    c.classList.toggle("live", on);
    c.textContent = on ? t("live") : t("offline");
    document.body.dataset.live = on ? "1" : "0";
  }
  async function readEvents(reader) {
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + (buf[i] === "\r" ? 4 : 2));
        const ev = { event: "message", data: "", id: null };
        for (const line of block.split(/\r?\n/)) {
          if (!line || line.startsWith(":")) continue;
          const k = line.indexOf(":");
          const field = k < 0 ? line : line.slice(0, k);
          const val = k < 0 ? "" : line.slice(k + 1).replace(/^ /, "");
          if (field === "data") ev.data += (ev.data ? "\n" : "") + val;
          else if (field === "event") ev.event = val;
          else if (field === "id") ev.id = val;
        }
        if (ev.data) onEvent(ev);
      }
    }
  }
  function onEvent(ev) {
    if (ev.id) state.lastEventId = ev.id;
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    if (ev.event === "incident" && data.incident) {
      const inc = data.incident;
      const isNew = data.kind === "created" && !state.incidents.has(inc.id);
      if (OPEN.has(inc.state)) state.incidents.set(inc.id, inc);
      else state.incidents.delete(inc.id);
      renderIncidents(isNew ? inc.id : null);
      if (isNew) alarm(inc.severity);
      if (state.selected === inc.id) showDetail(inc.id);
    } else if (ev.event === "devices") {
      for (const ch of data.changes || []) {
        const d = state.devices.get(ch.device_id);
        if (d) {
          d.online = ch.online;
          d.online_changed_ms = ch.ts_ms;
        }
      }
      renderDevices();
    } else if (ev.event === "reset") {
      state.incidents.clear();
      loadIncidents();
    }
  }

  // --- rendering ------------------------------------------------------------------------------
  function place(inc) {
    const parts = [];
    if (inc.building) parts.push(state.buildings.get(inc.building) || inc.building);
    if (inc.unit) parts.push(inc.unit);
    if (inc.space) parts.push(inc.space);
    if (!parts.length && inc.location_released) {
      const l = inc.location_released;
      parts.push(state.buildings.get(l.building) || l.building || "", l.unit || "", l.room || "");
    }
    if (!parts.length && inc.grid) parts.push(inc.grid);
    return parts.filter(Boolean).join(" · ");
  }
  function renderIncidents(freshId) {
    const list = [...state.incidents.values()].sort(
      (a, b) => (SEV_RANK[a.severity] ?? 9) - (SEV_RANK[b.severity] ?? 9) || a.first_ms - b.first_ms,
    );
    const ul = $("incidents");
    const items = list.map((inc) => {
      const li = el("li", `incident sev-${inc.severity}`);
      li.dataset.id = inc.id;
      li.dataset.state = inc.state;
      li.dataset.type = inc.type;
      if (inc.id === state.selected) li.classList.add("selected");
      if (inc.id === freshId) li.classList.add("fresh");
      li.append(
        el("span", "sev", t(inc.severity, "sev")),
        el("span", "what", `${t(inc.type, "type")} · ${t(inc.category, "category")}`),
        el("span", "state", t(inc.state, "state")),
        el("span", "meta", `${place(inc)}  ${fmtTime(inc.first_ms)}${inc.count > 1 ? ` ×${inc.count}` : ""}`),
      );
      li.addEventListener("click", () => showDetail(inc.id));
      return li;
    });
    ul.replaceChildren(...items);
    $("count").textContent = String(list.length);
    $("empty").hidden = list.length > 0;
  }

  async function showDetail(id) {
    state.selected = id;
    for (const li of document.querySelectorAll(".incident")) li.classList.toggle("selected", li.dataset.id === id);
    const r = await api(`/api/v1/incidents/${encodeURIComponent(id)}`);
    if (!r.ok) return;
    const inc = await r.json();
    if (state.selected !== id) return;
    $("detail").hidden = false;
    $("detail").dataset.id = id;
    $("detail").dataset.state = inc.state;
    $("detail-title").textContent = `${t(inc.type, "type")} · ${t(inc.severity, "sev")}`;
    const rows = [
      ["f_state", t(inc.state, "state")],
      ["f_place", place(inc)],
      ["f_first", fmtTime(inc.first_ms)],
      ["f_count", inc.count],
      ["f_assignee", inc.assignee || ""],
    ];
    if (inc.personal) rows.push(["f_resident", [inc.personal.name, inc.personal.room].filter(Boolean).join(" ")]);
    else if (inc.redacted) rows.push(["f_resident", t("personal_hidden")]);
    const dl = $("detail-fields");
    dl.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", null, t(k)), el("dd", null, v)]));
    const tl = $("timeline");
    tl.replaceChildren(
      ...inc.timeline.map((e) => {
        const d = e.data || {};
        const what = d.to ? `${t(d.from, "state")} → ${t(d.to, "state")}` : t(e.kind, "kind");
        // the resident's rating and comment are shown too (as text, like every string from people)
        const rating = d.rating ? `★${d.rating}` : "";
        const text = [fmtTime(e.ts_ms), what, e.actor ? t(e.actor, "actor") : "", d.note || "", d.what_done && d.what_done !== d.note ? d.what_done : "",
          rating, d.comment || ""]
          .filter(Boolean)
          .join("  ");
        return el("li", `ev-${e.kind}`, text);
      }),
    );
    loadSnapshots(id);
  }

  // Camera snapshots of the incident: fetched with the token, shown from blob: URLs (an <img>
  // cannot send the Authorization header; the CSP allows img-src blob:).
  async function loadSnapshots(id) {
    const box = $("snapshots");
    for (const img of box.querySelectorAll("img")) URL.revokeObjectURL(img.src);
    box.replaceChildren();
    const r = await api(`/api/v1/incidents/${encodeURIComponent(id)}/snapshots`);
    if (!r.ok || state.selected !== id) return;
    const { items } = await r.json();
    for (const s of items.slice(-4)) {
      const ri = await api(`/api/v1/incidents/${encodeURIComponent(id)}/snapshots/${encodeURIComponent(s.id)}`);
      if (!ri.ok || state.selected !== id) continue;
      const img = document.createElement("img");
      img.alt = `${s.camera} ${fmtTime(s.ts_ms)}`;
      img.src = URL.createObjectURL(await ri.blob());
      box.append(img);
    }
  }

  async function act(action) {
    const id = state.selected;
    if (!id) return;
    const note = $("note").value.trim();
    const body = { action, note: note || null, request_id: crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) };
    if (action === "resolve") body.data = { what_done: note || t("resolve") };
    if (action === "evaluate") body.data = { rating: Number($("rating").value) };
    for (const b of document.querySelectorAll(".act")) b.disabled = true;
    try {
      const r = await api(`/api/v1/incidents/${encodeURIComponent(id)}/actions`, {
        method: "POST",
        body: JSON.stringify(body),
      });
      const out = await r.json();
      const msg = $("action-msg");
      if (r.ok) {
        msg.textContent = t("done");
        $("note").value = "";
        const inc = out.incident;
        if (OPEN.has(inc.state)) state.incidents.set(inc.id, inc);
        else state.incidents.delete(inc.id);
        renderIncidents();
        showDetail(id);
      } else {
        const d = out.detail;
        msg.textContent = `${t("failed")}: ${typeof d === "string" ? d : (d && d.message) || r.status}`;
      }
    } finally {
      for (const b of document.querySelectorAll(".act")) b.disabled = false;
    }
  }

  // A camera-watched space reports vehicle_unknown when it cannot tell (bad image, low confidence):
  // shown as unknown, never as the last known occupied/free.
  function spaceState(d) {
    const v = d.values;
    if (!d.parking_space || !v) return null;
    if (v.vehicle_unknown === true) return "unknown";
    if (v.vehicle_present === true) return "occupied";
    if (v.vehicle_present === false) return "free";
    return null;
  }

  function renderDevices() {
    if (!state.devices.size) return;
    const byBuilding = new Map();
    for (const d of state.devices.values()) {
      const key = d.building || d.parking_space || "-";
      if (!byBuilding.has(key)) byBuilding.set(key, []);
      byBuilding.get(key).push(d);
    }
    const blocks = [...byBuilding.entries()].sort().map(([b, devs]) => {
      const box = el("div", "building");
      const on = devs.filter((d) => d.online === true).length;
      const off = devs.filter((d) => d.online === false).length;
      box.append(
        el("h3", null, state.buildings.get(b) || b),
        el("div", "muted", `${t("online")} ${on} · ${t("offline_dev")} ${off} · ${t("unknown")} ${devs.length - on - off}`),
      );
      const ul = el("ul");
      for (const d of devs.sort((x, y) => (x.online === false ? -1 : 0) - (y.online === false ? -1 : 0))) {
        const li = el("li", "device");
        li.dataset.id = d.id;
        const dot = el("span", `dot ${d.online === true ? "on" : d.online === false ? "off" : ""}`);
        li.append(dot, el("span", "name", d.name), el("span", "muted", d.battery != null ? ` ${d.battery}%` : ""));
        const park = spaceState(d);
        if (park) li.append(el("span", `space ${park}`, ` ${t(`space_${park}`)}`));
        ul.append(li);
      }
      box.append(ul);
      return box;
    });
    $("buildings").replaceChildren(...blocks);
  }

  // --- wiring ---------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", async () => {
    const stored = localStorage.getItem("egw-lang");
    await loadLang(stored === "en" ? "en" : "zh");
    $("signin-form").addEventListener("submit", (e) => {
      e.preventDefault();
      unlockAudio(); // inside the user's gesture: browsers allow sound from now on
      $("signin-error").textContent = "";
      signIn($("token").value.trim());
    });
    $("lang").addEventListener("click", () => {
      const next = state.lang === "zh" ? "en" : "zh";
      localStorage.setItem("egw-lang", next);
      loadLang(next);
    });
    $("signout").addEventListener("click", signOut);
    for (const b of document.querySelectorAll(".act")) b.addEventListener("click", () => act(b.dataset.action));
    // A reload keeps the session, but the sound needs a new gesture: the first click unlocks it.
    document.addEventListener("click", () => {
      if (!state.audio || state.audio.state !== "running") unlockAudio();
    });
    const token = sessionStorage.getItem("egw-token");
    if (token) signIn(token);
  });
})();
