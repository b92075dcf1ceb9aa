"""One person, one alarm: life-safety alarms of one resident's devices merge (issue 23).

A wall button and a wristband (or two buttons, or two fall radars) of the same resident going
off within ``rules.life_safety_merge_s`` are one incident listing every device, each press a
``repeated`` event on its timeline, dispatched once. Real store, pipeline, rule engine (and the
ticket loop for the dispatch), fed with the devices' own payload formats.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_config import load_config
from tests.rules_harness import DEVICES, Harness, Z, write_rules_site
from tests.tickets_harness import TicketHarness

EXTRA = [
    ("sos-r1b", Z, "0x00158d00000000c1", "b1/u1/sos1b", "sos_button", "resident: r1"),  # r1's second button
    ("fall-r1b", "native", "fall-r1b", None, "fall_radar", "resident: r1"),  # r1's bathroom radar
    ("sos-r2", Z, "0x00158d00000000c2", "b1/u1/sos2", "sos_button", "resident: r2"),
]


def harness(tmp_path: Path, rules: str = "") -> Harness:
    path = write_rules_site(tmp_path, devices=DEVICES + EXTRA)
    if rules:
        text = path.read_text(encoding="utf-8").replace("rules:\n", f"rules:\n  {rules}\n", 1)
        path.write_text(text, encoding="utf-8")
    return Harness(tmp_path, load_config(path))


@pytest.fixture
def closing() -> Iterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for h in made:
        h.close()


def of_type(h: Harness, typ: str) -> list[dict[str, Any]]:
    return [i for i in h.incidents() if i["type"] == typ]


def timeline(h: Harness, incident_id: str) -> list[tuple[str, Any]]:
    return [(e["kind"], e["data"].get("device")) for e in h.events() if e["incident_id"] == incident_id]


def test_button_and_wristband_of_one_resident_are_one_sos(tmp_path: Path, closing: list[Harness]) -> None:
    h = harness(tmp_path)
    closing.append(h)
    h.at(0)
    h.send("sos-r1", "sos")  # wall button
    h.at(4)
    h.send("wear-r1", "event", "sos")  # wristband
    h.at(9)
    h.send("sos-r1b", "sos")  # second button
    h.at(10)
    h.send("wear-r1", "event", "sos")  # the wristband again
    [i] = of_type(h, "sos")
    assert i["resident_id"] == "r1" and i["severity"] == "critical" and i["state"] == "new"
    assert i["devices"] == ["sos-r1", "wear-r1", "sos-r1b"]
    assert i["count"] == 4
    assert timeline(h, i["id"]) == [
        ("created", None),
        ("repeated", "wear-r1"),
        ("repeated", "sos-r1b"),
        ("repeated", "wear-r1"),
    ]
    added = [e["data"].get("devices_added") for e in h.events() if e["kind"] == "repeated"]
    assert added == [["wear-r1"], ["sos-r1b"], None]


def test_sos_of_two_residents_stay_two_incidents(tmp_path: Path, closing: list[Harness]) -> None:
    h = harness(tmp_path)
    closing.append(h)
    h.at(0)
    h.send("sos-r1", "sos")
    h.at(2)
    h.send("sos-r2", "sos")
    got = sorted((i["resident_id"], tuple(i["devices"]), i["count"]) for i in of_type(h, "sos"))
    assert got == [("r1", ("sos-r1",), 1), ("r2", ("sos-r2",), 1)]


@pytest.mark.parametrize(
    ("rules", "second_at", "incidents"),
    [
        ("", 299, 1),  # default window: 300 s after the last press
        ("", 301, 2),
        ("life_safety_merge_s: 600", 500, 1),
        ("life_safety_merge_s: 0", 2, 2),  # merging off: one incident per device, as before
    ],
    ids=["default-inside", "default-outside", "600s-inside", "off"],
)
def test_merge_window_is_the_configured_one(
    tmp_path: Path, closing: list[Harness], rules: str, second_at: int, incidents: int
) -> None:
    h = harness(tmp_path, rules)
    closing.append(h)
    h.at(0)
    h.send("sos-r1", "sos")
    h.at(second_at)
    h.send("sos-r1b", "sos")
    assert len(of_type(h, "sos")) == incidents


def test_fall_seen_by_two_radars_is_one_fall_that_still_becomes_critical(
    tmp_path: Path, closing: list[Harness]
) -> None:
    """The bedroom radar's fall check is cancelled by motion; the bathroom radar then reports a
    fall (merged): its own no-motion check must raise the merged incident to critical."""
    h = harness(tmp_path)
    closing.append(h)
    h.at(0)
    h.send("fall-r1", "event", "fall")
    h.at(60)
    h.send("pir-r1", "state", {"occupancy": True})
    h.at(100)
    h.send("fall-r1b", "event", "fall")
    h.at(219)
    [i] = of_type(h, "fall")
    assert i["devices"] == ["fall-r1", "fall-r1b"] and i["severity"] == "major"
    h.at(221)  # 120 s (fall_no_motion_s) after the second fall, no motion since
    [i] = of_type(h, "fall")
    assert i["severity"] == "critical"


def test_merged_sos_is_dispatched_and_notified_once(tmp_path: Path) -> None:
    h = TicketHarness(tmp_path)
    try:
        deliveries = "SELECT incident_id, event FROM deliveries ORDER BY id"
        h.at(0)
        h.send("sos-r1", "sos")
        after_first = h.store.conn.execute(deliveries).fetchall()
        assert after_first and {e for _i, e in after_first} == {"dispatched"}
        h.at(3)
        h.send("wear-r1", "event", "sos")
        [i] = [x for x in h.incidents() if x["type"] == "sos"]
        assert i["devices"] == ["sos-r1", "wear-r1"]
        assert h.kinds(i["id"]) == ["created", "->dispatched", "dispatched", "repeated"]
        assert h.store.conn.execute("SELECT count(*) FROM tickets").fetchone()[0] == 1
        assert h.store.conn.execute(deliveries).fetchall() == after_first  # nobody messaged twice
    finally:
        h.close()
