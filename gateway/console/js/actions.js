// The actions the gateway offers this person on this incident now (allowed_actions: the ticket
// loop's own table, never a copy here). Accept and start go at one tap (an alarm waits for them);
// the others open a form with their fields, required ones marked and checked before sending (the
// gateway checks them again). Errors come back as codes and are shown in the user's language.
import { api } from "./api.js";
import { $, el, label, t } from "./i18n.js";

const ONE_TAP = new Set(["accept", "start"]);
let current = null; // {incident, offer}
let onDone = () => {};

export function setOnDone(fn) {
  onDone = fn;
}

export function renderActions(inc) {
  const box = $("action-buttons");
  const offers = inc.allowed_actions || [];
  box.replaceChildren(
    ...offers.map((o) => {
      const b = el("button", `act act-${o.action}`, label("action", o.action));
      b.type = "button";
      b.dataset.action = o.action;
      b.addEventListener("click", () => (ONE_TAP.has(o.action) ? submit(inc, o, {}) : openForm(inc, o)));
      return b;
    }),
  );
  if (!offers.length) box.append(el("p", "muted", t("no_actions")));
  if (current && current.incident.id === inc.id) {
    const still = offers.find((o) => o.action === current.offer.action);
    if (!still) closeForm();
  } else closeForm();
}

function fieldLabel(action, f) {
  return action === "whistle" && f.name === "note" ? label("field", "whistle_note") : label("field", f.name);
}

function openForm(inc, offer) {
  current = { incident: inc, offer };
  const form = $("action-form");
  form.dataset.action = offer.action;
  const rows = offer.fields.map((f) => {
    const row = el("label", `field field-${f.name}`);
    const head = el("span", "field-label", fieldLabel(offer.action, f));
    if (f.required) head.append(el("span", "req", ` *${t("required")}`));
    let input;
    if (f.kind === "text") {
      input = document.createElement("textarea");
      input.rows = 2;
      if (f.max_len) input.maxLength = f.max_len;
    } else {
      input = document.createElement("select");
      const opts = f.kind === "rating"
        ? [5, 4, 3, 2, 1].map((n) => ({ value: String(n), text: t("stars", { n }) }))
        : f.kind === "yesno"
        ? [{ value: "true", text: t("yes") }, { value: "false", text: t("no") }]
        : (f.options || []).map((o) => ({
            value: o.value,
            text: f.kind === "department" ? label("department", o.value) : o.label || t("other_type"),
          }));
      input.append(el("option", null, t("choose")));
      input.firstChild.value = "";
      for (const o of opts) {
        const op = el("option", null, o.text);
        op.value = o.value;
        input.append(op);
      }
    }
    input.name = f.name;
    input.required = f.required;
    row.append(head, input);
    return row;
  });
  const ok = el("button", "big primary", `${label("action", offer.action)} · ${t("submit")}`);
  ok.type = "submit";
  const cancel = el("button", "big", t("cancel_form"));
  cancel.type = "button";
  cancel.addEventListener("click", closeForm);
  form.replaceChildren(el("h4", null, label("action", offer.action)), ...rows, el("div", "buttons", ""));
  form.lastChild.append(ok, cancel);
  form.hidden = false;
  form.oninput = () => ($("action-msg").textContent = ""); // an old "please fill in" must not linger
  form.onsubmit = (ev) => {
    ev.preventDefault();
    const values = {};
    for (const f of offer.fields) {
      const v = form.elements[f.name].value.trim();
      if (f.required && !v) {
        $("action-msg").textContent = t("failed") + "：" + label("error", "field_required").replace("{field}", fieldLabel(offer.action, f));
        $("action-msg").className = "status error";
        form.elements[f.name].focus();
        return;
      }
      if (v) values[f.name] = f.kind === "rating" ? Number(v) : f.kind === "yesno" ? v === "true" : v;
    }
    submit(inc, offer, values);
  };
  const first = form.querySelector("textarea, select");
  if (first) first.focus();
}

export function closeForm() {
  current = null;
  const form = $("action-form");
  form.hidden = true;
  form.replaceChildren();
}

async function submit(inc, offer, values) {
  const msg = $("action-msg");
  const { note, ...data } = values;
  const body = {
    action: offer.action,
    note: note || null,
    data: Object.keys(data).length ? data : null,
    request_id: crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`,
  };
  for (const b of document.querySelectorAll("#detail button")) b.disabled = true;
  msg.textContent = "";
  try {
    const out = await api(`/api/v1/incidents/${encodeURIComponent(inc.id)}/actions`, { json: body });
    msg.textContent = `${label("action", offer.action)} · ${t("done")}`;
    msg.className = "status ok";
    closeForm();
    onDone(out.incident);
  } catch (e) {
    const f = e.field ? (offer.fields.find((x) => x.name === e.field) || { name: e.field }) : null;
    msg.textContent = `${t("failed")}：${label("error", e.code).replace("{field}", f ? fieldLabel(offer.action, f) : "")}`;
    msg.className = "status error";
    onDone(null);
  } finally {
    for (const b of document.querySelectorAll("#detail button")) b.disabled = false;
  }
}
