"""The ticket state machine: every allowed and forbidden transition, roles, idempotency, rating."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.core import incidents as inc
from gateway.tickets import lifecycle as lc
from gateway.tickets.lifecycle import ACTIONS, STATES, TicketError
from tests.tickets_harness import T0, TicketHarness


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Any:
    harness = TicketHarness(tmp_path_factory.mktemp("lifecycle"))
    yield harness
    harness.close()


def raw_incident(h: TicketHarness, state: str, n: list[int] = [0]) -> str:  # noqa: B006 - a counter
    """An incident written directly (no events -> not dispatched), then put into ``state``."""
    n[0] += 1
    c = h.store.conn
    c.execute("BEGIN IMMEDIATE")
    trig = inc.Trigger(
        key=f"raw|{n[0]}",
        category="security",
        type="door_held_open",
        severity="minor",
        ts_ms=h.clock.wall_ms,
        location=inc.Location(grid="g1", compound="cp1", building="b1"),
    )
    iid = h.ctx.incidents.raise_or_repeat(c, None, trig, h.clock.wall_ms).incident_id
    if state != "new":
        c.execute("UPDATE incidents SET state=? WHERE id=?", (state, iid))
    c.execute("COMMIT")
    return iid


def assignee(h: TicketHarness, iid: str) -> tuple[str, str]:
    t = h.incident(iid)["ticket"] or {"assignee": "ps1", "assignee_role": "property_staff"}
    return t["assignee"], t["assignee_role"]


def reach(h: TicketHarness, state: str) -> str:
    """An incident in ``state`` reached through the loop itself where the loop can reach it."""
    if state in ("new", "reopened"):
        return raw_incident(h, state)
    iid = h.manual(category="security", location={"building": "b1"})["id"]
    path = {
        "dispatched": [],
        "accepted": ["accept"],
        "in_progress": ["accept", "start"],
        "resolved": ["accept", "start", "resolve"],
        "evaluated": ["accept", "start", "resolve", "evaluate"],
        "closed": ["accept", "start", "resolve", "evaluate", "close"],
        "cancelled": ["cancel"],
        "false_alarm": ["false_alarm"],
    }[state]
    for action in path:
        do(h, iid, action)
    assert h.incident(iid)["state"] == state
    return iid


GOOD_DATA: dict[str, dict[str, Any]] = {
    "reassign": {"to": "ps2"},
    "resolve": {"what_done": "已关门", "photo_ref": "photo-1"},
    "evaluate": {"rating": 4, "comment": "满意"},
    "cancel": {"reason": "重复上报"},
    "false_alarm": {"reason": "误报"},
    "whistle": {"department": "police"},
}
EXPECTED = {"reopen": "dispatched", "whistle": "dispatched", "reassign": "dispatched", "dispatch": "dispatched"}


def do(h: TicketHarness, iid: str, action: str, **kw: Any) -> dict[str, Any]:
    if ACTIONS[action].assignee_only:
        actor, role = assignee(h, iid)
    else:
        actor, role = "co1", "community_office"
    kw.setdefault("data", GOOD_DATA.get(action))
    return h.act(iid, action, actor=kw.pop("actor", actor), role=kw.pop("role", role), **kw)


CASES = [(s, a) for s in STATES for a in ACTIONS]


@pytest.mark.parametrize(("state", "action"), CASES, ids=[f"{s}-{a}" for s, a in CASES])
def test_every_transition(h: TicketHarness, state: str, action: str) -> None:
    iid = reach(h, state)
    spec = ACTIONS[action]
    if state not in spec.sources:
        with pytest.raises(TicketError) as ei:
            do(h, iid, action)
        err = ei.value
        assert err.code == "illegal_transition" and err.http_status == 409
        assert err.current_state == state
        assert state in err.message and action in err.message
        _, role = assignee(h, iid) if spec.assignee_only else ("", "community_office")
        assert err.allowed == lc.allowed_actions(state, role)
        assert h.incident(iid)["state"] == state  # nothing applied (rolled back)
        return
    out = do(h, iid, action)
    assert out["state"] == EXPECTED.get(action, spec.target)
    last = [e for e in h.timeline(iid) if e["kind"] == "state_changed"]
    if out["state"] != state:
        assert last and last[-1]["data"]["to"] == out["state"]
        assert last[-1]["actor"] in ("co1", "ps1", "ps2", "gw1", "ec1", "police1p", lc.SYSTEM_ACTOR)


ROLE_CASES = [(a, r) for a, spec in ACTIONS.items() for r in lc.ROLES if r not in spec.roles]


@pytest.mark.parametrize(("action", "role"), ROLE_CASES, ids=[f"{a}-{r}" for a, r in ROLE_CASES])
def test_roles_not_allowed_are_refused(h: TicketHarness, action: str, role: str) -> None:
    state = ACTIONS[action].sources[0]
    if state == "new":
        state = ACTIONS[action].sources[-1] if action != "cancel" else "dispatched"
    iid = reach(h, "dispatched" if state == "reopened" else state)
    with pytest.raises(TicketError) as ei:
        do(h, iid, action, actor="someone", role=role)
    assert ei.value.code == "forbidden" and ei.value.http_status == 403


def test_only_the_assignee_or_team_may_accept(h: TicketHarness) -> None:
    iid = reach(h, "dispatched")
    assert assignee(h, iid) == ("ps1", "property_staff")
    with pytest.raises(TicketError) as ei:
        h.act(iid, "accept", actor="ec1", role="eldercare_worker")
    assert ei.value.code == "not_assignee"
    h.act(iid, "accept", actor="ps1", role="property_staff")


def test_request_id_replay_does_not_apply_twice(h: TicketHarness) -> None:
    iid = reach(h, "dispatched")
    a = h.act(iid, "accept", actor="ps1", role="property_staff", request_id="req-1")
    n = len(h.timeline(iid))
    b = h.act(iid, "accept", actor="ps1", role="property_staff", request_id="req-1")
    assert a == b and a["state"] == "accepted"
    assert len(h.timeline(iid)) == n
    with pytest.raises(TicketError) as ei:
        h.act(iid, "start", actor="ps1", role="property_staff", request_id="req-1")
    assert ei.value.code == "request_id_reused"


def test_bad_data_is_refused(h: TicketHarness) -> None:
    iid = reach(h, "in_progress")
    with pytest.raises(TicketError) as ei:
        do(h, iid, "resolve", data={})
    assert ei.value.code == "invalid" and "what_done" in ei.value.message
    do(h, iid, "resolve")
    for bad in (0, 6, "5", True, None):
        with pytest.raises(TicketError):
            do(h, iid, "evaluate", data={"rating": bad})
    with pytest.raises(TicketError) as ei:
        h.act("nope", "accept", actor="ps1", role="property_staff")
    assert ei.value.code == "not_found"
    with pytest.raises(TicketError) as ei:
        h.act(iid, "fly", actor="ps1", role="property_staff")
    assert ei.value.code == "unknown_action"


def test_dissatisfied_rating_reopens_to_the_same_assignee(h: TicketHarness) -> None:
    iid = reach(h, "resolved")
    out = do(h, iid, "evaluate", data={"rating": 2, "comment": "门还是坏的"})
    assert out["state"] == "dispatched" and out["ticket"]["assignee"] == "ps1" and out["ticket"]["reopened"] == 1
    kinds = h.kinds(iid)
    assert kinds[-4:] == ["->evaluated", "->reopened", "->dispatched", "dispatched"]


def test_parking_and_device_health_close_not_rated(h: TicketHarness) -> None:
    for cat in ("parking", "device_health"):
        iid = h.manual(category=cat, location={"building": "b2"})["id"]
        actor, role = assignee(h, iid)
        h.act(iid, "accept", actor=actor, role=role)
        out = h.act(iid, "resolve", actor=actor, role=role, data={"what_done": "处理完毕"})
        assert out["state"] == "closed"
        nr = [e for e in h.timeline(iid) if e["kind"] == "not_rated"]
        assert nr and nr[0]["data"]["reason"] == "no_rater"


def test_rating_timeout_closes_not_rated(tmp_path: Path) -> None:
    h = TicketHarness(tmp_path)
    iid = reach(h, "resolved")
    assert "rating" in h.incident(iid)["deadlines"]
    h.at(72 * 3600 + 5)
    assert h.incident(iid)["state"] == "closed"
    assert [e["data"]["reason"] for e in h.timeline(iid) if e["kind"] == "not_rated"] == ["timeout"]
    h.close()


def test_manual_incident_enters_the_loop(h: TicketHarness) -> None:
    out = h.manual(
        category="eldercare", type="resident_call", severity="major", location={"resident": "r1"}, request_id="call-1"
    )
    assert out["state"] == "dispatched" and out["ticket"]["assignee"] == "ec1"
    assert out["building"] == "b1" and out["grid"] == "g1" and out["compound"] == "cp1"
    rep = next(e for e in h.timeline(out["id"]) if e["kind"] == "reported")
    assert rep["actor"] == "co1" and rep["role"] == "community_office"
    again = h.manual(category="eldercare", type="resident_call", location={"resident": "r1"}, request_id="call-1")
    assert again["id"] == out["id"]
    with pytest.raises(TicketError):
        h.manual(category="parking", location={"building": "nowhere"})
    with pytest.raises(TicketError):
        h.manual(category="bogus", location={"building": "b1"})


def test_rules_incident_is_dispatched_in_its_own_transaction(h: TicketHarness) -> None:
    h.clock.set(max(h.clock.wall_ms, T0))
    h.send("smoke-b1", "state", {"smoke": True})
    smoke = [i for i in h.incidents() if i["type"] == "smoke"][-1]
    assert smoke["state"] == "dispatched"
    ev = next(e for e in h.timeline(smoke["id"]) if e["kind"] == "dispatched")
    assert ev["data"]["team"] == "duty1" and ev["data"]["rule"] == "property_duty"
