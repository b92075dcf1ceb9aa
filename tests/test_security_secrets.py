"""Secrets appear in no log line, error message, API response or stored row (issue 10).

Distinctive secret values are planted in the environment (the config holds only ``${ENV}``
references): the MQTT password, the central store token, a webhook signing secret, WeCom /
DingTalk robot keys, the SMS auth header, the installer API token, and an unrelated variable.
A real gateway (in-process, real Mosquitto with password auth, API on uvicorn) then goes through
start-up, a refused MQTT login, invalid payloads, a 401 from the central store, failing webhook and
robot deliveries, an SOS, and a GET of every API endpoint the OpenAPI document lists. Every log
record (root logger at DEBUG, tracebacks included), response body and header, stored row and the
health dict is scanned for every secret.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.publish as publish
import pytest

from edge_config import ConfigError, load_config
from gateway.app import Gateway
from gateway.install.mosquitto import Mosquitto, free_port
from tests.api_harness import ApiServer
from tests.conftest import write_site
from tests.support import service_missing, wait_until
from tests.sync_servers import FakeInfluxV2

SECRETS = {
    "MQTT_PASSWORD": "MQTTsecret-7f3a9c1e",
    "INFLUX_TOKEN": "INFLUXsecret-4d1c8a77",
    "HOOK_SECRET": "HOOKsecret-9e2b7d05",
    "WECOM_KEY": "WECOMkey-3c5f1a90",
    "DING_TOKEN": "DINGtoken-a7e4c311",
    "DING_SECRET": "DINGsecret-19bc6e2f",
    "SMS_AUTH": "Bearer SMSauth-55d0b4aa",
    "EDGE_GATEWAY_INSTALLER_TOKEN": "cegw_INSTALLtok-0b9d7c3e5a1f24680b9d7c3e",
    "UNRELATED_SECRET": "ENVsecret-e6a1f0c4",
}
WRONG_MQTT = "MQTTwrong-b81d22e0"
NEEDLES = [*SECRETS.values(), WRONG_MQTT, "SMSauth-55d0b4aa"]

EXTRA = """\
tickets:
  webhooks:
    - {{name: hook1, url: "http://127.0.0.1:{dead}/hook", secret: "${{HOOK_SECRET}}", elder_care: true}}
channels:
  retry_min_s: 0.2
  retry_max_s: 0.5
  wecom:
    - {{name: duty, base_url: "{robot}", key: "${{WECOM_KEY}}", broadcast: true}}
  dingtalk:
    - {{name: care, base_url: "{robot}", access_token: "${{DING_TOKEN}}",
       secret: "${{DING_SECRET}}", broadcast: true, elder_care: true}}
  sms: {{url: "http://127.0.0.1:{dead}/sms", auth_header: "${{SMS_AUTH}}"}}
sync:
  enabled: true
  url: {sync_url}
  token: "${{INFLUX_TOKEN}}"
  backoff_min_s: 0.1
  backoff_max_s: 0.3
  max_batch_age_s: 0.2
  heartbeat_s: 1
"""


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))  # includes the traceback of exc_info
        except Exception as exc:  # a broken log call must not hide a leak: keep what we can
            self.lines.append(f"{record.name} UNFORMATTABLE {record.msg!r} {record.args!r} {exc}")


@pytest.fixture
def capture() -> Iterator[Capture]:
    root = logging.getLogger()
    h = Capture()
    old = root.level
    root.addHandler(h)
    root.setLevel(logging.DEBUG)
    yield h
    root.removeHandler(h)
    root.setLevel(old)


@pytest.fixture
def auth_broker(broker_dir: Path) -> Iterator[Mosquitto]:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        service_missing("mosquitto_passwd")
    assert tool is not None
    passwd = broker_dir / "passwd"
    subprocess.run([tool, "-c", "-b", str(passwd), "gateway", SECRETS["MQTT_PASSWORD"]], check=True)
    subprocess.run([tool, "-b", str(passwd), "device", "dev-pass"], check=True)
    m = Mosquitto(broker_dir, extra=f"password_file {passwd}\n")
    m.conf.write_text(m.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    m.start()
    yield m
    m.stop()


class Robots:
    """A robot endpoint that accepts everything (WeCom/DingTalk answer errcode 0): successful
    posts make HTTP clients log request URLs, which carry the robot keys."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        robots = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                robots.paths.append(self.path)
                body = b'{"errcode": 0, "errmsg": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _site(tmp_path: Path, port: int, sync_url: str, robot_url: str) -> Path:
    site = write_site(tmp_path, port)
    text = site.read_text(encoding="utf-8")
    text = text.replace(
        f"  port: {port}\n", f'  port: {port}\n  username: gateway\n  password: "${{MQTT_PASSWORD}}"\n', 1
    )
    extra = EXTRA.format(dead=free_port(), sync_url=sync_url, robot=robot_url)
    site.write_text(text + extra, encoding="utf-8")
    return site


def _leaks(text: str) -> list[str]:
    return [s for s in NEEDLES if s in text]


