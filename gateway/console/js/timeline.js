// One line per incident event, in words: what happened, who did it, what they wrote.
import { el, fmtTime, has, label, t } from "./i18n.js";
import { person, team } from "./names.js";

function what(e) {
  const d = e.data || {};
  switch (e.kind) {
    case "state_changed": {
      const act = d.action ? label("action", d.action) : label("kind", e.kind);
      return `${act}（${label("state", d.from)} → ${label("state", d.to)}）`;
    }
    case "severity_changed":
      return `${label("kind", e.kind)}：${label("sev", d.from)} → ${label("sev", d.to)}`;
    case "dispatched":
      return `${label("kind", e.kind)} · ${t("dispatched_to", { who: [person(d.person), team(d.team)].filter(Boolean).join(" / ") })}`;
    case "escalated":
      return `${label("kind", e.kind)} · ${t("escalated_to", { who: d.department ? label("department", d.department) : label("role", d.rung || "assignee") })}`;
    case "whistle":
      return `${label("kind", e.kind)} · ${t("summoned", { who: label("department", d.department) })}`;
    case "sla_missed":
      return `${label("kind", e.kind)}：${label("stage", d.stage)}`;
    case "not_rated":
      return `${label("kind", e.kind)}：${label("reason", d.reason)}`;
    case "notify_attempt":
      return `${label("kind", e.kind)}：${d.ok ? t("delivery_ok") : t("delivery_failed")}`;
    default:
      return label("kind", e.kind);
  }
}

// Words people wrote (notes, what was done, reasons, the resident's comment): shown as text.
function words(e) {
  const d = e.data || {};
  const out = [];
  if (d.rating) out.push(`★${d.rating}`);
  for (const k of ["what_done", "reason", "description", "comment", "note"]) {
    const v = d[k];
    if (typeof v !== "string" || !v || (k === "note" && v === d.what_done)) continue;
    if (k === "reason") {
      // a person's reason (cancel, false alarm, reopen, whistle); the system's reasons are codes
      if (!["state_changed", "whistle"].includes(e.kind) || String(d.action || "").startsWith("auto_")) continue;
      out.push(has("reason", v) ? label("reason", v) : v);
    } else out.push(v);
  }
  return out.join(" · ");
}

export function renderTimeline(ol, events) {
  ol.replaceChildren(
    ...events.map((e) => {
      const li = el("li", `ev ev-${e.kind}`);
      li.dataset.kind = e.kind;
      li.append(el("time", "when", fmtTime(e.ts_ms)), el("span", "what", what(e)));
      const who = e.actor ? person(e.actor) : "";
      if (who) li.append(el("span", "who", who));
      const w = words(e);
      if (w) li.append(el("span", "words", w));
      return li;
    }),
  );
}
