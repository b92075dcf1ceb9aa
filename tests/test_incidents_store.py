"""The incident store: one open incident per key enforced by the store, recurrence links, the
feed cursor."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway.core import incidents as inc
from gateway.core import store as st
from gateway.core.contract import BatchResult


def _store(path: Path) -> st.Store:
    return st.Store(path, st.Quota(64 * 1024 * 1024, 4 * 1024 * 1024))


def trig(key: str = "dev1|sos", ts: int = 1_000, typ: str = "sos") -> inc.Trigger:
    return inc.Trigger(
        key=key,
        category="eldercare",
        type=typ,
        severity="critical",
        ts_ms=ts,
        devices=["dev1"],
        reading={"device": "dev1", "ts_ms": ts, "kind": "event", "values": {"sos": True}},
    )


def test_migration_creates_tables_and_store_uid(tmp_path: Path) -> None:
    s = _store(tmp_path / "g.db")
    try:
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == st.SCHEMA_VERSION >= 2
        uid = s.get_meta("store_uid")
        assert uid is not None and len(uid) == 8
        names = {r[0] for r in s.conn.execute("SELECT name FROM sqlite_master")}
        assert {"incidents", "incident_events", "rule_state", "timers", "incidents_open_key"} <= names
    finally:
        s.close()


def test_concurrent_writers_make_one_incident(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    _store(db).close()
    n_threads, per_thread = 6, 40
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def worker() -> None:
        conn = st.connect(db)
        store = inc.IncidentStore("gw-a")
        try:
            barrier.wait()
            for i in range(per_thread):
                conn.execute("BEGIN IMMEDIATE")
                store.raise_or_repeat(conn, None, trig(ts=1000 + i), 1000 + i)
                conn.execute("COMMIT")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    conn = st.connect(db)
    try:
        [row] = inc.all_incidents(conn)
        assert row["count"] == n_threads * per_thread
        kinds = [e.kind for e in inc.events(conn, 0, 10_000)]
        assert kinds.count("created") == 1 and kinds.count("repeated") == n_threads * per_thread - 1
        assert len(row["readings"]) == inc.MAX_READINGS
    finally:
        conn.close()


def test_the_index_refuses_a_second_open_incident_for_a_key(tmp_path: Path) -> None:
    s = _store(tmp_path / "g.db")
    try:
        c = s.conn
        c.execute("BEGIN IMMEDIATE")
        inc.IncidentStore("gw-a").raise_or_repeat(c, None, trig(), 1000)
        with pytest.raises(sqlite3.IntegrityError):
            c.execute(
                "INSERT INTO incidents(id, created_seq, category, type, severity, key, open_key, first_ms, last_ms,"
                " created_ms, updated_ms) VALUES ('x', 99, 'eldercare', 'sos', 'critical', 'dev1|sos', 'dev1|sos',"
                " 1, 1, 1, 1)"
            )
        c.execute("ROLLBACK")
    finally:
        s.close()


class _StaleFirstLookup:
    """A connection whose first open-key lookup misses, as a writer racing another would see."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.missed = False

    def execute(self, sql: str, params: Any = ()) -> Any:
        if not self.missed and sql.startswith("SELECT id, count"):
            self.missed = True
            return self.conn.execute("SELECT 1 WHERE 0")
        return self.conn.execute(sql, params)


def test_lost_race_becomes_a_repeat(tmp_path: Path) -> None:
    s = _store(tmp_path / "g.db")
    try:
        c = s.conn
        store = inc.IncidentStore("gw-a")
        c.execute("BEGIN IMMEDIATE")
        first = store.raise_or_repeat(c, None, trig(), 1000)
        second = store.raise_or_repeat(_StaleFirstLookup(c), None, trig(ts=1001), 1001)  # type: ignore[arg-type]
        c.execute("COMMIT")
        assert first.created and not second.created
        assert second.incident_id == first.incident_id and second.count == 2
        assert len(inc.all_incidents(c)) == 1
    finally:
        s.close()


