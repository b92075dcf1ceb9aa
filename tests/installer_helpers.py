"""Helpers for the installer tests (issue 8): site files with extra sections and devices."""

from __future__ import annotations

from pathlib import Path

from gateway.install.mosquitto import free_port
from tests.conftest import MINI_DEVICES, write_site

# A second building with six devices that report availability (the power-loss scenario needs a
# building of at least rules.group_min_devices = 5 such devices).
B2_DEVICES = [
    *[
        (
            f"b2-door-{i}",
            "zigbee2mqtt",
            f"0x00158d00000002{i:02x}",
            f"b2/door{i}",
            "door_contact",
            "location: {building: b2}",
        )
        for i in range(3)
    ],
    *[
        (f"b2-acc-{i}", "native", f"b2-acc-{i}", None, "access_controller", "location: {building: b2}")
        for i in range(3)
    ],
]
SCENARIO_DEVICES = [*MINI_DEVICES, *B2_DEVICES]


def site(directory: Path, port: int, *, extra: str = "", devices: list | None = None, **kw: object) -> Path:
    """tests.conftest.write_site plus an API on a free port and extra top-level YAML sections."""
    path = write_site(directory, port, devices=devices, **kw)  # type: ignore[arg-type]
    text = path.read_text(encoding="utf-8")
    head, sep, tail = text.partition("devices:\n")
    path.write_text(head + f"api:\n  port: {free_port()}\n" + extra + sep + tail, encoding="utf-8")
    return path
