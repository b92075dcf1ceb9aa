"""200 devices of two buildings go offline through the real broker: what the staff are told.

A whole gateway on a private Mosquitto with the default channel configuration; 100 smart plugs
in each of two buildings of one compound report ``offline`` (Zigbee2MQTT availability),
interleaved, within ~4 s. Expected: one offline incident per building (the detection's part), and
on each robot one message that says how many devices are offline, with the per-building
breakdown, since when, and a link to each incident.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from edge_config import load_config
from gateway.app import Gateway
from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from tests.channels_receivers import DingtalkReceiver, WecomReceiver, write_e2e_site
from tests.support import TrackedPublisher, wait_until

pytestmark = pytest.mark.broker

ENV = {"WK": "wk-storm", "DT": "dt-ops", "DS": "SECops"}
PER_BUILDING = 100


def plugs() -> str:
    out = []
    for b, base in (("b3", 0x200000), ("b4", 0x300000)):
        for n in range(PER_BUILDING):
            out.append(
                f"  - {{id: plug-{b}-x{n}, driver: zigbee2mqtt, address: '0x00158d0000{base + n:06x}', type: plug,"
                f" friendly_name: {b}/plugx{n}, location: {{building: {b}, unit: u1}}}}\n"
            )
    return "".join(out)


def offline_groups(db: Path) -> list[tuple[str, str, str | None]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [
            (str(i), str(t), b)
            for i, t, b in conn.execute(
                "SELECT id, type, building FROM incidents WHERE type IN"
                " ('building_offline', 'compound_offline', 'device_offline')"
            )
        ]
    finally:
        conn.close()


def test_offline_storm_of_two_buildings_counts_and_breakdown(tmp_path: Path, private_broker: Mosquitto) -> None:
    wecom = WecomReceiver(ENV["WK"])
    ops = DingtalkReceiver(ENV["DT"], ENV["DS"])
    channels = f"""\
channels:
  console_base_url: "https://gw.example.cn:8443"
  wecom:
    - {{name: duty, base_url: "{wecom.base_url}", key: "${{WK}}", broadcast: true}}
  dingtalk:
    - {{name: ops, base_url: "{ops.base_url}", access_token: "${{DT}}", secret: "${{DS}}", broadcast: true}}
"""
    cfg = load_config(write_e2e_site(tmp_path, private_broker.port, channels=channels, devices=plugs()), env=ENV)
    sim = {d.id: d for d in traffic.sim_devices(cfg)}
    db = tmp_path / "gateway.db"
    gw = Gateway(cfg, store_path=db)
    gw.start()
    pub = TrackedPublisher("127.0.0.1", private_broker.port, "e2e-offline")
    try:
        assert wait_until(lambda: gw.broker_connected, 15)
        msgs = [traffic.availability(sim[f"plug-{b}-x{n}"], False) for n in range(PER_BUILDING) for b in ("b3", "b4")]
        start = time.monotonic()
        pub.publish_all(msgs, pace=4.0 / len(msgs))

        def storm_told() -> bool:
            return all(any("设备离线" in x.content for x in rx.delivered()) for rx in (wecom, ops))

        wait_until(storm_told, 25, 0.2)
        time.sleep(1.0)  # anything that would follow the first message (a second, overlapping incident)
    finally:
        pub.close()
        gw.stop()
    try:
        groups = offline_groups(db)
        print("offline incidents:", groups)
        for name, rx in (("duty", wecom), ("ops", ops)):
            storm = [x for x in rx.delivered() if "设备离线" in x.content]
            print(f"{name}: {len(storm)} storm message(s) after {storm[0].t - start:.1f} s:\n{storm[0].content}")
        # the detection's part: one incident per building, nothing double-counted by a compound incident
        assert sorted((t, b) for _i, t, b in groups) == [("building_offline", "b3"), ("building_offline", "b4")]
        for name, rx in (("duty", wecom), ("ops", ops)):
            storm = [x for x in rx.delivered() if "设备离线" in x.content]
            assert len(storm) == 1, (name, [x.title for x in storm])
            body = storm[0].content
            assert "200台设备离线" in body, name  # how many
            assert "3号楼 100台" in body and "4号楼 100台" in body, name  # the per-building breakdown
            assert "最早" in body and "和苑小区" in body, name  # since when, where
            for iid, _t, _b in groups:
                assert f"https://gw.example.cn:8443/#incident={iid}" in body, name  # links
    finally:
        wecom.close()
        ops.close()
