"""The actions offered to a person (lifecycle.offers, what the console shows as buttons) are exactly
the actions apply_action accepts from that person, for every state an incident reaches, every
role and several people per role (the assignee, a teammate, an outsider), on the example community.
Each accepted/refused probe runs apply_action in a savepoint that is rolled back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_config import SiteConfig, load_config
from gateway.core import incidents as inc
from gateway.core import store as st
from gateway.core.contract import BatchResult
from gateway.tickets import lifecycle as lc

EXAMPLE = Path(__file__).resolve().parents[1] / "edge_config" / "examples" / "community.yaml"
T0 = 1_780_000_000_000
API_ROLES = (*lc.ROLES,)


@pytest.fixture(scope="module")
def cfg() -> SiteConfig:
    return load_config(EXAMPLE)


@pytest.fixture
def world(tmp_path: Path, cfg: SiteConfig) -> Iterator[tuple[sqlite3.Connection, lc.TicketContext]]:
    conn = st.connect(tmp_path / "g.db")
    st.migrate(conn)
    ctx = lc.TicketContext(cfg, inc.IncidentStore(cfg.gateway.id, None))
    try:
        yield conn, ctx
    finally:
        conn.close()


def _raise(conn: sqlite3.Connection, ctx: lc.TicketContext, kind: str, n: int) -> str:
    if kind == "sos":
        trig = inc.Trigger(
            key=f"b01-u1-sos-302|sos|{n}",
            category="eldercare",
            type="sos",
            severity="critical",
            ts_ms=T0,
            devices=["b01-u1-sos-302"],
            location=inc.Location(grid="g01", compound="c1", building="b01", unit="u1"),
            resident_id="r001",
        )
    elif kind == "grid":  # no compound or building: the grid worker handles it (and may not rate it)
        trig = inc.Trigger(
            key=f"grid|{n}", category="security", type="suspected_intrusion", severity="major", ts_ms=T0,
            location=inc.Location(grid="g01"),
        )  # fmt: skip
    else:
        trig = inc.Trigger(
            key=f"door|{n}",
            category="security",
            type="door_forced",
            severity="major",
            ts_ms=T0,
            location=inc.Location(grid="g01", compound="c1", building="b01"),
        )
    with st.transaction(conn):
        return ctx.incidents.raise_or_repeat(conn, BatchResult(), trig, T0).incident_id


def _act(
    conn: sqlite3.Connection, ctx: lc.TicketContext, iid: str, action: str, actor: str, role: str, **data: Any
) -> None:
    with st.transaction(conn):
        lc.apply_action(conn, BatchResult(), iid, action, actor=actor, role=role, data=data, now_ms=T0, ctx=ctx)


# state -> the steps that lead there from a dispatched incident (actor = the assignee, or a supervisor)
PATHS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "dispatched": [],
    "accepted": [("accept", {})],
    "in_progress": [("accept", {}), ("start", {})],
    "resolved": [("accept", {}), ("resolve", {"what_done": "done"})],
    "evaluated": [("accept", {}), ("resolve", {"what_done": "done"}), ("evaluate", {"rating": 4})],
    "closed": [("accept", {}), ("resolve", {"what_done": "done"}), ("close", {})],
    "cancelled": [("cancel", {"reason": "dup"})],
    "false_alarm": [("false_alarm", {"reason": "test"})],
}
SUPERVISED = {"evaluate", "close", "cancel"}


def _incident_in(conn: sqlite3.Connection, ctx: lc.TicketContext, kind: str, state: str, n: int) -> str:
    iid = _raise(conn, ctx, kind, n)
    if state == "new":
        return iid
    with st.transaction(conn):
        assert lc.dispatch_new(conn, BatchResult(), ctx, iid, T0)
    for action, data in PATHS[state]:
        t = lc.ticket(conn, iid) or {}
        assignee = str(t["assignee"])
        role = "community_office" if action in SUPERVISED else str(t["assignee_role"])
        actor = "co-01" if action in SUPERVISED else assignee
        _act(conn, ctx, iid, action, actor, role, **data)
    assert lc.state_of(conn, iid) == state
    return iid


def _people(cfg: SiteConfig, role: str, t: dict[str, Any]) -> list[str]:
    """The assignee (if of this role), a member of the assigned team, and the first and last staff
    member of the role who is neither."""
    staff = [m.id for m in cfg.staff if m.role == role] or [f"{role}-x"]
    team = lc.dp.team_members(cfg, t.get("team"))
    picks = [p for p in (t.get("assignee"), *team) if p in staff][:2]
    others = [p for p in staff if p not in picks]
    return list(dict.fromkeys([*picks, *others[:1], *others[-1:]]))


def _probe(conn: sqlite3.Connection, ctx: lc.TicketContext, iid: str, action: str, actor: str, role: str) -> bool:
    """Would apply_action accept it (with valid data)? Rolled back either way."""
    offer_fields = {f.name: f for f in lc.ACTION_FIELDS[action]}
    data: dict[str, Any] = {"what_done": "x", "reason": "x", "rating": 4, "comment": "x"}
    if "to" in offer_fields:
        t = lc.ticket(conn, iid) or {}
        who = lc.handover_candidates(ctx.cfg, lc.inc.get(conn, iid) or {}, t, T0)
        if who or offer_fields["to"].required:  # an optional "to" left empty: automatic routing
            data["to"] = who[0] if who else "nobody"
    if "department" in offer_fields:
        data["department"] = "fire"
    conn.execute("SAVEPOINT probe")
    try:
        lc.apply_action(
            conn, BatchResult(), iid, action, actor=actor, role=role, note="x", data=data, now_ms=T0, ctx=ctx
        )
        return True
    except lc.TicketError:
        return False
    finally:
        conn.execute("ROLLBACK TO probe")
        conn.execute("RELEASE probe")


@pytest.mark.parametrize("kind", ["sos", "door", "grid"])
def test_offers_equal_what_apply_action_accepts(world: tuple[sqlite3.Connection, lc.TicketContext], kind: str) -> None:
    conn, ctx = world
    checked = 0
    for n, state in enumerate(["new", *PATHS]):
        iid = _incident_in(conn, ctx, kind, state, n)
        incident = inc.get(conn, iid) or {}
        t = lc.ticket(conn, iid) or {}
        for role in API_ROLES:
            for actor in _people(ctx.cfg, role, t):
                worked = lc.involved(conn, iid)
                found = lc.offers(ctx.cfg, incident, t, role=role, actor=actor, now_ms=T0, worked_by=worked)
                offered = {o["action"] for o in found}
                conn.execute("BEGIN")
                try:
                    accepted = {a for a in lc.ACTIONS if _probe(conn, ctx, iid, a, actor, role)}
                finally:
                    conn.execute("ROLLBACK")
                assert offered == accepted, (kind, state, role, actor)
                checked += 1
    assert checked > 100


def test_who_worked_an_incident_is_not_offered_to_rate_it(world: tuple[sqlite3.Connection, lc.TicketContext]) -> None:
    conn, ctx = world
    iid = _incident_in(conn, ctx, "grid", "resolved", 0)
    incident, t = inc.get(conn, iid) or {}, lc.ticket(conn, iid) or {}
    assert t["assignee"] == "grid-w01"
    worked = lc.involved(conn, iid)

    def actions(actor: str) -> set[str]:
        return {
            o["action"]
            for o in lc.offers(ctx.cfg, incident, t, role="grid_worker", actor=actor, now_ms=T0, worked_by=worked)
        }

    assert "evaluate" not in actions("grid-w01") and "evaluate" in actions("grid-w02")


def test_offers_name_people_and_departments(world: tuple[sqlite3.Connection, lc.TicketContext]) -> None:
    conn, ctx = world
    iid = _incident_in(conn, ctx, "sos", "dispatched", 0)
    incident = inc.get(conn, iid) or {}
    t = lc.ticket(conn, iid) or {}
    offers = {o["action"]: o for o in lc.offers(ctx.cfg, incident, t, role="grid_worker", actor="grid-w01", now_ms=T0)}
    to = next(f for f in offers["reassign"]["fields"] if f["name"] == "to")
    assert to["required"] and {"value": "ec-02", "label": ctx.cfg.staff_member("ec-02").name} in to["options"]  # type: ignore[union-attr]
    assert t["assignee"] not in {o["value"] for o in to["options"]}
    dep = next(f for f in offers["whistle"]["fields"] if f["name"] == "department")
    assert {o["value"] for o in dep["options"]} == {"fire", "police", "health", "urban_management"}
    reason = next(f for f in offers["whistle"]["fields"] if f["name"] == "note")
    assert reason["required"]
