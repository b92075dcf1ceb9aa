// Residents' pages (evaluate.html, report.html): no account, the signed link is the credential.
// The link's token is in the address's fragment (never sent to the server in a URL or a Referer)
// and is posted in request bodies. Every string from the gateway or a person is rendered with
// textContent only; the CSP allows no inline script. Chinese first, English one tap away.
"use strict";

(function () {
  const page = document.body.dataset.page;
  const token = decodeURIComponent(location.hash.slice(1));
  const $ = (id) => document.getElementById(id);
  let saved = null;
  try {
    saved = localStorage.getItem("resident.lang");
  } catch (e) {
    saved = null; // storage blocked (private mode): Chinese unless ?lang=en
  }
  let lang = saved || (new URLSearchParams(location.search).get("lang") === "en" ? "en" : "zh");
  let T = {};
  let view = null;

  function t(key, values) {
    let s = T[key] === undefined ? key : String(T[key]);
    for (const [k, v] of Object.entries(values || {})) s = s.split("{" + k + "}").join(String(v));
    return s;
  }

  function set(el, text) {
    el.textContent = text == null ? "" : String(text);
  }

  function when(ms) {
    return ms ? new Date(ms).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { dateStyle: "medium", timeStyle: "short" }) : "";
  }

  async function loadCatalog() {
    const r = await fetch("i18n/" + lang + ".json", { cache: "force-cache" });
    T = await r.json();
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    for (const el of document.querySelectorAll("[data-t]")) set(el, t(el.dataset.t));
    document.title = t(page === "evaluate" ? "eval_title" : "report_title");
    set($("lang"), t("other_lang"));
  }

  async function post(path, body) {
    const r = await fetch("/api/v1/resident/" + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    let data = {};
    try {
      data = await r.json();
    } catch (e) {
      data = {};
    }
    if (!r.ok) {
      const err = new Error("refused");
      err.code = r.status === 429 && !data.code ? "busy" : data.code || "error";
      err.status = r.status;
      throw err;
    }
    return data;
  }

  function refuse(err) {
    const key = err && err.code && T[err.code] !== undefined ? err.code : "error";
    document.body.dataset.state = key === "error" ? "failed" : "refused";
    document.body.dataset.code = key;
    $("form").hidden = true;
    $("status").hidden = false;
    set($("status"), t(key));
  }

  // The form can be used from here on; the time is kept for measuring (docs/tickets.md: page weight
  // and time to interactive on a phone).
  function ready() {
    $("form").hidden = false;
    document.body.dataset.state = "ready";
    document.body.dataset.readyMs = String(Math.round(performance.now()));
  }

  function formError(key) {
    const el = $("form-error");
    el.hidden = !key;
    set(el, key ? t(key) : "");
  }

  function radio(name, value, label) {
    const wrap = document.createElement("label");
    wrap.className = "choice";
    const input = document.createElement("input");
    input.type = "radio";
    input.name = name;
    input.value = value;
    const span = document.createElement("span");
    set(span, label);
    wrap.append(input, span);
    return wrap;
  }

  function checked(name) {
    const el = document.querySelector("input[name='" + name + "']:checked");
    return el ? el.value : null;
  }

  // --- evaluation ---------------------------------------------------------------------------------
  function renderEvaluation() {
    const inc = view.incident;
    set($("what"), inc.description ? inc.type_label + "：" + inc.description : inc.type_label);
    set($("when"), when(inc.reported_ms));
    set($("done"), inc.what_done || "—");
    set($("by"), inc.done_by);
    set($("done-at"), when(inc.done_ms));
    const stars = $("stars");
    const keep = checked("rating");
    stars.replaceChildren(...T.stars.map((label, i) => radio("rating", String(i + 1), "★".repeat(i + 1) + " " + label)));
    if (keep) document.querySelector("input[name='rating'][value='" + keep + "']").checked = true;
  }

  async function startEvaluation() {
    view = await post("evaluation/view", { token, lang });
    $("status").hidden = true;
    $("intro").hidden = false;
    $("card").hidden = false;
    renderEvaluation();
    if (!view.open) {
      refuse({ code: "evaluation_closed" });
      $("card").hidden = false;
      return;
    }
    ready();
    $("form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const solved = checked("solved");
      const rating = checked("rating");
      if (!solved) return formError("choose_solved");
      if (!rating) return formError("choose_rating");
      formError(null);
      $("submit").disabled = true;
      set($("submit"), t("sending"));
      try {
        const out = await post("evaluation", {
          token, solved: solved === "yes", rating: Number(rating), comment: $("comment").value.trim() || null,
        });
        $("form").hidden = true;
        $("result").hidden = false;
        set($("result"), t(out.reopened ? "thanks_reopened" : "thanks"));
        document.body.dataset.state = "done";
      } catch (err) {
        refuse(err);
      }
    });
  }

  // --- report -------------------------------------------------------------------------------------
  let photoData = null;

  function renderReport() {
    set($("building"), view.building.name);
    const types = $("types");
    const keep = checked("type");
    types.replaceChildren(...view.types.map((ty) => radio("type", ty, (T.type && T.type[ty]) || ty)));
    if (keep) document.querySelector("input[name='type'][value='" + keep + "']").checked = true;
    const units = $("units");
    const where = checked("where");
    units.replaceChildren(...view.units.map((u) => radio("where", u.id, t("where_unit") + "：" + u.name)));
    if (where) document.querySelector("input[name='where'][value='" + where + "']").checked = true;
  }

  // Re-encode on the phone: smaller uploads on weak networks, and the camera's metadata (GPS) never
  // leaves the phone. The gateway re-encodes again anyway.
  async function shrink(file) {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    const scale = Math.min(1, 1600 / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((ok) => canvas.toBlob(ok, "image/jpeg", 0.85));
    const buf = new Uint8Array(await blob.arrayBuffer());
    let bin = "";
    for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
    return { b64: btoa(bin), size: buf.length, url: URL.createObjectURL(blob) };
  }

  async function startReport() {
    view = await post("report/view", { token });
    $("status").hidden = true;
    $("intro").hidden = false;
    $("building-line").hidden = false;
    renderReport();
    ready();
    $("photo").addEventListener("change", async () => {
      const file = $("photo").files[0];
      photoData = null;
      $("preview").hidden = true;
      formError(null);
      if (!file) return;
      try {
        const p = await shrink(file);
        if (p.size > view.photo_max_bytes) return formError("photo_too_big");
        photoData = p.b64;
        $("preview").src = p.url;
        $("preview").hidden = false;
      } catch (e) {
        formError("photo_too_big");
      }
    });
    $("form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const type = checked("type");
      const description = $("description").value.trim();
      const phone = $("phone").value.trim();
      if (!type) return formError("choose_type");
      if (!description) return formError("description_needed");
      if (phone && !/^\+?[0-9][0-9 -]{4,19}$/.test(phone)) return formError("phone_bad");
      formError(null);
      $("submit").disabled = true;
      set($("submit"), t("sending"));
      try {
        const out = await post("report", {
          token, type, unit: checked("where") || null, area: $("area").value.trim() || null,
          description, phone: phone || null, photo: photoData,
        });
        $("form").hidden = true;
        $("result").hidden = false;
        set($("result"), t(out.has_phone ? "received" : "received_no_phone", { ref: out.reference }));
        document.body.dataset.state = "done";
        document.body.dataset.reference = out.reference;
      } catch (err) {
        if (err.code === "report_limit" || err.code === "photo_refused" || err.status === 422) {
          $("submit").disabled = false;
          set($("submit"), t("report_submit"));
          return formError(T[err.code] !== undefined ? err.code : "error");
        }
        refuse(err);
      }
    });
  }

  $("lang").addEventListener("click", async () => {
    lang = lang === "zh" ? "en" : "zh";
    try {
      localStorage.setItem("resident.lang", lang);
    } catch (e) {
      /* not remembered: fine */
    }
    await loadCatalog();
    if (view && page === "evaluate") {
      try {
        view = await post("evaluation/view", { token, lang });
      } catch (e) {
        /* keep the labels we have */
      }
      renderEvaluation();
    } else if (view) {
      renderReport();
    }
  });

  (async function main() {
    try {
      await loadCatalog();
      if (!token) return refuse({ code: "link_malformed" });
      await (page === "evaluate" ? startEvaluation() : startReport());
    } catch (err) {
      refuse(err);
    }
  })();
})();
