"""Device sessions and one-time sign-in links through the real API (gateway on a real broker):
a link signs a device in once and only once, expires, can be withdrawn; sessions are listed and
revoked per device and per person (API and CLI); failed link attempts are limited per address and
for all addresses together; the cookie is HttpOnly + SameSite=Strict (+ Secure behind TLS) and a
cookie-authenticated write without the console's header or from another origin is refused."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import httpx
import pytest

from gateway.api import sessions
from gateway.cli import main as cli_main
from gateway.core import links
from gateway.core import store as st
from gateway.install.mosquitto import Mosquitto
from tests.api_harness import ApiServer, trigger, write_api_site
from tests.support import wait_until

pytestmark = pytest.mark.broker
H = {"X-Edge-Console": "1"}


def _site(tmp_path: Path, port: int, *, failures: int = 1000, extra: str = "") -> Path:
    path = write_api_site(tmp_path, port, failures=failures)
    text = path.read_text(encoding="utf-8").replace("auth_window_s: 60}", "auth_window_s: 60, signin_failures: 4}")
    path.write_text(text + extra, encoding="utf-8")
    return path


@pytest.fixture
def srv(tmp_path: Path, private_broker: Mosquitto) -> Iterator[ApiServer]:
    s = ApiServer(_site(tmp_path, private_broker.port), tmp_path / "gateway.db").start()
    try:
        yield s
    finally:
        s.stop()


def _cli(*argv: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    with redirect_stdout(out):
        rc = cli_main(list(argv))
    return rc, out.getvalue().splitlines()


def _link(srv: ApiServer, person: str, *extra: str) -> str:
    rc, lines = _cli(
        "signin-link", "--config", str(srv.cfg.source_path), "--store", str(srv.db), "--person", person, *extra
    )
    assert rc == 0
    url = lines[-1]
    assert url.startswith(f"http://127.0.0.1:{srv.cfg.api.port}/console/#signin=signin.")
    return url.split("#signin=", 1)[1]


def _sign_in(c: httpx.Client, link: str) -> httpx.Response:
    return c.post("/api/v1/session", json={"link": link}, headers=H)


def test_link_signs_in_once_with_a_strict_httponly_cookie(srv: ApiServer) -> None:
    link = _link(srv, "ec1")
    with httpx.Client(base_url=srv.base) as phone:
        r = _sign_in(phone, link)
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{sessions.COOKIE}=cegs_")
        low = cookie.lower()
        assert "httponly" in low and "samesite=strict" in low and "path=/" in low and "secure" not in low
        assert f"max-age={30 * 86400}" in low
        assert r.json()["role"] == "eldercare_worker" and r.json()["name"] == "ec1"
        me = phone.get("/api/v1/me")  # the cookie alone authenticates (no token anywhere)
        assert me.status_code == 200 and me.json()["name"] == "ec1"
    with httpx.Client(base_url=srv.base) as other:
        again = _sign_in(other, link)
        assert again.status_code == 401 and again.json()["code"] == "link_used"
    # only hashes are stored: neither the link id nor the cookie secret is in the store
    secret = cookie.split(";", 1)[0].split("=", 1)[1]
    dump = "\n".join(str(r) for r in srv.read("SELECT * FROM device_sessions") + srv.read("SELECT * FROM signed_links"))
    assert secret not in dump and link.split(".")[1] not in dump


def test_expired_withdrawn_forged_links_are_refused(srv: ApiServer) -> None:
    short = _link(srv, "ps1", "--minutes", "0.02")  # 1.2 s
    withdrawn = _link(srv, "ps1")
    conn = st.connect(srv.db)
    try:
        with st.transaction(conn):
            assert links.revoke(conn, hashlib.sha256(withdrawn.split(".")[1].encode()).hexdigest())
    finally:
        conn.close()
    forged = withdrawn[:-3] + ("AAA" if not withdrawn.endswith("AAA") else "BBB")
    time.sleep(2.1)
    with httpx.Client(base_url=srv.base) as c:
        assert _sign_in(c, short).json()["code"] == "link_expired"
        assert _sign_in(c, withdrawn).json()["code"] == "link_revoked"
        assert _sign_in(c, forged).json()["code"] == "link_invalid"
        # a sign-in without the console's header (a cross-site form) is refused before anything else
        assert c.post("/api/v1/session", json={"link": short}).json()["code"] == "csrf_refused"


def test_sessions_listed_and_revoked_per_device_and_person(srv: ApiServer) -> None:
    phones = [
        httpx.Client(base_url=srv.base, headers={"User-Agent": ua})
        for ua in ("Mozilla/5.0 (Linux; Android 14) Chrome/126.0", "Mozilla/5.0 (iPhone) Safari/604.1")
    ]
    try:
        for c in phones:
            assert _sign_in(c, _link(srv, "ps1")).status_code == 200
        mine = phones[0].get("/api/v1/sessions").json()["items"]
        assert [s["device"] for s in mine] == ["Safari · iPhone", "Chrome · Android"]
        assert [s["current"] for s in mine] == [False, True]
        # the CLI lists them too (no secrets) and revokes one device
        rc, out = _cli(
            "session", "list", "--config", str(srv.cfg.source_path), "--store", str(srv.db), "--person", "ps1"
        )
        listed = json.loads("\n".join(out))
        assert rc == 0 and {s["id"] for s in listed} == {s["id"] for s in mine}
        assert all("hash" not in s for s in listed)
        iphone = mine[0]["id"]
        rc, _ = _cli("session", "revoke", iphone, "--config", str(srv.cfg.source_path), "--store", str(srv.db))
        assert rc == 0
        assert wait_until(lambda: phones[1].get("/api/v1/me").status_code == 401, sessions.CACHE_S + 2)
        assert phones[1].get("/api/v1/me").json()["code"] == "session_unknown"
        assert phones[0].get("/api/v1/me").status_code == 200
        # a person may not sign out someone else's devices; an installer revokes per person
        assert phones[0].post("/api/v1/sessions/revoke", json={"person": "ec1"}, headers=H).status_code == 403
        with srv.client(srv.token("installer")) as inst:
            r = inst.post("/api/v1/sessions/revoke", json={"person": "ps1"})
            assert r.status_code == 200 and r.json()["revoked"] == 1
        assert wait_until(lambda: phones[0].get("/api/v1/me").status_code == 401, sessions.CACHE_S + 2)
    finally:
        for c in phones:
            c.close()


def test_signing_out_ends_the_session(srv: ApiServer) -> None:
    with httpx.Client(base_url=srv.base) as c:
        assert _sign_in(c, _link(srv, "gw1")).status_code == 200
        # a cross-site form cannot sign the device out (nor clear its cookie)
        r = c.post("/api/v1/session/signout")
        assert r.status_code == 403 and r.json()["code"] == "csrf_refused" and "set-cookie" not in r.headers
        assert c.get("/api/v1/me").status_code == 200
        assert c.post("/api/v1/session/signout", headers=H).json() == {"revoked": 1}
        assert c.get("/api/v1/me").status_code == 401


def test_token_exchanged_for_a_session(srv: ApiServer) -> None:
    token = srv.token("grid_worker", name="gw1", grids=["g1"])
    with httpx.Client(base_url=srv.base) as c:
        r = c.post("/api/v1/session", json={}, headers={**H, "Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["session"]["via"] == "token"
        assert r.json()["session"]["grids"] == ["g1"]
        assert c.get("/api/v1/me").json()["grids"] == ["g1"]


def test_cookie_writes_need_the_console_header_and_own_origin(srv: ApiServer) -> None:
    iid = srv.raise_incident(trigger("door|1", "security", "door_forced", "major", grid="g1", building="b1"))
    with httpx.Client(base_url=srv.base) as c:
        assert _sign_in(c, _link(srv, "ps1")).status_code == 200
        body = {"action": "note", "note": "看过了"}
        url = f"/api/v1/incidents/{iid}/actions"
        r = c.post(url, json=body)  # what a cross-site form or fetch could send (no custom header)
        assert r.status_code == 403 and r.json()["code"] == "csrf_refused"
        r = c.post(url, json=body, headers={**H, "Origin": "http://evil.example"})
        assert r.status_code == 403 and r.json()["code"] == "csrf_refused"
        r = c.post(url, json=body, headers={**H, "Origin": srv.base})
        assert r.status_code == 200, r.text
        assert c.get(f"/api/v1/incidents/{iid}").status_code == 200  # reads need no header
    events = srv.read("SELECT kind, actor FROM incident_events WHERE incident_id=? AND kind='note'", (iid,))
    assert events == [("note", "ps1")]


def test_failed_link_attempts_are_limited(tmp_path: Path, private_broker: Mosquitto) -> None:
    s = ApiServer(_site(tmp_path, private_broker.port, failures=3), tmp_path / "gateway.db").start()
    try:
        good = _link(s, "ps1")
        with httpx.Client(base_url=s.base) as c:
            for i in range(3):
                assert _sign_in(c, f"signin.x{i}.9999999999.bad").status_code == 401
            r = _sign_in(c, good)  # even a good link waits: this address is locked out for the window
            assert r.status_code == 429 and r.json()["code"] == "rate_limited" and int(r.headers["retry-after"]) > 0
    finally:
        s.stop()


def test_failed_link_attempts_from_everywhere_are_limited(srv: ApiServer) -> None:
    ctx = srv.app.state.ctx
    with httpx.Client(base_url=srv.base) as c:
        for i in range(4):  # signin_failures: 4, spread over "many addresses" (per-address limit not reached)
            assert _sign_in(c, f"signin.y{i}.9999999999.bad").status_code == 401
            ctx.limiter._fails.clear()
        r = _sign_in(c, _link(srv, "ps1"))
        assert r.status_code == 429 and r.json()["code"] == "signin_limited"
        # tokens are not affected by the sign-in link limit
        assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {srv.token('installer')}"}).status_code == 200


def test_cookie_is_secure_when_the_console_is_served_over_tls(tmp_path: Path, private_broker: Mosquitto) -> None:
    extra = ""
    path = _site(tmp_path, private_broker.port, extra=extra)
    text = path.read_text(encoding="utf-8").replace(
        "api:\n", "api:\n  console_base_url: https://gw.example:8443/console/\n", 1
    )
    path.write_text(text, encoding="utf-8")
    s = ApiServer(path, tmp_path / "gateway.db").start()
    try:
        link = _link_https(s)
        with httpx.Client(base_url=s.base) as c:
            r = _sign_in(c, link)
            assert r.status_code == 200 and "secure" in r.headers["set-cookie"].lower()
    finally:
        s.stop()


def _link_https(srv: ApiServer) -> str:
    rc, lines = _cli("signin-link", "--config", str(srv.cfg.source_path), "--store", str(srv.db), "--person", "ps1")
    assert rc == 0 and lines[-1].startswith("https://gw.example:8443/console/#signin=")
    return lines[-1].split("#signin=", 1)[1]