def test_recurrence_after_resolution_links_previous_and_ids_are_gateway_scoped(tmp_path: Path) -> None:
    s = _store(tmp_path / "g.db")
    try:
        c = s.conn
        store = inc.IncidentStore("gw-hy-01")
        res = BatchResult()
        c.execute("BEGIN IMMEDIATE")
        a = store.raise_or_repeat(c, res, trig(), 1000)
        store.transition(c, res, a.incident_id, "resolved", 2000, 2000, actor="ec1", role="eldercare_worker")
        b = store.raise_or_repeat(c, res, trig(ts=3000), 3000)
        # cancelled also releases the key
        store.transition(c, res, b.incident_id, "cancelled", 4000, 4000, actor="ec1")
        d = store.raise_or_repeat(c, res, trig(ts=5000), 5000)
        c.execute("COMMIT")
        assert a.created and b.created and d.created
        rows = inc.all_incidents(c)
        assert [r["previous_id"] for r in rows] == [None, a.incident_id, b.incident_id]
        assert [r["state"] for r in rows] == ["resolved", "cancelled", "new"]
        assert all(r["id"].startswith(f"gw-hy-01-{s.get_meta('store_uid')}-") for r in rows)
        # the events handed to listeners are the stored ones, in order
        assert [e.seq for e in res.incident_events] == [e.seq for e in inc.events(c)]
        assert [e.kind for e in res.incident_events] == [
            "created",
            "state_changed",
            "created",
            "state_changed",
            "created",
        ]
        assert res.incident_events[1].actor == "ec1" and res.incident_events[1].role == "eldercare_worker"
    finally:
        s.close()


def test_reopening_when_a_newer_incident_holds_the_key_is_refused(tmp_path: Path) -> None:
    s = _store(tmp_path / "g.db")
    try:
        c = s.conn
        store = inc.IncidentStore("gw-a")
        c.execute("BEGIN IMMEDIATE")
        a = store.raise_or_repeat(c, None, trig(), 1000)
        store.transition(c, None, a.incident_id, "resolved", 2000, 2000)
        store.raise_or_repeat(c, None, trig(ts=3000), 3000)
        with pytest.raises(sqlite3.IntegrityError):
            store.transition(c, None, a.incident_id, "reopened", 4000, 4000)
        c.execute("ROLLBACK")
    finally:
        s.close()


def test_feed_seq_is_monotonic_and_never_reused(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    s = _store(db)
    store = inc.IncidentStore("gw-a")
    c = s.conn
    c.execute("BEGIN IMMEDIATE")
    for i in range(5):
        store.raise_or_repeat(c, None, trig(key=f"d{i}|sos", ts=i), i)
    c.execute("COMMIT")
    last = inc.events(c)[-1].seq
    c.execute("BEGIN IMMEDIATE")
    c.execute("DELETE FROM incident_events WHERE seq=?", (last,))  # never done, but even then:
    c.execute("COMMIT")
    s.close()
    s = _store(db)
    try:
        c = s.conn
        c.execute("BEGIN IMMEDIATE")
        seq = store.append_event(c, None, "x", "note", 10, {"n": 1}, actor="ps1")
        c.execute("COMMIT")
        assert seq > last
        seqs = [e.seq for e in inc.events(c)]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert [e.seq for e in inc.events(c, after=seqs[1])] == seqs[2:]
    finally:
        s.close()


def test_auto_clear_resolves_ordinary_and_only_records_life_safety(tmp_path: Path) -> None:
    s = _store(tmp_path / "g.db")
    try:
        c = s.conn
        store = inc.IncidentStore("gw-a")
        c.execute("BEGIN IMMEDIATE")
        store.raise_or_repeat(c, None, trig(), 1)
        store.raise_or_repeat(c, None, trig(key="dev1|water_leak", typ="water_leak"), 1)
        store.auto_clear(c, None, "dev1|sos", 5, "sos_false", 5)
        store.auto_clear(c, None, "dev1|water_leak", 5, "water_leak_false", 5)
        c.execute("COMMIT")
        sos, leak = inc.all_incidents(c)
        assert (sos["state"], sos["open_key"], sos["auto_cleared_ms"]) == ("new", "dev1|sos", 5)
        assert (leak["state"], leak["open_key"], leak["cleared_reason"]) == ("resolved", None, "water_leak_false")
    finally:
        s.close()
