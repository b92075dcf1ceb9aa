"""In-process harness for the rule tests: a real store, routing, Pipeline and RuleEngine driven
by a controllable clock, fed with real driver payloads (gateway/install/traffic.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge_config import load_config
from gateway.core import incidents as inc
from gateway.core import store as st
from gateway.core.contract import BatchResult
from gateway.ingest.mqtt import LIFE_SAFETY, TELEMETRY, Inbound
from gateway.ingest.pipeline import Pipeline
from gateway.ingest.routing import build_routing
from gateway.install import traffic
from gateway.rules import RuleEngine

TZ = ZoneInfo("Asia/Shanghai")
# Monday 2026-03-02 10:00 Asia/Shanghai
T0 = int(dt.datetime(2026, 3, 2, 10, 0, tzinfo=TZ).timestamp() * 1000)

SITE = """\
version: 1
gateway:
  id: {gateway_id}
  name: 规则测试网关
mqtt:
  host: 127.0.0.1
  port: {port}
store:
  path: {store}
  quota_mb: 256
  reserve_mb: 8
site:
  street: {{id: st1, name: 测试街道}}
  community: {{id: c1, name: 测试社区, households: 400}}
  grids:
    - {{id: g1, name: 第一网格, households: 200, grid_worker: gw1}}
  compounds:
    - id: cp1
      name: 和苑小区
      property_company: {{name: 和苑物业, duty_team: duty1}}
      buildings:
        - {{id: b1, name: 1号楼, grid: g1, floors: 6, units: [{{id: u1, name: 1单元}}]}}
        - {{id: b2, name: 2号楼, grid: g1, floors: 6, units: [{{id: u1, name: 1单元}}]}}
        - {{id: b3, name: 3号楼, grid: g1, floors: 6, units: [{{id: u1, name: 1单元}}]}}
  parking_areas:
    - id: pa1
      name: 地面停车场
      compound: cp1
      spaces:
        - {{id: p01, kind: normal, max_stay_min: 30}}
        - {{id: fire1, kind: fire_lane}}
        - {{id: nopark1, kind: no_parking}}
{extra_spaces}
residents:
  - id: r1
    name: 张阿姨
    building: b1
    unit: u1
    eldercare_worker: ec1
    consent: {{given: true, date: 2026-01-05, recorded_by: ec1}}
    inactivity_hours: 2
    active_hours: {{start: "07:00", end: "22:00"}}
  - id: r2
    name: 李大爷
    building: b1
    unit: u1
    eldercare_worker: ec1
    consent: {{given: true, date: 2026-01-05, recorded_by: ec1}}
    flags: [dementia]
    inactivity_hours: 4
    active_hours: {{start: "07:00", end: "21:00"}}
staff:
  - {{id: gw1, name: 网格员一, role: grid_worker}}
  - {{id: ps1, name: 物业值班, role: property_staff}}
  - {{id: ec1, name: 养老护理员, role: eldercare_worker}}
teams:
  - {{id: duty1, name: 物业值班组, kind: property_duty, members: [ps1], compound: cp1}}
rules:
  clear_hold_s: 30
  offline_hold_s: 30
  lorawan_gateway_silent_s: 3600
  intrusion_zones:
    - id: z-power
      name: 配电房
      devices: [pir-zone]
      armed: [{{start: "22:00", end: "06:00"}}]
