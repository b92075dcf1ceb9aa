"""The ticket loop's pipeline stage (installed right after the RuleEngine).

``after`` (end of every transaction): dispatch incidents ``created`` in this transaction, resolve
dispatched-but-unaccepted ones whose condition ``auto_cleared``, then write the notification rows
for every event of the transaction. ``tick`` (about once a second): clock-step check, then due
SLA deadlines, escalation rungs, re-notifications and rating timeouts.

A bug here must not stall ingest (an SOS reading must still commit): non-SQLite exceptions roll
back to a savepoint, are logged and counted (``errors``); SQLite errors propagate so the pipeline
retries the whole transaction.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.core import incidents as inc
from gateway.core.clock import mono_ms
from gateway.core.contract import BaseStage, BatchResult
from gateway.core.store import savepoint
from gateway.tickets import escalation, notify
from gateway.tickets import lifecycle as lc

if TYPE_CHECKING:
    from edge_config import SiteConfig

log = logging.getLogger("gateway.tickets")


class TicketProcessor(BaseStage):
    def __init__(
        self,
        cfg: SiteConfig,
        *,
        config_rev: int | None = None,
        mono: Callable[[], int] = mono_ms,
        clock_synced: Callable[[], bool] | None = None,
    ) -> None:
        self.cfg = cfg
        self.settings = cfg.tickets
        self.guard = escalation.ClockGuard(self.settings, cfg.rules.clock_step_s * 1000, mono=mono, synced=clock_synced)
        self.ctx = lc.TicketContext(cfg, inc.IncidentStore(cfg.gateway.id, config_rev), self.guard)
        self._rev_known = config_rev is not None
        self.errors = 0

    def reconfigured(self, cfg: SiteConfig, rev: int) -> TicketProcessor:
        """A new stage for the new config; the clock guard (with what it saw) and the error count stay."""
        new = TicketProcessor(cfg, config_rev=rev)
        new.guard = self.guard
        new.errors = self.errors
        return new

    def _begin(self, conn: sqlite3.Connection, now_ms: int) -> None:
        if not self._rev_known:
            row = conn.execute("SELECT id FROM config_revisions WHERE revision=?", (self.cfg.revision,)).fetchone()
            self.ctx.incidents.config_rev = int(row[0]) if row else None
            self._rev_known = True
        self.guard.check(conn, now_ms)

    def _guarded(self, conn: sqlite3.Connection, result: BatchResult, fn: Callable[[], None]) -> None:
        n_events = len(result.incident_events)
        try:
            with savepoint(conn, "tickets"):
                fn()
        except sqlite3.Error:
            raise
        except Exception:
            log.exception("ticket processing failed; this step is skipped")
            del result.incident_events[n_events:]
            self.errors += 1

    def tick(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        if not self.settings.enabled:
            return

        def run() -> None:
            self._begin(conn, now_ms)
            escalation.fire_due(conn, result, self.ctx, now_ms)

        self._guarded(conn, result, run)

    def after(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        if not self.settings.enabled or not result.incident_events:
            return

        def run() -> None:
            self._begin(conn, now_ms)
            for ev in list(result.incident_events):
                kind = ev.kind
                if kind == "created":
                    if lc.ticket(conn, ev.incident_id) is None:
                        lc.dispatch_new(conn, result, self.ctx, ev.incident_id, now_ms)
                elif kind == "auto_cleared" and not ev.data.get("resolved"):
                    incident = inc.get(conn, ev.incident_id)
                    if incident is not None and not incident["life_safety"] and incident["state"] == "dispatched":
                        lc.auto_resolve(conn, result, self.ctx, incident["id"], str(ev.data.get("reason")), now_ms)

        self._guarded(conn, result, run)
        self._guarded(conn, result, lambda: self._notify(conn, result, now_ms))

    def _notify(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        notify.queue_notifications(conn, self.cfg, result.incident_events, now_ms)
