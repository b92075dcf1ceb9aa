"""store.transaction and store.savepoint: commit on success, roll back on any exception, the
original error surfaces even when the undo fails, and a savepoint undoes only its own part; the
token CLI's revoke rolls back when it fails."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gateway.api import auth
from gateway.core import store as st


class Boom(Exception):
    pass


class FailingUndoConnection(sqlite3.Connection):
    """A real connection whose ROLLBACK / ROLLBACK TO fail (as after an I/O error)."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.startswith("ROLLBACK"):
            raise sqlite3.OperationalError(f"disk I/O error (injected on {sql})")
        return super().execute(sql, *args)


def _connect(path: Path, factory: type[sqlite3.Connection] = sqlite3.Connection) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, factory=factory)
    conn.execute("CREATE TABLE IF NOT EXISTS t(v TEXT)")
    return conn


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = _connect(tmp_path / "t.db")
    yield c
    c.close()


def _values(conn: sqlite3.Connection) -> list[str]:
    return [v for (v,) in conn.execute("SELECT v FROM t ORDER BY rowid")]


def test_commits_on_success(conn: sqlite3.Connection, tmp_path: Path) -> None:
    with st.transaction(conn) as c:
        assert c is conn and conn.in_transaction
        conn.execute("INSERT INTO t VALUES ('a')")
    assert not conn.in_transaction
    other = sqlite3.connect(tmp_path / "t.db")
    try:
        assert [v for (v,) in other.execute("SELECT v FROM t")] == ["a"]  # durable, seen by others
    finally:
        other.close()


def test_rolls_back_on_exception(conn: sqlite3.Connection) -> None:
    with pytest.raises(Boom), st.transaction(conn):
        conn.execute("INSERT INTO t VALUES ('a')")
        raise Boom
    assert not conn.in_transaction
    assert _values(conn) == []


def test_rolls_back_on_base_exception(conn: sqlite3.Connection) -> None:
    with pytest.raises(KeyboardInterrupt), st.transaction(conn):
        conn.execute("INSERT INTO t VALUES ('a')")
        raise KeyboardInterrupt
    assert _values(conn) == [] and not conn.in_transaction


@pytest.mark.parametrize("mode", ["DEFERRED", "IMMEDIATE", "EXCLUSIVE", "immediate"])
def test_modes(conn: sqlite3.Connection, mode: str) -> None:
    with st.transaction(conn, mode):
        conn.execute("INSERT INTO t VALUES (?)", (mode,))
    assert _values(conn) == [mode]


def test_refuses_an_unknown_mode(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError), st.transaction(conn, "IMMEDIATE; DROP TABLE t"):
        pass
    assert not conn.in_transaction


def test_the_original_exception_surfaces_when_rollback_fails(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "t.db", FailingUndoConnection)
    try:
        with pytest.raises(Boom) as ei, st.transaction(conn):
            conn.execute("INSERT INTO t VALUES ('a')")
            raise Boom("the cause")
        assert str(ei.value) == "the cause"
        assert any("ROLLBACK also failed" in n and "injected" in n for n in ei.value.__notes__)
    finally:
        conn.close()  # closing with the transaction open discards it


def test_a_failed_commit_is_rolled_back_and_raised(conn: sqlite3.Connection, tmp_path: Path) -> None:
    # A reader's snapshot does not block a WAL commit, so use a rollback-journal lock instead:
    # another connection's shared lock makes our COMMIT fail with "database is locked".
    conn.execute("PRAGMA busy_timeout=0")
    reader = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchall()
        with pytest.raises(sqlite3.OperationalError, match="locked"), st.transaction(conn):
            conn.execute("INSERT INTO t VALUES ('a')")
        assert not conn.in_transaction
        reader.execute("COMMIT")
    finally:
        reader.close()
    assert _values(conn) == []


def test_savepoint_inside_a_transaction_undoes_only_its_part(conn: sqlite3.Connection) -> None:
    with st.transaction(conn):
        conn.execute("INSERT INTO t VALUES ('outer-before')")
        with pytest.raises(Boom), st.savepoint(conn, "part"):
            conn.execute("INSERT INTO t VALUES ('inner')")
            raise Boom
        assert conn.in_transaction  # the enclosing transaction goes on
        with st.savepoint(conn, "kept"):
            conn.execute("INSERT INTO t VALUES ('inner-kept')")
        conn.execute("INSERT INTO t VALUES ('outer-after')")
    assert _values(conn) == ["outer-before", "inner-kept", "outer-after"]


