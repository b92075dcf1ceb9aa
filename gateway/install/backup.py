"""Consistent backups of the live store, and a checked restore.

A WAL database cannot be copied file by file while the gateway writes (the ``-wal`` file holds
committed transactions the main file does not have yet, and the pair changes under ``cp``).
``backup`` opens its own read connection and uses SQLite's online backup API
(``Connection.backup``) in ONE step: the copy is read inside a single read transaction, i.e. one
WAL snapshot, so it is consistent and the gateway keeps writing meanwhile (in WAL mode a reader
never blocks the writer; only checkpoints wait). Copying in several steps would restart the whole
copy after every commit of the gateway and might never finish on a busy site. The copy is written
next to the target, checked (``PRAGMA integrity_check``), fsync'd and renamed into place.

``restore`` (gateway stopped): the backup must pass ``integrity_check`` and have a schema version
this release knows (older ones are migrated when the gateway starts); the current store is kept as
``<store>.before-restore`` and the backup is put in place atomically (rename), with the stale
``-wal``/``-shm`` files of the old store removed first.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.core import store as st
from gateway.errors import GatewayError


class BackupError(GatewayError):
    code = "backup_failed"


@dataclass
class BackupInfo:
    path: Path
    bytes: int
    schema_version: int
    seconds: float
    integrity: str
    counts: dict[str, int]


COUNT_TABLES = ("readings", "devices", "incidents", "incident_events", "dead_letters")


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    out = {}
    for t in COUNT_TABLES:
        try:
            out[t] = int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
        except sqlite3.Error:
            continue
    return out


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def backup(store_path: str | Path, out: str | Path, *, pages_per_step: int = -1) -> BackupInfo:
    """Copy the (possibly live) store to ``out`` consistently. Never touches the source's data."""
    src_path = Path(store_path)
    if not src_path.exists():
        raise BackupError(f"{src_path}: no store there (check --store or store.path)")
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    t0 = time.monotonic()
    # A plain (not query_only) read connection: the backup API reads the WAL as a reader does.
    src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True, timeout=30)
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)  # residents' data: owner only
    os.close(fd)
    dst = sqlite3.connect(tmp)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        src.backup(dst, pages=pages_per_step)
        dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        integrity = str(dst.execute("PRAGMA integrity_check").fetchone()[0])
        version = int(dst.execute("PRAGMA user_version").fetchone()[0])
        counts = _counts(dst)
    except sqlite3.Error as exc:
        dst.close()
        tmp.unlink(missing_ok=True)
        raise BackupError(f"backup of {src_path} failed: {exc}") from exc
    finally:
        src.close()
    dst.close()
    if integrity != "ok":
        tmp.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its integrity check: {integrity}")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)
    return BackupInfo(dest, dest.stat().st_size, version, time.monotonic() - t0, integrity, counts)


def verify(path: str | Path) -> tuple[int, dict[str, int]]:
    """Integrity and schema version of a backup file; raises BackupError with the reason."""
    p = Path(path)
    if not p.exists():
        raise BackupError(f"{p}: no such backup")
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{p}: cannot open: {exc}") from exc
    try:
        result = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        counts = _counts(conn)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{p}: not a gateway store ({exc})") from exc
    finally:
        conn.close()
    if result != ["ok"]:
        raise BackupError(f"{p}: integrity check failed: {'; '.join(result[:5])}")
    if version < 1:
        raise BackupError(f"{p}: not a gateway store (schema version 0)")
    if version > st.SCHEMA_VERSION:
        raise BackupError(
            f"{p}: schema version {version} is newer than this release ({st.SCHEMA_VERSION}); "
            "restore with the release that made it"
        )
    return version, counts


def store_in_use(store_path: str | Path) -> bool:
    """True when another connection holds the store (a running gateway keeps a write lock cycle;
    we test for an exclusive lock: impossible while any other connection has the WAL open)."""
    p = Path(store_path)
    if not p.exists():
        return False
    conn = sqlite3.connect(p, timeout=0.2, isolation_level=None)
    try:
        mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
        if mode.lower() == "wal":
            # In WAL mode an exclusive lock (locking_mode=EXCLUSIVE + a write) fails while others read.
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            with st.transaction(conn, "EXCLUSIVE"):
                conn.execute("SELECT 1")  # taking the exclusive lock is the whole test
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def restore(backup_path: str | Path, store_path: str | Path, *, gateway_running: bool | None = None) -> Path | None:
    """Put a verified backup in place of the store. Returns where the old store was kept."""
    verify(backup_path)
    dest = Path(store_path)
    running = store_in_use(dest) if gateway_running is None else gateway_running
    if running:
        raise BackupError(f"{dest} is in use: stop the gateway first (systemctl stop edge-gateway)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".restoring")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{backup_path}?mode=ro", uri=True)
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    kept: Path | None = None
    if dest.exists():
        # Fold the old store's WAL into it, so the kept copy is complete on its own.
        with contextlib.suppress(sqlite3.Error):
            c = sqlite3.connect(dest)
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            c.close()
        kept = dest.with_name(dest.name + ".before-restore")
        os.replace(dest, kept)
    for suffix in ("-wal", "-shm"):
        Path(f"{dest}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)
    return kept
