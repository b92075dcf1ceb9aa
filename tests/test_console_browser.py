"""The console in a real headless Chromium (Debian's chromium, driven by Playwright): the SOS alarm
rings (the <audio> element plays), a browser notification is shown and the tab title counts it on
two screens; accepting it on one screen silences both. Untrusted strings stay text; the CSP blocks
inline scripts. Screenshots: test-artifacts/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from gateway.tickets import lifecycle as lc
from tests.api_harness import ApiServer, write_api_site
from tests.conftest import MINI_DEVICES
from tests.console_helpers import chromium, open_console, real_errors, ringing, shot
from tests.support import TrackedPublisher, wait_until

pytestmark = pytest.mark.broker

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
# the resident's card: flat, phone, an emergency contact and care notes (personal data)
RESIDENT = """    room: "302"
    phone: "13900000001"
    emergency_contacts: [{name: 张小明, relation: 儿子, phone: "13900000002"}]
    care_notes: 钥匙在邻居301；听力不好，请大声敲门
    flags: [lives_alone, hearing_impaired]
"""
MORE_STAFF = "  - {id: ec2, name: 李护理员, role: eldercare_worker}\n"


def write_console_site(directory: Path, broker_port: int) -> Path:
    path = write_api_site(directory, broker_port, devices=DEVICES)
    text = path.read_text(encoding="utf-8")
    text = text.replace("    eldercare_worker: ec1\n", "    eldercare_worker: ec1\n" + RESIDENT, 1)
    text = text.replace(
        "teams:\n", MORE_STAFF + "teams:\n  - {id: care, name: 养老服务队, kind: eldercare, members: [ec1, ec2]}\n", 1
    )
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture
def console_env(tmp_path: Path, private_broker: Mosquitto) -> Iterator[ApiServer]:
    srv = ApiServer(write_console_site(tmp_path, private_broker.port), tmp_path / "gateway.db").start()
    try:
        yield srv
    finally:
        srv.stop()


def _press_sos(srv: ApiServer, port: int) -> float:
    sim = {d.id: d for d in traffic.sim_devices(srv.cfg)}
    pub = TrackedPublisher("127.0.0.1", port, "console-sos")
    try:
        t0 = time.monotonic()
        pub.publish_all([traffic.sos_press(sim["sos-r1"])])
        return t0
    finally:
        pub.close()


def test_sos_rings_notifies_counts_until_accepted_on_another_screen(
    browser: Any, console_env: ApiServer, private_broker: Mosquitto
) -> None:
    srv = console_env
    duty = open_console(browser, srv, "ec1", viewport={"width": 1280, "height": 900})
    other = open_console(browser, srv, "ec2", viewport={"width": 1280, "height": 900})
    for page in (duty, other):
        assert page.text_content("h1") == "告警台" and not ringing(page)
        assert page.title() == "告警台"
        assert page.text_content("#conn") == "实时连接"
        assert page.text_content("#empty") == "当前没有待处理的告警"
    t0 = _press_sos(srv, private_broker.port)
    for page in (duty, other):
        page.wait_for_selector(".incident[data-type='sos'].ringing", timeout=3000)
    assert time.monotonic() - t0 < 3.0
    for page in (duty, other):
        assert wait_until(lambda p=page: ringing(p), 3), "the alarm sound is not playing"
        assert page.title() == "(1) 告警台"
        assert page.evaluate("Notification.permission") == "granted"
        assert page.get_attribute("body", "data-notified") == "1"  # a notification was shown
        assert "1 条紧急告警未确认" in page.text_content("#alarm-bar")
        row = page.locator(".incident[data-type='sos']")
        assert "紧急呼叫" in row.text_content() and "1号楼" in row.text_content()
    time.sleep(2.5)  # longer than one sound pattern: the <audio> loops, it is not a single burst
    assert ringing(duty) and ringing(other)
    shot(duty, "console-alarm-zh")

    # the other screen opens it (the elder-care card, names not ids) and accepts it
    other.click(".incident[data-type='sos']")
    other.wait_for_selector("#detail[data-state='dispatched']")
    care = other.text_content("#care")
    assert "张阿姨" in care and "13900000001" in care and "张小明" in care and "听力不好" in care
    assert other.get_attribute("#care a.tel >> nth=0", "href") == "tel:13900000001"
    assert "养老护理员" in other.text_content("#detail-fields")  # the assignee ec1 by name
    shot(other, "console-detail-zh")
    other.click("button[data-action='accept']")
    other.wait_for_selector("#detail[data-state='accepted']", timeout=5000)
    for page in (duty, other):  # silenced everywhere
        assert wait_until(lambda p=page: not ringing(p), 5), "still ringing after the accept"
        assert wait_until(lambda p=page: p.title() == "告警台", 2)
        assert page.is_hidden("#alarm-bar")
    for page in (duty, other):
        assert real_errors(page.errors) == []


def test_acknowledge_mute_and_test_sound(browser: Any, console_env: ApiServer, private_broker: Mosquitto) -> None:
    srv = console_env
    page = open_console(browser, srv, "ec1")
    page.click("#test-sound")
    assert wait_until(lambda: ringing(page), 2)
    assert wait_until(lambda: not ringing(page), 4)  # a test plays briefly, then stops by itself
    _press_sos(srv, private_broker.port)
    assert wait_until(lambda: ringing(page), 3)
    page.click("#ack")  # acknowledged on this screen: quiet, still open and listed
    assert wait_until(lambda: not ringing(page), 2) and page.title() == "告警台"
    assert page.locator(".incident[data-type='sos']").count() == 1
    # muted for 5 minutes: a re-notification of the server does not ring, but the title counts it
    page.select_option("#mute-min", "5")
    page.click("#mute")
    assert "已静音至" in page.text_content("#muted-until")
    iid = page.get_attribute(".incident[data-type='sos']", "data-id")

    def renotify(conn: Any, result: Any, now: int) -> None:
        srv.gw.tickets.ctx.incidents.append_event(conn, result, iid, "renotified", now, {"n": 1}, actor=lc.SYSTEM_ACTOR)

    srv.gw.pipeline.call(renotify).result(10)
    assert wait_until(lambda: page.title() == "(1) 告警台", 3)
    assert not ringing(page)
    page.click("#unmute")  # unmuted: the unacknowledged re-notification rings again
    assert wait_until(lambda: ringing(page), 2)


def test_signed_out_and_disconnected_never_claim_no_alarms(browser: Any, console_env: ApiServer) -> None:
    srv = console_env
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(f"{srv.base}/console/")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.is_hidden("#app") and page.is_hidden("#alarms")  # no "0 / no alarms" when signed out
    assert "暂无" not in page.inner_text("body") and "没有待处理" not in page.inner_text("body")
    assert page.text_content("#conn") == "未登录"
    shot(page, "console-signin-zh")
    page = open_console(browser, srv, "ps1")
    # the network goes away (and the server ends the open stream): the page says so, since when,
    # and no longer claims there are no alarms
    page.context.set_offline(True)
    hub = srv.app.state.ctx.hub
    srv._loop.call_soon_threadsafe(lambda: [hub._close(c) for c in list(hub.clients)])  # type: ignore[union-attr]
    page.wait_for_selector("body[data-live='0']", timeout=5000)
    assert page.text_content("#count") == "?"
    assert "无法确认" in page.text_content("#empty")
    assert page.text_content("#conn") == "正在重新连接…"
    assert wait_until(lambda: (page.text_content("#conn") or "").startswith("连接中断（自 "), 15)
    shot(page, "console-offline-zh")
    page.context.set_offline(False)
    page.wait_for_selector("body[data-live='1']", timeout=15_000)
    assert page.text_content("#conn") == "实时连接" and page.text_content("#count") == "0"


def test_untrusted_strings_render_as_text_and_inline_scripts_are_blocked(browser: Any, console_env: ApiServer) -> None:
    srv = console_env
    page = open_console(browser, srv, "ps1", lang="en")
    page.wait_for_selector(".device[data-id='door-xss']", timeout=5000)
    assert page.text_content(".device[data-id='door-xss'] .name") == XSS  # a device name, as text
    assert page.locator("#buildings img").count() == 0
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1';"
        " document.body.appendChild(s); }"
    )
    time.sleep(0.2)
    assert page.evaluate("window.__inline") is None
    assert page.evaluate("window.__xss") is None
    assert any("Content Security Policy" in e for e in page.errors)
    assert page.text_content("h1") == "Alarm console"
    page.click("#lang")
    assert wait_until(lambda: page.text_content("h1") == "告警台", 3)


def test_hostile_notes_and_comments_stay_text(browser: Any, console_env: ApiServer, private_broker: Mosquitto) -> None:
    srv = console_env
    page = open_console(browser, srv, "ec1")
    _press_sos(srv, private_broker.port)
    page.wait_for_selector(".incident[data-type='sos']", timeout=3000)
    page.click(".incident[data-type='sos']")
    page.wait_for_selector("#detail[data-state='dispatched']")
    iid = page.get_attribute("#detail", "data-id")
    token = srv.token("eldercare_worker", name="ec1")
    # the resident's rating is entered by a grid worker from a phone call (who worked it may not rate it)
    caller = srv.token("grid_worker", name="gw1")
    steps = [(token, "accept", None, f"马上到 {XSS}"), (token, "start", None, "ok")]
    steps += [(token, "resolve", {"what_done": "已上门"}, "ok")]
    steps += [(caller, "evaluate", {"rating": 4, "comment": COMMENT_XSS}, "ok")]
    for n, (tok, action, data, note) in enumerate(steps):
        with srv.client(tok) as c:
            body = {"action": action, "note": note, "request_id": f"x-{n}", "data": data}
            r = c.post(f"/api/v1/incidents/{iid}/actions", json=body)
            assert r.status_code == 200, r.text
    # the open detail follows the live stream: the rated timeline appears without a reload
    assert wait_until(lambda: COMMENT_XSS in (page.text_content("#timeline") or ""), 5)
    assert f"马上到 {XSS}" in page.text_content("#timeline")
    assert page.evaluate("window.__xss") is None


def test_session_cookie_is_not_sent_by_another_site(browser: Any, console_env: ApiServer) -> None:
    """Signed in on the gateway's address, a page of another site (here http://localhost:<port>, a
    different site from 127.0.0.1 for the browser) makes requests to the gateway: Chromium does not
    attach the SameSite=Strict cookie, so they are unauthenticated; the gateway's own page does."""
    srv = console_env
    page = open_console(browser, srv, "ps1")
    probe = f"{srv.base}/api/v1/me?probe="

    def cookie(req: Any) -> str:
        return str(req.value.all_headers().get("cookie", ""))

    with page.expect_request(lambda r: "probe=own" in r.url) as own:
        assert page.evaluate("async (u) => (await fetch(u + 'own')).status", probe) == 200
    assert "egw_session=" in cookie(own)
    # another site's page in the same browser profile (served by the test, without the gateway's CSP)
    other = page.context.new_page()
    evil = f"http://localhost:{srv.port}/evil.html"
    other.route(evil, lambda route: route.fulfill(body="<html><body>evil</body></html>", content_type="text/html"))
    other.goto(evil)
    with other.expect_request(lambda r: "probe=cross" in r.url) as cross:
        other.evaluate("(u) => fetch(u + 'cross', {credentials: 'include', mode: 'no-cors'}).catch(() => 0)", probe)
    assert "egw_session" not in cookie(cross)
    signout = f"{srv.base}/api/v1/session/signout?probe=form"
    with other.expect_request(lambda r: "probe=form" in r.url) as form:
        other.evaluate(
            """(u) => { const f = document.createElement('form'); f.method = 'POST'; f.action = u;
                        document.body.appendChild(f); f.submit(); }""",
            signout,
        )
    assert "egw_session" not in cookie(form)
    # the cross-site form did not sign the device out
    assert page.evaluate("async (u) => (await fetch(u + 'after')).status", probe) == 200
