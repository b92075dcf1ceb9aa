"""Dispatch against the example community: every category in every grid reaches the right person.

Expected people are derived here from the config by the documented rules (not by calling the
router's helpers): the resident's elder-care worker, the compound's property duty shift, the
maintenance shift, the grid worker, the community office.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge_config import load_config
from gateway.tickets import assignment as dp

EXAMPLE = Path(__file__).resolve().parents[1] / "edge_config" / "examples" / "community.yaml"
TZ = ZoneInfo("Asia/Shanghai")
MON_10 = int(dt.datetime(2026, 3, 2, 10, 0, tzinfo=TZ).timestamp() * 1000)  # Monday day shift
MON_22 = int(dt.datetime(2026, 3, 2, 22, 0, tzinfo=TZ).timestamp() * 1000)  # night shift
SAT_10 = int(dt.datetime(2026, 3, 7, 10, 0, tzinfo=TZ).timestamp() * 1000)
SUN_03 = int(dt.datetime(2026, 3, 8, 3, 0, tzinfo=TZ).timestamp() * 1000)  # night shift begun Saturday

CFG = load_config(EXAMPLE)


def grid_cases() -> list[tuple[str, str]]:
    """(grid, a building in it) for every grid; every grid of the example has buildings."""
    out = []
    for g in CFG.site.grids:
        b = next(b.id for c in CFG.site.compounds for b in c.buildings if b.grid == g.id)
        out.append((g.id, b))
    return out


def compound_of(building: str) -> str:
    return next(c.id for c in CFG.site.compounds for b in c.buildings if b.id == building)


def incident(category: str, building: str | None, **kw: object) -> dict[str, object]:
    grid = CFG.grid_of_building(building).id if building else kw.pop("grid", None)  # type: ignore[union-attr]
    return {"category": category, "type": "x", "building": building, "grid": grid, **kw}


@pytest.mark.parametrize(("grid", "building"), grid_cases())
@pytest.mark.parametrize(("when", "shift"), [(MON_10, "day"), (MON_22, "night")])
def test_each_category_in_each_grid(grid: str, building: str, when: int, shift: str) -> None:
    cid = compound_of(building)
    for cat in ("parking", "security"):
        r = dp.route(CFG, incident(cat, building), when)
        assert r is not None
        assert (r.person, r.team) == (f"pm-{cid}-{1 if shift == 'day' else 2}", f"duty-{cid}"), (cat, grid)
        assert r.role == "property_staff"
    r = dp.route(CFG, incident("device_health", building), when)
    assert r is not None and (r.person, r.team, r.role) == ("mt-01", "maintenance", "maintenance")
    # elder care: each resident in this grid reaches their own worker by day; at night the night worker
    residents = [res for res in CFG.residents if CFG.grid_of_building(res.building).id == grid]  # type: ignore[union-attr]
    for res in residents:
        r = dp.route(CFG, incident("eldercare", res.building, resident_id=res.id), when)
        assert r is not None and r.team == "eldercare" and r.role == "eldercare_worker"
        assert r.person == (res.eldercare_worker if shift == "day" or res.eldercare_worker == "ec-01" else "ec-01")
    # elder care without a resident (a common area): the elder-care team's first on duty
    r = dp.route(CFG, incident("eldercare", building), when)
    assert r is not None and r.person == "ec-01"
    # no building, only the grid: the grid's worker
    grid_worker = CFG.grid(grid).grid_worker  # type: ignore[union-attr]
    for cat in ("parking", "security"):
        r = dp.route(CFG, incident(cat, None, grid=grid), when)
        assert r is not None and (r.person, r.team, r.role) == (grid_worker, f"grid:{grid}", "grid_worker")


def test_no_location_goes_to_the_community_office() -> None:
    r = dp.route(CFG, {"category": "security", "type": "gate_fault"}, MON_10)
    assert r is not None and (r.person, r.team, r.rule) == ("co-01", "office", "fallback")


def test_parking_space_finds_its_compound() -> None:
    r = dp.route(CFG, {"category": "parking", "type": "parking_fire_lane", "space": "p2-fire-1"}, MON_10)
    assert r is not None and (r.person, r.team) == ("pm-c4-1", "duty-c4")


def test_rosters_weekend_and_overnight_shifts() -> None:
    r = dp.route(CFG, incident("device_health", "b01"), SAT_10)
    assert r is not None and r.person == "mt-02"
    r = dp.route(CFG, incident("security", "b01"), SUN_03)  # the 20:00-08:00 shift started Saturday
    assert r is not None and r.person == "pm-c1-2"
    sun_night = dp.route(CFG, incident("device_health", "b01"), SUN_03)  # nobody on shift: team order
    assert sun_night is not None and sun_night.person == "mt-01" and sun_night.detail["roster"] == "nobody_on_shift"


def test_every_example_grid_is_covered() -> None:
    assert len(grid_cases()) == len(CFG.site.grids) == 15
