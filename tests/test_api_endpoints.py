"""The HTTP API against a real gateway (real broker, real store, ticket loop): every endpoint,
every role against every endpoint, personal-data rules, feed, SSE resume, tokens, rate limit."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import __version__
from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from tests.api_harness import ApiServer, trigger, write_api_site
from tests.support import ROOT, TrackedPublisher, service_missing, wait_until

pytestmark = pytest.mark.broker

ROLES = (
    "installer",
    "property_staff",
    "eldercare_worker",
    "grid_worker",
    "community_office",
    "street_office",
    "department",
    "central_platform",
)
# staff ids the tokens are named after (the ticket loop checks actor = assignee)
NAMES = {"property_staff": "ps1", "eldercare_worker": "ec1", "grid_worker": "gw1"}


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, Any]]:
    bdir = tempfile.TemporaryDirectory(prefix="edge-broker-")
    ddir = tempfile.TemporaryDirectory(prefix="edge-api-")
    try:
        broker = Mosquitto(Path(bdir.name)).start()
    except RuntimeError as exc:
        service_missing(f"mosquitto executable ({exc})")
        raise
    d = Path(ddir.name)
    srv = ApiServer(write_api_site(d, broker.port, heartbeat=0.5), d / "gateway.db").start()
    tokens = {r: srv.token(r, name=NAMES.get(r)) for r in ROLES}
    tokens["grid_worker_g2"] = srv.token("grid_worker", grids=["g2"], name="gw2")
    sos = srv.raise_incident(
        trigger(
            "sos-r1|sos",
            "eldercare",
            "sos",
            "critical",
            grid="g1",
            building="b1",
            unit="u1",
            resident="r1",
            devices=["sos-r1"],
            reading={"device": "sos-r1", "values": {"sos": True, "heart_rate": 128}},
        )
    )
    door = srv.raise_incident(
        trigger("acc-b2|door_forced", "security", "door_forced", "major", grid="g2", building="b2", devices=["acc-b2"])
    )
    try:
        yield {"srv": srv, "tokens": tokens, "sos": sos, "door": door, "dir": d, "broker": broker}
    finally:
        srv.stop()
        broker.stop()
        ddir.cleanup()
        bdir.cleanup()


def get(env: dict[str, Any], role: str, path: str, **kw: Any) -> httpx.Response:
    with env["srv"].client(env["tokens"][role]) as c:
        return c.get(path, **kw)


# --- authentication ---------------------------------------------------------------------------


def test_healthz_is_open_and_everything_else_needs_a_token(env: dict[str, Any]) -> None:
    srv = env["srv"]
    with srv.client() as c:
        assert c.get("/healthz").json() == {"status": "ok", "gateway": "gw-test", "version": __version__}
        for path in ("/api/v1/incidents", "/api/v1/devices", "/readyz", "/metrics", "/api/v1/feed/incidents"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "Bearer" in r.json()["detail"]
        r = c.get("/api/v1/incidents", headers={"Authorization": "Bearer cegw_nope"})
        assert r.status_code == 401 and "unknown token" in r.json()["detail"]


def test_first_start_installer_token_file(env: dict[str, Any]) -> None:
    path = env["dir"] / "installer.token"
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600
    token = path.read_text().strip()
    with env["srv"].client(token) as c:
        me = c.get("/api/v1/me").json()
    assert me["role"] == "installer" and me["personal_data"] is True
    # stored hashed: the token itself is nowhere in the store
    rows = env["srv"].read("SELECT hash FROM api_tokens")
    assert all(token not in r[0] for r in rows)
    assert (env["dir"] / "gateway.db").read_bytes().find(token.encode()) == -1


def test_security_headers_and_csp(env: dict[str, Any]) -> None:
    r = get(env, "installer", "/api/v1/me")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"


# --- the roles matrix -------------------------------------------------------------------------

ENDPOINTS = {
    "incidents": ("GET", "/api/v1/incidents"),
    "incident": ("GET", "/api/v1/incidents/{door}"),
    "devices": ("GET", "/api/v1/devices"),
    "device": ("GET", "/api/v1/devices/door-b1"),
    "dead_letters": ("GET", "/api/v1/devices/dead-letters"),
    "unconfigured": ("GET", "/api/v1/devices/unconfigured"),
    "site": ("GET", "/api/v1/site"),
    "scorecard": ("GET", "/api/v1/scorecard"),
    "feed": ("GET", "/api/v1/feed/incidents"),
    "me": ("GET", "/api/v1/me"),
    "readyz": ("GET", "/readyz"),
    "metrics": ("GET", "/metrics"),
    "create": ("POST", "/api/v1/incidents"),
    "action": ("POST", "/api/v1/incidents/{door}/actions"),
}
Y, N = 200, 403
# role -> endpoint -> status. "action" posts a request_id-less 'evaluate' on a dispatched incident:
# the API lets every role reach the ticket loop, which refuses in that state (409) or role (403).
MATRIX: dict[str, dict[str, int]] = {
    "installer": {"action": 409},
    "property_staff": {"dead_letters": N, "unconfigured": N, "feed": N, "readyz": N, "metrics": N, "action": 409},
    "eldercare_worker": {
        "dead_letters": N,
        "unconfigured": N,
        "scorecard": N,
        "feed": N,
        "readyz": N,
        "metrics": N,
        "action": 409,
    },
    "grid_worker": {
        "dead_letters": N,
        "unconfigured": N,
        "scorecard": N,
        "feed": N,
        "readyz": N,
        "metrics": N,
        "action": 409,
    },
    "community_office": {"dead_letters": N, "unconfigured": N, "feed": N, "readyz": N, "metrics": N, "action": 409},
    "street_office": {"dead_letters": N, "unconfigured": N, "feed": N, "readyz": N, "metrics": N, "action": 409},
    "department": {
        "incident": N,  # not summoned to it
        "devices": N,
        "device": N,
        "dead_letters": N,
        "unconfigured": N,
        "scorecard": N,
        "feed": N,
        "readyz": N,
        "metrics": N,
        "create": N,
        "action": N,
    },
    "central_platform": {"devices": N, "device": N, "dead_letters": N, "unconfigured": N, "action": 409},
}
CREATE_BODY = {
    "category": "security",
    "type": "resident_report",
    "severity": "minor",
    "location": {"building": "b2"},
    "description": "楼道堆放杂物",
}


@pytest.mark.parametrize("role", ROLES)
def test_roles_matrix(env: dict[str, Any], role: str) -> None:
    expected = {name: MATRIX[role].get(name, Y if name != "create" else 201) for name in ENDPOINTS}
    if expected["create"] == Y:
        expected["create"] = 201
    got = {}
    with env["srv"].client(env["tokens"][role]) as c:
        for name, (method, path) in ENDPOINTS.items():
            url = path.format(door=env["door"])
            if method == "GET":
                r = c.get(url)
            elif name == "create":
                r = c.post(url, json={**CREATE_BODY, "request_id": f"matrix-{role}"})
            else:
                r = c.post(url, json={"action": "evaluate", "note": "matrix"})
            got[name] = r.status_code
            if r.status_code in (401, 403):
                assert isinstance(r.json()["detail"], str | dict), r.text  # a clear reason
    assert got == expected


def test_department_sees_only_summoned_incidents(env: dict[str, Any]) -> None:
    body = get(env, "department", "/api/v1/incidents").json()
    assert body["items"] == []


# --- incidents: list, filters, pagination, detail, personal data -------------------------------


def test_list_filters_and_cursor(env: dict[str, Any]) -> None:
    srv = env["srv"]
    ids = [
        srv.raise_incident(
            trigger(f"park-{i:02d}|parking_overstay", "parking", "parking_overstay", "warning", grid="g1")
        )
        for i in range(5)
    ]
    r = get(env, "installer", "/api/v1/incidents", params={"category": "parking", "limit": 2})
    page = r.json()
    assert [i["id"] for i in page["items"]] == ids[::-1][:2] and page["next_cursor"] is not None
    seen = [i["id"] for i in page["items"]]
    while page["next_cursor"] is not None:
        page = get(
            env,
            "installer",
            "/api/v1/incidents",
            params={"category": "parking", "limit": 2, "cursor": page["next_cursor"]},
        ).json()
        seen += [i["id"] for i in page["items"]]
    assert seen == ids[::-1]
    crit = get(env, "installer", "/api/v1/incidents", params={"severity": "critical"}).json()["items"]
    assert [i["id"] for i in crit] == [env["sos"]]
    g2 = get(env, "installer", "/api/v1/incidents", params={"grid": "g2", "state": "open"}).json()["items"]
    assert env["door"] in [i["id"] for i in g2] and env["sos"] not in [i["id"] for i in g2]
    mine = get(env, "installer", "/api/v1/incidents", params={"assignee": "ec1"}).json()["items"]
    assert [i["id"] for i in mine] == [env["sos"]]
    assert get(env, "installer", "/api/v1/incidents", params={"severity": "bogus"}).status_code == 422
    future = get(env, "installer", "/api/v1/incidents", params={"since_ms": 2**52}).json()["items"]
    assert future == []


def test_scope_limits_lists_and_detail(env: dict[str, Any]) -> None:
    items = get(env, "grid_worker_g2", "/api/v1/incidents").json()["items"]
    assert {i["grid"] for i in items} == {"g2"}
    assert get(env, "grid_worker_g2", f"/api/v1/incidents/{env['sos']}").status_code == 403
    assert get(env, "grid_worker_g2", f"/api/v1/incidents/{env['door']}").status_code == 200
    devices = get(env, "grid_worker_g2", "/api/v1/devices").json()
    assert {d["building"] for d in devices} <= {"b2", None}


def test_personal_data_only_for_eldercare_and_installer(env: dict[str, Any]) -> None:
    srv = env["srv"]
    ec = get(env, "eldercare_worker", f"/api/v1/incidents/{env['sos']}").json()
    assert ec["personal"]["name"] == "张阿姨" and ec["building"] == "b1" and ec["readings"][0]["values"]["heart_rate"]
    assert ec["redacted"] is False
    assert any(e["kind"] == "created" and "readings" in e["data"] for e in ec["timeline"])
    # logged (once per token, incident and 5 minutes: the list view in the matrix test may have been first)
    logged = srv.read("SELECT reason, incident_id, resident_id FROM access_log WHERE role='eldercare_worker'")
    assert ("personal_view", env["sos"], "r1") in logged
    for role in ("property_staff", "grid_worker", "community_office", "central_platform"):
        body = get(env, role, f"/api/v1/incidents/{env['sos']}").json()
        text = json.dumps(body, ensure_ascii=False)
        assert body["redacted"] is True and body["personal"] is None, role
        assert body["category"] == "eldercare" and body["grid"] == "g1"  # exists, in their area
        assert body["building"] is None and body["readings"] == [] and body["devices"] == []
        assert "张阿姨" not in text and "heart_rate" not in text and "r1" not in text.replace(env["sos"], ""), role
    # lists too
    items = get(env, "property_staff", "/api/v1/incidents", params={"category": "eldercare"}).json()["items"]
    assert items and all(i["personal"] is None and i["building"] is None for i in items)
    # devices in a resident's home are not listed to others
    ids = {d["id"] for d in get(env, "property_staff", "/api/v1/devices").json()}
    assert "sos-r1" not in ids and "door-b1" in ids
    assert get(env, "property_staff", "/api/v1/devices/sos-r1").status_code == 403
    assert get(env, "eldercare_worker", "/api/v1/devices/sos-r1").json()["resident_id"] == "r1"


def test_escalation_recipient_sees_location_and_release_is_logged(env: dict[str, Any]) -> None:
    srv = env["srv"]
    iid = srv.raise_incident(
        trigger(
            "fall-r1|fall",
            "eldercare",
            "fall",
            "major",
            grid="g1",
            building="b1",
            unit="u1",
            resident="r1",
            devices=["fall-r1"],
        )
    )
    gw1 = env["tokens"]["grid_worker"]
    before = get(env, "grid_worker", f"/api/v1/incidents/{iid}").json()
    assert before["location_released"] is None and before["building"] is None
    # community office dispatches it to the grid worker (a supervisor action of the ticket loop)
    with srv.client(env["tokens"]["community_office"]) as c:
        r = c.post(
            f"/api/v1/incidents/{iid}/actions",
            json={"action": "dispatch", "note": "网格员上门", "request_id": "esc-1", "data": {"to": "gw1"}},
        )
    assert r.status_code == 200, r.text
    with srv.client(gw1) as c:
        body = c.get(f"/api/v1/incidents/{iid}").json()
    assert body["escalated"] is True and body["location_released"]["building"] == "b1"
    assert body["personal"] is None  # the location, not the resident's health data
    rows = srv.read("SELECT reason, via FROM access_log WHERE role='grid_worker' AND incident_id=?", (iid,))
    assert ("escalation_location", "detail") in rows


# --- actions and manual incidents -------------------------------------------------------------


def test_actions_accept_start_resolve_evaluate(env: dict[str, Any]) -> None:
    srv = env["srv"]
    iid = env["door"]
    with srv.client(env["tokens"]["property_staff"]) as c:
        r = c.post(f"/api/v1/incidents/{iid}/actions", json={"action": "accept", "request_id": "a-1"})
        assert r.status_code == 200, r.text
        assert r.json()["incident"]["state"] == "accepted"
        again = c.post(f"/api/v1/incidents/{iid}/actions", json={"action": "accept", "request_id": "a-1"})
        assert again.status_code == 200  # idempotent by request id
        bad = c.post(f"/api/v1/incidents/{iid}/actions", json={"action": "accept"})
        assert bad.status_code == 409 and bad.json()["detail"]["current_state"] == "accepted"
        assert "start" in bad.json()["detail"]["allowed"]
        for action, note in (("start", "到场"), ("resolve", "门已修好 <b>ok</b>")):
            body = {"action": action, "note": note, "data": {"what_done": note} if action == "resolve" else None}
            r = c.post(f"/api/v1/incidents/{iid}/actions", json=body)
            assert r.status_code == 200, r.text
        assert c.post(f"/api/v1/incidents/{iid}/actions", json={"action": "fly"}).status_code == 422
    with srv.client(env["tokens"]["community_office"]) as c:
        r = c.post(f"/api/v1/incidents/{iid}/actions", json={"action": "evaluate", "data": {"rating": 5}})
        assert r.status_code == 200, r.text
        detail = c.get(f"/api/v1/incidents/{iid}").json()
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds[0] == "created" and "state_changed" in kinds
    notes = [e["data"].get("note") for e in detail["timeline"]]
    assert "门已修好 <b>ok</b>" in notes
    assert get(env, "installer", "/api/v1/incidents/nope-1").status_code == 404


def test_create_incident_by_hand(env: dict[str, Any]) -> None:
    with env["srv"].client(env["tokens"]["grid_worker_g2"]) as c:
        r = c.post("/api/v1/incidents", json={**CREATE_BODY, "request_id": "manual-1"})
        assert r.status_code == 201, r.text
        assert r.json()["incident"]["building"] == "b2" and r.json()["incident"]["grid"] == "g2"
        outside = c.post("/api/v1/incidents", json={**CREATE_BODY, "location": {"building": "b1"}})
        assert outside.status_code == 403
        assert c.post("/api/v1/incidents", json={**CREATE_BODY, "location": {"building": "zz"}}).status_code == 422


# --- devices, site, health ----------------------------------------------------------------------


def test_devices_dead_letters_unconfigured(env: dict[str, Any]) -> None:
    srv = env["srv"]
    pub = TrackedPublisher("127.0.0.1", env["broker"].port, "api-dev")
    sim = {d.id: d for d in traffic.sim_devices(srv.cfg)}
    try:
        pub.publish_all(
            [
                traffic.state(sim["door-b1"], {"contact": True, "battery": 77}),
                ("zigbee2mqtt/b1/door", b"{not json"),
                ("zigbee2mqtt/0x00158d00000000ff", b'{"contact": true}'),
            ]
        )
    finally:
        pub.close()

    def done() -> bool:
        d = get(env, "installer", "/api/v1/devices/door-b1").json()
        return d["online"] is True and bool(get(env, "installer", "/api/v1/devices/unconfigured").json())

    assert wait_until(done, 10)
    d = get(env, "property_staff", "/api/v1/devices/door-b1").json()
    assert d["battery"] == 77 and d["last_seen_ms"] and d["building"] == "b1"
    dead = get(env, "installer", "/api/v1/devices/dead-letters").json()
    assert dead and dead[0]["reason"] and dead[0]["topic"].startswith("zigbee2mqtt/")
    unc = get(env, "installer", "/api/v1/devices/unconfigured").json()
    assert unc[0]["address"].endswith("0x00158d00000000ff")
    assert get(env, "installer", "/api/v1/devices", params={"building": "b1", "online": True}).json()
    assert get(env, "installer", "/api/v1/devices/no-such").status_code == 404


def test_site_topology_has_no_personal_data(env: dict[str, Any]) -> None:
    site = get(env, "property_staff", "/api/v1/site").json()
    assert site["community"]["id"] == "c1" and [g["id"] for g in site["grids"]] == ["g1", "g2"]
    assert site["compounds"][0]["buildings"][0]["units"][0]["id"] == "u1"
    text = json.dumps(site, ensure_ascii=False)
    assert "张阿姨" not in text and "13800000001" not in text


def test_readyz_and_metrics(env: dict[str, Any]) -> None:
    r = get(env, "central_platform", "/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True
    assert r.json()["broker"]["ok"] and r.json()["store"]["ok"]
    text = get(env, "installer", "/metrics").text
    assert 'edge_incidents_open{category="eldercare",severity="critical"} 1.0' in text
    assert "edge_messages_in_total" in text and "edge_dead_letters_total" in text
    assert "edge_outbox_backlog_points" in text and "edge_notifications_failed_total" in text


def test_scorecard(env: dict[str, Any]) -> None:
    r = get(env, "community_office", "/api/v1/scorecard", params={"period": "2026-Q1"})
    assert r.status_code == 200 and r.json()["period"] == "2026-Q1" and isinstance(r.json()["rows"], list)
    assert get(env, "community_office", "/api/v1/scorecard", params={"period": "2026-13"}).status_code == 422


# --- central platform feed ----------------------------------------------------------------------


def test_feed_pages_in_commit_order_with_redaction(env: dict[str, Any]) -> None:
    seqs: list[int] = []
    after = 0
    items_all = []
    while True:
        page = get(env, "central_platform", "/api/v1/feed/incidents", params={"after": after, "limit": 3}).json()
        items_all += page["items"]
        seqs += [i["seq"] for i in page["items"]]
        assert page["next_cursor"] >= after
        after = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    store_seqs = [r[0] for r in env["srv"].read("SELECT seq FROM incident_events ORDER BY seq")]
    assert seqs == store_seqs[: len(seqs)] and len(seqs) >= len(store_seqs) - 5
    created = next(i for i in items_all if i["incident_id"] == env["sos"] and i["kind"] == "created")
    assert "readings" not in created["data"] and "resident_id" not in created["data"]
    assert created["incident"]["category"] == "eldercare" and "building" not in created["incident"]
    inst = get(env, "installer", "/api/v1/feed/incidents", params={"after": created["seq"] - 1, "limit": 1}).json()
    assert inst["items"][0]["data"]["resident_id"] == "r1"


# --- SSE --------------------------------------------------------------------------------------


class SseReader:
    """Reads an SSE stream in a thread; events as dicts (event, id, data)."""

    def __init__(self, base: str, token: str, last_id: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.comments = 0
        headers = {"Authorization": f"Bearer {token}"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        self._client = httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(5, read=30))
        self._stop = False
        self.status = 0
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        try:
            with self._client.stream("GET", "/api/v1/stream") as r:
                self.status = r.status_code
                cur: dict[str, Any] = {}
                for line in r.iter_lines():
                    if self._stop:
                        return
                    if line.startswith(":"):
                        self.comments += 1
                    elif line == "":
                        if cur:
                            self.events.append(cur)
                        cur = {}
                    else:
                        k, _, v = line.partition(":")
                        cur[k] = v[1:] if v.startswith(" ") else v
        except httpx.HTTPError:
            pass

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("event") == kind]

    def close(self) -> None:
        self._stop = True
        self._client.close()


def test_sse_live_resume_heartbeat_and_filtering(env: dict[str, Any]) -> None:
    srv = env["srv"]
    ec = SseReader(srv.base, env["tokens"]["eldercare_worker"])
    ps = SseReader(srv.base, env["tokens"]["property_staff"])
    g2 = SseReader(srv.base, env["tokens"]["grid_worker_g2"])
    try:
        assert wait_until(lambda: ec.of("hello") and ps.of("hello") and g2.of("hello"), 10)
        t0 = time.monotonic()
        iid = srv.raise_incident(
            trigger("wear-r1|spo2_low", "eldercare", "spo2_low", "major", grid="g1", building="b1", resident="r1")
        )
        assert wait_until(lambda: any(json.loads(e["data"])["incident_id"] == iid for e in ec.of("incident")), 5)
        assert time.monotonic() - t0 < 2
        first = next(e for e in ec.of("incident") if json.loads(e["data"])["incident_id"] == iid)
        assert json.loads(first["data"])["incident"]["personal"]["name"] == "张阿姨"
        assert wait_until(lambda: any(json.loads(e["data"])["incident_id"] == iid for e in ps.of("incident")), 5)
        seen_ps = [json.loads(e["data"]) for e in ps.of("incident") if json.loads(e["data"])["incident_id"] == iid]
        assert seen_ps[0]["incident"]["personal"] is None and "张阿姨" not in json.dumps(seen_ps, ensure_ascii=False)
        time.sleep(0.3)
        assert not any(json.loads(e["data"])["incident_id"] == iid for e in g2.of("incident"))  # g1 is not theirs
        assert wait_until(lambda: ec.comments >= 1, 5)  # heartbeat (0.5 s in this site)
        last_id = ec.of("incident")[-1]["id"]
    finally:
        ec.close()
        ps.close()
        g2.close()
    # while disconnected: two more changes; a resume with Last-Event-ID gets exactly those, in order
    missed = [
        srv.raise_incident(trigger(f"x{i}|tamper", "security", "tamper", "minor", grid="g1", building="b1"))
        for i in range(2)
    ]
    resumed = SseReader(srv.base, env["tokens"]["eldercare_worker"], last_id=last_id)
    try:
        assert wait_until(lambda: resumed.of("hello"), 10)
        got = [json.loads(e["data"]) for e in resumed.of("incident")]
        assert [g["incident_id"] for g in got if g["kind"] == "created"] == missed
        ids = [int(e["id"]) for e in resumed.of("incident")]
        assert ids == sorted(ids) and ids[0] == int(last_id) + 1
    finally:
        resumed.close()


def test_sse_personal_data_is_logged_once_per_dispatch_or_withheld(env: dict[str, Any]) -> None:
    """Every stream client that receives a resident's personal data gets its access_log row, all rows
    of one dispatch in one transaction (same ts_ms), committed before the frames leave; staff get the
    redacted frame without a row. If the log cannot be written the personal data is withheld: those
    streams end (their clients resume with Last-Event-ID), the redacted ones go on."""
    srv = env["srv"]
    ctx = srv.app.state.ctx
    readers = {r: SseReader(srv.base, env["tokens"][r]) for r in ("eldercare_worker", "installer", "property_staff")}

    def got(role: str, iid: str) -> list[dict[str, Any]]:
        return [d for e in readers[role].of("incident") if (d := json.loads(e["data"]))["incident_id"] == iid]

    try:
        assert wait_until(lambda: all(r.of("hello") for r in readers.values()), 10)
        iid = srv.raise_incident(
            trigger("wear-r1|hr_high", "eldercare", "hr_high", "major", grid="g1", building="b1", resident="r1")
        )
        assert wait_until(lambda: all(got(r, iid) for r in readers), 5)
        assert got("eldercare_worker", iid)[0]["incident"]["personal"]["name"] == "张阿姨"
        assert got("installer", iid)[0]["incident"]["personal"]["name"] == "张阿姨"
        assert got("property_staff", iid)[0]["incident"]["personal"] is None
        rows = srv.read("SELECT role, ts_ms FROM access_log WHERE incident_id=? AND via='stream'", (iid,))
        assert sorted(r[0] for r in rows) == ["eldercare_worker", "installer"]  # none for property staff
        assert len({r[1] for r in rows}) == 1  # one transaction for the whole dispatch

        async def failing_write(fn: Any, timeout: float = 10.0) -> Any:
            raise RuntimeError("disk full")

        ctx.write = failing_write  # the access log cannot be written (as with a full disk)
        try:
            iid2 = srv.raise_incident(
                trigger("wear-r1|spo2_low2", "eldercare", "spo2_low", "major", grid="g1", building="b1", resident="r1")
            )
            assert wait_until(lambda: got("property_staff", iid2), 5)
            assert wait_until(lambda: not readers["eldercare_worker"]._t.is_alive(), 5)  # stream ended
            assert wait_until(lambda: not readers["installer"]._t.is_alive(), 5)
        finally:
            del ctx.write  # back to the class's method
        assert not got("eldercare_worker", iid2) and not got("installer", iid2)  # withheld
        assert srv.read("SELECT count(*) FROM access_log WHERE incident_id=?", (iid2,)) == [(0,)]
        # the client resumes with its Last-Event-ID: the replay logs the release and delivers it
        back = SseReader(
            srv.base, env["tokens"]["eldercare_worker"], last_id=readers["eldercare_worker"].of("incident")[-1]["id"]
        )
        try:
            assert wait_until(
                lambda: any(json.loads(e["data"])["incident_id"] == iid2 for e in back.of("incident")), 10
            )
            assert srv.read("SELECT via FROM access_log WHERE incident_id=?", (iid2,)) == [("stream",)]
        finally:
            back.close()
    finally:
        for r in readers.values():
            r.close()


def test_sse_device_status_events(env: dict[str, Any]) -> None:
    srv = env["srv"]
    ps = SseReader(srv.base, env["tokens"]["property_staff"])
    pub = TrackedPublisher("127.0.0.1", env["broker"].port, "api-sse-dev")
    sim = {d.id: d for d in traffic.sim_devices(srv.cfg)}
    try:
        assert wait_until(lambda: ps.of("hello"), 10)
        pub.publish_all([traffic.availability(sim["acc-b2"], False)])

        def changes() -> list[dict[str, Any]]:
            return [ch for e in ps.of("devices") for ch in json.loads(e["data"])["changes"]]

        assert wait_until(lambda: any(ch["device_id"] == "acc-b2" for ch in changes()), 5)
        ch = next(ch for ch in changes() if ch["device_id"] == "acc-b2")
        assert ch["online"] is False and ch["building"] == "b2"
        assert all("id" not in e for e in ps.of("devices"))  # live only: no id
    finally:
        pub.close()
        ps.close()


# --- tokens: CLI, revocation, expiry, rate limit ------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_token_cli_create_list_revoke(env: dict[str, Any]) -> None:
    srv = env["srv"]
    site = env["dir"] / "site.yaml"
    out = _cli("token", "create", "--config", str(site), "--role", "grid_worker", "--grid", "g1", "--name", "gw1")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("cegw_")
    token_id = json.loads(out.stdout.splitlines()[0])["id"]
    listed = _cli("token", "list", "--config", str(site))
    assert token_id in listed.stdout and token not in listed.stdout and "hash" not in listed.stdout
    revoked = _cli("token", "revoke", token_id, "--config", str(site))
    assert revoked.returncode == 0
    with srv.client(token) as c:
        r = c.get("/api/v1/me")
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    bad = _cli("token", "create", "--config", str(site), "--role", "superuser")
    assert bad.returncode == 2


def test_auth_failures_are_rate_limited(tmp_path: Path, private_broker: Mosquitto) -> None:
    srv = ApiServer(write_api_site(tmp_path, private_broker.port, failures=3), tmp_path / "gateway.db").start()
    try:
        good = srv.token("installer")
        with srv.client() as c:
            codes = [
                c.get("/api/v1/me", headers={"Authorization": f"Bearer cegw_bad{i}"}).status_code for i in range(4)
            ]
            assert codes == [401, 401, 401, 429]
            r = c.get("/api/v1/me", headers={"Authorization": f"Bearer {good}"})
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
            assert c.get("/healthz").status_code == 200
    finally:
        srv.stop()


def test_installer_token_from_environment(tmp_path: Path, private_broker: Mosquitto) -> None:
    os.environ["EDGE_GATEWAY_INSTALLER_TOKEN"] = "cegw_from-the-environment-0123456789abcdef"
    try:
        srv = ApiServer(write_api_site(tmp_path, private_broker.port), tmp_path / "gateway.db").start()
    finally:
        del os.environ["EDGE_GATEWAY_INSTALLER_TOKEN"]
    try:
        assert not (tmp_path / "installer.token").exists()
        with srv.client("cegw_from-the-environment-0123456789abcdef") as c:
            assert c.get("/api/v1/me").json()["role"] == "installer"
    finally:
        srv.stop()