devices:
{devices}
"""

Z = "zigbee2mqtt"
DEVICES: list[tuple[str, str, str, str | None, str, str]] = [
    ("sos-r1", Z, "0x00158d0000000001", "b1/u1/sos", "sos_button", "resident: r1"),
    ("pir-r1", Z, "0x00158d0000000003", "b1/u1/pir", "motion_sensor", "resident: r1"),
    ("fall-r1", "native", "fall-r1", None, "fall_radar", "resident: r1"),
    ("wear-r1", "native", "wear-r1", None, "wearable", "resident: r1"),
    ("exit-r2", Z, "0x00158d0000000004", "b1/u1/exit2", "exit_door_contact", "resident: r2"),
    ("pres-r2", Z, "0x00158d0000000005", "b1/u1/pres2", "presence_sensor", "resident: r2"),
    ("door-b1", Z, "0x00158d0000000002", "b1/door", "door_contact", "location: {building: b1}"),
    ("smoke-b1", Z, "0x00158d0000000006", "b1/smoke", "smoke_detector", "location: {building: b1}"),
    ("gas-b1", Z, "0x00158d0000000007", "b1/gas", "gas_detector", "location: {building: b1}"),
    ("leak-b1", Z, "0x00158d0000000008", "b1/leak", "water_leak", "location: {building: b1}"),
    ("acc-b2", "native", "acc-b2", None, "access_controller", "location: {building: b2}"),
    ("gate-1", "native", "gate-1", None, "barrier_gate", "location: {area: 东门}"),
    ("park-01", "chirpstack", "70b3d57ed0000001", None, "parking_sensor", "location: {parking_space: p01}"),
    ("park-fire", "chirpstack", "70b3d57ed0000002", None, "parking_sensor", "location: {parking_space: fire1}"),
    ("park-np", "chirpstack", "70b3d57ed0000003", None, "parking_sensor", "location: {parking_space: nopark1}"),
    ("pir-zone", Z, "0x00158d0000000009", "b2/power/pir", "motion_sensor", "location: {building: b2, area: 配电房}"),
] + [
    (f"plug-b3-{i}", Z, f"0x00158d00000000a{i}", f"b3/plug{i}", "plug", "location: {building: b3}") for i in range(1, 7)
]


def device_yaml(devices: list[tuple[str, str, str, str | None, str, str]]) -> str:
    out = []
    for dev_id, driver, addr, friendly, dtype, extra in devices:
        out.append(f"  - id: {dev_id}\n    driver: {driver}\n    address: '{addr}'\n    type: {dtype}")
        if friendly:
            out.append(f"    friendly_name: {friendly}")
        out.append(f"    {extra}")
    return "\n".join(out)


def write_rules_site(
    directory: Path,
    port: int = 1883,
    *,
    devices: list[tuple[str, str, str, str | None, str, str]] | None = None,
    gateway_id: str = "gw-rules",
    extra_spaces: str = "",
) -> Path:
    path = directory / "site.yaml"
    path.write_text(
        SITE.format(
            gateway_id=gateway_id,
            port=port,
            store=directory / "gateway.db",
            devices=device_yaml(devices if devices is not None else DEVICES),
            extra_spaces=extra_spaces,
        ),
        encoding="utf-8",
    )
    return path


class FakeClock:
    """Wall and monotonic ms; ``advance`` moves both, ``step`` moves only the wall clock."""

    def __init__(self, wall: int = T0) -> None:
        self.wall_ms = wall
        self.mono_ms = 1_000_000

    def wall(self) -> int:
        return self.wall_ms

    def mono(self) -> int:
        return self.mono_ms

    def set(self, wall: int) -> None:
        delta = wall - self.wall_ms
        self.wall_ms = wall
        self.mono_ms += max(delta, 0)

    def step(self, delta_ms: int) -> None:
        self.wall_ms += delta_ms


class Harness:
    def __init__(self, directory: Path, cfg: Any | None = None, clock: FakeClock | None = None) -> None:
        self.dir = directory
        if cfg is None:
            cfg = load_config(write_rules_site(directory))
        self.cfg = cfg
        self.clock = clock or FakeClock()
        self.db = directory / "gateway.db"
        self.sim = {d.id: d for d in traffic.sim_devices(cfg)}
        self._mid = 0
        self.results: list[BatchResult] = []
        self.open()

    def open(self) -> None:
        self.store = st.Store(self.db, st.Quota(256 * 1024 * 1024, 8 * 1024 * 1024))
        self.store.conn.execute("BEGIN IMMEDIATE")
        rev = self.store.config_rev_id(self.cfg.revision, self.cfg.version)
        self.store.conn.execute("COMMIT")
        self.routing = build_routing(self.cfg)
        self.engine = RuleEngine(self.cfg, mono=self.clock.mono)
        self.pipeline = Pipeline(
            self.store,
            self.routing,
            config_rev=rev,
            acker=lambda s, items: None,
            stages=[self.engine],
            on_commit=self.results.append,
            clock=self.clock.wall,
        )

    def close(self) -> None:
        self.store.close()

    def restart(self, down_until_ms: int | None = None) -> None:
        """Close everything and start again on the same store (a process restart: new monotonic
        origin, fresh memory)."""
        self.close()
        if down_until_ms is not None:
            self.clock.set(down_until_ms)
        self.clock.mono_ms += 10_000_000  # a new boot: monotonic restarts elsewhere
        self.open()

    # --- input ---------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self._mid += 1
        session = LIFE_SAFETY if self.routing.is_safety_topic(topic) else TELEMETRY
        self.pipeline.submit(
            Inbound(session, 0, self._mid % 65535 + 1, 1, topic, payload, retain, False, self.clock.wall_ms, 0)
        )
        self.pipeline.run_once()

    def send(self, dev_id: str, what: str, arg: Any = None) -> None:
        d = self.sim[dev_id]
        if what == "state":
            topic, payload = traffic.state(d, arg)
            if d.driver == "native" and isinstance(arg, dict) and "ts" in arg:
                payload = json.dumps({"ts": arg.pop("ts"), "values": arg}).encode()
        elif what == "sos":
            topic, payload = traffic.sos_press(d)
        elif what == "event":
            topic, payload = traffic.event(d, arg)
        elif what == "avail":
            topic, payload = traffic.availability(d, bool(arg))
        else:
            raise ValueError(what)
        self.publish(topic, payload)

    def bridge(self, online: bool) -> None:
        self.publish("zigbee2mqtt/bridge/state", json.dumps({"state": "online" if online else "offline"}).encode())

    def at(self, seconds: float) -> None:
        """Move the clock to T0 + seconds (never back) and run a pipeline tick."""
        self.clock.set(max(self.clock.wall_ms, T0 + int(seconds * 1000)))
        self.tick()

    def tick(self) -> None:
        self.pipeline._next_tick = 0.0
        self.pipeline.run_once()

    # --- output --------------------------------------------------------------------------------
    def incidents(self) -> list[dict[str, Any]]:
        return inc.all_incidents(self.store.conn)

    def events(self) -> list[dict[str, Any]]:
        return [e.as_feed() for e in inc.events(self.store.conn, 0, 100_000)]
