"""Backup of a live store, checked restore, and migrating stores made by earlier releases (issue 8)."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from gateway.core import store as st
from gateway.install.backup import BackupError, backup, restore, verify
from tests.support import ROOT


def _writer(db: Path, stop: threading.Event, done: list[int]) -> None:
    s = st.Store(db, st.Quota(256 << 20, 8 << 20))
    s.conn.execute("BEGIN IMMEDIATE")
    rev = s.config_rev_id("r1", 1)
    s.conn.execute("COMMIT")
    n = 0
    while not stop.is_set():
        s.conn.execute("BEGIN IMMEDIATE")
        s.conn.executemany(
            "INSERT INTO readings(rx_ms, ts_ms, device_id, kind, vals, flags, msg_key, config_rev)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [
                (n + i, n + i, "d1", "state", '{"temperature": 21.5, "pad": "' + "x" * 200 + '"}', 0, n + i, rev)
                for i in range(200)
            ],
        )
        s.conn.execute("COMMIT")
        n += 200
    done.append(n)
    s.close()


def test_backup_while_writing_then_restore(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    stop, done = threading.Event(), list[int]()
    t = threading.Thread(target=_writer, args=(db, stop, done))
    t.start()
    try:

        def ready() -> bool:
            if not db.exists():
                return False
            c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                return c.execute("SELECT count(*) FROM readings").fetchone()[0] > 0
            except sqlite3.Error:
                return False
            finally:
                c.close()

        while not ready():
            time.sleep(0.05)
        time.sleep(1.0)
        info = backup(db, tmp_path / "backups" / "b1.db")  # while the writer commits
    finally:
        stop.set()
        t.join(30)
    assert info.integrity == "ok" and info.schema_version == st.SCHEMA_VERSION
    n = info.counts["readings"]
    assert 0 < n <= done[0] and n % 200 == 0  # whole transactions only: one consistent snapshot
    conn = sqlite3.connect(info.path)
    assert conn.execute("SELECT min(id), max(id) FROM readings").fetchone() == (1, n)
    conn.close()
    assert (info.path.stat().st_mode & 0o777) == 0o600
    # restore refuses while the store is open by a writer, then works once it is stopped
    live = st.Store(db, st.Quota(256 << 20, 8 << 20))
    with pytest.raises(BackupError, match="stop the gateway"):
        restore(info.path, db)
    live.close()
    kept = restore(info.path, db)
    assert kept is not None and kept.exists()
    s = st.Store(db, st.Quota(256 << 20, 8 << 20))
    assert s.conn.execute("SELECT count(*) FROM readings").fetchone()[0] == n
    assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    s.close()


def test_restore_refuses_damaged_or_newer_backups(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\0" + b"\x13" * 5000)
    with pytest.raises(BackupError):
        verify(bad)
    newer = tmp_path / "newer.db"
    c = sqlite3.connect(newer)
    c.execute("CREATE TABLE x(a)")
    c.execute(f"PRAGMA user_version={st.SCHEMA_VERSION + 1}")
    c.close()
    with pytest.raises(BackupError, match="newer than this release"):
        restore(newer, tmp_path / "store.db")
    assert not (tmp_path / "store.db").exists()


def _old_store(db: Path, migrations: list[str]) -> None:
    conn = st.connect(db)
    for sql in migrations:
        for stmt in st._split_sql(sql):
            conn.execute(stmt)
    conn.execute(f"PRAGMA user_version={len(migrations)}")
    conn.execute("INSERT INTO config_revisions(revision, version, loaded_ms) VALUES ('abc', 1, 1)")
    conn.executemany(
        "INSERT INTO readings(rx_ms, ts_ms, device_id, kind, vals, flags, msg_key, config_rev)"
        " VALUES (?, ?, 'd1', 'state', '{}', 0, ?, 1)",
        [(i, i, i) for i in range(1, 101)],
    )
    conn.execute("INSERT INTO unconfigured VALUES ('native', 'x1', 1, 2, 3, 't', '{}')")
    conn.close()


def _previous_release_migrations() -> list[str]:
    """MIGRATIONS of the last committed release (git HEAD), else the first release's."""
    try:
        src = subprocess.run(
            ["git", "show", "HEAD:gateway/core/store.py"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return st.MIGRATIONS[:1]
    ns: dict[str, object] = {}
    exec(compile(src, "HEAD:gateway/core/store.py", "exec"), ns)
    migrations = ns["MIGRATIONS"]
    assert isinstance(migrations, list)
    assert migrations == st.MIGRATIONS[: len(migrations)], "a released migration was edited"
    return migrations


@pytest.mark.parametrize("which", ["first", "previous"])
def test_upgrade_migrates_an_older_store(tmp_path: Path, which: str) -> None:
    migrations = st.MIGRATIONS[:1] if which == "first" else _previous_release_migrations()
    db = tmp_path / "old.db"
    _old_store(db, migrations)
    version, _ = verify(db)  # an older backup restores fine and is migrated at start
    assert version == len(migrations)
    s = st.Store(db, st.Quota(64 << 20, 1 << 20))
    try:
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == st.SCHEMA_VERSION
        assert s.conn.execute("SELECT count(*), sum(id) FROM readings").fetchone() == (100, 5050)
        assert s.conn.execute("SELECT address FROM unconfigured").fetchall() == [("x1",)]
        assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        s.conn.execute("SELECT count(*) FROM incidents").fetchone()  # later tables exist
    finally:
        s.close()