def test_nested_savepoints(conn: sqlite3.Connection) -> None:
    with st.transaction(conn):
        with st.savepoint(conn, "a"):
            conn.execute("INSERT INTO t VALUES ('a')")
            with pytest.raises(Boom), st.savepoint(conn, "b"):
                conn.execute("INSERT INTO t VALUES ('b')")
                raise Boom
        with pytest.raises(Boom), st.savepoint(conn, "c"):
            conn.execute("INSERT INTO t VALUES ('c')")
            with st.savepoint(conn, "d"):
                conn.execute("INSERT INTO t VALUES ('d')")
            raise Boom
    assert _values(conn) == ["a"]


def test_savepoint_outside_a_transaction_commits(conn: sqlite3.Connection) -> None:
    with st.savepoint(conn, "alone"):
        conn.execute("INSERT INTO t VALUES ('a')")
    assert not conn.in_transaction and _values(conn) == ["a"]


def test_savepoint_refuses_a_name_that_is_not_an_identifier(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError), st.savepoint(conn, "x; DROP TABLE t"):
        pass


def test_savepoint_keeps_a_store_error_when_its_undo_fails(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "t.db", FailingUndoConnection)
    try:
        conn.execute("BEGIN")
        with pytest.raises(sqlite3.IntegrityError, match="the cause") as ei, st.savepoint(conn, "part"):
            raise sqlite3.IntegrityError("the cause")
        assert any("ROLLBACK TO part also failed" in n for n in ei.value.__notes__)
    finally:
        conn.close()


def test_savepoint_replaces_another_error_when_its_undo_fails(tmp_path: Path) -> None:
    # A caller that handles its block's failure and carries on must not go on writing as if only
    # its part had been undone: it gets the store error, chained to the cause.
    conn = _connect(tmp_path / "t.db", FailingUndoConnection)
    try:
        conn.execute("BEGIN")
        with pytest.raises(sqlite3.OperationalError, match="injected") as ei, st.savepoint(conn, "part"):
            raise Boom("the cause")
        assert isinstance(ei.value.__context__, Boom)
    finally:
        conn.close()


def test_migrate_rolls_back_a_failed_migration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = st.connect(tmp_path / "gw.db")
    try:
        good = list(st.MIGRATIONS)
        monkeypatch.setattr(st, "MIGRATIONS", [good[0], "CREATE TABLE half(x);\nTHIS IS NOT SQL;"])
        monkeypatch.setattr(st, "SCHEMA_VERSION", 2)
        with pytest.raises(sqlite3.OperationalError):
            st.migrate(conn)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name='half'").fetchone()[0] == 0
    finally:
        conn.close()


# --- the token CLI's revoke --------------------------------------------------------------------


class RecordingConnection(sqlite3.Connection):
    """Remembers whether a transaction was still open when the connection was closed."""

    open_at_close: ClassVar[list[bool]] = []

    def close(self) -> None:
        RecordingConnection.open_at_close.append(self.in_transaction)
        super().close()


def test_token_revoke_rolls_back_when_it_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "gw.db"
    made = st.connect(db)
    st.migrate(made)
    made.close()
    row, _token = auth.cli_create(db, role="installer", name="inst")
    setup = sqlite3.connect(db, isolation_level=None)
    # The revoke's UPDATE runs (and is written) before a trigger after it fails the statement.
    setup.execute("CREATE TABLE audit(x)")
    setup.execute(
        "CREATE TRIGGER refuse AFTER UPDATE ON api_tokens BEGIN"
        " INSERT INTO audit VALUES (1); SELECT RAISE(FAIL, 'refused by the test trigger'); END"
    )
    setup.close()

    def recording_conn(path: str | Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, factory=RecordingConnection)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    RecordingConnection.open_at_close.clear()
    monkeypatch.setattr(auth, "_cli_conn", recording_conn)
    with pytest.raises(sqlite3.IntegrityError, match="refused by the test trigger"):
        auth.cli_revoke(db, row.id)
    assert RecordingConnection.open_at_close == [False]  # rolled back, not left for close() to discard
    check = sqlite3.connect(db)
    try:
        assert check.execute("SELECT revoked_ms FROM api_tokens WHERE id=?", (row.id,)).fetchone() == (None,)
        assert check.execute("SELECT count(*) FROM audit").fetchone() == (0,)
    finally:
        check.close()
    monkeypatch.undo()
    fix = sqlite3.connect(db, isolation_level=None)
    fix.execute("DROP TRIGGER refuse")
    fix.close()
    assert auth.cli_revoke(db, row.id) is True  # and the store is usable afterwards
