"""The parking view says *unknown* for a camera-watched space that cannot be judged, not the last
occupied/free: a native ``vehicle_unknown`` reading through the broker -> device values -> the
console's device list in a real headless Chromium."""

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
from tests.test_console_browser import _errors, _sign_in, browser  # noqa: F401 (fixture)

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


def test_parking_view_shows_unknown(browser: Any, env: ApiServer, private_broker: Mosquitto) -> None:  # noqa: F811
    token = env.token("installer")
    with env.client(token) as c:

        def values() -> dict[str, Any]:
            return c.get("/api/v1/devices/cam-fire").json().get("values") or {}

        _send(private_broker.port, {"vehicle_present": True, "vehicle_unknown": False})
        assert wait_until(lambda: values().get("vehicle_present") is True, 15)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
        errors = _errors(page)
        _sign_in(page, env.base, token)
        page.wait_for_selector("li.device[data-id='cam-fire'] .space.occupied", timeout=5000)
        _send(private_broker.port, {"vehicle_unknown": True})
        assert wait_until(lambda: values().get("vehicle_unknown") is True, 15)
        page.reload()  # the session is kept: the device list is read again
        page.wait_for_selector("body[data-state='signed-in']", timeout=10_000)
        tag = page.wait_for_selector("li.device[data-id='cam-fire'] .space.unknown", timeout=5000)
        assert tag is not None and tag.text_content().strip() in (
            "unknown (camera cannot tell)",
            "未知（摄像头无法判断）",
        )
        assert page.locator("li.device[data-id='cam-fire'] .space.occupied").count() == 0
        assert [e for e in errors if "favicon" not in e] == []
