"""A generated benchmark site: the mini topology with ~1,000 devices across the three drivers."""

from __future__ import annotations

from pathlib import Path

HEADER = """\
version: 1
gateway: {{id: gw-bench, name: bench}}
mqtt: {{host: 127.0.0.1, port: {port}}}
store: {{path: {store}, quota_mb: 4096, reserve_mb: 64, group_commit_ms: {group_commit_ms}}}
site:
  street: {{id: st1, name: 街道}}
  community: {{id: c1, name: 社区, households: 3000}}
  grids:
    - {{id: g1, name: 网格一, households: 200, grid_worker: gw1}}
  compounds:
    - id: cp1
      name: 小区
      property_company: {{name: 物业, duty_team: duty1}}
      buildings:
{buildings}
  parking_areas:
    - id: pa1
      name: 停车场
      compound: cp1
      spaces:
{spaces}
{residents}
staff:
  - {{id: gw1, name: 网格员, role: grid_worker, phone: "13800000001"}}
  - {{id: ps1, name: 物业值班, role: property_staff, phone: "13800000003"}}
  - {{id: ec1, name: 护理员, role: eldercare_worker, phone: "13800000004"}}
teams:
  - {{id: duty1, name: 值班组, kind: property_duty, members: [ps1], compound: cp1}}
devices:
{devices}
"""


def write_bench_site(
    directory: Path,
    port: int,
    *,
    zigbee: int = 400,
    lorawan: int = 300,
    native: int = 300,
    sos: int = 0,
    extra_yaml: str = "",
    group_commit_ms: int = 200,
) -> Path:
    """Ordinary telemetry devices (doors, parking sensors, access controllers) plus ``sos`` SOS
    buttons, each in its own elder-care home (resident with consent)."""
    buildings = "\n".join(
        f"        - {{id: b{i}, name: {i}号楼, grid: g1, floors: 18, units: [{{id: u1, name: 1单元, households: 72}}]}}"
        for i in range(20)
    )
    spaces = "\n".join(f"        - {{id: s{i:04d}, kind: normal, max_stay_min: 600}}" for i in range(lorawan))
    residents = (
        "residents:\n"
        + "\n".join(
            f"  - {{id: r{i:04d}, name: 老人{i}, building: b{i % 20}, unit: u1, eldercare_worker: ec1,"
            f" consent: {{given: true, date: 2026-01-05, recorded_by: ec1}}}}"
            for i in range(sos)
        )
        if sos
        else "residents: []"
    )
    devs: list[str] = []
    for i in range(zigbee):
        devs.append(
            f"  - {{id: door-{i:04d}, driver: zigbee2mqtt, address: '0x00158d0001{i:06x}', "
            f"friendly_name: b{i % 20}/door{i}, type: door_contact, location: {{building: b{i % 20}}}}}"
        )
    for i in range(lorawan):
        devs.append(
            f"  - {{id: park-{i:04d}, driver: chirpstack, address: '70b3d57ed001{i:04x}', "
            f"type: parking_sensor, location: {{parking_space: s{i:04d}}}}}"
        )
    for i in range(native):
        devs.append(
            f"  - {{id: acc-{i:04d}, driver: native, address: acc-{i:04d}, type: access_controller, "
            f"location: {{building: b{i % 20}}}}}"
        )
    for i in range(sos):
        devs.append(
            f"  - {{id: sos-{i:04d}, driver: zigbee2mqtt, address: '0x00158d0002{i:06x}', "
            f"friendly_name: home{i}/sos, type: sos_button, resident: r{i:04d}, "
            f"location: {{building: b{i % 20}, unit: u1, room: home{i}}}}}"
        )
    text = HEADER.format(
        port=port,
        group_commit_ms=group_commit_ms,
        store=directory / "gateway.db",
        buildings=buildings,
        spaces=spaces or "        []",
        residents=residents,
        devices="\n".join(devs),
    )
    path = directory / "site.yaml"
    path.write_text(text + extra_yaml, encoding="utf-8")
    return path
