"""`edge-gateway doctor` against a wrong broker port, a bad password, a wrong time-series token and a
full store quota: non-zero exit, those checks failing, each with its fix (issue 8)."""

from __future__ import annotations

import email.utils
import http.server
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core import store as st
from gateway.install import doctor
from gateway.install.mosquitto import Mosquitto, free_port
from tests.installer_helpers import site
from tests.support import ROOT, service_missing

OPTS = doctor.Options(timeout_s=2.0, broker_conf=str(Path(__file__).resolve().parent.parent / "deploy/mosquitto.conf"))


def _by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_healthy_site_passes(tmp_path: Path, private_broker: Mosquitto) -> None:
    checks = doctor.run_checks(str(site(tmp_path, private_broker.port)), OPTS)
    by = _by_name(checks)
    assert by["broker"].status == by["broker_login"].status == by["broker_permissions"].status == "ok", checks
    assert by["broker_queue"].status == "ok"
    assert by["store"].status == "warn"  # not created yet
    assert doctor.exit_code(checks) == 0, doctor.report(checks)


def test_wrong_broker_port_fails_with_fix(tmp_path: Path) -> None:
    path = site(tmp_path, free_port())
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "doctor", "--config", str(path), "--timeout", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "[FAIL] broker" in out.stdout and "fix / 处理: start the broker" in out.stdout, out.stdout


def test_broker_queue_settings_from_a_stock_config(tmp_path: Path) -> None:
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener 1883\nmax_queued_messages 1000\n", encoding="utf-8")
    c = doctor.check_broker_queue(None, str(conf))
    assert c.status == "warn" and "max_queued_messages 1000" in c.detail and "persistence true" in c.fix


@pytest.fixture
def auth_broker(broker_dir: Path) -> Iterator[Mosquitto]:
    exe = "/usr/bin/mosquitto_passwd"
    if not Path(exe).exists():
        service_missing("mosquitto_passwd (Debian package mosquitto)")
    passwd = broker_dir / "passwd"
    subprocess.run([exe, "-c", "-b", str(passwd), "gateway", "s3cret-Pa55"], check=True)
    acl = broker_dir / "acl"
    acl.write_text("user gateway\ntopic read zigbee2mqtt/#\n", encoding="utf-8")  # nothing else
    m = Mosquitto(broker_dir, extra=f"password_file {passwd}\nacl_file {acl}\n")
    m.conf.write_text(m.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    m.start()
    yield m
    m.stop()


def _with_login(path: Path, password_env: str) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("mqtt:\n", f'mqtt:\n  username: gateway\n  password: "${{{password_env}}}"\n', 1),
        encoding="utf-8",
    )


def test_bad_password_and_acl(tmp_path: Path, auth_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> None:
    path = site(tmp_path, auth_broker.port)
    _with_login(path, "DOCTOR_MQTT_PW")
    monkeypatch.setenv("DOCTOR_MQTT_PW", "wrong")
    by = _by_name(doctor.run_checks(str(path), OPTS))
    assert by["broker_login"].status == "fail"
    assert "user 'gateway'" in by["broker_login"].detail and "password_file" in by["broker_login"].fix
    # right password: login ok, but the ACL refuses most filters and the status topic
    monkeypatch.setenv("DOCTOR_MQTT_PW", "s3cret-Pa55")
    checks = doctor.run_checks(str(path), OPTS)
    by = _by_name(checks)
    assert by["broker_login"].status == "ok"
    perm = by["broker_permissions"]
    assert perm.status == "fail", perm
    # (Mosquitto's acl_file grants a SUBSCRIBE it will not deliver to, so only the publish shows here;
    # brokers that refuse subscriptions (0x80/0x87) are reported per filter.)
    assert "publishing to edge/gw-test/status refused" in perm.detail
    assert "acl_file" in perm.fix
    assert doctor.exit_code(checks) == 1


class _Tsdb(http.server.BaseHTTPRequestHandler):
    token = "right-token"

    def _send(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Date", email.utils.formatdate(usegmt=True))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._send(200 if self.path in ("/health", "/ping") else 404)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ok = self.headers.get("Authorization") == f"Token {self.token}"
        self._send(204 if ok else 401)

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture
def tsdb() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tsdb)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_wrong_tsdb_token(tmp_path: Path, tsdb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sync = f'sync:\n  enabled: true\n  url: {tsdb}\n  org: c1\n  bucket: b\n  token: "${{DOCTOR_TOKEN}}"\n'
    path = site(tmp_path, free_port(), extra=sync)
    monkeypatch.setenv("DOCTOR_TOKEN", "stale-token")
    opts = doctor.Options(timeout_s=2.0, skip=("broker",), broker_conf=OPTS.broker_conf)
    checks = doctor.run_checks(str(path), opts)
    by = _by_name(checks)
    assert by["tsdb"].status == "fail" and "rejected the token (HTTP 401)" in by["tsdb"].detail
    assert "INFLUX_TOKEN" in by["tsdb"].fix
    assert by["clock"].status == "ok" and "Date header" in by["clock"].detail  # no NTP: the store's Date
    assert doctor.exit_code(checks) == 1
    monkeypatch.setenv("DOCTOR_TOKEN", "right-token")
    assert _by_name(doctor.run_checks(str(path), opts))["tsdb"].status == "ok"


def test_full_store_quota(tmp_path: Path) -> None:
    path = site(tmp_path, free_port(), quota_mb=16, reserve_mb=12)
    db = tmp_path / "gateway.db"
    s = st.Store(db, st.Quota(16 << 20, 12 << 20))
    s.set_page_limit(life_safety=False)  # fill up to quota - reserve, as telemetry would
    with pytest.raises(sqlite3.OperationalError):
        for i in range(10_000):  # autocommit: each row its own transaction
            s.conn.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (f"fill{i}", "x" * 3800))
    s.close()
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "doctor", "--config", str(path), "--timeout", "1", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    import json

    by = {c["name"]: c for c in json.loads(out.stdout)}
    assert "store" in by, out.stdout
    assert by["store"]["status"] == "fail" and "FULL" in by["store"]["detail"]
    assert "store.quota_mb" in by["store"]["fix"]
