"""API hardening (issue 10): per-role rate limits, the installers' access log, CORS closed, HTTPS."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.api.auth import RoleRateLimiter
from gateway.install.mosquitto import Mosquitto, free_port
from tests.api_harness import ApiServer, trigger, write_api_site
from tests.conftest import write_site
from tests.support import GatewayProcess, service_missing, wait_until


@pytest.fixture(scope="module")
def srv() -> Iterator[ApiServer]:
    bdir = tempfile.TemporaryDirectory(prefix="edge-broker-")
    ddir = tempfile.TemporaryDirectory(prefix="edge-hard-")
    broker = Mosquitto(Path(bdir.name)).start()
    d = Path(ddir.name)
    server = ApiServer(write_api_site(d, broker.port), d / "gateway.db").start()
    try:
        yield server
    finally:
        server.stop()
        broker.stop()
        ddir.cleanup()
        bdir.cleanup()


def test_role_rate_limiter_refills_and_says_when_to_retry() -> None:
    lim = RoleRateLimiter({"department": 60})
    assert all(lim.retry_after("t1", "department", now=100.0) == 0 for _ in range(60))
    wait = lim.retry_after("t1", "department", now=100.0)
    assert wait >= 1, "the 61st request in the same instant is refused"
    assert lim.retry_after("t2", "department", now=100.0) == 0, "buckets are per token"
    assert lim.retry_after("t1", "department", now=102.0) == 0, "one request a second refills"


def test_department_token_is_throttled_with_retry_after(srv: ApiServer) -> None:
    token = srv.token("department", name="fire-brigade")
    with srv.client(token) as c:
        responses = [c.get("/api/v1/me") for _ in range(250)]
    codes = [r.status_code for r in responses]
    assert codes[:100] == [200] * 100, "the burst of the role's size is allowed"
    refused = [r for r in responses if r.status_code == 429]
    assert refused, "past the department's 120 a minute, requests are refused"
    assert int(refused[0].headers["Retry-After"]) >= 1
    with srv.client(srv.token("installer", name="inst-rl")) as c:
        assert c.get("/api/v1/me").status_code == 200, "other tokens are not affected"


def test_access_log_is_readable_by_installers_only(srv: ApiServer) -> None:
    iid = srv.raise_incident(
        trigger(
            "sos-r1|sos", "eldercare", "sos", "critical", grid="g1", building="b1", resident="r1", devices=["sos-r1"]
        )
    )
    ec = srv.token("eldercare_worker", name="ec1")
    with srv.client(ec) as c:
        detail = c.get(f"/api/v1/incidents/{iid}")
    assert detail.status_code == 200
    with srv.client(srv.token("installer", name="inst-log")) as c:
        assert wait_until(lambda: any(i["incident_id"] == iid for i in c.get("/api/v1/access-log").json()["items"]), 5)
        items = c.get("/api/v1/access-log").json()["items"]
    mine = [i for i in items if i["incident_id"] == iid and i["role"] == "eldercare_worker"]
    assert mine and mine[0]["resident_id"] == "r1" and mine[0]["reason"]
    for role in ("property_staff", "eldercare_worker", "grid_worker", "central_platform"):
        with srv.client(srv.token(role, name=f"{role}-log")) as c:
            assert c.get("/api/v1/access-log").status_code == 403, role


def test_cors_is_closed_by_default(srv: ApiServer) -> None:
    token = srv.token("installer", name="inst-cors")
    with srv.client(token) as c:
        r = c.get("/api/v1/me", headers={"Origin": "http://evil.example"})
        pre = c.options(
            "/api/v1/incidents",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert r.status_code == 200
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}
    assert "access-control-allow-origin" not in {k.lower() for k in pre.headers}


def test_api_serves_https_with_the_configured_certificate(tmp_path: Path, private_broker: Mosquitto) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        service_missing("openssl")
    assert openssl is not None
    key, crt = tmp_path / "api.key", tmp_path / "api.crt"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    site = write_site(tmp_path, private_broker.port)
    with site.open("a", encoding="utf-8") as f:
        f.write(f"api:\n  tls:\n    cert_file: {crt}\n    key_file: {key}\n")
    port = free_port()
    gw = GatewayProcess(site, tmp_path / "gateway.db", tmp_path, port).start()
    try:
        with httpx.Client(verify=str(crt), timeout=5) as c:
            assert wait_until(lambda: c.get(f"https://127.0.0.1:{port}/healthz").status_code == 200, 10)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3)  # no plain text on the TLS port
    finally:
        gw.stop()


def test_installer_can_forget_a_resident_through_the_api(srv: ApiServer) -> None:
    iid = srv.raise_incident(
        trigger(
            "sos-r1|sos", "eldercare", "sos", "critical", grid="g1", building="b1", resident="r1", devices=["sos-r1"]
        )
    )
    with srv.client(srv.token("property_staff", name="ps-forget")) as c:
        assert c.post("/api/v1/residents/r1/forget").status_code == 403
    with srv.client(srv.token("installer", name="inst-forget")) as c:
        r = c.post("/api/v1/residents/r1/forget")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resident_id"] == "r1" and body["stand_in"] != "r1" and body["report"]
    (resident,) = srv.read("SELECT resident_id FROM incidents WHERE id=?", (iid,))[0]
    assert resident != "r1", "the incident keeps its statistics under a stand-in id"


def test_snapshots_are_private_to_the_service_user(tmp_path: Path) -> None:
    import os
    import stat

    from gateway.vision.snapshots import SnapshotStore

    store = SnapshotStore(tmp_path / "snaps", 10 * 1024 * 1024)
    sid = store.put("cam-1", "zone-a", 1_700_000_000_000, b"\xff\xd8\xff\xe0" + b"0" * 100 + b"\xff\xd9")
    files = [p for p in (tmp_path / "snaps").rglob("*") if p.is_file()]
    assert sid and files
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) & 0o077 == 0, f
