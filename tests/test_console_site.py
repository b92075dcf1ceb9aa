"""The site views in a real headless Chromium (Debian's chromium via Playwright), on the example
community with the simulator's traffic: the lot plan shows the simulator's occupancy and changes
colour within 2 s of a published reading; a car in the fire lane becomes an incident that the plan
highlights and opens; buildings, history, charts and the scorecard render in both languages and
at phone size. Screenshots: test-artifacts/site-*.png (docs/console.md shows them)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from gateway.install.simulator import Simulator
from tests.api_harness import ApiServer
from tests.site_views import example_site
from tests.support import ROOT, TrackedPublisher, service_missing, wait_until

pytestmark = pytest.mark.broker

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("playwright (pip install -e '.[dev]')")
        raise
    if not shutil.which(CHROMIUM):
        service_missing("Debian chromium (scripts/system-deps.sh)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d: Path = tmp_path_factory.mktemp("site")
    broker = Mosquitto(d / "broker").start()
    srv = ApiServer(example_site(d, broker.port, fire_lane_max_min=1), d / "gateway.db").start()
    sim = Simulator(srv.cfg, "127.0.0.1", broker.port, rate=80, client_id="site-sim")
    sim.start(6.0)  # a first round of check-ins: every space sensor reports its car or none
    sim.wait(30)
    try:
        yield {"srv": srv, "broker": broker, "sim": sim, "token": srv.token("installer", name="inst")}
    finally:
        srv.stop()
        broker.stop()


def _page(browser: Any, site: dict[str, Any], viewport: dict[str, int], locale: str = "zh-CN") -> Any:
    page = browser.new_page(viewport=viewport, locale=locale)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{site['srv'].base}/console/")
    page.fill("#token", site["token"])
    page.click("#signin-btn")
    page.wait_for_selector("#site-nav:not([hidden]) .site-tab", timeout=10_000)
    page.errors = errors
    return page


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"site-{name}.png"), full_page=True)


def _english(page: Any) -> None:
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    page.wait_for_function("document.querySelector('.site-tab').textContent === 'Alarms'")


def test_lot_plan_follows_the_simulator_and_a_reading_within_2s(browser: Any, site: dict[str, Any]) -> None:
    srv = site["srv"]
    page = _page(browser, site, DESK)
    page.click(".site-tab[data-tab='parking']")
    page.wait_for_selector(".lot[data-area='p1'] .space.st-free, .lot[data-area='p1'] .space.st-occupied")
    with srv.client(site["token"]) as c:
        api = {s["id"]: s["state"] for a in c.get("/api/v1/parking").json()["areas"] for s in a["spaces"]}
    shown = page.eval_on_selector_all(".space[data-space]", "els => els.map(e => [e.dataset.space, e.dataset.state])")
    assert dict(shown) == api
    occupied = {k for k, v in api.items() if v == "occupied"}
    # what the simulator's sensors said last, as the store received it
    last: dict[str, bool] = {}
    for dev, present in srv.read(
        "SELECT device_id, json_extract(vals, '$.vehicle_present') FROM readings"
        " WHERE instr(vals, '\"vehicle_present\"') > 0 ORDER BY id"
    ):
        last[dev] = bool(present)
    by_space = {d.location.parking_space: d.id for d in srv.cfg.devices if d.location.parking_space}
    assert {sp for sp, dev in by_space.items() if last.get(dev)} == occupied
    assert 10 < len(occupied) < len(api) - 10  # a lot in use: some cars, some room
    assert page.text_content(".lot[data-area='p1'] .count-free") == str(
        sum(1 for s in srv.cfg.site.parking_areas[0].spaces if api[s.id] == "free")
    )
    _shot(page, "parking-zh")

    sim = {d.id: d for d in traffic.sim_devices(srv.cfg)}
    pub = TrackedPublisher("127.0.0.1", site["broker"].port, "site-parking")
    try:
        space = "p1-002"
        dev = next(d for d in srv.cfg.devices if d.location.parking_space == space)
        now = page.get_attribute(f".space[data-space='{space}']", "data-state") == "occupied"
        for value in (not now, now):  # there and back: two colour changes
            t0, wall = time.monotonic(), time.time()
            pub.publish_all([traffic.device_state(sim[dev.id], {"vehicle_present": value})])
            cls = "st-occupied" if value else "st-free"
            try:
                page.wait_for_selector(f".space[data-space='{space}'].{cls}", timeout=2500)
            except Exception:
                rx = srv.read("SELECT max(rx_ms) FROM readings WHERE device_id = ?", (dev.id,))[0][0]
                raise AssertionError(f"not shown in 2.5 s; stored {rx / 1000 - wall:.2f} s after publishing") from None
            took = time.monotonic() - t0
            print("colour change after", round(took, 3), "s")
            assert took < 2.0, took
    finally:
        pub.close()
    assert page.errors == []
