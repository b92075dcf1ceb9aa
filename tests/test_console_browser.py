"""The console in a real headless Chromium (Debian's chromium, driven by Playwright; no downloaded
browsers): sign in -> SOS through the broker appears within 2 s with its sound able to play ->
accept -> the API shows it accepted. Screenshot: test-artifacts/console.png."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from tests.api_harness import ApiServer, write_api_site
from tests.conftest import MINI_DEVICES
from tests.support import ROOT, TrackedPublisher, service_missing, wait_until

pytestmark = pytest.mark.broker

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
XSS = "<img src=x onerror=window.__xss=1>"
COMMENT_XSS = "谢谢 <img src=y onerror=window.__xss=2>"  # a resident's evaluation comment
DEVICES = [
    *MINI_DEVICES,
    (
        "door-xss",
        "zigbee2mqtt",
        "0x00158d0000000009",
        "b1/xss",
        "door_contact",
        f'location: {{building: b1}}\n    name: "{XSS}"',
    ),
]
CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
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


@pytest.fixture
def console_env(tmp_path: Path, private_broker: Mosquitto) -> Iterator[ApiServer]:
    srv = ApiServer(write_api_site(tmp_path, private_broker.port, devices=DEVICES), tmp_path / "gateway.db").start()
    try:
        yield srv
    finally:
        srv.stop()


def _errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _sign_in(page: Any, base: str, token: str) -> None:
    page.goto(f"{base}/console/")
    page.fill("#token", token)
    page.click("#signin-btn")
    page.wait_for_selector("body[data-state='signed-in'][data-live='1']", timeout=10_000)


def test_sos_appears_with_sound_and_accept_works(
    browser: Any, console_env: ApiServer, private_broker: Mosquitto
) -> None:
    srv = console_env
    token = srv.token("eldercare_worker", name="ec1")
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    errors = _errors(page)
    _sign_in(page, srv.base, token)
    assert page.text_content("h1") == "告警台"  # Chinese by default
    # the sign-in click unlocked audio: the AudioContext runs (not blocked by the autoplay policy)
    assert page.wait_for_function("document.body.dataset.audio === 'running'", timeout=5000)

    sim = {d.id: d for d in traffic.sim_devices(srv.cfg)}
    pub = TrackedPublisher("127.0.0.1", private_broker.port, "console-sos")
    try:
        t0 = time.monotonic()
        pub.publish_all([traffic.sos_press(sim["sos-r1"])])
        page.wait_for_selector(".incident[data-type='sos']", timeout=2000)
        appeared = time.monotonic() - t0
    finally:
        pub.close()
    assert appeared < 2.0
    page.wait_for_function("Number(document.body.dataset.alarms) >= 1", timeout=2000)  # the sound played
    assert page.evaluate("document.body.classList.contains('alarm')")  # visual cue
    row = page.locator(".incident[data-type='sos']")
    assert "紧急呼叫" in row.text_content()

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)

    row.click()
    page.wait_for_selector("#detail[data-state='dispatched']", timeout=5000)
    assert "张阿姨" in page.text_content("#detail-fields")  # elder-care worker sees the resident
    page.fill("#note", f"马上到 {XSS}")
    page.click("button[data-action='accept']")
    page.wait_for_selector("#detail[data-state='accepted']", timeout=5000)
    iid = page.get_attribute("#detail", "data-id")
    with httpx.Client(base_url=srv.base, headers={"Authorization": f"Bearer {token}"}) as c:
        body = c.get(f"/api/v1/incidents/{iid}").json()
    assert body["state"] == "accepted"
    assert any(e["data"].get("note") == f"马上到 {XSS}" for e in body["timeline"])
    # the note from a person is shown as text, and nothing ran
    assert XSS in page.text_content("#timeline")
    page.screenshot(path=str(ARTIFACTS / "console-accepted.png"), full_page=True)
    assert page.evaluate("window.__xss") is None
    # the resident's evaluation comment is hostile too: handled, resolved, rated with it — by a grid
    # worker entering the resident's phone answer (who worked the incident may not rate it)
    caller = srv.token("grid_worker", name="gw1")
    steps = [(token, "start", None), (token, "resolve", {"what_done": "已上门"}),
             (caller, "evaluate", {"rating": 4, "comment": COMMENT_XSS})]  # fmt: skip
    for n, (tok, action, data) in enumerate(steps):
        with httpx.Client(base_url=srv.base, headers={"Authorization": f"Bearer {tok}"}) as c:
            r = c.post(
                f"/api/v1/incidents/{iid}/actions",
                json={"action": action, "note": "ok", "request_id": f"xss-{n}", "data": data},
            )
            assert r.status_code == 200, r.text
    # the open detail follows the live stream, so the rated timeline appears without a reload
    assert wait_until(lambda: COMMENT_XSS in (page.text_content("#timeline") or ""), 5)
    assert page.evaluate("window.__xss") is None
    assert [e for e in errors if "favicon" not in e] == []


def test_untrusted_strings_render_as_text_and_inline_scripts_are_blocked(browser: Any, console_env: ApiServer) -> None:
    srv = console_env
    token = srv.token("property_staff", name="ps1")
    page = browser.new_page(locale="en-US")
    errors = _errors(page)
    _sign_in(page, srv.base, token)
    page.wait_for_selector(".device[data-id='door-xss']", timeout=5000)
    assert page.text_content(".device[data-id='door-xss'] .name") == XSS  # a device name, as text
    assert page.locator("#buildings img").count() == 0
    # the CSP forbids inline script: an injected one does not run (and is reported)
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1';"
        " document.body.appendChild(s); }"
    )
    time.sleep(0.2)
    assert page.evaluate("window.__inline") is None
    assert page.evaluate("window.__xss") is None
    assert any("Content Security Policy" in e for e in errors)
    # English switch
    page.click("#lang")
    assert wait_until(lambda: page.text_content("h1") == "Alarm console", 3)
