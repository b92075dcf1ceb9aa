"""The installer's commands (validate, run refusing a bad config) and the store's migrations."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from gateway.core import store as st
from tests.conftest import write_site
from tests.support import ROOT

EXAMPLE = ROOT / "edge_config" / "examples" / "community.yaml"


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_validate_example_prints_one_line_summary() -> None:
    r = cli("validate", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    assert "15 grids" in lines[0] and "40 buildings" in lines[0] and "devices" in lines[0]


def test_validate_reports_every_error_with_its_line(tmp_path: Path) -> None:
    site = write_site(tmp_path, 1883)
    text = site.read_text(encoding="utf-8")
    text = text.replace("grid: g2\n", "grid: g9\n", 1)  # building in an unknown grid
    text = text.replace("  - id: door-b1\n", "  - id: sos-r1\n", 1)  # duplicate device id
    text = text.replace("  name: 测试网关\n", "  name: 测试网关\n  timezone: Mars/Olympus\n", 1)
    site.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    r = cli("validate", str(site))
    assert r.returncode == 2
    errors = [e for e in r.stderr.splitlines() if e.startswith(str(site))]
    assert len(errors) >= 3, r.stderr
    for e in errors:
        _path, line, rest = e.split(":", 2)
        assert line.isdigit(), e
        key_path, _, message = rest.strip().partition(": ")
        assert key_path and message
    by_key = {e.split(":", 2)[2].strip().partition(": ")[0]: int(e.split(":", 2)[1]) for e in errors}
    assert "gateway.timezone" in by_key and "timezone: Mars/Olympus" in lines[by_key["gateway.timezone"] - 1]
    assert any(k.startswith("devices[") for k in by_key), by_key


def test_run_refuses_an_invalid_config_with_the_same_messages(tmp_path: Path) -> None:
    site = write_site(tmp_path, 1883)
    site.write_text(site.read_text(encoding="utf-8").replace("  id: gw-test\n", "  id: GW_TEST!\n"), encoding="utf-8")
    validate = cli("validate", str(site))
    run = cli("run", "--config", str(site), "--api-port", "0")
    assert run.returncode == validate.returncode == 2
    assert [x for x in run.stderr.splitlines() if x.startswith(str(site))] == [
        x for x in validate.stderr.splitlines() if x.startswith(str(site))
    ]
    assert not (tmp_path / "gateway.db").exists(), "nothing was started"


def test_store_migrates_a_database_made_by_the_first_release(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = st.connect(db)
    for stmt in st._split_sql(st.MIGRATIONS[0]):
        conn.execute(stmt)
    conn.execute("PRAGMA user_version=1")
    conn.execute("INSERT INTO config_revisions(revision, version, loaded_ms) VALUES ('abc', 1, 1)")
    conn.execute(
        "INSERT INTO readings(rx_ms, ts_ms, device_id, kind, vals, flags, msg_key, config_rev)"
        " VALUES (1, 1, 'd1', 'state', '{}', 0, 1, 1)"
    )
    conn.close()
    s = st.Store(db, st.Quota(64 << 20, 1 << 20))
    try:
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == st.SCHEMA_VERSION
        assert s.conn.execute("SELECT device_id FROM readings").fetchall() == [("d1",)]
    finally:
        s.close()


def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version={st.SCHEMA_VERSION + 1}")
    conn.close()
    try:
        st.Store(db, st.Quota(64 << 20, 1 << 20))
    except st.StoreError as exc:
        assert "newer" in str(exc)
    else:
        raise AssertionError("a store from a newer release must not be opened")


def test_store_files_are_private_to_the_service_user(tmp_path: Path) -> None:
    s = st.Store(tmp_path / "data" / "gw.db", st.Quota(64 << 20, 1 << 20))
    s.close()
    for name in ("gw.db", "gw.db-wal", "gw.db-shm"):
        p = tmp_path / "data" / name
        if p.exists():
            assert stat.S_IMODE(os.stat(p).st_mode) & 0o077 == 0, name
