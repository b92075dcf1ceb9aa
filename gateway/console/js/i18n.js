// The one catalog (i18n/<lang>.json, also read by the gateway: gateway/core/catalog.py). Codes are
// never shown as they are: a code without words shows a neutral "other" instead.
export const i18n = { lang: "zh", dict: {} };

export async function loadLang(lang) {
  const r = await fetch(`i18n/${lang}.json`, { cache: "no-cache" });
  i18n.dict = await r.json();
  i18n.lang = lang;
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}

// A page phrase, with {name} placeholders filled from vars.
export function t(key, vars) {
  let s = typeof i18n.dict[key] === "string" ? i18n.dict[key] : key;
  for (const [k, v] of Object.entries(vars || {})) s = s.split(`{${k}}`).join(String(v));
  return s;
}

// The words for a code of a group (type, state, role, kind, error ...).
export function label(group, code) {
  const g = i18n.dict[group] || {};
  if (code === null || code === undefined || code === "") return "";
  return g[code] || t("other_type");
}

export function has(group, code) {
  return Boolean((i18n.dict[group] || {})[code]);
}

export function fmtTime(ms, withDate = true) {
  if (!ms) return "";
  const opts = withDate
    ? { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false }
    : { hour: "2-digit", minute: "2-digit", hour12: false };
  return new Date(ms).toLocaleString(i18n.lang === "zh" ? "zh-CN" : "en-GB", opts);
}

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

export const $ = (id) => document.getElementById(id);
