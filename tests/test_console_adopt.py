"""Adopting a device from the console while the simulator runs: the installer sees the device
"seen, not configured" with its payload, adopts it into a building and unit; the site file keeps
every comment, the device is configured at once (no restart), and nothing is lost: every message
of the device is either counted as unconfigured (before) or stored (after), and the gateway
committed exactly what the broker acknowledged."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from edge_config import load_config
from gateway.install import traffic
from gateway.install.adopt_console import site_adopter
from gateway.install.mosquitto import Mosquitto
from gateway.install.simulator import Simulator
from tests.api_harness import ApiServer
from tests.site_views import example_site
from tests.support import ROOT, TrackedPublisher, wait_until
from tests.test_console_site import browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = pytest.mark.broker

DEVICE = "b05-u1-entrance"
ARTIFACTS = ROOT / "test-artifacts"
SAFETY = {"sos_button", "pull_cord", "fall_radar", "smoke_detector", "gas_detector", "camera"}


def _committed(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM counters WHERE name = 'messages_committed'").fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def test_adopt_from_the_console_under_the_simulator(browser: Any, tmp_path: Path) -> None:  # noqa: F811
    broker = Mosquitto(tmp_path / "broker").start()
    full = example_site(tmp_path, broker.port, name="full.yaml")
    text = full.read_text(encoding="utf-8")
    stanza = re.search(rf"(?ms)^  - id: {DEVICE}\n.*?(?=^  - id: )", text)
    assert stanza is not None
    site = tmp_path / "site.yaml"
    site.write_text(text.replace(stanza.group(0), ""), encoding="utf-8")
    site.chmod(0o600)
    before = site.read_text(encoding="utf-8")
    srv = ApiServer(site, tmp_path / "gateway.db").start()
    srv.gw.site_adopter = site_adopter  # as `edge-gateway run` and the demo hand it down
    srv.gw.config_path = site
    sim = Simulator(srv.cfg, "127.0.0.1", broker.port, rate=60, client_id="adopt-sim")
    # Life-safety topics reach both MQTT sessions (each counts its copy): the simulator keeps to the
    # devices whose messages the gateway commits once.
    sim.devices = [d for d in sim.devices if d.type not in SAFETY]
    sim.by_id = {d.id: d for d in sim.devices}
    target = next(d for d in traffic.sim_devices(load_config(full)) if d.id == DEVICE)
    pub = TrackedPublisher("127.0.0.1", broker.port, "adopt-door")
    sent = 0
    try:
        # every session subscribed: nothing retained is still on its way when the base is read
        assert wait_until(lambda: srv.gw.sessions and all(s.subscribed for s in srv.gw.sessions.values()), 15)
        base = _committed(srv.db)
        sim.start()  # runs until stopped, after the adoption

        def door(n: int) -> None:
            """n messages of the door, then wait for the broker's acks (one commit's time)."""
            nonlocal sent
            pub.publish_all([traffic.state(target, {"contact": (sent + i) % 2 == 0}) for i in range(n)])
            sent += n

        door(20)
        token = srv.token("installer", name="inst")
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{srv.base}/console/#view=adopt")
        page.fill("#token", token)
        page.click("#signin-btn")
        card = page.wait_for_selector(f".cand[data-address='{DEVICE}']", timeout=15_000)
        assert '"contact"' in card.text_content()  # the payload seen
        card.query_selector("button.act").click()
        page.fill(f".cand[data-address='{DEVICE}'] input[name='id']", DEVICE)
        assert (
            page.eval_on_selector(f".cand[data-address='{DEVICE}'] select[name='type']", "s => s.value")
            == "door_contact"
        )
        page.select_option(f".cand[data-address='{DEVICE}'] select[name='building']", "b05")
        page.select_option(f".cand[data-address='{DEVICE}'] select[name='unit']", "u1")
        page.fill(f".cand[data-address='{DEVICE}'] input[name='floor']", "1")
        rev = srv.gw.cfg.revision
        page.screenshot(path=str(ARTIFACTS / "site-adopt-form-zh.png"), full_page=True)
        page.click(f".cand[data-address='{DEVICE}'] button[type='submit']")
        while not page.query_selector(f".cand[data-adopted='{DEVICE}']") and sent < 400:
            door(5)  # the door keeps talking while the file is written and the config reloaded
            time.sleep(0.05)
        page.wait_for_selector(f".cand[data-adopted='{DEVICE}']", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "site-adopt-zh.png"))
        door(20)
        assert srv.gw.cfg.revision != rev
    finally:
        pub.close()
        sim.stop()
    assert wait_until(lambda: sim.unacked == 0, 10) and sim.stats.failed == 0
    try:
        # nothing subscribes to Frigate's event topic (the sim's zone events for cameras' spaces)
        published = sim.stats.acked - sim.stats.by_format["frigate"] + sum(pub.acked.values())
        assert sum(pub.acked.values()) == sent
        assert wait_until(lambda: _committed(srv.db) - base >= published, 20)
        time.sleep(1.0)
        assert _committed(srv.db) - base == published  # the gateway committed what the broker acked
        stored = srv.read("SELECT count(*) FROM readings WHERE device_id = ?", (DEVICE,))[0][0]
        unconf = srv.read("SELECT coalesce(sum(count), 0) FROM unconfigured WHERE address = ?", (DEVICE,))[0][0]
        assert stored > 0 and unconf > 0
        assert stored + unconf == sent  # each message of the door: unconfigured before, a reading after
        with srv.client(token) as c:
            d = c.get(f"/api/v1/devices/{DEVICE}").json()
            assert (d["building"], d["unit"], d["type"]) == ("b05", "u1", "door_contact")
            assert DEVICE not in {x["address"] for x in c.get("/api/v1/adopt/candidates").json()["items"]}
        after = site.read_text(encoding="utf-8")
        comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
        assert comments and all(line in after.splitlines() for line in comments)
        assert re.search(r"# adopted \d{4}-\d\d-\d\d via console", after)
        assert errors == []
    finally:
        srv.stop()
        broker.stop()
