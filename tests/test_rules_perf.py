"""The rule engine's hot path: the write-through cache of ``rule_state``/``timers`` (RuleStore).

Reads come from memory, unchanged values are not rewritten, every change is still in SQLite in
the reading's own transaction, and the cache follows rollbacks (savepoints, a failed batch)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_config import load_config
from gateway.core.contract import BaseStage, BatchResult
from gateway.rules import correlation, duration, immediate, inactivity, offline, threshold
from gateway.rules.base import _dumps, decoded_copy, same_json
from tests.rules_harness import T0, Harness, write_rules_site


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_config(write_rules_site(tmp_path_factory.mktemp("site")))


@pytest.fixture
def h(cfg: Any, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, cfg)
    yield harness
    harness.close()


class Writes:
    """Counts the statements that write rule_state / timers on a connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.sql: list[str] = []
        conn.set_trace_callback(self._trace)

    def _trace(self, sql: str) -> None:
        head = sql.lstrip().split(None, 1)[0].upper()
        if "'clock|last_wall'" in sql:  # the wall clock, saved once a minute by the tick
            return
        if head in ("INSERT", "UPDATE", "DELETE") and ("rule_state" in sql or " timers" in sql):
            self.sql.append(sql)

    def state(self) -> list[str]:
        return [s for s in self.sql if "rule_state" in s]

    def timers(self) -> list[str]:
        return [s for s in self.sql if " timers" in s]


def tables(conn: sqlite3.Connection) -> tuple[dict[str, str], dict[str, tuple[str, int, int, str]]]:
    state = {k: v for k, v in conn.execute("SELECT key, value FROM rule_state")}
    timers = {
        k: (r, int(d), int(a), t)
        for k, r, d, a, t in conn.execute("SELECT key, rule, due_ms, armed_ms, data FROM timers")
    }
    return state, timers


def assert_cache_is_tables(h: Harness) -> None:
    rs = h.engine.rs
    state, timers = tables(h.store.conn)
    assert {k: v[1] for k, v in rs.state.items()} == state
    assert {k: (t.rule, t.due, t.armed, t.text) for k, t in rs.timers.items()} == timers


def test_repeated_value_writes_nothing(h: Harness) -> None:
    h.at(0)
    h.send("door-b1", "state", {"contact": True})
    assert h.store.conn.execute("SELECT value FROM rule_state WHERE key='contact|door-b1'").fetchone() == ("true",)
    w = Writes(h.store.conn)
    for s in range(1, 6):
        h.at(s * 10)
        h.send("door-b1", "state", {"contact": True})  # a door contact reporting "still closed"
    assert w.state() == [] and w.timers() == []
    assert_cache_is_tables(h)


def test_door_open_again_does_not_rewrite_its_timer(h: Harness) -> None:
    h.at(0)
    h.send("door-b1", "state", {"contact": False})
    armed = tables(h.store.conn)[1]["door|door-b1"]
    w = Writes(h.store.conn)
    h.at(30)
    h.send("door-b1", "state", {"contact": False})
    h.at(60)
    h.send("door-b1", "state", {"contact": False})
    assert w.sql == []
    assert tables(h.store.conn)[1]["door|door-b1"] == armed  # due time from the first open
    h.at(301)
    assert [i["type"] for i in h.incidents()] == ["door_held_open"]


def test_a_change_is_written_in_the_readings_transaction(h: Harness) -> None:
    h.at(0)
    h.send("door-b1", "state", {"contact": True})
    w = Writes(h.store.conn)
    h.at(10)
    h.send("door-b1", "state", {"contact": False})
    assert len(w.state()) == 1 and len(w.timers()) == 1
    # Committed: a second connection (another process after a crash) sees both.
    other = sqlite3.connect(h.db)
    try:
        assert other.execute("SELECT value FROM rule_state WHERE key='contact|door-b1'").fetchone() == ("false",)
        due = other.execute("SELECT due_ms FROM timers WHERE key='door|door-b1'").fetchone()
        assert due == (T0 + 10_000 + 300_000,)
    finally:
        other.close()
    h.at(20)
    h.send("door-b1", "state", {"contact": True})
    assert len(w.state()) == 2 and len(w.timers()) == 2  # back to closed, timer cancelled
    assert_cache_is_tables(h)


def test_state_is_the_same_after_reopening_the_store(h: Harness) -> None:
    h.at(0)
    h.send("door-b1", "state", {"contact": False})
    h.send("park-fire", "state", {"vehicle_present": True})
    before = tables(h.store.conn)

    def rule_state() -> dict[str, Any]:
        return {k: v for k, v in h.engine.rs.state.items() if not k.startswith("clock|")}

    cached = rule_state(), dict(h.engine.rs.timers)
    h.restart(T0 + 60_000)
    h.at(61)
    assert tables(h.store.conn)[1] == before[1]
    assert (rule_state(), dict(h.engine.rs.timers)) == cached
    assert_cache_is_tables(h)
    w = Writes(h.store.conn)
    h.send("door-b1", "state", {"contact": False})  # still open: known after the restart too
    assert w.sql == []
    h.at(301)
    assert "door_held_open" in [i["type"] for i in h.incidents()]


