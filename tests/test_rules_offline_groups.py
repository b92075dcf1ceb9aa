"""Offline grouping names the smallest scope that explains a silence (issue 23).

Real store, pipeline and rule engine (tests/rules_harness.py) on sites built for each case:
plugs (mains, 600 s liveness) in buildings b1..b3 of compound cp1, and for the compound-wide
case native parking sensors on the compound's spaces (compound-level devices). ``pir-zone``
(b2) is always configured because the rules section's intrusion zone names it; it never
reports, so it never goes silent but counts as a member of b2 and cp1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_config import load_config
from tests.rules_harness import DEVICES, T0, Harness, Z, write_rules_site

Row = tuple[str, str, str, str | None, str, str]
PIR_ZONE = next(d for d in DEVICES if d[0] == "pir-zone")
_seq = iter(range(1, 10_000))


def plugs(building: str, n: int) -> list[Row]:
    return [
        (f"plug-{building}-{i}", Z, f"0x00158d01{next(_seq):08x}", f"{building}/plug{i}", "plug",
         f"location: {{building: {building}}}")
        for i in range(1, n + 1)
    ]  # fmt: skip


def parking_sensors() -> list[Row]:
    return [
        (f"park-{s}", "native", f"park-{s}", None, "parking_sensor", f"location: {{parking_space: {s}}}")
        for s in ("p01", "fire1", "nopark1")
    ]


def harness(tmp_path: Path, devices: list[Row]) -> Harness:
    return Harness(tmp_path, load_config(write_rules_site(tmp_path, devices=[PIR_ZONE, *devices])))


@pytest.fixture
def closing() -> Iterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for h in made:
        h.close()


def report(h: Harness, devices: list[Row], t: float) -> None:
    h.at(t)
    for d in devices:
        h.send(d[0], "state", {"linkquality": 80})


def by_type(h: Harness) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for i in h.incidents():
        out.setdefault(i["type"], []).append(i)
    return out


def ids(rows: list[Row]) -> list[str]:
    return sorted(d[0] for d in rows)


# --- the reported case: 46 devices, building C (40) silent, A and B reporting ----------------
def small_compound() -> tuple[list[Row], list[Row]]:
    """b1 (A): 3 plugs, b2 (B): 2 plugs + pir-zone, b3 (C): 40 plugs = 46 members of cp1."""
    return plugs("b1", 3) + plugs("b2", 2), plugs("b3", 40)


def test_silent_building_that_is_most_of_the_compound_is_named(tmp_path: Path, closing: list[Harness]) -> None:
    alive, dark = small_compound()
    h = harness(tmp_path, alive + dark)
    closing.append(h)
    report(h, alive + dark, 0)
    report(h, alive, 300)  # A and B keep reporting
    h.at(601)  # C's 40 plugs fall silent in the same second
    h.at(640)  # past every hold
    got = by_type(h)
    assert list(got) == ["building_offline"], [(i["type"], len(i["devices"])) for i in h.incidents()]
    [b] = got["building_offline"]
    assert (b["compound"], b["building"], b["grid"]) == ("cp1", "b3", "g1")
    assert sorted(b["devices"]) == ids(dark)
    d = b["detail"]
    assert d["offline_count"] == 40 and d["of"] == 40
    assert (d["building"], d["building_name"], d["compound"], d["compound_name"]) == ("b3", "3号楼", "cp1", "和苑小区")
    assert d["since_ms"] == T0 + 601_000


def test_building_going_dark_one_by_one_never_adds_a_compound_incident(tmp_path: Path, closing: list[Harness]) -> None:
    """C's plugs last reported two a second, so they fall silent over 20 ticks (within the
    offline hold): the building forms at 32 of 40, the compound's 37 of 46 is crossed later -
    still one incident."""
    alive, dark = small_compound()
    h = harness(tmp_path, alive + dark)
    closing.append(h)
    report(h, alive, 0)
    for n, d in enumerate(dark):
        h.at(n // 2)
        h.send(d[0], "state", {"linkquality": 80})
    report(h, alive, 300)
    for t in range(600, 660):
        h.at(t)
    got = by_type(h)
    assert list(got) == ["building_offline"], [(i["type"], len(i["devices"])) for i in h.incidents()]
    [b] = got["building_offline"]
    assert b["building"] == "b3" and sorted(b["devices"]) == ids(dark)
    assert b["detail"]["offline_count"] == 40  # kept up to date as the late ones joined
    joined = [e for e in h.events() if e["incident_id"] == b["id"] and e["kind"] == "devices_added"]
    assert joined and joined[-1]["data"]["detail"] == {"offline_count": 40}  # the feed gets the counts too
    assert b["detail"]["since_ms"] == T0 + 601_000  # the first one's silence


# --- a storm across two buildings: one incident per building -------------------------------
def test_storm_of_200_devices_in_two_buildings_is_one_incident_per_building(
    tmp_path: Path, closing: list[Harness]
) -> None:
    b1, b2, b3 = plugs("b1", 100), plugs("b2", 100), plugs("b3", 10)
    h = harness(tmp_path, b1 + b2 + b3)
    closing.append(h)
    report(h, b1 + b2 + b3, 0)
    report(h, b3, 300)
    h.at(601)
    h.at(640)
    got = by_type(h)
    assert list(got) == ["building_offline"], [(i["type"], len(i["devices"])) for i in h.incidents()]
    per = {i["building"]: i for i in got["building_offline"]}
    assert sorted(per) == ["b1", "b2"]
    assert sorted(per["b1"]["devices"]) == ids(b1) and sorted(per["b2"]["devices"]) == ids(b2)
    assert [per[b]["detail"]["offline_count"] for b in ("b1", "b2")] == [100, 100]
    assert [per[b]["detail"]["of"] for b in ("b1", "b2")] == [100, 101]  # b2 also holds pir-zone
    assert [per[b]["detail"]["building_name"] for b in ("b1", "b2")] == ["1号楼", "2号楼"]


# --- wider than its buildings: the compound, with its breakdown ---------------------------------
def test_compound_wide_silence_is_one_compound_incident_with_a_breakdown(
    tmp_path: Path, closing: list[Harness]
) -> None:
    """b1 goes dark first (building_offline), then b2 and the compound's parking sensors: the
    compound incident forms and takes over the building ones; nothing stays open twice."""
    b1, b2, b3, park = plugs("b1", 6), plugs("b2", 6), plugs("b3", 2), parking_sensors()
    h = harness(tmp_path, b1 + b2 + b3 + park)
    closing.append(h)
    report(h, b3, 0)
    t = 1.0
    for d in b1 + b2 + park:  # availability / last wills, one message at a time
        h.at(t)
        h.send(d[0], "avail", False)
        t += 1
    h.at(t + 60)  # past every hold
    got = by_type(h)
    assert sorted(got) == ["building_offline", "compound_offline"], [(i["type"], i["state"]) for i in h.incidents()]
    [c] = got["compound_offline"]
    assert c["state"] == "new" and (c["compound"], c["building"]) == ("cp1", None)
    assert sorted(c["devices"]) == ids(b1 + b2 + park)
    # the building incidents that formed on the way were folded into the compound one
    for b in got["building_offline"]:
        assert b["state"] == "resolved" and b["cleared_reason"] == f"grouped:{c['id']}", b
    open_ = [i for i in h.incidents() if i["open_key"] is not None]
    assert [i["type"] for i in open_] == ["compound_offline"]
    d = c["detail"]
    assert (d["compound"], d["compound_name"], d["offline_count"], d["of"]) == ("cp1", "和苑小区", 15, 18)
    assert d["since_ms"] == T0 + 1000
    assert d["buildings"] == [
        {"building": "b1", "name": "1号楼", "offline_count": 6, "of": 6},
        {"building": "b2", "name": "2号楼", "offline_count": 6, "of": 7},
    ]
    assert d["outside_buildings"] == 3
