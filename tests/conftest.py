"""Fixtures for real components: the local Mosquitto, private brokers, small site configs."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.install.mosquitto import Mosquitto, free_port
from tests.support import port_open, service_missing

SYSTEM_BROKER = ("127.0.0.1", 1883)

MINI_SITE = """\
version: 1
gateway:
  id: {gateway_id}
  name: 测试网关
mqtt:
  host: 127.0.0.1
  port: {port}
ingest:
  max_payload_bytes: 65536
store:
  path: {store}
  quota_mb: {quota_mb}
  reserve_mb: {reserve_mb}
site:
  street: {{id: st1, name: 测试街道}}
  community: {{id: c1, name: 测试社区, households: 400}}
  grids:
    - {{id: g1, name: 第一网格, households: 200, grid_worker: gw1}}
    - {{id: g2, name: 第二网格, households: 200, grid_worker: gw2}}
  compounds:
    - id: cp1
      name: 和苑小区
      property_company: {{name: 和苑物业, duty_team: duty1}}
      buildings:
        - id: b1
          name: 1号楼
          grid: g1
          floors: 6
          units: [{{id: u1, name: 1单元, households: 24}}]
        - id: b2
          name: 2号楼
          grid: g2
          floors: 6
          units: [{{id: u1, name: 1单元, households: 24}}]
  parking_areas:
    - id: pa1
      name: 地面停车场
      compound: cp1
      spaces:
{spaces}
residents:
  - id: r1
    name: 张阿姨
    building: b1
    unit: u1
    eldercare_worker: ec1
    consent: {{given: true, date: 2026-01-05, recorded_by: ec1}}
staff:
  - {{id: gw1, name: 网格员一, role: grid_worker, phone: "13800000001"}}
  - {{id: gw2, name: 网格员二, role: grid_worker, phone: "13800000002"}}
  - {{id: ps1, name: 物业值班, role: property_staff, phone: "13800000003"}}
  - {{id: ec1, name: 养老护理员, role: eldercare_worker, phone: "13800000004"}}
teams:
  - {{id: duty1, name: 物业值班组, kind: property_duty, members: [ps1], compound: cp1}}
devices:
{devices}
"""

# (id, driver, address, friendly_name, type, location/resident yaml)
MINI_DEVICES = [
    ("sos-r1", "zigbee2mqtt", "0x00158d0000000001", "b1/u1/sos", "sos_button", "resident: r1"),
    ("door-b1", "zigbee2mqtt", "0x00158d0000000002", "b1/door", "door_contact", "location: {building: b1}"),
    ("pir-r1", "zigbee2mqtt", "0x00158d0000000003", "b1/u1/pir", "motion_sensor", "resident: r1"),
    ("park-01", "chirpstack", "70b3d57ed0000001", None, "parking_sensor", "location: {parking_space: p01}"),
    ("park-fire", "chirpstack", "70b3d57ed0000002", None, "parking_sensor", "location: {parking_space: fire1}"),
    ("fall-r1", "native", "fall-r1", None, "fall_radar", "resident: r1"),
    ("acc-b2", "native", "acc-b2", None, "access_controller", "location: {building: b2}"),
]


def device_yaml(devices: list[tuple[str, str, str, str | None, str, str]]) -> str:
    out = []
    for dev_id, driver, addr, friendly, dtype, extra in devices:
        out.append(f"  - id: {dev_id}\n    driver: {driver}\n    address: '{addr}'\n    type: {dtype}")
        if friendly:
            out.append(f"    friendly_name: {friendly}")
        out.append(f"    {extra}")
    return "\n".join(out)


def write_site(
    directory: Path,
    port: int,
    *,
    devices: list[tuple[str, str, str, str | None, str, str]] | None = None,
    gateway_id: str = "gw-test",
    quota_mb: int = 256,
    reserve_mb: int = 8,
) -> Path:
    path = directory / "site.yaml"
    text = MINI_SITE.format(
        gateway_id=gateway_id,
        port=port,
        store=directory / "gateway.db",
        quota_mb=quota_mb,
        reserve_mb=reserve_mb,
        devices=device_yaml(devices if devices is not None else MINI_DEVICES),
        spaces="\n".join(
            [f"        - {{id: p{i:02d}, kind: normal, max_stay_min: 240}}" for i in range(24)]
            + ["        - {id: fire1, kind: fire_lane}", "        - {id: nopark1, kind: no_parking}"]
        ),
    )
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def system_broker() -> tuple[str, int]:
    if not port_open(*SYSTEM_BROKER):
        service_missing("Mosquitto at 127.0.0.1:1883")
    return SYSTEM_BROKER


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: mosquitto may need to reach the folder as another user.
    with tempfile.TemporaryDirectory(prefix="edge-broker-") as d:
        yield Path(d)


@pytest.fixture
def private_broker(broker_dir: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of our own with the recommended config (deploy/mosquitto.conf)."""
    try:
        m = Mosquitto(broker_dir).start()
    except RuntimeError as exc:
        service_missing(f"mosquitto executable ({exc})")
        raise
    yield m
    m.stop()


@pytest.fixture
def api_port() -> int:
    return free_port()
