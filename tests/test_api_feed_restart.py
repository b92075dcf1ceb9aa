"""The central platform's feed resumes across a gateway kill -9 with no gap and nothing missed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import paho.mqtt.publish as publish

from gateway.install.mosquitto import Mosquitto
from tests.conftest import write_site
from tests.support import ROOT, GatewayProcess, wait_until


def feed(port: int, token: str, after: int) -> dict:  # type: ignore[type-arg]
    r = httpx.get(
        f"http://127.0.0.1:{port}/api/v1/feed/incidents",
        params={"after": after, "limit": 500},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def read_all(port: int, token: str, after: int) -> tuple[list[dict], int]:  # type: ignore[type-arg]
    items: list[dict] = []  # type: ignore[type-arg]
    while True:
        page = feed(port, token, after)
        items += page["items"]
        after = page["next_cursor"]
        if not page.get("has_more"):
            return items, after


def test_feed_resumes_across_kill9_without_gaps(tmp_path: Path, private_broker: Mosquitto, api_port: int) -> None:
    site = write_site(tmp_path, private_broker.port)
    db = tmp_path / "gateway.db"
    gw = GatewayProcess(site, db, tmp_path, api_port).start()
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "token",
                "create",
                "--config",
                str(site),
                "--store",
                str(db),
                "--role",
                "central_platform",
                "--name",
                "district",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        token = out.stdout.strip().splitlines()[-1]

        def press(topic: str, payload: dict) -> None:  # type: ignore[type-arg]
            publish.single(topic, json.dumps(payload), qos=1, hostname="127.0.0.1", port=private_broker.port)

        press("zigbee2mqtt/b1/u1/sos", {"action": "emergency"})
        assert wait_until(lambda: len(feed(api_port, token, 0)["items"]) >= 1, 15)
        first, cursor = read_all(api_port, token, 0)
        assert any(e["kind"] == "created" for e in first)

        # More changes, then the gateway dies hard; the consumer still holds its cursor.
        press("edge/v1/devices/fall-r1/event", {"event": "fall"})
        press("zigbee2mqtt/b1/u1/sos", {"action": "emergency"})  # a repeat of the open SOS
        assert wait_until(lambda: len(feed(api_port, token, cursor)["items"]) >= 2, 15)
        gw.kill9()
        press("edge/v1/devices/acc-b2/event", {"event": "door_forced"})  # queued at the broker meanwhile
        gw.start()
        assert wait_until(
            lambda: any(e["incident"]["type"] == "door_forced" for e in read_all(api_port, token, cursor)[0]), 20
        )
        rest, _ = read_all(api_port, token, cursor)
        seqs = [e["seq"] for e in first + rest]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "commit order, no repeats within a read"
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gap in the cursor"
        types = {e["incident"]["type"] for e in first + rest if e["kind"] == "created"}
        assert {"sos", "fall", "door_forced"} <= types
        assert any(e["kind"] == "repeated" for e in rest)
    finally:
        gw.stop()
