"""The API's only contact with the ticket loop (``gateway/tickets``).

Isolated here so the rest of the API does not depend on it: when the gateway has no ``tickets``
attribute (the ticket loop not installed), actions, manual incidents and the scorecard answer
503 with a clear message, and everything else works.

Contract used: ``gw.tickets.apply_action(incident_id, action, *, actor, role, note, request_id,
data) -> Future[dict]``, ``gw.tickets.create_manual(*, category, type, severity, location,
description, actor, role, request_id) -> Future[dict]``, ``gateway.tickets.lifecycle.TicketError``
(code, message, current_state, allowed) and ``gateway.tickets.scorecard.compute(conn, cfg,
period) -> Scorecard`` with ``.rows``. A TicketError is a ``gateway.errors.GatewayError``: it is
left to propagate, and the app's one handler for those answers with its status and code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from gateway.errors import GatewayError

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.app import Gateway
    from gateway.core.contract import BatchResult
    from gateway.tickets.service import TicketService

ACTIONS: tuple[str, ...] = (
    "accept",
    "start",
    "resolve",
    "evaluate",
    "close",
    "cancel",
    "false_alarm",
    "reopen",
    "reassign",
    "whistle",
    "dispatch",
    "note",  # not a ticket step: a note added to the timeline (NOTE_ACTION below)
)
# Anyone who may act on an incident may add a note to its timeline, in any state.
NOTE_ACTION = "note"
NOTE_OFFER: dict[str, Any] = {
    "action": NOTE_ACTION,
    "fields": [{"name": "note", "kind": "text", "required": True, "max_len": 1000}],
}
ACTION_TIMEOUT_S = 15.0


def tickets(gw: Gateway) -> TicketService:
    t: TicketService | None = getattr(gw, "tickets", None)
    if t is None:
        raise HTTPException(503, "the ticket loop is not available on this gateway")
    return t


async def _await(fut: Future[dict[str, Any]]) -> dict[str, Any]:
    try:
        result = await asyncio.wait_for(asyncio.wrap_future(fut), ACTION_TIMEOUT_S)
    except TimeoutError:
        raise HTTPException(503, "the gateway is busy; retry with the same request_id") from None
    except (HTTPException, GatewayError):
        raise  # a TicketError answers through the app's GatewayError handler (its status and code)
    except Exception as exc:
        if isinstance(exc, KeyError):
            raise HTTPException(404, "no such incident") from None
        if isinstance(exc, ValueError):
            raise HTTPException(422, str(exc)) from None
        raise
    return dict(result) if isinstance(result, dict) else {"result": result}


async def apply_action(
    gw: Gateway,
    incident_id: str,
    action: str,
    *,
    actor: str,
    role: str,
    note: str | None,
    request_id: str | None,
    data: dict[str, Any] | None,
) -> dict[str, Any]:
    t = tickets(gw)
    # A TicketError from validation before the write is queued goes to the GatewayError handler.
    fut = t.apply_action(incident_id, action, actor=actor, role=role, note=note, request_id=request_id, data=data)
    return await _await(fut)


async def create_manual(
    gw: Gateway,
    *,
    category: str,
    type: str,
    severity: str,
    location: dict[str, Any],
    description: str,
    actor: str,
    role: str,
    request_id: str | None,
) -> dict[str, Any]:
    t = tickets(gw)
    fut = t.create_manual(
        category=category,
        type=type,
        severity=severity,
        location=location,
        description=description,
        actor=actor,
        role=role,
        request_id=request_id,
    )
    return await _await(fut)


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def scorecard_rows(conn: sqlite3.Connection, cfg: SiteConfig, period: str) -> list[dict[str, Any]]:
    """Runs in a reader thread."""
    try:
        from gateway.tickets import scorecard
    except ImportError:
        raise HTTPException(503, "the ticket loop (scorecard) is not available on this gateway") from None
    try:
        card = scorecard.compute(conn, cfg, period)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(422, f"bad period: {exc}") from None
    return [_plain(r) for r in card.rows]


def offers(
    cfg: SiteConfig, row: dict[str, Any], *, role: str, actor: str, now_ms: int, worked_by: frozenset[str]
) -> list[dict[str, Any]]:
    """The actions the caller may take now (the ticket loop's table) plus adding a note."""
    try:
        from gateway.tickets import lifecycle
    except ImportError:
        return [NOTE_OFFER]
    found = lifecycle.offers(cfg, row, row, role=role, actor=actor, now_ms=now_ms, worked_by=worked_by)
    return [*found, NOTE_OFFER]


def worked_by(conn: sqlite3.Connection, incident_id: str) -> frozenset[str]:
    """Who worked the incident (may not evaluate it). Runs in a reader thread."""
    try:
        from gateway.tickets import lifecycle
    except ImportError:
        return frozenset()
    return frozenset(lifecycle.involved(conn, incident_id))


def add_note(gw: Gateway, incident_id: str, note: str, *, actor: str, role: str) -> Future[int]:
    """Append a ``note`` event (who, what) to the incident's timeline, on the pipeline thread."""
    t = tickets(gw)
    incidents = t.ctx.incidents

    def write(conn: sqlite3.Connection, result: BatchResult, now: int) -> int:
        return incidents.append_event(conn, result, incident_id, "note", now, {"note": note}, actor=actor, role=role)

    return gw.pipeline.call(write)
