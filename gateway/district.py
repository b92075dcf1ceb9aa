"""Quarter-to-date scores and department figures for the district's dashboards (docs/central.md).

The scorecard is computed from the whole ticket timeline, too much work for the writer thread's
tick, so this reader thread computes it every ``sync.scores_every_s`` on its own read-only
connection and hands the rows to the writer, which puts them in the sync outbox as
``edge_score`` and ``edge_department`` points (incident class: never thinned). Percentiles stay
the scorecard's own (nearest rank), so the dashboards show exactly what ``edge-gateway scorecard``
prints. Here and not in cloud_sync: the sync layer must not depend on the ticket loop.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from cloud_sync import central
from cloud_sync.outbox import PRIO_EVENT
from gateway.core.workers import ReaderThread
from gateway.tickets import departments, scorecard

if TYPE_CHECKING:
    from cloud_sync.outbox import OutboxProcessor
    from edge_config import SiteConfig
    from gateway.core.contract import BatchResult

log = logging.getLogger("gateway.district")


def quarter(cfg: SiteConfig, now_ms: int) -> str:
    t = dt.datetime.fromtimestamp(now_ms / 1000, ZoneInfo(cfg.gateway.timezone))
    return f"{t.year}-Q{(t.month - 1) // 3 + 1}"


def score_rows(conn: sqlite3.Connection, cfg: SiteConfig, period: str) -> list[dict[str, Any]]:
    """The scorecard rows of ``period`` with the on-site times added."""
    on_site = departments.on_site_figures(conn, cfg, period)
    rows = []
    for r in scorecard.compute(conn, cfg, period).rows:
        rows.append({**r, **on_site.get((r["kind"], r["entity"]), {})})
    return rows


def points(conn: sqlite3.Connection, cfg: SiteConfig, site: dict[str, str | None], now_ms: int) -> list[central.Point]:
    period = quarter(cfg, now_ms)
    return [
        *central.score_points(site, period, score_rows(conn, cfg, period), now_ms),
        *central.department_points(site, period, departments.compute(conn, cfg, period, now_ms), now_ms),
    ]


class ScoreSnapshots(ReaderThread):
    thread_name = "district-scores"

    def __init__(
        self,
        db_path: str | Path,
        cfg: SiteConfig,
        outbox: OutboxProcessor,
        *,
        call: Callable[[Callable[[sqlite3.Connection, BatchResult, int], Any]], Future[Any]],
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        super().__init__(db_path)
        self.cfg = cfg
        self.outbox = outbox
        self.call = call
        self.clock = clock

    def run_once(self) -> int:
        """Compute now and hand the points to the writer; returns how many were queued."""
        pts = points(self._read(), self.cfg, dict(self.outbox.site_tags), self.clock())
        n: int = self.call(lambda c, r, now: self.outbox.add_points(c, PRIO_EVENT, pts, now)).result(30)
        return n

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("district scores not computed; next pass as scheduled")
            self._wake.wait(self.cfg.sync.scores_every_s)
            self._wake.clear()
