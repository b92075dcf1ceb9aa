"""The residents' link of the chain (after the ticket stage and the staff channels).

``after`` (end of every transaction): for each incident *resolved* in this transaction and still
waiting for a rating, ask whoever evaluates it (:func:`gateway.residents.asks.create_requests`, in
the same transaction: a resolution never commits without its request). When an incident leaves
``resolved`` otherwise — rated by a proxy call, closed by hand, reopened, nobody answering — its
pending requests are settled. ``tick``: reporters' phone numbers past ``report.phone_days`` are
erased (personal data) and links expired for a month are deleted, at most every few minutes.

Placed after the channels on purpose: staff are not messaged about evaluation requests, and the
sync outbox (last) still carries them to the central platform. Like the other stages it guards
itself: a bug here is logged and counted, never stalls ingest; SQLite errors propagate.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.core import incidents as inc
from gateway.core import links
from gateway.core.contract import BaseStage, BatchResult
from gateway.core.store import savepoint
from gateway.residents import asks
from gateway.tickets import lifecycle as lc

if TYPE_CHECKING:
    from edge_config import SiteConfig

log = logging.getLogger("gateway.residents")
PHONE_SWEEP_S = 300.0


class ResidentStage(BaseStage):
    def __init__(self, cfg: SiteConfig, *, config_rev: int | None = None) -> None:
        self.cfg = cfg
        self.ctx = lc.TicketContext(cfg, inc.IncidentStore(cfg.gateway.id, config_rev))
        self._rev_known = config_rev is not None
        self._next_sweep = 0.0
        self.errors = 0

    @property
    def enabled(self) -> bool:
        return bool(self.cfg.resident_loop.enabled and self.cfg.tickets.enabled)

    def reconfigured(self, cfg: SiteConfig, rev: int) -> ResidentStage:
        new = ResidentStage(cfg, config_rev=rev)
        new.errors, new._next_sweep = self.errors, self._next_sweep
        return new

    def _guarded(self, conn: sqlite3.Connection, result: BatchResult, fn: Callable[[], None]) -> None:
        n_events = len(result.incident_events)
        try:
            with savepoint(conn, "residents"):
                if not self._rev_known:
                    row = conn.execute(
                        "SELECT id FROM config_revisions WHERE revision=?", (self.cfg.revision,)
                    ).fetchone()
                    self.ctx.incidents.config_rev = int(row[0]) if row else None
                    self._rev_known = True
                fn()
        except sqlite3.Error:
            raise
        except Exception:
            log.exception("resident requests not written for this transaction")
            del result.incident_events[n_events:]
            self.errors += 1

    def after(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        if not self.enabled or not result.incident_events:
            return
        self._guarded(conn, result, lambda: self._events(conn, result, now_ms))

    def _events(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        resolved: list[str] = []
        for ev in list(result.incident_events):
            if ev.kind == "not_rated" and ev.data.get("reason") == "no_response":
                asks.settle(conn, ev.incident_id, "no_response", now_ms)
            elif ev.kind == "state_changed" and ev.data.get("to") == "resolved":
                resolved.append(ev.incident_id)
            elif ev.kind == "state_changed" and ev.data.get("from") == "resolved":
                if ev.data.get("source") == "proxy_call":
                    asks.settle(conn, ev.incident_id, "answered", now_ms, "proxy_call")
                else:
                    asks.settle(conn, ev.incident_id, "closed", now_ms)
        for iid in dict.fromkeys(resolved):
            incident = inc.get(conn, iid)
            # still waiting for a rating (not rated categories were closed by the ticket stage already)
            if incident is not None and incident["state"] == "resolved":
                asks.create_requests(conn, result, self.ctx, incident, now_ms)

    def tick(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        mono = time.monotonic()
        if not self.cfg.resident_loop.enabled or mono < self._next_sweep:
            return
        self._next_sweep = mono + PHONE_SWEEP_S
        cutoff = now_ms - self.cfg.resident_loop.report.phone_days * asks.DAY_MS

        def sweep() -> None:
            n = conn.execute(
                "UPDATE resident_reports SET phone=NULL WHERE phone IS NOT NULL AND received_ms < ?", (cutoff,)
            ).rowcount
            if n:
                log.info("retention: %d reporters' phone numbers erased", n)
            # links expired for a month: their refusal page says "expired" until then, "unknown" after
            links.prune(conn, older_than_ms=now_ms - 30 * asks.DAY_MS)

        self._guarded(conn, result, sweep)
