"""What a message says: what, where (building, unit, floor, flat, area), how many, since when, link.

Rendered from incident rows as the store holds them, on the channel test site; the offline groups
either carry ``offline_count`` (the detection's count) or are counted by their devices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_config import SiteConfig, load_config
from gateway.channels import render
from tests.channels_receivers import SOS_IN_LOBBY, write_e2e_site
from tests.rules_harness import T0

SMOKE = "".join(
    f"  - {{id: smoke-{room}, driver: zigbee2mqtt, address: '0x00158d00009{n:05x}', type: smoke_detector,"
    f" location: {{building: b1, unit: u1, floor: {room[0]}, room: '{room}'}}}}\n"
    for n, room in enumerate(("301", "302", "401"))
) + "  - {id: smoke-301b, driver: zigbee2mqtt, address: '0x00158d0000990009', type: smoke_detector," \
    " location: {building: b1, unit: u1, floor: 3, room: '301'}}\n"  # fmt: skip
PLUGS = "".join(
    f"  - {{id: plug-{b}-x{n}, driver: zigbee2mqtt, address: '0x00158d0000{base + n:06x}', type: plug,"
    f" location: {{building: {b}}}}}\n"
    for b, base in (("b3", 0x200000), ("b4", 0x300000))
    for n in range(4)
)


def site(
    tmp_path: Path, channels: str = 'channels:\n  console_base_url: "https://gw.example.cn:8443/"\n'
) -> SiteConfig:
    return load_config(write_e2e_site(tmp_path, 1883, channels=channels, devices=SMOKE + PLUGS, replace=SOS_IN_LOBBY))


def incident(n: int, typ: str, **kw: Any) -> dict[str, Any]:
    base = {"id": f"gw-{n}", "type": typ, "category": "security", "severity": "critical", "life_safety": True,
            "compound": "cp1", "building": "b1", "unit": "u1", "devices": [], "detail": {}, "count": 1,
            "first_ms": T0 + n * 1000, "resident_id": None}  # fmt: skip
    return {**base, **kw}


def test_sos_says_floor_area_how_many_since_and_link(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    sos = incident(1, "sos", category="eldercare", devices=["sos-r1"], resident_id="r1", count=2)
    msg = render.render(cfg, [(sos, "dispatched")], lang="zh")
    assert msg.title == "【紧急】紧急呼叫 新派单"
    assert "位置: 和苑小区 1号楼 1单元 1层 大堂" in msg.text
    assert "数量: 1台设备，触发2次" in msg.text and "时间: 03-02 10:00:01" in msg.text
    assert "https://gw.example.cn:8443/#incident=gw-1" in msg.text  # the trailing slash of the base is not doubled
    assert "张阿姨" not in msg.text and msg.released == {}
    care = render.render(cfg, [(sos, "dispatched")], lang="zh", elder_care=True)
    assert "张阿姨" in care.text and care.released == {"gw-1": ["name"]}
    en = render.render(cfg, [(sos, "dispatched")], lang="en")
    assert "Where: 和苑小区 1号楼 1单元 floor 1 大堂" in en.text and "How many: 1 device(s), 2 trigger(s)" in en.text


def test_a_fire_in_three_flats_is_one_message_naming_each_flat(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    fires = [
        incident(n, "smoke", devices=[d]) for n, d in enumerate(("smoke-301", "smoke-302", "smoke-401", "smoke-301b"))
    ]
    msg = render.render(cfg, [(i, "dispatched") for i in fires], lang="zh")
    assert msg.title == "【紧急】烟雾报警 4条 新派单"
    assert "位置: 1号楼 1单元: 3层 301室×2、3层 302室、4层 401室" in msg.text
    assert "分布: 1号楼 4条" in msg.text and "最早: 03-02 10:00:00" in msg.text
    assert all(f"#incident=gw-{n}" in msg.text for n in range(4))


def test_offline_groups_count_devices_with_a_per_building_breakdown(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    kw = {"category": "device_health", "severity": "major", "life_safety": False, "unit": None}
    # as the detection reports them: one incident per building with its offline count
    b3 = incident(1, "building_offline", building="b3", devices=["plug-b3-x0"], detail={"offline_count": 100}, **kw)
    b4 = incident(2, "building_offline", building="b4", devices=["plug-b4-x0"], detail={"offline_count": 100}, **kw)
    msg = render.render(cfg, [(b3, "dispatched"), (b4, "dispatched")], lang="zh")
    assert msg.title == "【重要】楼栋设备大面积离线 2条 新派单"
    assert "数量: 200台设备离线" in msg.text and "分布: 3号楼 100台 · 4号楼 100台" in msg.text
    single = render.render(cfg, [(b3, "dispatched")], lang="zh")
    assert "数量: 100台设备离线" in single.text and "位置: 和苑小区 3号楼" in single.text
    # without a count in the detail the devices are counted; a compound incident is split by them
    devs = [f"plug-{b}-x{n}" for b in ("b3", "b4") for n in range(4)]
    cp = incident(3, "compound_offline", building=None, devices=devs, detail={"of": 10}, **kw)
    one = render.render(cfg, [(cp, "dispatched")], lang="zh")
    assert "数量: 8台设备离线（共10台）" in one.text
    storm = [incident(10 + n, "device_offline", building=None, devices=[d], **kw) for n, d in enumerate(devs[:6])]
    msg = render.render(cfg, [(i, "dispatched") for i in storm], lang="zh", max_listed=2)
    assert "数量: 6台设备离线" in msg.text and "分布: 3号楼 4台 · 4号楼 2台" in msg.text and "……另有4条" in msg.text


def test_link_falls_back_to_the_consoles_public_url(tmp_path: Path) -> None:
    site(tmp_path, channels="channels: {}\n")  # no link base of the channels' own
    path = tmp_path / "site.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "\nstore:\n", "\napi:\n  console_base_url: https://gw.local/console/\nstore:\n", 1
        ),
        encoding="utf-8",
    )
    cfg = load_config(path)
    msg = render.render(cfg, [(incident(1, "gas"), "dispatched")], lang="zh")
    assert "https://gw.local/console/#incident=gw-1" in msg.text
