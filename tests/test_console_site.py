"""The site views in a real headless Chromium (Debian's chromium via Playwright), on the example
community with the simulator's traffic: the lot plan shows the simulator's occupancy and changes
colour within 2 s of a published reading; a car in the fire lane becomes an incident that the plan
highlights and opens; buildings, history, charts and the scorecard render in both languages and
at phone size. Screenshots: test-artifacts/site-*.png (docs/console.md shows them)."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.history_store import generate
from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from gateway.install.simulator import Simulator
from tests.api_harness import ApiServer
from tests.console_helpers import chromium
from tests.site_views import example_site
from tests.support import ROOT, TrackedPublisher, wait_until

pytestmark = pytest.mark.broker

ARTIFACTS = ROOT / "test-artifacts"
PHONE = {"width": 390, "height": 844}
NOTE = "门口堆放纸箱挡住了门，已清理"  # searched for in the history (the generated notes never say it)
DESK = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d: Path = tmp_path_factory.mktemp("site")
    broker = Mosquitto(d / "broker").start()
    generate(d / "gateway.db", 3000)  # a year behind it: history, charts and scorecard have figures
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
    errors.clear()  # the console asks for its session before signing in (a 401 Chromium logs)
    page.errors = errors
    return page


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"site-{name}.png"), full_page=True)


def _english(page: Any) -> None:
    page.click("#lang")
    page.wait_for_selector("html[lang='en']", state="attached")
    page.wait_for_selector(".site-tab[data-tab='alarms']:text-is('Alarms')")


def test_lot_plan_follows_the_simulator_and_a_reading_within_2s(browser: Any, site: dict[str, Any]) -> None:
    srv = site["srv"]
    page = _page(browser, site, DESK)
    page.click(".site-tab[data-tab='parking']")
    page.wait_for_selector(".lot[data-area='p1'] .space.st-free, .lot[data-area='p1'] .space.st-occupied")
    # The fixture's simulator has stopped publishing, but its last messages may still be on their
    # way through the gateway while the page loads: the page must agree with the API once the
    # stream has brought it up to date (it does within 2 s, measured below), not at one instant.
    deadline = time.monotonic() + 5.0
    while True:
        with srv.client(site["token"]) as c:
            api = {s["id"]: s["state"] for a in c.get("/api/v1/parking").json()["areas"] for s in a["spaces"]}
        shown = page.eval_on_selector_all(
            ".space[data-space]", "els => els.map(e => [e.dataset.space, e.dataset.state])"
        )
        if dict(shown) == api or time.monotonic() > deadline:
            break
        page.wait_for_timeout(200)
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


def test_fire_lane_car_is_highlighted_and_opens_its_incident(browser: Any, site: dict[str, Any]) -> None:
    srv = site["srv"]
    page = _page(browser, site, DESK)
    page.click(".site-tab[data-tab='parking']")
    page.wait_for_selector(".lot[data-area='p1'] .space[data-space='p1-fire-1']")
    sim = {d.id: d for d in traffic.sim_devices(srv.cfg)}
    dev = next(d for d in srv.cfg.devices if d.location.parking_space == "p1-fire-1")
    pub = TrackedPublisher("127.0.0.1", site["broker"].port, "site-fire")
    try:
        pub.publish_all([traffic.device_state(sim[dev.id], {"vehicle_present": True})])
    finally:
        pub.close()
    page.wait_for_selector(".space[data-space='p1-fire-1'].st-occupied", timeout=2000)
    # the car stays: fire_lane_max_min (1 min here) passes on the gateway's clock, not ours
    start = int(time.time() * 1000)
    real = srv.gw.pipeline.clock
    srv.gw.pipeline.clock = lambda: real() + 65_000
    try:

        def incident() -> list[tuple[Any, ...]]:
            return srv.read(
                "SELECT id FROM incidents WHERE type = 'parking_fire_lane' AND space = 'p1-fire-1' AND created_ms >= ?",
                (start,),
            )

        assert wait_until(lambda: bool(incident()), 20)
    finally:
        srv.gw.pipeline.clock = real
    iid = incident()[0][0]
    space = page.wait_for_selector(f".space[data-space='p1-fire-1'].has-incident[data-incident='{iid}']", timeout=3000)
    assert page.text_content(f".lot-alarm button[data-incident='{iid}']").startswith("占用消防通道")
    _shot(page, "parking-fire-lane-zh")
    space.click()
    card = page.wait_for_selector(f".site-card[data-incident='{iid}'] .site-timeline li")
    assert "占用消防通道" in page.text_content(".site-card h2")
    assert "新告警" in card.text_content()  # the timeline's first step: created
    _shot(page, "incident-card-zh")
    page.click(".site-close")
    assert page.is_hidden(".site-card-back")
    assert page.errors == []


def _views_data(site: dict[str, Any]) -> dict[str, str]:
    """Open incidents in b03 (one a door held open at the 1st floor of unit 2, one without a
    device), a note on one of them, and an elder-care SOS in a resident's home: once per module."""
    if "door" in site:
        return site
    from tests.api_harness import trigger

    srv = site["srv"]
    door = srv.raise_incident(
        trigger(
            "b03-u2-entrance|door_held_open",
            "security",
            "door_held_open",
            "minor",
            grid=None,
            compound="c1",
            building="b03",
            unit="u2",
            devices=["b03-u2-entrance"],
        )
    )
    srv.raise_incident(
        trigger("b03|water_leak", "security", "water_leak", "major", grid=None, compound="c1", building="b03")
    )
    b03 = srv.cfg.building("b03")
    grid = b03.grid if b03 is not None else None
    assert wait_until(lambda: bool(srv.read("SELECT assignee FROM tickets WHERE incident_id = ?", (door,))), 10)
    person = srv.read("SELECT assignee FROM tickets WHERE incident_id = ?", (door,))[0][0]
    with srv.client(srv.token("property_staff", name=person)) as c:
        r = c.post(f"/api/v1/incidents/{door}/actions", json={"action": "accept", "note": NOTE})
        assert r.status_code == 200, r.text
    site.update(door=door, grid=str(grid))
    return site


