"""The resident closes the loop, end to end: real broker, real API, the SMS test receiver and
Chromium at a phone viewport. SOS -> accepted -> resolved -> the evaluation link arrives by SMS ->
opened on the phone -> rated 2 -> the incident is reopened; the same link again is refused; the
worker who resolved it is refused by the API (rater_involved), also for printing a QR code; a grid
worker's phone answer is recorded as proxy_call with the caller. Screenshots: test-artifacts/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from gateway.residents import asks
from tests.resident_harness import (
    PHONE,
    RESIDENT_PHONE,
    SMS_AUTH,
    ResidentEnv,
    chromium,
    page_errors,
)
from tests.support import ROOT, TrackedPublisher, wait_until

pytestmark = pytest.mark.broker
ARTIFACTS = ROOT / "test-artifacts"
XSS_DONE = "已上门 <img src=x onerror=window.__xss=1>"
XSS_COMMENT = "还是疼 <script>window.__xss=2</script><img src=y onerror=window.__xss=3>"


@pytest.fixture
def phone_browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def env(tmp_path: Path, private_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResidentEnv]:
    monkeypatch.setenv("RESIDENT_SMS_AUTH", SMS_AUTH)
    e = ResidentEnv(tmp_path, private_broker.port).start()
    try:
        yield e
    finally:
        e.stop()


def _act(c: httpx.Client, iid: str, action: str, data: dict[str, Any] | None = None) -> httpx.Response:
    return c.post(f"/api/v1/incidents/{iid}/actions", json={"action": action, "note": "ok", "data": data})


def _sos(env: ResidentEnv, broker: Mosquitto, ec: httpx.Client) -> str:
    sim = {d.id: d for d in traffic.sim_devices(env.srv.cfg)}
    pub = TrackedPublisher("127.0.0.1", broker.port, "resident-sos")
    try:
        pub.publish_all([traffic.sos_press(sim["sos-r1"])])
    finally:
        pub.close()
    found: list[str] = []

    def dispatched() -> bool:
        items = ec.get("/api/v1/incidents", params={"category": "eldercare", "state": "open"}).json()["items"]
        found[:] = [i["id"] for i in items if i["type"] == "sos" and i["state"] == "dispatched"]
        return bool(found)

    assert wait_until(dispatched, 10)
    return found[0]


def test_sos_resolved_evaluated_by_the_resident_on_a_phone(
    env: ResidentEnv, private_broker: Mosquitto, phone_browser: Any
) -> None:
    srv = env.srv
    ec = srv.client(srv.token("eldercare_worker", name="ec1"))
    gw1 = srv.client(srv.token("grid_worker", name="gw1"))
    iid = _sos(env, private_broker, ec)
    assert _act(ec, iid, "accept").status_code == 200
    assert _act(ec, iid, "resolve", {"what_done": XSS_DONE}).status_code == 200

    # the evaluation link reaches the resident's phone through the SMS gateway
    assert wait_until(lambda: env.links_to(RESIDENT_PHONE), 10), env.sms.hits
    [text] = env.texts_to(RESIDENT_PHONE)
    t_row = srv.read("SELECT team, assignee_role FROM tickets WHERE incident_id=?", (iid,))[0]
    team = asks.team_label(srv.cfg, t_row[0], "zh", t_row[1])
    assert team == "居家养老服务"  # ec1 has no team in this site: the service, never the person
    assert "紧急呼叫" in text and team in text  # what and which team
    assert "养老护理员" not in text and "张阿姨" not in text  # nobody's name in the message
    url = env.links_to(RESIDENT_PHONE)[0]
    token = url.split("#", 1)[1]
    assert token.count(".") == 3 and len(token.split(".")[1]) >= 22  # 128-bit id, signed
    timeline = ec.get(f"/api/v1/incidents/{iid}").json()["timeline"]
    asked = [e for e in timeline if e["kind"] == "evaluation_requested"]
    assert asked and asked[0]["data"]["recipient"] == "resident" and asked[0]["data"]["by"] == "sms"
    assert RESIDENT_PHONE not in str(timeline)  # the phone number never enters the timeline or the feed

    # the worker who resolved it may neither rate it nor print a QR code to rate it
    r = _act(ec, iid, "evaluate", {"rating": 5})
    assert r.status_code == 403 and r.json()["code"] == "rater_involved", r.text

    ctx = phone_browser.new_context(**PHONE)
    page = ctx.new_page()
    errors = page_errors(page)
    page.goto(url)
    page.wait_for_selector("body[data-state='ready']", timeout=10_000)
    assert page.text_content("h1") == "请您评价"
    assert page.text_content("#done") == XSS_DONE  # staff text shown as text, nothing ran
    assert page.text_content("#by") == team
    assert "养老护理员" not in page.text_content("main")  # no staff member's name on the page
    # large text for older residents
    assert page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)") >= 20
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "resident-evaluate.png"), full_page=True)
    page.check("input[name='solved'][value='no']")
    page.check("input[name='rating'][value='2']")
    page.fill("#comment", XSS_COMMENT)
    page.click("#submit")
    page.wait_for_selector("body[data-state='done']", timeout=10_000)
    assert "重新派" in page.text_content("#result")
    assert page.evaluate("window.__xss") is None

    body = ec.get(f"/api/v1/incidents/{iid}").json()
    assert body["state"] == "dispatched"  # reopened, and dispatched again to the same worker
    rated = [e for e in body["timeline"] if e["kind"] == "state_changed" and e["data"].get("to") == "evaluated"]
    assert rated[-1]["actor"] == "resident" and rated[-1]["data"]["source"] == "resident_link"
    assert rated[-1]["data"]["rating"] == 2 and rated[-1]["data"]["solved"] is False
    assert [e["data"].get("reason") for e in body["timeline"] if e["data"].get("to") == "reopened"] == ["dissatisfied"]

    # the same link again: refused with a clear page, and by the API
    again = ctx.new_page()
    again.goto(url)
    again.wait_for_selector("body[data-code='link_used']", timeout=10_000)
    assert "已经用过" in again.text_content("#status")
    again.screenshot(path=str(ARTIFACTS / "resident-evaluate-used.png"), full_page=True)
    with httpx.Client(base_url=srv.base) as anon:
        r = anon.post("/api/v1/resident/evaluation", json={"token": token, "solved": True, "rating": 5})
        assert r.status_code == 403 and r.json()["code"] == "link_used"
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        r = anon.post("/api/v1/resident/evaluation/view", json={"token": forged})
        assert r.status_code == 403 and r.json()["code"] == "link_invalid"
    assert [e for e in errors if "status of 403" not in e] == []

    # handled again; the resolver is refused (rating and printing), a grid worker's phone call is a proxy
    assert _act(ec, iid, "accept").status_code == 200
    assert _act(ec, iid, "resolve", {"what_done": "再次上门，已送医"}).status_code == 200
    assert wait_until(lambda: len(env.links_to(RESIDENT_PHONE)) == 2, 10)
    r = ec.post(f"/api/v1/incidents/{iid}/evaluation-link")
    assert r.status_code == 403  # elder-care workers do not print evaluation codes
    r = _act(ec, iid, "evaluate", {"rating": 5, "comment": "自评"})
    assert r.status_code == 403 and r.json()["code"] == "rater_involved"
    printed = gw1.post(f"/api/v1/incidents/{iid}/evaluation-link")
    assert printed.status_code == 200 and printed.json()["svg"].startswith("<svg")
    r = _act(gw1, iid, "evaluate", {"rating": 4, "comment": "电话回访：满意"})
    assert r.status_code == 200, r.text
    last = [e for e in ec.get(f"/api/v1/incidents/{iid}").json()["timeline"] if e["data"].get("to") == "evaluated"]
    assert last[-1]["data"]["source"] == "proxy_call" and last[-1]["data"]["caller"] == "gw1"
    # the second SMS link is now closed: the page says so
    second = ctx.new_page()
    second.goto(env.links_to(RESIDENT_PHONE)[1])
    second.wait_for_selector("body[data-code='evaluation_closed']", timeout=10_000)
    ctx.close()


def test_bad_links_oversized_bodies_and_rate_limit(env: ResidentEnv) -> None:
    with httpx.Client(base_url=env.srv.base) as anon:
        codes = []
        for bad in ("x" * 10, "evaluate.AAAAAAAAAAAAAAAAAAAAAA.9999999999.bad", "evaluate.a.b"):
            r = anon.post("/api/v1/resident/evaluation/view", json={"token": bad})
            codes.append((r.status_code, r.json().get("code")))
        assert codes == [(403, "link_malformed"), (403, "link_invalid"), (403, "link_malformed")]
        assert anon.post("/api/v1/resident/evaluation", content=b"{" * 10_000).status_code == 413
        # per client address: requests_per_minute (600 here) then 429 with Retry-After
        # (counted against the refill during the loop, so a slow, shared machine cannot fail it)
        t0, answers = time.monotonic(), []
        for _ in range(2000):
            answers.append(anon.post("/api/v1/resident/report/view", json={"token": "x" * 10}))
            if answers[-1].status_code == 429:
                break
        refilled = (time.monotonic() - t0) * 600 / 60
        assert answers[-1].status_code == 429 and int(answers[-1].headers["Retry-After"]) >= 1
        assert {r.status_code for r in answers[:-1]} == {403}
        assert len(answers) - 1 <= 600 + refilled + 1
