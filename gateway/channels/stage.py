"""The channels' link of the chain: staff messages written in the same transaction as their events.

It runs right after the ticket stage, so it sees every incident event of the transaction, including
the ones the ticket loop appended (``dispatched``, ``escalated`` ...), and writes the rows that
:class:`gateway.channels.delivery.ChannelDispatcher` later sends. A row commits with the event it
announces: a crash cannot lose one, and a rolled-back event never messages anyone.

A bug here must not stall ingest (an SOS reading must still commit): anything but an SQLite error
rolls back to a savepoint, is logged and counted (``errors``); SQLite errors propagate so the
pipeline retries the whole transaction.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from gateway.channels import outbox
from gateway.core.contract import BaseStage, BatchResult
from gateway.core.store import savepoint

if TYPE_CHECKING:
    from edge_config import SiteConfig

log = logging.getLogger("gateway.channels")


class ChannelStage(BaseStage):
    def __init__(self, cfg: SiteConfig | Any) -> None:  # Any: tests pass light config stand-ins
        self.cfg = cfg
        self.errors = 0

    def after(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        # Channels announce ticket-loop events: with the loop off there is nothing to announce.
        if not self.cfg.tickets.enabled or not result.incident_events:
            return
        try:
            with savepoint(conn, "channels"):
                outbox.queue_channel_messages(conn, self.cfg, result.incident_events, now_ms)
        except sqlite3.Error:
            raise
        except Exception:  # rolled back to the savepoint: the rest of the transaction stands
            log.exception("channel messages not written for this transaction")
            self.errors += 1

    def reconfigured(self, cfg: SiteConfig, rev: int) -> ChannelStage:
        new = ChannelStage(cfg)
        new.errors = self.errors
        return new
