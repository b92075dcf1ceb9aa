"""SLA deadlines and the escalation ladder with a controllable clock, across restarts and clock steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tickets_harness import T0, TicketHarness


def sos(h: TicketHarness) -> str:
    h.send("sos-r1", "sos")
    return [i for i in h.incidents() if i["type"] == "sos"][-1]["id"]


def escalations(h: TicketHarness, iid: str) -> list[tuple[Any, ...]]:
    return [
        (e["data"]["rung"], round((e["ts_ms"] - T0) / 1000), [r["person"] for r in e["data"]["recipients"]])
        for e in h.timeline(iid)
        if e["kind"] == "escalated"
    ]


def test_ladder_climbs_one_rung_per_interval_to_the_department(tmp_path: Path) -> None:
    h = TicketHarness(tmp_path)
    iid = sos(h)
    assert h.incident(iid)["ticket"]["assignee"] == "ec1"
    for s in range(5, 800, 5):
        h.at(s)
    assert escalations(h, iid) == [
        ("assignee", 120, ["ec1"]),
        ("grid_worker", 240, ["gw1"]),
        ("community_office", 360, ["co1"]),
        ("street_office", 480, ["so1"]),
        ("department", 600, ["health1p"]),
    ]
    tl = h.timeline(iid)
    missed = [e for e in tl if e["kind"] == "sla_missed"]
    assert missed[0]["data"]["stage"] == "accept" and missed[0]["ts_ms"] == T0 + 120_000
    whistle = next(e for e in tl if e["kind"] == "whistle")
    assert whistle["data"] == {"department": "health", "team": "dept-health", "person": "health1p", "manual": False,
                               "reason": "sla_missed"}  # fmt: skip
    snap = h.incident(iid)
    assert snap["ticket"]["assignee"] == "health1p" and snap["ticket"]["team"] == "dept-health"
    assert snap["ticket"]["watchers"] == ["gw1", "co1", "so1"]
    # re-notified every 60 s while nobody accepted
    assert [round((e["ts_ms"] - T0) / 1000) for e in tl if e["kind"] == "renotified"][:2] == [60, 120]
    # the summoned department accepts and resolves: tracked like anyone else
    h.act(iid, "accept", actor="health1p", role="department")
    h.at(900)
    out = h.act(iid, "resolve", actor="health1p", role="department", data={"what_done": "送医"})
    assert out["state"] == "resolved"
    from gateway.tickets.scorecard import assignments

    dep = next(a for a in assignments(h.store.conn) if a.team == "dept-health")
    assert dep.accepted_ms == T0 + 800_000 - 5_000 and dep.resolved_ms == T0 + 900_000
    h.close()


def test_accepting_stops_the_climb(tmp_path: Path) -> None:
    h = TicketHarness(tmp_path)
    iid = sos(h)
    h.at(125)
    h.act(iid, "accept", actor="ec1", role="eldercare_worker")
    for s in range(130, 600, 10):
        h.at(s)
    assert [r[0] for r in escalations(h, iid)] == ["assignee"]
    h.close()


def test_deadlines_survive_a_restart_and_fire_on_time(tmp_path: Path) -> None:
    h = TicketHarness(tmp_path)
    iid = sos(h)
    h.at(60)
    h.restart(down_until_ms=T0 + 100_000)  # down for 40 s; the deadline (120 s) is still ahead
    h.at(110)
    assert escalations(h, iid) == []
    h.at(121)
    assert escalations(h, iid) == [("assignee", 121, ["ec1"])]
    # a longer outage mid-climb: overdue rungs do not all fire at once after the restart
    h.restart(down_until_ms=T0 + 3 * 3600_000)
    for s in range(3 * 3600, 3 * 3600 + 130, 5):
        h.at(s)
    rungs = escalations(h, iid)
    assert [r[0] for r in rungs] == ["assignee", "grid_worker", "community_office"]
    assert rungs[2][1] - rungs[1][1] == 120
    h.close()


def test_clock_step_shifts_deadlines_instead_of_firing_them(tmp_path: Path) -> None:
    h = TicketHarness(tmp_path)
    iid = sos(h)
    h.at(30)
    h.clock.step(6 * 3600_000)  # NTP arrives: the wall clock jumps 6 h, no time really passed
    h.tick()
    assert escalations(h, iid) == [] and not [e for e in h.timeline(iid) if e["kind"] == "sla_missed"]
    due = h.incident(iid)["deadlines"]["accept"]
    assert due == T0 + 6 * 3600_000 + 120_000
    h.close()


def test_unsynchronised_clock_holds_rungs_outside_the_community(tmp_path: Path) -> None:
    h = TicketHarness(tmp_path)
    h.synced = False
    iid = sos(h)
    for s in range(5, 900, 5):
        h.at(s)
    assert [r[0] for r in escalations(h, iid)] == ["assignee", "grid_worker", "community_office"]
    held = [e for e in h.timeline(iid) if e["kind"] == "escalation_held"]
    assert len(held) == 1 and held[0]["data"] == {"rung": "street_office", "level": 3, "reason": "clock_unsynchronised"}
    assert not [e for e in h.timeline(iid) if e["kind"] == "whistle"]
    h.synced = True
    for s in range(900, 1100, 5):
        h.at(s)
    rungs = escalations(h, iid)
    assert [r[0] for r in rungs] == ["assignee", "grid_worker", "community_office", "street_office", "department"]
    assert 900 <= rungs[3][1] <= 935  # re-checked every 30 s
    h.close()


def test_boot_with_clock_behind_keeps_remaining_time_and_holds(tmp_path: Path) -> None:
    h = TicketHarness(tmp_path)
    iid = sos(h)
    h.at(61)  # saves the last wall time
    h.close()
    h.clock.wall_ms = T0 - 24 * 3600_000  # fake-hwclock: a day behind after the reboot
    h.clock.mono_ms += 10_000_000
    h.open()
    h.tick()
    due = h.incident(iid)["deadlines"]["accept"]
    assert due == T0 + 120_000 - (T0 + 61_000 - (T0 - 24 * 3600_000))  # 59 s left, as before the reboot
    assert h.tickets.guard.hold_reason() == "clock_step"
    h.close()


def test_manual_whistle_from_any_open_state(tmp_path: Path) -> None:
    h = TicketHarness(tmp_path)
    iid = h.manual(category="security", location={"building": "b2"})["id"]
    h.act(iid, "accept", actor="ps1", role="property_staff")
    h.act(iid, "start", actor="ps1", role="property_staff")
    out = h.act(iid, "whistle", actor="co1", role="community_office", data={"department": "fire"}, note="楼道起火")
    assert out["state"] == "dispatched" and out["ticket"]["assignee"] == "fire1p"
    assert out["ticket"]["summons"][0]["department"] == "fire"
    w = next(e for e in h.timeline(iid) if e["kind"] == "whistle")
    assert w["actor"] == "co1" and w["data"]["manual"] is True
    h.close()
