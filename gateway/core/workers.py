"""A background sender thread with its own read-only store connection (notifications, channels).

Senders read pending rows with their own connection (WAL lets them read while the pipeline
writes) and hand every outcome back to the pipeline thread, the only writer. Subclasses set
``thread_name`` and implement ``_run``; ``wake`` is called after commits that queued work.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from pathlib import Path


class ReaderThread(ABC):
    thread_name = "reader"

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def wake(self) -> None:
        self._wake.set()

    def _read(self) -> sqlite3.Connection:
        if self._conn is None:
            from gateway.core.store import connect

            self._conn = connect(self.db_path, readonly=True)
        return self._conn

    @abstractmethod
    def _run(self) -> None:
        """The sender's loop: runs until ``self._stop`` is set, sleeping on ``self._wake``."""
