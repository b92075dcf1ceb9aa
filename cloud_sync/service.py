"""Wiring for :class:`gateway.app.Gateway`: the outbox processor, the sender thread, the alarm."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from cloud_sync.outbox import OutboxProcessor
from cloud_sync.sender import Sender
from gateway.core.contract import BatchResult

if TYPE_CHECKING:
    import sqlite3
    from concurrent.futures import Future

    from gateway.app import Gateway

log = logging.getLogger("cloud_sync")

ALARM_KEY = "gateway|sync_unauthorized"


class SyncService:
    """The sender thread around the chain's outbox stage (the last stage; gateway/app.py wires it)."""

    def __init__(self, gw: Gateway, stage: OutboxProcessor) -> None:
        self.gw = gw
        self.processor = stage
        self.sender = Sender(gw.store_path, gw.cfg.sync, shared=self.processor, on_alarm=self._alarm)
        gw.add_listener(self._committed)

    def start(self) -> None:
        self.sender.start()

    def stop(self) -> None:
        self.sender.stop()

    def _committed(self, result: BatchResult) -> None:
        # Committed now: send incident events without waiting for the poll. Life-safety readings
        # alone wait for the next request (Sender.next_batch), so they need no wake-up.
        if result.incident_events:
            self.sender.wake()

    def _alarm(self, kind: str, active: bool, detail: dict[str, Any]) -> None:
        """401/403 from the central store: a gateway event and a device_health incident (data is kept)."""
        p = self.gw.pipeline
        p.post_event(kind if active else f"{kind}_cleared", "critical" if active else "info", detail)
        try:
            from gateway.core.incidents import IncidentStore, Trigger
        except ImportError:  # incidents not wired in this build
            return
        store = IncidentStore(self.gw.cfg.gateway.id, getattr(self.gw, "config_rev", None))

        def raise_(c: sqlite3.Connection, r: BatchResult, now: int) -> None:
            store.raise_or_repeat(
                c,
                r,
                Trigger(
                    key=ALARM_KEY,
                    category="device_health",
                    type="sync_unauthorized",
                    severity="major",
                    ts_ms=now,
                    detail={"status": detail.get("status"), "message": str(detail.get("message", ""))[:200]},
                ),
                now,
            )

        def clear(c: sqlite3.Connection, r: BatchResult, now: int) -> None:
            store.auto_clear(c, r, ALARM_KEY, now, "sync_authorized", now)

        def done(f: Future[Any]) -> None:
            if f.exception() is not None:
                log.error("sync alarm not recorded: %s", f.exception())

        p.call(raise_ if active else clear).add_done_callback(done)
