"""Notification delivery: a real local webhook receiver that fails first, and the real broker."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.install.mosquitto import Mosquitto
from gateway.tickets.notify import NotifySender, paho_publisher
from tests.tickets_harness import TicketHarness

SECRET = "s3cret-for-tests"


class Receiver:
    """http.server on a free port: the first ``fail_first`` requests per path answer 500."""

    def __init__(self, fail_first: int = 1) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes, int]] = []
        self.fail_first = fail_first
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                seen = sum(1 for r in outer.requests if r[0] == self.path)
                code = 500 if seen < outer.fail_first else 200
                outer.requests.append((self.path, dict(self.headers), body, code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def wait(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def verify(headers: dict[str, str], body: bytes) -> bool:
    """Independent check of the documented scheme: t=<ms>,v1=hex(HMAC-SHA256(secret, t + "." + body))."""
    parts = dict(p.split("=", 1) for p in headers["X-Edge-Signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(parts["v1"], expected) and parts["t"] == headers["X-Edge-Timestamp"]


def test_webhook_fails_then_recovers_signed_and_recorded(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TK_SECRET", SECRET)
    extra = f"""\
  mqtt: false
  retry_min_s: 0.05
  retry_max_s: 0.2
  webhooks:
    - {{name: care, url: "http://127.0.0.1:{receiver.port}/care", secret: "${{TK_SECRET}}", elder_care: true,
       roles: [eldercare_worker]}}
    - {{name: ladder, url: "http://127.0.0.1:{receiver.port}/ladder", secret: "${{TK_SECRET}}"}}
"""
    h = TicketHarness(tmp_path, extra=extra)
    h.send("sos-r1", "sos")
    iid = h.incidents()[-1]["id"]
    rows = h.store.conn.execute("SELECT channel, target, event FROM deliveries ORDER BY id").fetchall()
    assert ("webhook", "care", "dispatched") in rows and ("webhook", "ladder", "dispatched") in rows
    assert not [r for r in rows if r[0] == "mqtt"]
    h.pipeline.start()
    sender = NotifySender(h.db, h.cfg, call=h.pipeline.call, incidents=h.ctx.incidents)
    sender.start()
    try:
        wait(lambda: h.store.conn.execute("SELECT count(*) FROM deliveries WHERE status!='sent'").fetchone()[0] == 0)
    finally:
        sender.stop()
        h.pipeline.stop()
    care = [r for r in receiver.requests if r[0] == "/care"]
    assert [r[3] for r in care][:2] == [500, 200]
    for path, headers, body, _ in receiver.requests:
        assert verify(headers, body), path
        assert not verify({**headers, "X-Edge-Signature": headers["X-Edge-Signature"][:-1] + "0"}, body + b" ")
    first = json.loads(care[1][2])
    assert first["v"] == 1 and first["incident"]["id"] == iid and first["incident"]["category"] == "eldercare"
    assert first["personal"]["name"] == "张阿姨" and first["personal"]["resident_id"] == "r1"  # elder-care channel
    ladder = [json.loads(r[2]) for r in receiver.requests if r[0] == "/ladder" and r[3] == 200]
    assert ladder and all("personal" not in m for m in ladder)
    assert all(m["incident"]["location"]["building"] == "b1" for m in ladder)  # the location always
    assert "张阿姨" not in b"".join(r[2] for r in receiver.requests if r[0] == "/ladder").decode()
    # every attempt is on the incident's timeline
    attempts = [e["data"] for e in h.timeline(iid) if e["kind"] == "notify_attempt" and e["data"]["webhook"] == "care"]
    assert attempts[0]["ok"] is False and attempts[0]["status"] == 500 and attempts[0]["retry_in_s"] > 0
    same = [a for a in attempts if a["delivery"] == attempts[0]["delivery"]]
    assert [(a["attempt"], a["ok"]) for a in same] == [(1, False), (2, True)]
    rel = h.store.conn.execute("SELECT recipient, fields FROM personal_releases WHERE recipient='care'").fetchall()
    assert rel and "name" in json.loads(rel[0][1])
    h.close()


@pytest.mark.broker
def test_mqtt_notifications_on_the_real_broker(tmp_path: Path, private_broker: Mosquitto) -> None:
    got: list[tuple[str, dict[str, Any], int]] = []
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="tk-sub")
    sub.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload), m.qos))
    sub.connect("127.0.0.1", private_broker.port)
    sub.subscribe("edge/gw-tk/incidents/#", qos=1)
    sub.loop_start()
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="tk-pub")
    pub.connect("127.0.0.1", private_broker.port)
    pub.loop_start()
    h = TicketHarness(tmp_path)
    try:
        wait(pub.is_connected)
        time.sleep(0.2)  # subscription active
        h.send("sos-r1", "sos")
        iid = h.incidents()[-1]["id"]
        h.pipeline.start()
        sender = NotifySender(h.db, h.cfg, call=h.pipeline.call, publish=paho_publisher(lambda: pub))
        sender.start()
        try:
            wait(lambda: any(t.endswith("/dispatched") for t, _, _ in got))
        finally:
            sender.stop()
            h.pipeline.stop()
    finally:
        sub.loop_stop()
        pub.loop_stop()
        h.close()
    topic, msg, qos = next(g for g in got if g[0].endswith("/dispatched"))
    assert topic == "edge/gw-tk/incidents/eldercare/dispatched" and qos == 1
    assert msg["incident"]["id"] == iid and msg["assignee"] == {"person": "ec1", "team": "eldercare",
                                                                 "role": "eldercare_worker"}  # fmt: skip
    assert msg["recipients"] == [{"person": "ec1", "role": "eldercare_worker"}]
    assert all("r1" not in json.dumps(m) and "张阿姨" not in json.dumps(m) for _, m, _ in got)  # no personal data
