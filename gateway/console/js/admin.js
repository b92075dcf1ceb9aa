// Installers: issue a person a one-time sign-in link (with its QR code) and see / sign out the
// devices signed in. Other people see their own devices only (the gateway decides).
import { api } from "./api.js";
import { $, el, fmtTime, label, t } from "./i18n.js";
import { names } from "./names.js";

const ROLES = ["property_staff", "eldercare_worker", "grid_worker", "community_office", "street_office", "department", "installer", "central_platform"];

export function setupAdmin(me) {
  const panel = $("admin");
  const installer = me.role === "installer";
  panel.hidden = false;
  $("link-form").hidden = !installer;
  panel.querySelector("h2").hidden = !installer;
  if (installer) {
    const sel = $("link-person");
    sel.replaceChildren(
      ...[...names.staff.values()].map((m) => {
        const o = el("option", null, `${m.name}（${label("role", m.role)}）`);
        o.value = m.id;
        return o;
      }),
    );
    const roleSel = $("link-role");
    roleSel.replaceChildren(el("option", null, t("choose")), ...ROLES.map((r) => Object.assign(el("option", null, label("role", r)), { value: r })));
    roleSel.firstChild.value = "";
  }
  loadSessions();
}

export function wireAdmin() {
  $("link-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { person: $("link-person").value };
    if ($("link-role").value) body.role = $("link-role").value;
    try {
      const out = await api("/api/v1/signin-links", { json: body });
      $("link-out").hidden = false;
      $("link-url").value = out.url;
      $("link-qr").src = out.qr.startsWith("data:image/svg+xml") ? out.qr : "";
      $("link-help").textContent = `${out.name} · ${label("role", out.role)} — ${t("link_help", { min: Math.round(out.expires_s / 60) })}`;
      loadSessions();
    } catch (e) {
      $("link-help").textContent = `${t("failed")}：${label("error", e.code)}`;
      $("link-out").hidden = false;
    }
  });
  $("link-copy").addEventListener("click", () => {
    $("link-url").select();
    if (navigator.clipboard) navigator.clipboard.writeText($("link-url").value).catch(() => {});
  });
}

export async function loadSessions() {
  const tbody = $("sessions").tBodies[0];
  let items = [];
  try {
    items = (await api("/api/v1/sessions")).items;
  } catch (e) {
    return;
  }
  if (!items.length) {
    tbody.replaceChildren(Object.assign(el("tr"), {}));
    tbody.firstChild.append(el("td", "muted", t("no_sessions")));
    return;
  }
  tbody.replaceChildren(
    ...items.map((s) => {
      const tr = el("tr");
      tr.dataset.id = s.id;
      const who = names.staff.get(s.person);
      tr.append(
        el("td", null, `${who ? who.name : t("other_type")} · ${label("role", s.role)}`),
        el("td", null, `${s.device || t("unknown")}${s.current ? `（${t("this_device")}）` : ""}`),
        el("td", null, `${t("f_created")} ${fmtTime(s.created_ms)}`),
        el("td", null, `${t("f_expires")} ${fmtTime(s.expires_ms)}`),
      );
      const td = el("td");
      const one = el("button", null, t("revoke"));
      one.type = "button";
      one.addEventListener("click", () => revoke({ id: s.id }));
      const all = el("button", null, t("revoke_person"));
      all.type = "button";
      all.addEventListener("click", () => revoke({ person: s.person }));
      td.append(one, all);
      tr.append(td);
      return tr;
    }),
  );
}

async function revoke(body) {
  try {
    await api("/api/v1/sessions/revoke", { json: body });
  } finally {
    loadSessions();
  }
}
