"""The console in Chromium on the example community: first paint, ready time, and how fast an alarm
reaches the screen.

    .venv/bin/python bench/console.py [--loads 10] [--presses 30]

Starts its own Mosquitto (recommended config) and ``python -m gateway run`` on a demo copy of
edge_config/examples/community.yaml (514 devices), then drives Debian's Chromium with Playwright:

- ``--loads`` times: a fresh browser context opens a new one-time sign-in link. first_paint_ms is
  the page's first-contentful-paint (Paint Timing API); ready_ms is navigation start -> signed in,
  list loaded and the live stream open (``body[data-live=1]``), read by the bench right after it
  saw that (an upper bound by Playwright's polling, a few ms).
- ``--presses`` SOS presses of distinct residents' buttons (Zigbee2MQTT payloads over MQTT, one
  every 1.5 s) while an elder-care worker's console is open. Measured in the browser: when the
  incident's SSE frame arrived (the stream's bytes, before the page parses them) and when its row
  was in the list and a frame was painted after it (MutationObserver + requestAnimationFrame).
  sse_to_screen is the difference; publish_to_screen counts from the publish call (same clock).

Checks that every press produced exactly one new row. Last line:
RESULT first_paint_ms=... ready_ms=... sse_to_screen_p50_ms=... sse_to_screen_p99_ms=...
publish_to_screen_p50_ms=... publish_to_screen_p99_ms=...
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edge_config import load_config  # noqa: E402
from gateway.api import sessions  # noqa: E402
from gateway.install import traffic  # noqa: E402
from gateway.install.demo import DEFAULT_CONFIG, write_demo_config  # noqa: E402
from gateway.install.mosquitto import Mosquitto, free_port, wait_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]

# Timestamps in the page (epoch ms): SSE bytes naming an incident, and its row on screen.
PROBE = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  window.__arrived = {}; window.__shown = {};
  const orig = window.fetch;
  window.fetch = async (...a) => {
    const r = await orig(...a);
    if (!String(a[0]).includes('/api/v1/stream') || !r.body) return r;
    const dec = new TextDecoder();
    const tap = new TransformStream({ transform(chunk, ctl) {
      const t = now();
      for (const m of dec.decode(chunk, { stream: true }).matchAll(/"incident_id":"([^"]+)"/g))
        if (!(m[1] in window.__arrived)) window.__arrived[m[1]] = t;
      ctl.enqueue(chunk);
    } });
    return new Response(r.body.pipeThrough(tap), { status: r.status, headers: r.headers });
  };
  const watch = () => {
    const ul = document.getElementById('incidents');
    if (!ul) return setTimeout(watch, 10);
    new MutationObserver(() => {
      const ids = [...ul.querySelectorAll('.incident')].map(li => li.dataset.id);
      const fresh = ids.filter(id => !(id in window.__shown));
      if (!fresh.length) return;
      for (const id of fresh) window.__shown[id] = -1;
      requestAnimationFrame(() => { const t = now(); for (const id of fresh) window.__shown[id] = t; });
    }).observe(ul, { childList: true });
  };
  document.addEventListener('DOMContentLoaded', watch);
})();
"""


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loads", type=int, default=10)
    ap.add_argument("--presses", type=int, default=30)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    broker = Mosquitto(work / "broker").start()
    port = free_port()
    site, cfg = write_demo_config(DEFAULT_CONFIG, work, "127.0.0.1", broker.port, port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(site)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "gateway.log", "wb"),  # noqa: SIM115 (closed with the process)
    )
    base = f"http://127.0.0.1:{port}"
    store = work / "gateway.db"
    paints: list[float] = []
    readies: list[float] = []
    sse_screen: list[float] = []
    pub_screen: list[float] = []
    problems: list[str] = []
    try:
        if not wait_port(port, 60):
            raise SystemExit("the gateway did not start; see " + str(work / "gateway.log"))
        cfg = load_config(site)
        sos = [d for d in cfg.devices if d.type == "sos_button" and d.resident][: args.presses]
        worker = cfg.staff_member("ec-01")
        assert worker is not None

        def link(person: str) -> str:
            m = cfg.staff_member(person)
            assert m is not None
            return sessions.cli_issue_link(
                store, person=person, role=m.role, grids=m.grids, compounds=m.compounds, ttl_s=600
            )

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            for _ in range(args.loads):
                ctx = browser.new_context(viewport={"width": 1280, "height": 900})
                page = ctx.new_page()
                page.goto(f"{base}/console/#signin={link('ec-01')}")
                page.wait_for_selector("body[data-live='1']", timeout=30_000)
                fcp = page.evaluate(
                    "(performance.getEntriesByName('first-contentful-paint')[0] || {startTime: -1}).startTime"
                )
                ready = page.evaluate("performance.now()")
                if fcp < 0:
                    problems.append("no first-contentful-paint entry")
                paints.append(float(fcp))
                readies.append(float(ready))  # read just after the page got there: an upper bound
                ctx.close()

            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            ctx.add_init_script(PROBE)
            page = ctx.new_page()
            page.goto(f"{base}/console/#signin={link('ec-01')}")
            page.wait_for_selector("body[data-live='1']", timeout=30_000)
            before = page.evaluate("document.querySelectorAll('.incident').length")
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-console")
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            published: dict[str, float] = {}
            for d in sos:
                sd = traffic.SimDevice(d.id, d.driver, d.address, d.friendly_name, d.type)
                topic, payload = traffic.sos_press(sd)
                published[d.id] = time.time() * 1000
                client.publish(topic, payload, qos=1).wait_for_publish(5)
                time.sleep(1.5)
            time.sleep(3)
            client.loop_stop()
            client.disconnect()
            arrived: dict[str, float] = page.evaluate("window.__arrived")
            shown: dict[str, float] = page.evaluate("window.__shown")
            rows = page.evaluate(
                "[...document.querySelectorAll('.incident')].map(li => [li.dataset.id, li.dataset.type])"
            )
            new_rows = [r for r in rows if r[1] == "sos"]
            if len(rows) - before != len(sos) or len(new_rows) < len(sos):
                problems.append(f"{len(sos)} presses but {len(rows) - before} new rows ({len(new_rows)} sos)")
            conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
            by_device = {
                json_dev: iid
                for iid, json_dev in conn.execute(
                    "SELECT id, json_extract(devices, '$[0]') FROM incidents WHERE type='sos'"
                )
            }
            conn.close()
            for d in sos:
                iid = by_device.get(d.id)
                if iid is None or iid not in arrived or shown.get(iid, -1) < 0:
                    problems.append(f"{d.id}: not measured (incident {iid})")
                    continue
                sse_screen.append(shown[iid] - arrived[iid])
                pub_screen.append(shown[iid] - published[d.id])
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
        broker.stop()

    print(f"work dir: {work}  cpus: {os.cpu_count()}  example community: {len(cfg.devices)} devices")
    print(
        f"page loads: {len(paints)}; first paint ms: {[round(x) for x in paints]}; "
        f"ready ms: {[round(x) for x in readies]}"
    )
    print(f"SOS presses: {len(sos)}; measured: {len(sse_screen)}")
    print(f"checks: {'OK' if not problems else 'FAILED: ' + '; '.join(problems[:5])}")
    if not sse_screen or not paints:
        return 1
    print(
        f"RESULT first_paint_ms={statistics.median(paints):.0f} ready_ms={statistics.median(readies):.0f} "
        f"sse_to_screen_p50_ms={statistics.median(sse_screen):.1f} sse_to_screen_p99_ms={pct(sse_screen, 0.99):.1f} "
        f"publish_to_screen_p50_ms={statistics.median(pub_screen):.1f} "
        f"publish_to_screen_p99_ms={pct(pub_screen, 0.99):.1f}"
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
