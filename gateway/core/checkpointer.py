"""WAL checkpoints off the writer's path: copied into the database file by a thread of their own.

SQLite checkpoints inside the COMMIT that crosses ``wal_autocheckpoint``: that commit copies
megabytes of WAL into the database file and fsyncs it, and every message waiting for the writer
waits with it. Under a Pi-class CPU budget, with the broker rewriting its own persistence file on
the same disk, such commits took 180-340 ms (bench/pi_budget.py, the SOS presses of a backlog
drain), where an ordinary one takes a few ms.

Here a second connection runs ``PRAGMA wal_checkpoint(PASSIVE)`` every ``interval_s``. A PASSIVE
checkpoint never takes the write lock: the writer keeps committing (and fsyncing its WAL, which is
what makes a commit durable) while frames are copied. Durability is unchanged; only when the
copying happens moves. The writer keeps a large ``wal_autocheckpoint`` (store.WRITER_BACKSTOP_PAGES) as
a backstop, so the WAL stays bounded if this thread falls behind or is not running (tests that
drive the pipeline in-process).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("gateway.core.checkpointer")

INTERVAL_S = 1.0


class Checkpointer:
    def __init__(self, path: str | Path, interval_s: float = INTERVAL_S) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self.checkpoints = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        from gateway.core.store import connect

        try:
            conn = connect(self.path)
        except sqlite3.Error as exc:
            self.last_error = str(exc)
            log.error("WAL checkpointer cannot open the store (the writer checkpoints instead): %s", exc)
            return
        try:
            while not self._stop.wait(self.interval_s):
                self.once(conn)
        finally:
            conn.close()

    def once(self, conn: sqlite3.Connection) -> None:
        try:
            busy, _wal, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # disk full, I/O error: the writer's backstop still bounds the WAL
            if str(exc) != self.last_error:
                log.warning("WAL checkpoint failed (retrying every %.0f s): %s", self.interval_s, exc)
            self.last_error = str(exc)
            return
        self.checkpoints += 1
        self.last_error = None
        if busy:
            log.debug("WAL checkpoint incomplete: a reader still uses older frames")