def test_buildings_show_where_and_how_healthy(browser: Any, site: dict[str, Any]) -> None:
    data = _views_data(site)
    page = _page(browser, site, DESK)
    page.click(".site-tab[data-tab='buildings']")
    page.wait_for_selector(".bld[data-building='b03'].has-incidents")
    assert page.locator(".bld").count() == sum(len(c.buildings) for c in site["srv"].cfg.site.compounds)
    with site["srv"].client(site["token"]) as c:
        b03 = next(
            b for co in c.get("/api/v1/buildings").json()["compounds"] for b in co["buildings"] if b["id"] == "b03"
        )
    assert f"{len(b03['incidents'])} 条告警" in page.text_content(".bld[data-building='b03'] .chips")
    page.click(".bld[data-building='b03']")
    cell = page.wait_for_selector(f".bld-open .floors td.hit button[data-incident='{data['door']}']")
    row = cell.evaluate("b => b.closest('tr').firstChild.textContent")
    assert row == "1层"
    column = cell.evaluate("b => b.closest('table').rows[0].cells[b.closest('td').cellIndex].textContent")
    assert column == "2单元"
    page.click(".bld-open button:has-text('显示设备')")
    page.wait_for_selector(".bld-open .dev-table tr")
    with site["srv"].client(site["token"]) as c:
        total = c.get("/api/v1/devices/page", params={"building": "b03"}).json()["total"]
    assert page.text_content(".bld-open p.muted:has-text('共')") == f"共 {total} 个设备"
    _shot(page, "buildings-zh")
    cell.click()
    page.wait_for_selector(".site-card .site-timeline li")
    assert page.errors == []


def test_history_search_charts_scorecard_in_english_on_a_phone(browser: Any, site: dict[str, Any]) -> None:
    data = _views_data(site)
    page = _page(browser, site, PHONE, locale="en-GB")
    _english(page)
    # who is signed in follows the switch too (it kept the Chinese role word before)
    page.wait_for_function("() => /installer/i.test(document.getElementById('who').textContent)")
    assert not re.search(r"[\u4e00-\u9fff]", page.text_content("#who").split("·")[-1])
    assert page.text_content("#lang") == "中文"  # the switch offers the other language
    page.click(".site-tab[data-tab='history']")
    page.wait_for_selector(".filters input[name='q']")
    page.fill(".filters input[name='q']", "纸箱挡住")
    page.click(".filters button[type='submit']")
    page.wait_for_selector(f".hist-item[data-incident='{data['door']}'] .match")
    assert page.get_attribute(".site-status", "data-total") == "1"
    _shot(page, "history-en-phone")
    page.click(f".hist-item[data-incident='{data['door']}']")
    page.wait_for_selector(f".site-card .site-note:has-text('{NOTE}')")
    page.click(".site-close")

    page.click(".site-tab[data-tab='charts']")
    page.wait_for_selector(".chart-box[data-chart='chart_open_age'] canvas")
    assert page.locator(".chart-box canvas").count() >= 4
    assert "Open incidents by age" in page.text_content(".chart-box[data-chart='chart_open_age'] h3")
    _shot(page, "charts-en-phone")

    page.click(".site-tab[data-tab='scorecard']")
    page.wait_for_selector(".score-card")
    assert page.locator(".score-card").count() == len({c.property_company.name for c in site["srv"].cfg.site.compounds})
    _shot(page, "scorecard-en-phone")
    page.click(".score-card >> nth=0 >> .score-figures button >> nth=0")  # the incidents behind it
    page.wait_for_selector(".site-view[data-view='history'] .filters")
    assert page.eval_on_selector(".filters select[name='range']", "s => s.value") == "custom"
    total = page.wait_for_selector(".site-view[data-view='history'] .site-status[data-total]")
    # the first company runs three compounds: the history holds its compounds' incidents of the quarter
    assert "和苑一区、和苑二区、和苑三区" in page.text_content(".hist-compounds")
    t = time.localtime()
    q0 = dt.datetime(t.tm_year, 3 * ((t.tm_mon - 1) // 3) + 1, 1)
    q1 = dt.datetime(q0.year + (q0.month == 10), (q0.month + 2) % 12 + 1, 1)
    params = [("compound", c) for c in ("c1", "c2", "c5")]
    params += [("from_ms", int(q0.timestamp() * 1000)), ("to_ms", int(q1.timestamp() * 1000)), ("total", "true")]
    with site["srv"].client(site["token"]) as c:
        want = c.get("/api/v1/history/incidents", params=params).json()["total"]
    assert total.get_attribute("data-total") == str(want) and want > 0
    page.click(".site-tab[data-tab='buildings']")
    page.click(".bld[data-building='b03']")
    page.wait_for_selector(".bld-open .floors td.hit button")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing off the side
    _shot(page, "buildings-en-phone")
    page.click(".site-tab[data-tab='parking']")
    page.wait_for_selector(".lot .space.st-free, .lot .space.st-occupied")
    assert page.text_content(".lot-legend").startswith("Free")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    _shot(page, "parking-en-phone")
    assert page.errors == []
