"""The console on the example community (edge_config/examples/community.yaml) in a real Chromium:

- for each role and every state an incident reaches, the buttons shown are exactly the actions the
  gateway allows that person now (allowed_actions, which tests/test_tickets_offers.py proves equal to
  what the ticket loop accepts);
- on a phone: a deep link (#incident=<id>) opened before signing in survives a one-time sign-in
  link; accept at one tap, resolve with what was done and a note (the required field is enforced
  by the page);
- a crawl of the list and every incident's detail in Chinese shows no code (type, state, role,
  event kind, action, error, staff/team/building id) and no "other" fallback;
- screenshots of each page in both languages and at phone size (test-artifacts/).
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.core import catalog
from gateway.core import incidents as inc
from gateway.install.demo import DEFAULT_CONFIG, write_demo_config
from gateway.install.mosquitto import Mosquitto, free_port
from gateway.tickets import lifecycle as lc
from tests.api_harness import ApiServer
from tests.console_helpers import PHONE, chromium, issue_link, open_console, real_errors, shot
from tests.support import wait_until

pytestmark = pytest.mark.broker

# state -> the steps from a dispatched incident: (action, data, who: "assignee" | a staff id + role)
PATHS: dict[str, list[tuple[str, dict[str, Any], str]]] = {
    "dispatched": [],  # the ticket stage dispatches what is raised in the same transaction: no "new" here
    "accepted": [("accept", {}, "assignee")],
    "in_progress": [("accept", {}, "assignee"), ("start", {}, "assignee")],
    "resolved": [("accept", {}, "assignee"), ("resolve", {"what_done": "已处理"}, "assignee")],
    "evaluated": [
        ("accept", {}, "assignee"),
        ("resolve", {"what_done": "已处理"}, "assignee"),
        ("evaluate", {"rating": 4}, "co-01"),
    ],
    "closed": [("accept", {}, "assignee"), ("resolve", {"what_done": "已处理"}, "assignee"), ("close", {}, "co-01")],
    "cancelled": [("cancel", {"reason": "重复上报"}, "co-01")],
    "false_alarm": [("false_alarm", {"reason": "测试按键"}, "co-01")],
}


class World:
    def __init__(self, srv: ApiServer) -> None:
        self.srv = srv
        self.ids: dict[tuple[str, str], str] = {}  # (kind, state) -> incident id

    def call(self, fn: Any) -> Any:
        return self.srv.gw.pipeline.call(fn).result(20)

    def raise_(self, kind: str, n: int) -> str:
        cfg = self.srv.cfg
        r = cfg.resident("r001")
        assert r is not None
        if kind == "sos":
            trig = inc.Trigger(
                key=f"b01-u1-sos-302|sos|t{n}", category="eldercare", type="sos", severity="critical", ts_ms=0,
                devices=["b01-u1-sos-302"], location=inc.Location(grid="g01", compound="c1", building="b01", unit="u1"),
                resident_id="r001",
            )  # fmt: skip
        else:
            trig = inc.Trigger(
                key=f"b02-door|door_forced|t{n}", category="security", type="door_forced", severity="major", ts_ms=0,
                location=inc.Location(grid="g01", compound="c1", building="b02", unit="u2"),
            )  # fmt: skip
        ctx = self.srv.gw.tickets.ctx

        def fn(conn: sqlite3.Connection, result: Any, now: int) -> str:
            return ctx.incidents.raise_or_repeat(conn, result, dataclasses.replace(trig, ts_ms=now), now).incident_id

        return str(self.call(fn))

    def drive(self, kind: str, state: str, n: int) -> str:
        iid = self.raise_(kind, n)
        ctx = self.srv.gw.tickets.ctx

        def fn(conn: sqlite3.Connection, result: Any, now: int) -> None:
            assert lc.state_of(conn, iid) == "dispatched"
            for action, data, who in PATHS[state]:
                t = lc.ticket(conn, iid) or {}
                actor, role = (t["assignee"], t["assignee_role"]) if who == "assignee" else (who, "community_office")
                lc.apply_action(conn, result, iid, action, actor=actor, role=role, data=data, now_ms=now, ctx=ctx)
            assert lc.state_of(conn, iid) == state

        self.call(fn)
        self.ids[(kind, state)] = iid
        return iid

    def whistled(self) -> str:
        """A door incident summoned to the fire brigade (what a department sees and works)."""
        iid = self.raise_("door", 99)
        ctx = self.srv.gw.tickets.ctx

        def fn(conn: sqlite3.Connection, result: Any, now: int) -> None:
            lc.apply_action(conn, result, iid, "whistle", actor="co-01", role="community_office", note="门被撬",
                            data={"department": "police"}, now_ms=now, ctx=ctx)  # fmt: skip

        self.call(fn)
        self.ids[("door", "whistled")] = iid
        return iid

    def ticket(self, iid: str) -> dict[str, Any]:
        return dict(self.call(lambda conn, result, now: lc.ticket(conn, iid)) or {})


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with tempfile.TemporaryDirectory(prefix="edge-broker-") as bd, tempfile.TemporaryDirectory() as wd:
        broker = Mosquitto(Path(bd)).start()
        try:
            site, _cfg = write_demo_config(DEFAULT_CONFIG, Path(wd), "127.0.0.1", broker.port, free_port())
            srv = ApiServer(site, Path(wd) / "gateway.db").start()
            try:
                w = World(srv)
                for n, state in enumerate(PATHS):
                    for kind in ("sos", "door"):
                        w.drive(kind, state, n)
                w.whistled()
                yield w
            finally:
                srv.stop()
        finally:
            broker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def _people(w: World) -> dict[str, str]:
    """One person per role: for the handler roles, the assignee of the dispatched incidents."""
    return {
        "installer": "inst-01",
        "property_staff": str(w.ticket(w.ids[("door", "dispatched")])["assignee"]),
        "eldercare_worker": str(w.ticket(w.ids[("sos", "dispatched")])["assignee"]),
        "grid_worker": "grid-w01",
        "community_office": "co-01",
        "street_office": "so-01",
        "department": "dept-police",
    }


def _open(page: Any, iid: str) -> None:
    page.evaluate("(id) => { location.hash = '#incident=' + id; }", iid)
    page.wait_for_selector(f"#detail[data-id='{iid}']", timeout=10_000)


def _shown(page: Any) -> list[str]:
    return sorted(
        page.eval_on_selector_all("#action-buttons button[data-action]", "bs => bs.map(b => b.dataset.action)")
    )


def _allowed(page: Any, iid: str) -> list[str] | None:
    """What the gateway answers this person (same cookie) for the incident; None when not visible."""
    out = page.evaluate(
        """async (id) => {
            const r = await fetch('/api/v1/incidents/' + encodeURIComponent(id));
            if (!r.ok) return null;
            return (await r.json()).allowed_actions.map(a => a.action);
        }""",
        iid,
    )
    return None if out is None else sorted(out)


def test_buttons_equal_the_allowed_actions_for_each_role_and_state(browser: Any, world: World) -> None:
    seen: set[str] = set()
    checked = 0
    for role, person in _people(world).items():
        page = open_console(browser, world.srv, person, role=role, viewport={"width": 1280, "height": 900})
        for (kind, state), iid in world.ids.items():
            _open(page, iid)
            allowed = _allowed(page, iid)
            shown = _shown(page)
            if allowed is None:  # not this person's to see (a department sees only what it was summoned to)
                assert page.get_attribute("#detail", "data-state") == "error" and shown == [], (role, kind, state)
            else:
                assert shown == allowed, (role, kind, state)
                seen.update(shown)
                checked += 1
            if (kind, state) in {("sos", "dispatched"), ("door", "resolved")}:
                shot(page, f"console-{role}-{kind}-{state}-zh", full=False)
        assert real_errors(page.errors) == [], role
        page.context.close()
    # every action the ticket loop has, and adding a note, is reachable from the console
    assert seen == {*lc.ACTIONS, "note"}, seen
    assert checked >= 100


def test_phone_deep_link_survives_sign_in_then_accept_and_resolve(browser: Any, world: World) -> None:
    srv = world.srv
    iid = world.drive("door", "dispatched", 50)
    assignee = str(world.ticket(iid)["assignee"])
    context = browser.new_context(locale="zh-CN", **PHONE)
    page = context.new_page()
    page.goto(f"{srv.base}/console/#incident={iid}")  # opened from a WeCom/SMS message, not signed in
    page.wait_for_selector("#signin:not([hidden])")
    shot(page, "console-phone-signin-zh", full=False)
    page.goto(f"{srv.base}/console/#signin={issue_link(srv, assignee)}")  # the one-time link, same tab
    page.wait_for_selector(f"#detail[data-id='{iid}'][data-state='dispatched']", timeout=15_000)
    assert page.is_hidden("#alarms")  # one column: the detail alone on a phone
    box = page.locator("button[data-action='accept']").bounding_box()
    assert box is not None and box["height"] >= 48 and box["width"] >= 150  # a large target
    shot(page, "console-phone-detail-zh", full=False)
    page.tap("button[data-action='accept']")
    page.wait_for_selector(f"#detail[data-id='{iid}'][data-state='accepted']", timeout=5000)
    page.tap("button[data-action='resolve']")
    page.wait_for_selector("#action-form[data-action='resolve']")
    page.tap("#action-form button[type='submit']")  # nothing filled in: the page asks for it
    assert "请填写：处理结果（做了什么）" in page.text_content("#action-msg")
    assert page.get_attribute("#detail", "data-state") == "accepted"
    page.fill("#action-form textarea[name='what_done']", "门锁已修好，已通知派出所")
    page.fill("#action-form textarea[name='note']", "监控已调取")
    shot(page, "console-phone-resolve-zh", full=False)
    page.tap("#action-form button[type='submit']")
    page.wait_for_selector(f"#detail[data-id='{iid}'][data-state='resolved']", timeout=5000)
    assert "门锁已修好" in page.text_content("#timeline") and "监控已调取" in page.text_content("#timeline")
    with srv.client(srv.token("installer")) as c:
        body = c.get(f"/api/v1/incidents/{iid}").json()
    assert body["state"] == "resolved"
    done = [e for e in body["timeline"] if e["data"].get("action") == "resolve"]
    assert done and done[0]["actor"] == assignee and done[0]["data"]["what_done"] == "门锁已修好，已通知派出所"
    page.tap("#back")
    page.wait_for_selector("#alarms:not([hidden])")
    shot(page, "console-phone-list-zh", full=False)
    assert real_errors(page.errors if hasattr(page, "errors") else []) == []
    context.close()


def _codes(w: World) -> set[str]:
    """Every code a person must never read: the catalog's codes and the site file's ids."""
    data = catalog.load("zh")
    codes = {k for g in catalog.GROUPS for k in data.get(g, {}) if re.fullmatch(r"[a-z][a-z0-9_]+", k) and len(k) > 3}
    cfg = w.srv.cfg
    codes |= {m.id for m in cfg.staff} | {t.id for t in cfg.teams} | {g.id for g in cfg.site.grids}
    codes |= {c.id for c in cfg.site.compounds} | {b.id for c in cfg.site.compounds for b in c.buildings}
    codes |= {r.id for r in cfg.residents} | {d.id for d in cfg.devices}
    return codes


def _every_type(w: World) -> list[str]:
    from tests.test_i18n_catalog import incident_types

    ctx = w.srv.gw.tickets.ctx
    ids = []
    for n, typ in enumerate(sorted(incident_types())):
        cat = "eldercare" if typ in {"sos", "fall", "inactivity", "wandering", "heart_rate_abnormal", "spo2_low"} else (
            "parking" if typ.startswith("parking") or typ == "gate_fault" else "security"
            if typ in {"smoke", "gas", "water_leak", "door_forced", "door_held_open", "tamper", "intrusion",
                       "suspected_intrusion"} else "device_health"
        )  # fmt: skip
        resident = "r001" if cat == "eldercare" else None
        trig = inc.Trigger(
            key=f"crawl|{typ}", category=cat, type=typ, severity="major", ts_ms=0, resident_id=resident,
            devices=["b01-u1-sos-302"] if resident else [],
            location=inc.Location(grid="g01", compound="c1", building="b01", unit="u1"),
        )  # fmt: skip

        def fn(conn: sqlite3.Connection, result: Any, now: int, trig: inc.Trigger = trig, n: int = n) -> str:
            iid = ctx.incidents.raise_or_repeat(conn, result, dataclasses.replace(trig, ts_ms=now), now).incident_id
            ctx.incidents.append_event(conn, result, iid, "note", now, {"note": "现场已确认"}, actor="co-01",
                                       role="community_office")  # fmt: skip
            if n % 3 == 0:
                ctx.incidents.append_event(conn, result, iid, "sla_missed", now, {"stage": "accept"}, actor="tickets")
                ctx.incidents.append_event(conn, result, iid, "escalated", now, {"rung": "grid_worker", "level": 1},
                                           actor="tickets")  # fmt: skip
            if n % 3 == 1:
                ctx.incidents.append_event(conn, result, iid, "notify_attempt", now, {"ok": False}, actor="notify")
                ctx.incidents.append_event(conn, result, iid, "renotified", now, {"n": 1}, actor="tickets")
            return iid

        ids.append(str(w.call(fn)))
    return ids


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_crawl_shows_words_not_codes(browser: Any, world: World, lang: str) -> None:
    ids = _every_type(world) if lang == "zh" else [world.ids[k] for k in sorted(world.ids)]
    codes = _codes(world)
    if lang == "en":  # an English label may be the code's own word ("accepted", "fire"): that is a word
        data = catalog.load("en")
        codes -= {w for g in catalog.GROUPS for v in data[g].values() for w in re.findall(r"[A-Za-z0-9_\-]+", v)}
    other = catalog.phrase(lang, "other_type")
    page = open_console(browser, world.srv, "inst-01", lang=lang, viewport={"width": 1280, "height": 900})
    page.wait_for_selector(".incident")
    texts = {"list": page.inner_text("body")}
    shot(page, f"console-list-{lang}", full=False)
    for iid in [*ids, *world.ids.values()]:
        _open(page, iid)
        page.wait_for_selector("#timeline li")
        texts[iid] = page.inner_text("#detail")
    shot(page, f"console-installer-detail-{lang}", full=False)
    # the installer's panel: a one-time link with its QR code for a colleague, and the devices signed in
    page.select_option("#link-person", "ec-02")
    page.click("#link-form button[type='submit']")
    page.wait_for_selector("#link-out:not([hidden])")
    url = page.input_value("#link-url")
    assert url.startswith("http://127.0.0.1:") and "/console/#signin=signin." in url
    assert page.get_attribute("#link-qr", "src").startswith("data:image/svg+xml")
    assert wait_until(lambda: page.evaluate("document.getElementById('link-qr').naturalWidth") > 100, 3)
    assert page.locator("#sessions tr").count() >= 1
    page.evaluate("() => document.getElementById('admin').scrollIntoView()")
    shot(page, f"console-installer-admin-{lang}", full=False)
    texts["admin"] = page.inner_text("#admin")
    for where, text in texts.items():
        words = set(re.findall(r"[A-Za-z0-9][A-Za-z0-9_\-]*", text))
        assert sorted(words & codes) == [], where
        if lang == "zh":
            assert other not in text, (where, text)
    assert real_errors(page.errors) == []
    phone = open_console(browser, world.srv, "co-01", lang=lang, **PHONE)
    phone.wait_for_selector(".incident")
    shot(phone, f"console-phone-list-{lang}", full=False)
    _open(phone, world.ids[("sos", "dispatched")])
    shot(phone, f"console-phone-detail-{lang}", full=False)
    assert wait_until(lambda: phone.is_hidden("#alarms"), 2)
