"""The parking view says *unknown* for a camera-watched space that cannot be judged, not the last
occupied/free: a native ``vehicle_unknown`` reading through the broker -> device values -> the
parking view (``/api/v1/parking``, which the console's lot plan draws: tests/test_console_site.py
checks the plan's colours in Chromium)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.install.mosquitto import Mosquitto
from tests.api_harness import ApiServer, write_api_site
from tests.conftest import MINI_DEVICES
from tests.support import TrackedPublisher, wait_until

pytestmark = pytest.mark.broker

CAM_SPACE = ("cam-fire", "native", "cam-fire", None, "parking_sensor", "location: {parking_space: fire1}")
DEVICES = [d for d in MINI_DEVICES if d[0] != "park-fire"] + [CAM_SPACE]


@pytest.fixture
def env(tmp_path: Path, private_broker: Mosquitto) -> Iterator[ApiServer]:
    srv = ApiServer(write_api_site(tmp_path, private_broker.port, devices=DEVICES), tmp_path / "gateway.db").start()
    try:
        yield srv
    finally:
        srv.stop()


def _send(port: int, values: dict[str, Any]) -> None:
    pub = TrackedPublisher("127.0.0.1", port, "vision-console")
    try:
        pub.publish_all([("edge/v1/devices/cam-fire/state", json.dumps({"values": values}).encode())])
    finally:
        pub.close()


def _space(c: Any, space: str) -> dict[str, Any]:
    for area in c.get("/api/v1/parking").json()["areas"]:
        for sp in area["spaces"]:
            if sp["id"] == space:
                return dict(sp)
    raise AssertionError(f"space {space} not in the parking view")


def test_parking_view_shows_unknown(env: ApiServer, private_broker: Mosquitto) -> None:
    token = env.token("installer")
    with env.client(token) as c:
        _send(private_broker.port, {"vehicle_present": True, "vehicle_unknown": False})
        assert wait_until(lambda: _space(c, "fire1")["state"] == "occupied", 15)
        _send(private_broker.port, {"vehicle_unknown": True})
        assert wait_until(lambda: _space(c, "fire1")["state"] == "unknown", 15)
        assert _space(c, "fire1")["why"] == "unsure"  # the console's words: camera cannot tell
