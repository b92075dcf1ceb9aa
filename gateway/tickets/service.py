"""``Gateway.tickets``: the ticket loop wired into a running gateway.

The API calls these from the asyncio loop; each returns a
:class:`concurrent.futures.Future` (``await asyncio.wrap_future(...)``) whose result is the
incident dict after the change, or whose exception is a :class:`~gateway.tickets.lifecycle.TicketError`.
All of them run on the pipeline's writer thread via :meth:`Pipeline.call`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from gateway.core.contract import BatchResult
from gateway.tickets import lifecycle as lc
from gateway.tickets.notify import NotifySender, paho_publisher
from gateway.tickets.processor import TicketProcessor

if TYPE_CHECKING:
    import paho.mqtt.client as paho

    from gateway.app import Gateway

SCORE_ITEMS_CENTRAL = ("contract_fulfilment", "on_site_inspection")


class TicketService:
    """The thread around the ticket stage (the notification sender) and the API's ticket actions.

    The stage itself is a link of the chain that gateway/app.py declares; a reload may replace it,
    so the service always asks the pipeline for the current one.
    """

    def __init__(self, gw: Gateway, stage: TicketProcessor) -> None:
        self.gw = gw
        cfg = gw.cfg
        publish = None
        if cfg.tickets.mqtt:
            from gateway.ingest.mqtt import TELEMETRY

            def client() -> paho.Client | None:
                s = gw.sessions.get(TELEMETRY)
                return s.client if s is not None else None

            publish = paho_publisher(client)
        self.sender = NotifySender(
            gw.store_path, cfg, call=gw.pipeline.call, publish=publish, incidents=stage.ctx.incidents
        )
        gw.add_listener(self._committed)

    @property
    def processor(self) -> TicketProcessor:
        """The ticket stage now in the chain (a reload builds a new one)."""
        for stage in self.gw.pipeline.stages:
            if isinstance(stage, TicketProcessor):
                return stage
        raise LookupError("the chain has no ticket stage")

    @property
    def ctx(self) -> lc.TicketContext:
        return self.processor.ctx

    def start(self) -> None:
        if self.gw.cfg.tickets.enabled:
            self.sender.start()

    def stop(self) -> None:
        self.sender.stop()

    def _committed(self, result: BatchResult) -> None:
        if result.incident_events:
            self.sender.wake()

    # --- the API's entry points ------------------------------------------------------------------
    def apply_action(
        self,
        incident_id: str,
        action: str,
        *,
        actor: str,
        role: str,
        note: str | None = None,
        request_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Future[dict[str, Any]]:
        ctx = self.ctx

        def fn(c: sqlite3.Connection, r: BatchResult, now: int) -> dict[str, Any]:
            return lc.apply_action(
                c, r, incident_id, action, actor=actor, role=role, note=note, request_id=request_id, data=data,
                now_ms=now, ctx=ctx,
            )  # fmt: skip

        return self.gw.pipeline.call(fn)

    def create_manual(
        self,
        *,
        category: str,
        type: str,
        severity: str,
        location: Mapping[str, Any],
        description: str,
        actor: str,
        role: str,
        request_id: str | None = None,
    ) -> Future[dict[str, Any]]:
        ctx = self.ctx

        def fn(c: sqlite3.Connection, r: BatchResult, now: int) -> dict[str, Any]:
            return lc.create_manual(
                c, r, category=category, type=type, severity=severity, location=location, description=description,
                actor=actor, role=role, request_id=request_id, now_ms=now, ctx=ctx,
            )  # fmt: skip

        return self.gw.pipeline.call(fn)

    def set_scorecard_input(
        self, *, entity_kind: str, entity: str, period: str, item: str, value: float, actor: str, role: str
    ) -> Future[None]:
        """The central platform enters contract fulfilment / on-site inspection (0-100) for a period."""

        def fn(c: sqlite3.Connection, r: BatchResult, now: int) -> None:
            set_scorecard_input(
                c, entity_kind=entity_kind, entity=entity, period=period, item=item, value=value, actor=actor,
                role=role, now_ms=now,
            )  # fmt: skip

        return self.gw.pipeline.call(fn)


def set_scorecard_input(
    conn: sqlite3.Connection,
    *,
    entity_kind: str,
    entity: str,
    period: str,
    item: str,
    value: float,
    actor: str,
    role: str,
    now_ms: int,
) -> None:
    from gateway.tickets.scorecard import parse_period

    if role != "central_platform":
        raise lc.TicketError("forbidden", "only the central platform enters centrally scored items")
    if item not in SCORE_ITEMS_CENTRAL:
        raise lc.TicketError("invalid", f"item must be one of {', '.join(SCORE_ITEMS_CENTRAL)}")
    if entity_kind not in ("property_company", "team", "department", "grid"):
        raise lc.TicketError("invalid", "entity_kind must be property_company, team, department or grid")
    if not 0 <= float(value) <= 100:
        raise lc.TicketError("invalid", "value must be 0-100")
    try:
        kind, *_ = parse_period(period)
    except ValueError as exc:
        raise lc.TicketError("invalid", str(exc)) from None
    if kind == "year":
        raise lc.TicketError("invalid", "enter quarters or months; the year is the mean of its quarters")
    conn.execute(
        "INSERT INTO scorecard_inputs(entity_kind, entity, period, item, value, entered_by, entered_ms)"
        " VALUES (?,?,?,?,?,?,?) ON CONFLICT(entity_kind, entity, period, item) DO UPDATE SET"
        " value=excluded.value, entered_by=excluded.entered_by, entered_ms=excluded.entered_ms",
        (entity_kind, entity, period, item, float(value), actor, now_ms),
    )


__all__ = ["TicketService", "set_scorecard_input"]