class FailOnce(BaseStage):
    """A later processor that fails one batch: the pipeline rolls the whole batch back."""

    def __init__(self) -> None:
        self.armed = False

    def process(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        if self.armed and result.resolved:
            self.armed = False
            raise RuntimeError("later processor failed")


def test_cache_follows_a_rolled_back_batch(h: Harness) -> None:
    fail = FailOnce()
    h.pipeline.stages.append(fail)
    h.at(0)
    h.send("door-b1", "state", {"contact": True})
    fail.armed = True
    h.at(10)
    h.send("door-b1", "state", {"contact": False})  # rules ran, then the batch was rolled back
    assert tables(h.store.conn)[0]["contact|door-b1"] == "true"
    assert "door|door-b1" not in tables(h.store.conn)[1]
    h.pipeline._held = []  # drop the held batch: the next message must still be evaluated afresh
    h.at(20)
    h.send("door-b1", "state", {"contact": False})
    assert h.engine.rs.reverts == 1
    assert tables(h.store.conn)[0]["contact|door-b1"] == "false"
    assert tables(h.store.conn)[1]["door|door-b1"][1] == T0 + 20_000 + 300_000
    assert_cache_is_tables(h)


def test_cache_follows_a_rule_bug_rollback(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(eng: Any, ctx: Any, dev: Any, res: Any, facts: Any) -> None:
        eng.rs.set(f"junk|{dev.id}", 1, ctx.now)
        eng.rs.timer_arm(f"junk|{dev.id}", "clear", ctx.now + 1000, ctx.now)
        raise RuntimeError("rule bug")

    monkeypatch.setattr(threshold, "on_reading", boom)
    h.at(0)
    h.send("door-b1", "state", {"contact": False})
    assert h.engine.errors >= 1
    assert "junk|door-b1" not in h.engine.rs.state and "junk|door-b1" not in h.engine.rs.timers
    assert "door|door-b1" in h.engine.rs.timers  # the other families' work is kept
    assert_cache_is_tables(h)


def test_same_json_is_type_strict() -> None:
    assert same_json({"a": [1, True, None, "x"]}, {"a": [1, True, None, "x"]})
    assert not same_json(True, 1)
    assert not same_json(1, 1.0)
    assert not same_json([1], (1,))
    assert not same_json({"a": 1}, {"a": 1, "b": 2})


def test_json_type_change_is_written(h: Harness) -> None:
    h.at(0)
    h.send("door-b1", "state", {"contact": True})  # the engine has loaded its cache
    rs = h.engine.rs
    conn = h.store.conn
    conn.execute("BEGIN IMMEDIATE")
    rs.begin(conn, object())
    assert rs.set("k", True, 1) is True
    assert rs.set("k", True, 2) is False
    assert rs.set("k", 1, 3) is True  # 1 == True in Python, not in JSON
    assert rs.set("k", [1, 2], 4) is True
    assert rs.set("k", (1, 2), 5) is False  # encodes the same
    assert rs.timer_arm("t", "clear", 100, 1, {"a": 1}) is True
    assert rs.timer_arm("t", "clear", 200, 2, {"a": 1}) is False  # armed: kept
    assert rs.timer_arm("t", "clear", 100, 3, {"a": 1}, replace=True) is True  # same: not rewritten
    assert rs.timers["t"].armed == 1
    assert rs.timer_arm("t", "clear", 150, 4, {"a": 1}, replace=True) is True
    conn.execute("COMMIT")
    assert conn.execute("SELECT value FROM rule_state WHERE key='k'").fetchone() == ("[1,2]",)
    assert conn.execute("SELECT due_ms, armed_ms FROM timers WHERE key='t'").fetchone() == (150, 4)
    assert_cache_is_tables(h)


def test_families_precomputed_per_device(h: Harness) -> None:
    devs = h.engine.devices
    door = devs["door-b1"].families
    assert door[0] is immediate and duration in door and threshold in door
    assert offline not in door and inactivity not in door
    assert offline in devs["park-fire"].families and duration in devs["park-fire"].families
    for dev in devs.values():  # the evaluation order is kept
        order = [immediate, duration, threshold, correlation]
        got = [f for f in dev.families if f in order]
        assert got == [f for f in order if f in got]


# --- open keys: a recovery reading of a key with no open incident needs no query -----------------
class OpenKeyQueries:
    """Counts the open-key look-ups on a connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.n = 0
        conn.set_trace_callback(self._trace)

    def _trace(self, sql: str) -> None:
        if "FROM incidents WHERE open_key=" in sql:
            self.n += 1


def test_repeated_normal_reading_does_not_query_incidents(h: Harness) -> None:
    h.at(0)
    h.send("door-b1", "state", {"contact": True, "tamper": False})
    h.at(1)
    h.send("door-b1", "state", {"contact": True, "tamper": False})  # learnt: nothing open
    q = OpenKeyQueries(h.store.conn)
    for s in range(2, 6):
        h.at(s)
        h.send("door-b1", "state", {"contact": True, "tamper": False})
    assert q.n == 0
    h.at(10)
    h.send("door-b1", "state", {"contact": True, "tamper": True})  # a change: evaluated
    assert q.n > 0 and [i["type"] for i in h.incidents()] == ["tamper"]
    n = q.n
    h.at(20)
    h.send("door-b1", "state", {"contact": True, "tamper": False})  # the key is open again
    assert q.n > n
    assert "clear|door-b1|tamper" in h.engine.rs.timers
    h.at(20 + h.engine.settings.clear_hold_s + 1)
    assert [i["state"] for i in h.incidents()] == ["resolved"]
    h.at(200)
    h.send("door-b1", "state", {"contact": True, "tamper": True})  # a new incident on the key
    assert [i["state"] for i in h.incidents()] == ["resolved", "new"]


def test_a_flapping_door_asks_once_whether_its_notice_is_open(h: Harness) -> None:
    """Every toggle of a flapping sensor checks its sensor_flapping notice (a drained backlog makes
    every door flap): once the notice is known open it is not looked up again, until some key is
    released; the notice then opens again as before."""
    flapping_key = "door-b1|sensor_flapping"
    sql: list[str] = []
    h.store.conn.set_trace_callback(lambda s: sql.append(s) if "open_key=" in s and flapping_key in s else None)
    door = h.engine.devices["door-b1"]  # a door's own threshold (20), else the site's
    n = door.settings.flapping_max_changes or h.engine.settings.flapping_max_changes
    t = 0.0
    for i in range(n + 1):
        h.at(t)
        h.send("door-b1", "state", {"contact": i % 2 == 0})
        t += 1
    [flap] = h.incidents()
    assert flap["type"] == "sensor_flapping"
    for i in range(6):  # flapping on: the notice is open
        h.at(t)
        h.send("door-b1", "state", {"contact": i % 2 == 1})
        t += 1
    asked = [s for s in sql if s.lstrip().upper().startswith("SELECT 1 FROM INCIDENTS")]
    assert len(asked) <= 2, asked  # learnt in the first transaction after the one that opened it
    h.engine.incidents.transition(h.store.conn, BatchResult(), flap["id"], "resolved", h.clock.wall_ms, h.clock.wall_ms)
    for i in range(2):
        h.at(t)
        h.send("door-b1", "state", {"contact": i % 2 == 0})
        t += 1
    states = [(i["type"], i["state"]) for i in h.incidents()]
    assert states == [("sensor_flapping", "resolved"), ("sensor_flapping", "new")]


class ResolveFirst(BaseStage):
    """A stage before the rules that resolves one incident (as a ticket action would)."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.incident_id: str | None = None

    def process(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        if self.incident_id is not None and result.resolved:
            self.h.engine.incidents.transition(conn, result, self.incident_id, "resolved", now_ms, now_ms)
            self.incident_id = None


def test_rolled_back_release_leaves_the_key_open(h: Harness) -> None:
    first = ResolveFirst(h)
    fail = FailOnce()
    h.pipeline.stages.insert(0, first)
    h.pipeline.stages.append(fail)
    h.at(0)
    h.send("door-b1", "state", {"tamper": True})
    h.at(1)
    h.send("door-b1", "state", {"contact": True})
    [tamper] = h.incidents()
    # Resolved, then the rules see the key released, then the batch is rolled back.
    first.incident_id, fail.armed = tamper["id"], True
    h.at(10)
    h.send("door-b1", "state", {"tamper": False})
    assert h.incidents()[0]["state"] == "new" and "clear|door-b1|tamper" not in h.engine.rs.timers
    h.pipeline._held = []
    h.at(20)
    h.send("door-b1", "state", {"tamper": False})  # the key is still open: the clear is armed
    assert "clear|door-b1|tamper" in h.engine.rs.timers
    h.at(20 + h.engine.settings.clear_hold_s + 1)
    assert [i["state"] for i in h.incidents()] == ["resolved"]


def test_decoded_copy_is_what_the_stored_json_decodes_to() -> None:
    """RuleStore keeps a timer's data / a state value as its stored text decodes; built directly
    from the value when it is plain JSON (the common case), decoded from the text otherwise."""
    values: list[Any] = [
        {"reason": "settled", "ts_ms": 1_765_000_000_000},
        {"since": 1, "reading": {"device": "d", "values": {"contact": False, "t": 21.5, "n": None}}, "l": [1, "x"]},
        {"tuple": (1, 2)},  # a list once stored
        {1: "int key"},  # a string key once stored
        {"inf": float("inf"), "neg_zero": -0.0},
        {"path": Path("/x")},  # not JSON: stored as its str()
        "text",
        7,
        [True, {"a": []}],
    ]
    for value in values:
        text = _dumps(value)
        got = decoded_copy(value, text)
        assert same_json(got, json.loads(text)), value
        assert _dumps(got) == text
    nested = {"reading": {"values": {"contact": True}}}
    got = decoded_copy(nested, _dumps(nested))
    nested["reading"]["values"]["contact"] = False  # the cache's copy is its own
    assert got == {"reading": {"values": {"contact": True}}}