def test_no_secret_in_logs_errors_responses_or_store(
    tmp_path: Path, auth_broker: Mosquitto, capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeInfluxV2()
    fake.script = lambda lines: (401, {}, {"code": "unauthorized", "message": "unauthorized access"})
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    robots = Robots()
    site = _site(tmp_path, auth_broker.port, fake.url, robots.url)
    scanned: dict[str, str] = {}

    # 1. a refused MQTT login (wrong password), reported but never echoed
    monkeypatch.setenv("MQTT_PASSWORD", WRONG_MQTT)
    gw = Gateway(load_config(site), store_path=tmp_path / "first.db")
    gw.start()
    try:
        assert wait_until(lambda: any(s.last_error for s in gw.sessions.values()), 10), gw.health()
        scanned["health (refused login)"] = json.dumps(gw.health(), default=str)
        assert "not authori" in scanned["health (refused login)"].lower()
    finally:
        gw.stop()
    monkeypatch.setenv("MQTT_PASSWORD", SECRETS["MQTT_PASSWORD"])

    # 2. validation errors: a broken file, a secret typed literally, an unset variable
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        site.read_text(encoding="utf-8")
        .replace('password: "${MQTT_PASSWORD}"', f'password: "{SECRETS["MQTT_PASSWORD"]}"')
        .replace('"${INFLUX_TOKEN}"', '"${NOT_SET_ANYWHERE}"')
        .replace("floors: 6", f"floors: {SECRETS['UNRELATED_SECRET']}"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    scanned["config errors"] = str(err.value)
    assert len(err.value.issues) >= 3

    # 3. the running gateway: ingest, SOS, failing sync (401), webhook and robot deliveries, API
    srv = ApiServer(site, tmp_path / "gateway.db").start()
    try:
        assert srv.gw.broker_connected, srv.gw.health()
        msgs = [
            ("zigbee2mqtt/b1/door", "{not json"),
            ("zigbee2mqtt/b1/door", json.dumps({"contact": "maybe"})),
            ("edge/v1/devices/fall-r1/state", '{"ts": 1}'),
            ("zigbee2mqtt/b1/door", json.dumps({"contact": True, "battery": 80})),
            ("zigbee2mqtt/b1/u1/sos", json.dumps({"action": "emergency"})),
        ]
        publish.multiple(
            [{"topic": t, "payload": p, "qos": 1} for t, p in msgs],
            hostname="127.0.0.1",
            port=auth_broker.port,
            auth={"username": "device", "password": "dev-pass"},
        )
        assert wait_until(lambda: srv.read("SELECT id FROM incidents WHERE type='sos'") != [], 10)
        assert wait_until(lambda: len(fake.received) >= 2, 15), "the sender never tried the central store"
        assert wait_until(lambda: srv.read("SELECT count(*) FROM deliveries WHERE attempts > 0")[0][0] > 0, 15)
        assert wait_until(lambda: srv.read("SELECT count(*) FROM channel_deliveries WHERE attempts > 0")[0][0] > 0, 15)
        assert wait_until(lambda: len(robots.paths) >= 2, 15)
        time.sleep(1.0)  # a few retries of each
        token = SECRETS["EDGE_GATEWAY_INSTALLER_TOKEN"]
        with srv.client(token) as c:
            spec = c.get("/api/v1/openapi.json")
            assert spec.status_code == 200
            scanned["GET /api/v1/openapi.json"] = spec.text
            resp = c.get("/api/v1/incidents")
            assert resp.status_code == 200, resp.text
            incidents = resp.json()
            items = incidents.get("items", incidents) if isinstance(incidents, dict) else incidents
            iid = items[0]["id"]
            paths = [p for p, ops in spec.json()["paths"].items() if "get" in ops]
            assert len(paths) >= 10
            for p in [*paths, "/console/", "/console/app.js"]:
                if p.endswith("/stream"):
                    continue  # endless SSE: covered by the stream tests' redaction checks
                url = p.replace("{incident_id}", iid).replace("{device_id}", "sos-r1")
                r = c.get(url)
                assert r.status_code < 500, (url, r.status_code, r.text[:300])
                scanned[f"GET {url} {r.status_code}"] = r.text + json.dumps(dict(r.headers))
        with srv.client("cegw_INSTALLtok-wrong-" + SECRETS["UNRELATED_SECRET"]) as c:
            r = c.get("/api/v1/incidents")
            assert r.status_code == 401
            scanned["401 response"] = r.text + json.dumps(dict(r.headers))
        scanned["health (running)"] = json.dumps(srv.gw.health(), default=str)
    finally:
        srv.stop()
        fake.close()
        robots.close()
    assert any(SECRETS["WECOM_KEY"] in p for p in robots.paths), robots.paths  # the keys were really used

    conn = sqlite3.connect(tmp_path / "gateway.db")
    scanned["store dump"] = "\n".join(conn.iterdump())
    conn.close()
    scanned["log"] = "\n".join(capture.lines)
    assert len(capture.lines) > 20 and len(scanned) > 15
    leaks = {where: _leaks(text) for where, text in scanned.items() if _leaks(text)}
    leaked_lines = [ln[:300] for ln in capture.lines if _leaks(ln)]
    assert not leaks, f"secrets leaked: {leaks}; log lines: {leaked_lines[:5]}"
