// The console's footer: the gateway's id and version from /healthz (open, no token needed), so
// staff and installers can tell which gateway and which build they are looking at. A file of its
// own, apart from app.js; textContent only.
"use strict";

(async () => {
  const el = document.getElementById("build");
  if (!el) return;
  try {
    const r = await fetch("/healthz", { cache: "no-store" });
    if (!r.ok) return;
    const h = await r.json();
    el.textContent = `${h.gateway} · v${h.version}`;
  } catch (_) {
    // unreachable gateway: the footer stays empty, the header's connection state says why
  }
})();
