"""Messages the broker dropped are visible everywhere an operator looks (issue 23, item 3).

A Mosquitto with a small queue (the stock max_queued_messages is 1000) throws away what a stopped
gateway's persistent session cannot hold. The gateway sees the broker's own drop counter and must
show it in /metrics, /readyz (degraded until the incident is closed), `edge-gateway status` and
as a device-health incident the installer sees in the console.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.publish as publish
import pytest

from edge_config import load_config
from gateway.app import Gateway
from gateway.core import incidents as inc
from gateway.install.mosquitto import Mosquitto
from tests.api_harness import ApiServer, write_api_site
from tests.support import ROOT, service_missing, wait_until

I18N = ROOT / "gateway" / "console" / "i18n"
SYS_TOPIC = "$SYS/broker/publish/messages/dropped"


@pytest.fixture
def small_queue_broker(broker_dir: Path) -> Iterator[Mosquitto]:
    try:
        broker = Mosquitto(broker_dir, extra="max_queued_messages 100\nsys_interval 1\n").start()
    except RuntimeError as exc:
        service_missing(f"mosquitto executable ({exc})")
        raise
    yield broker
    broker.stop()


def status(site: Path, db: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "status", "--config", str(site), "--store", str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(out.stdout))


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_broker_drops_are_counted_raised_and_degrade_readiness_until_closed(
    tmp_path: Path, small_queue_broker: Mosquitto
) -> None:
    broker = small_queue_broker
    site = write_api_site(tmp_path, broker.port)
    db = tmp_path / "gateway.db"
    first = Gateway(load_config(site), store_path=db)
    first.start()  # creates the persistent sessions the broker then queues for
    assert wait_until(lambda: first.broker_connected, 10)
    first.stop()
    msgs = [
        {"topic": "zigbee2mqtt/b1/door", "payload": json.dumps({"contact": True, "battery": i % 100}), "qos": 1}
        for i in range(600)
    ]
    publish.multiple(msgs, hostname="127.0.0.1", port=broker.port)

    srv = ApiServer(site, db).start()
    try:
        installer = srv.token("installer")
        with srv.client(installer) as c:

            def drop_incidents() -> list[dict[str, Any]]:
                items = c.get("/api/v1/incidents").json()["items"]
                return [i for i in items if i["type"] == "broker_dropped_messages"]

            assert wait_until(lambda: drop_incidents() != [], 20), "no incident for the broker's drops"
            (incident,) = drop_incidents()
            dropped = incident["detail"]["dropped"]
            assert dropped >= 400, incident["detail"]
            assert incident["category"] == "device_health" and incident["severity"] == "major"
            assert incident["detail"]["broker"] == f"127.0.0.1:{broker.port}"
            assert incident["detail"]["topic"] == SYS_TOPIC

            # The broker repeats its (unchanged) counter every second: nothing is counted twice.
            time.sleep(2.5)
            assert [i["count"] for i in drop_incidents()] == [1]

            text = c.get("/metrics").text
            assert metric(text, "edge_broker_dropped_messages_total") == dropped
            assert metric(text, "edge_broker_drops_open") == 1
            r = c.get("/readyz")
            assert r.status_code == 200, "ingest works: degraded, not unready"
            body = r.json()
            assert body["status"] == "degraded" and body["ready"] is True
            assert body["broker_drops"] == {
                "ok": True,
                "degraded": True,
                "dropped_total": dropped,
                "open_incident": incident["id"],
                "dropped_since_open": dropped,
            }
            cli = status(site, db)["broker_drops"]
            assert cli["dropped_total"] == dropped and cli["open_incident"] == incident["id"]

            # The installer sees it in the console: the type has a label in both languages.
            for lang in ("zh", "en"):
                labels = json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8"))["type"]
                assert labels.get("broker_dropped_messages", "broker_dropped_messages") != "broker_dropped_messages"

            # Closed (the broker's queue settings fixed): ready again; the counter stays.
            store = inc.IncidentStore(srv.cfg.gateway.id, srv.gw.config_rev)

            def close(conn: sqlite3.Connection, result: Any, now: int) -> None:
                store.transition(conn, result, incident["id"], "resolved", now, now, actor="ps1")

            srv.gw.pipeline.call(close).result(10)
            body = c.get("/readyz").json()
            assert body["status"] == "ready" and body["broker_drops"]["degraded"] is False
            text = c.get("/metrics").text
            assert metric(text, "edge_broker_dropped_messages_total") == dropped
            assert metric(text, "edge_broker_drops_open") == 0
            cli = status(site, db)["broker_drops"]
            assert cli == {"dropped_total": dropped, "open_incident": None, "dropped_since_open": None}
    finally:
        srv.stop()


def test_each_drop_is_counted_once_across_gateway_and_broker_restarts(tmp_path: Path) -> None:
    """The broker's total is a running count since *it* started: a gateway restart must not count
    it again, a broker restart (total back near 0) must count what follows."""
    site = write_api_site(tmp_path, 1)  # no broker needed: the $SYS reports are handed in directly
    db = tmp_path / "gateway.db"

    def report(gw: Gateway, payload: bytes) -> None:
        gw.drops.on_sys(SYS_TOPIC, payload)
        gw.pipeline.call(lambda c, r, n: None).result(10)  # calls run in order: the report is written

    def read(sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(db) as conn:
            return conn.execute(sql).fetchall()

    for payloads in ([b"700", b"700", b"not a number", b"-5"], [b"700", b"50", b"0", b"30"]):
        gw = Gateway(load_config(site), store_path=db)
        gw.pipeline.start()
        try:
            for p in payloads:
                report(gw, p)
        finally:
            gw.pipeline.stop()
            gw.store.close()
    # 700 before the gateway restart; then 50 after a broker restart, and 30 after another one.
    assert read("SELECT value FROM counters WHERE name='broker_dropped_messages'") == [(780,)]
    assert [json.loads(d)["dropped"] for (d,) in read("SELECT detail FROM gateway_events ORDER BY id")] == [700, 50, 30]
    ((count, detail),) = read("SELECT count, detail FROM incidents WHERE type='broker_dropped_messages'")
    assert count == 3 and json.loads(detail)["dropped"] == 780
