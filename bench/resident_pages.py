"""Page weight and time to interactive of the residents' pages on a phone (issue 21).

Runs a real gateway (its own Mosquitto, the API on uvicorn) with the residents' loop on, makes an
evaluation link (an SOS handled and resolved) and a building's report link, and opens each page in
Debian's Chromium at a phone viewport (390x844, 3x, touch, mobile user agent), cold cache, ROUNDS
times: once unthrottled (the LAN), once under emulated "slow 4G" (150 ms RTT, 1.6 Mbit/s down,
750 kbit/s up) with the CPU slowed 4x (a low-end phone).

- weight: bytes received for the page and everything it loads (HTML, CSS, JS, catalog JSON, the API
  answer), from the network layer (encodedDataLength: headers + body as sent; no compression);
- time to interactive: navigation start to the moment the form can be used (the page sets
  ``data-ready-ms`` from ``performance.now()`` once its data is rendered and its handlers are set).

    .venv/bin/python bench/resident_pages.py [--rounds 5]

Last line: ``RESULT evaluate_kb=… report_kb=… evaluate_tti_ms=… report_tti_ms=… (medians; slow: …)``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.install.mosquitto import Mosquitto
from gateway.residents import reports, sender
from tests.api_harness import trigger
from tests.resident_harness import PHONE, SMS_AUTH, ResidentEnv, chromium

SLOW = {"offline": False, "latency": 150, "downloadThroughput": 1_600_000 / 8, "uploadThroughput": 750_000 / 8}


def measure(browser: Any, url: str, slow: bool) -> tuple[int, float]:
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    if slow:
        cdp.send("Network.emulateNetworkConditions", SLOW)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
    sizes: dict[str, float] = {}
    urls: dict[str, str] = {}
    cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"]))
    cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]))
    page.goto(url)
    page.wait_for_selector("body[data-state='ready']", timeout=60_000)
    tti = float(page.get_attribute("body", "data-ready-ms") or "nan")
    page.wait_for_timeout(300)  # let the last loadingFinished events arrive
    ctx.close()
    if os.environ.get("BENCH_VERBOSE"):
        for rid, n in sizes.items():
            print(f"  {n:8.0f} B  {urls.get(rid, '?').split('#')[0]}")
    return int(sum(sizes.values())), tti


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("RESIDENT_SMS_AUTH", SMS_AUTH)
    with tempfile.TemporaryDirectory(prefix="edge-broker-") as bdir, tempfile.TemporaryDirectory() as ddir:
        broker = Mosquitto(Path(bdir)).start()
        env = ResidentEnv(Path(ddir), broker.port).start()
        try:
            srv = env.srv
            iid = srv.raise_incident(trigger("sos-r1|sos", "eldercare", "sos", "critical", grid="g1", resident="r1"))
            with srv.client(srv.token("eldercare_worker", name="ec1")) as c:
                for action, data in (("accept", None), ("resolve", {"what_done": "已上门处理，老人无恙"})):
                    c.post(f"/api/v1/incidents/{iid}/actions", json={"action": action, "data": data}).raise_for_status()
            req = srv.read("SELECT id FROM evaluation_requests WHERE incident_id=?", (iid,))[0][0]
            base = srv.cfg.resident_loop.base_url or srv.base
            cfg = srv.cfg

            def token_eval() -> str:
                out = srv.gw.pipeline.call(lambda c, r, n: sender.mint(c, cfg, req, n)).result(10)
                return str(out[0])

            qr = srv.gw.pipeline.call(lambda c, r, n: reports.issue_qr(c, cfg, "b1", n)).result(10)
            results: dict[tuple[str, bool], list[tuple[int, float]]] = {}
            with chromium() as browser:
                for slow in (False, True):
                    for _ in range(args.rounds):
                        # viewing does not use up an evaluation link: one link serves every round
                        for name, url in (
                            ("evaluate", sender.evaluation_url(base, token_eval())),
                            ("report", reports.report_url(base, qr)),
                        ):
                            results.setdefault((name, slow), []).append(measure(browser, url, slow))
        finally:
            env.stop()
            broker.stop()
    med: dict[tuple[str, bool], tuple[float, float]] = {}
    for (name, slow), runs in sorted(results.items()):
        kb = statistics.median(r[0] for r in runs) / 1024
        tti = statistics.median(r[1] for r in runs)
        med[(name, slow)] = (kb, tti)
        label = "slow 4G + 4x CPU" if slow else "unthrottled"
        ttis = [round(r[1]) for r in runs]
        print(f"{name:8s} {label:17s} weight {kb:6.1f} KB  tti median {tti:7.0f} ms  (runs: {ttis})")
    e, r = med[("evaluate", False)], med[("report", False)]
    es, rs = med[("evaluate", True)], med[("report", True)]
    print(
        f"RESULT evaluate_kb={e[0]:.1f} report_kb={r[0]:.1f} evaluate_tti_ms={e[1]:.0f} report_tti_ms={r[1]:.0f}"
        f" (medians; slow: evaluate_tti_ms={es[1]:.0f} report_tti_ms={rs[1]:.0f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
