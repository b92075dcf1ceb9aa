// Scorecard (考评): per property company the quarter's four parts (contract, complaint handling,
// on-site inspection, owner evaluation), the score, the flags (summoned, yellow, red), the
// compounds it runs; every figure opens the incidents behind it in the history view.
import { api, button, download, el, errorText, lang, t } from "./core.js";

const PARTS = ["contract_fulfilment", "complaint_handling", "on_site_inspection", "owner_evaluation"];

function periods() {
  const now = new Date();
  const out = [];
  let y = now.getFullYear();
  let q = Math.floor(now.getMonth() / 3) + 1;
  for (let i = 0; i < 5; i++) {
    out.push(`${y}-Q${q}`);
    q -= 1;
    if (q === 0) {
      q = 4;
      y -= 1;
    }
  }
  out.push(String(now.getFullYear()), String(now.getFullYear() - 1));
  return out;
}

// The period's bounds in local time (the gateway's zone is the site's, as the phone's usually is).
function bounds(period) {
  const m = period.match(/^(\d{4})(?:-Q([1-4]))?$/);
  const y = Number(m[1]);
  if (!m[2]) return [new Date(y, 0, 1).getTime(), new Date(y + 1, 0, 1).getTime()];
  const q = Number(m[2]);
  return [new Date(y, 3 * (q - 1), 1).getTime(), new Date(y, 3 * q, 1).getTime()];
}

export function mount(root, ctx) {
  const v = { root, ctx, period: periods()[0], site: null, data: null };
  draw(v);
  return { relabel: () => draw(v) };
}

async function draw(v) {
  v.root.replaceChildren(el("h2", null, t("tab_scorecard")));
  const bar = el("div", "hist-actions");
  const sel = el("select");
  sel.name = "period";
  for (const p of periods()) {
    const o = el("option", null, p);
    o.value = p;
    if (p === v.period) o.selected = true;
    sel.append(o);
  }
  sel.addEventListener("change", () => {
    v.period = sel.value;
    v.data = null;
    draw(v);
  });
  const status = el("p", "muted site-status");
  status.setAttribute("role", "status");
  bar.append(
    el("span", null, t("period")),
    sel,
    button(t("export_xlsx"), null, () => save(v, "xlsx", status)),
    button(t("export_csv"), null, () => save(v, "csv", status)),
  );
  v.root.append(bar, status, el("p", "muted", t("score_help")));
  status.textContent = t("loading");
  try {
    v.site = v.site || (await api("/api/v1/site"));
    v.data = v.data || (await api(`/api/v1/scorecard?period=${encodeURIComponent(v.period)}`));
  } catch (e) {
    status.textContent = errorText(e);
    return;
  }
  status.textContent = "";
  const companies = v.data.rows.filter((r) => r.kind === "property_company");
  const cards = el("div", "score-cards");
  for (const r of companies) cards.append(card(v, r));
  if (!companies.length) cards.append(el("p", "muted", t("no_scores")));
  v.root.append(cards);
  const wrap = el("div", "score-wrap");
  wrap.append(table(v, v.data.rows.filter((r) => r.kind !== "property_company")));
  v.root.append(el("h3", null, t("teams_and_departments")), wrap);
}

function compoundsOf(v, company) {
  return v.site.compounds.filter((c) => c.property_company && c.property_company.name === company).map((c) => c);
}

function behind(v, compounds, extra) {
  const [from, to] = bounds(v.period);
  const f = Object.assign({ from_ms: from, to_ms: to }, extra);
  if (compounds.length === 1) f.compound = compounds[0].id;
  else if (compounds.length > 1) f.compounds = compounds.map((c) => ({ id: c.id, name: c.name }));
  v.ctx.show("history", f);
}

function fmt(x, digits = 0) {
  return x === null || x === undefined ? "—" : Number(x).toFixed(digits);
}

function card(v, r) {
  const comps = compoundsOf(v, r.name);
  const box = el("article", `score-card${r.red_card ? " flag-red" : r.yellow_card ? " flag-yellow" : ""}`);
  box.dataset.entity = r.entity;
  const head = el("div", "score-head");
  const name = el("div");
  name.append(el("b", null, r.name), el("div", "muted", comps.map((c) => c.name).join("、") || "—"));
  head.append(name, el("span", "score-total", fmt(r.score)));
  box.append(head);
  const flags = el("div");
  if (r.summoned) flags.append(el("span", "flag summoned", t("flag_summoned")));
  if (r.yellow_card) flags.append(el("span", "flag yellow", t("flag_yellow")));
  if (r.red_card) flags.append(el("span", "flag red", t("flag_red")));
  if (flags.childNodes.length) box.append(flags);
  for (const part of PARTS) {
    const val = r[part];
    const row = el("div", "score-part");
    const b = el("div", `score-bar${val !== null && val < 60 ? " low" : ""}`);
    const fill = el("span");
    fill.style.width = `${Math.max(0, Math.min(100, val || 0))}%`;
    b.append(fill);
    row.append(el("span", null, t(`part_${part}`)), b, el("b", null, fmt(val)));
    box.append(row);
  }
  const figs = el("div", "score-figures");
  const link = (text, extra) => {
    const bt = button(text, "link", () => behind(v, comps, extra));
    figs.append(bt);
  };
  link(t("fig_assignments", null, { n: r.assignments }), {});
  link(t("fig_sla", null, { n: fmt(r.sla_pct) }), { sla_missed: "true" });
  link(t("fig_rating", null, { n: fmt(r.rating_mean, 1), k: r.rated }), { state: "evaluated" });
  link(t("fig_reopen", null, { n: fmt(r.reopen_rate_pct) }), { state: "reopened" });
  box.append(figs);
  return box;
}

function table(v, rows) {
  const tb = el("table", "score-table");
  const head = el("tr");
  for (const k of ["entity_name", "assignments_h", "sla_h", "accept_h", "resolve_h", "rating_h", "score_h"]) head.append(el("th", null, t(k)));
  tb.append(head);
  const min = (s) => (s === null || s === undefined ? "—" : (s / 60).toFixed(1));
  for (const r of rows) {
    const tr = el("tr");
    tr.append(
      el("td", null, `${t(r.kind, "score_kind")} · ${r.name}`),
      el("td", null, r.assignments),
      el("td", null, fmt(r.sla_pct)),
      el("td", null, `${min(r.accept_p50_s)} / ${min(r.accept_p90_s)}`),
      el("td", null, `${min(r.resolve_p50_s)} / ${min(r.resolve_p90_s)}`),
      el("td", null, fmt(r.rating_mean, 1)),
      el("td", null, fmt(r.score)),
    );
    tb.append(tr);
  }
  return tb;
}

async function save(v, fmtName, status) {
  try {
    await download(`/api/v1/reports/scorecard.${fmtName}?period=${encodeURIComponent(v.period)}&lang=${lang()}`, `scorecard-${v.period}.${fmtName}`);
  } catch (e) {
    status.textContent = errorText(e);
  }
}
